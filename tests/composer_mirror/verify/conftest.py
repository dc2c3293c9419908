"""A small mirror, built by the library itself in moto's mocked S3, for verify to walk."""

from __future__ import annotations

from collections.abc import Iterator

import boto3
import pytest

from tests.composer_mirror.mirror_builder import Mirror, built_mirror


@pytest.fixture
def mirror(session: boto3.session.Session) -> Iterator[Mirror]:
    with built_mirror(session) as built:
        built.add_package("psr/log", ["1.0.0", "1.1.0", "2.0.0"])
        built.add_package("acme/tool", ["0.1.0"])
        yield built
