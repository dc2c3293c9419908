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
from moto import mock_aws

from composer_mirror.context import Context
from composer_mirror.settings import Settings
from composer_mirror.store import S3Store
from composer_mirror.sync import pipeline
from composer_mirror.upstream import FetchPolicy, RetryPolicy, UpstreamClient
from composer_mirror.upstream.composer import read_endpoints
from tests.fixture_registry import Registry, RegistryServer

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
        registry = Registry.from_lock(FIXTURES / "symfony-demo" / "composer.lock", extra_versions=1)
    with RegistryServer(registry, changes_feed=False) as server, mock_aws():
        s3 = session.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="golden")
        settings = Settings(
            bucket="golden",
            public_url="https://mirror.example/repo",
            upstream_url=server.url,
            prefix="repo",
            packages=SELECTION,
        )
        client = UpstreamClient(FetchPolicy(server.url), concurrency=2, retry=RetryPolicy(attempts=2, backoff=0.01))
        ctx = Context(settings, S3Store(s3, "golden", settings.key_prefix, backoff=0.001), client)
        ctx.upstream = read_endpoints(client, server.url)
        assert pipeline.sync(ctx, "golden", max_batches=64).failures == []
        client.close()
        digests = {}
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket="golden", Prefix="repo/"):
            for item in page.get("Contents", []):
                key = item["Key"].removeprefix("repo/")
                if key == "packages.json" or key.startswith(("p2/", "dists/")):
                    body = s3.get_object(Bucket="golden", Key=item["Key"])["Body"].read()
                    digests[key] = hashlib.sha256(body.replace(server.url.encode(), b"UPSTREAM")).hexdigest()
        return digests


def test_a_run_publishes_the_bytes_the_code_before_the_refactor_published(session: boto3.session.Session) -> None:
    assert published_digests(session) == json.loads(PINNED.read_text())
