"""Unit-test fixtures shared by the library's tests: an S3Store over moto's in-process S3, and a mirror."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from composer_mirror.store import S3Store
from devtools.fixture_registry import Registry
from tests.composer_mirror.mirror_builder import Mirror, built

UNIT_BUCKET = "unit-bucket"


@pytest.fixture(scope="module")
def session() -> boto3.session.Session:
    """Dummy credentials for moto; clients made from it inside ``mock_aws`` never leave the process."""
    return boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing")


@pytest.fixture
def store(session: boto3.session.Session) -> Iterator[S3Store]:
    """A fresh bucket under ``repo/``, with near-zero retry backoff so fault tests stay fast."""
    with mock_aws():
        s3 = session.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket=UNIT_BUCKET)
        yield S3Store(s3, UNIT_BUCKET, "repo/", backoff=0.001)


@pytest.fixture
def mirror_options() -> dict[str, Any]:
    """How ``mirror`` is built: keywords of ``mirror_builder.built`` (``packages``, the selection, and
    ``changes_feed``). A module overrides it for its tests; a test parametrises it."""
    return {}


@pytest.fixture
def mirror(session: boto3.session.Session, registry: Registry, mirror_options: dict[str, Any]) -> Iterator[Mirror]:
    """A fresh mirror of the ``registry`` fixture, in moto's in-process S3; nothing is synced yet."""
    with built(session, registry, **mirror_options) as running:
        yield running
