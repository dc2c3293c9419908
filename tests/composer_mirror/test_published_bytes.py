"""The bytes a mirror publishes, pinned: the restructured code publishes what the code before it did.

``tests/fixtures/published-bytes-before-refactor.json`` holds the sha256 of every object a client
reads (the root, every p2 file, every archive) after one run over a fixed fixture registry, recorded
with the code as it stood before the storage, upstream and sync packages were split out and the
package records were introduced (commit 56b5fb2). The same run with today's code must publish the
same bytes. The upstream's own URL (a random loopback port, in ``source`` entries) is replaced by a
placeholder before hashing; the advisories' ``reportedAt`` is pinned by fixing the clock while the
registry is built.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from unittest import mock

import boto3

from composer_mirror.sync import pipeline
from devtools.fixture_registry import Registry
from devtools.harness import SAMPLE_LOCK
from tests.composer_mirror.mirror_builder import BUCKET, PREFIX, built

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
PINNED = FIXTURES / "published-bytes-before-refactor.json"
SELECTION = (
    "psr/log",
    "psr/log:3.0.x-dev",
    "twig/twig",
    "psr/container",
    "symfony/polyfill-intl-id*:^1.0",
    "monolog/monolog",
)


def published_digests(session: boto3.session.Session) -> dict[str, str]:
    with mock.patch("time.time", return_value=1_767_225_600.0):  # advisories' reportedAt: a fixed day
        registry = Registry.from_lock(SAMPLE_LOCK, extra_versions=1)
    with built(session, registry, packages=SELECTION, changes_feed=False) as mirror:
        assert pipeline.sync(mirror.ctx, "golden", max_batches=64).failures == []
        digests = {}
        for page in mirror.s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=PREFIX):
            for item in page.get("Contents", []):
                key = item["Key"].removeprefix(PREFIX)
                if key == "packages.json" or key.startswith(("p2/", "dists/")):
                    body = mirror.s3.get_object(Bucket=BUCKET, Key=item["Key"])["Body"].read()
                    digests[key] = hashlib.sha256(body.replace(mirror.server.url.encode(), b"UPSTREAM")).hexdigest()
        return digests


def test_a_run_publishes_the_bytes_the_code_before_the_refactor_published(session: boto3.session.Session) -> None:
    assert published_digests(session) == json.loads(PINNED.read_text())
