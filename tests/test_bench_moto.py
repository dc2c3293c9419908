"""The bench's moto LIST shortcut returns exactly what moto's own LIST returns."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from moto import mock_aws
from moto.s3.models import S3Backend

from bench.moto_counting import prefix_listing
from devtools.harness import DUMMY_AWS

pytestmark = pytest.mark.perf

BUCKET = "listing"
KEYS = [
    "repo/dists/acme/a/1.zip",
    "repo/dists/acme/a/2.zip",
    "repo/dists/acme/ab/1.zip",
    "repo/dists/other/x/1.zip",
    "repo/p2/acme/a.json",
    "repo/p2/acme/a~dev.json",
    "top.json",
]
QUERIES = [
    {"Prefix": "repo/dists/acme/a/"},
    {"Prefix": "repo/dists/acme/a"},
    {"Prefix": "repo/", "Delimiter": "/"},
    {"Prefix": "repo/dists/", "Delimiter": "/"},
    {"Prefix": "repo/p2/acme/", "MaxKeys": 1},
    {"Prefix": "nothing/"},
    {},
]


def listings() -> list[dict[str, Any]]:
    s3 = boto3.client(
        "s3",
        region_name="us-east-1",
        aws_access_key_id=DUMMY_AWS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=DUMMY_AWS["AWS_SECRET_ACCESS_KEY"],
    )
    s3.create_bucket(Bucket=BUCKET)
    for key in KEYS:
        s3.put_object(Bucket=BUCKET, Key=key, Body=b"x")
    s3.put_object(Bucket=BUCKET, Key=KEYS[0], Body=b"second version")
    s3.delete_object(Bucket=BUCKET, Key=KEYS[1])
    results = []
    for query in QUERIES:
        answer = s3.list_objects_v2(Bucket=BUCKET, **query)
        contents = [(item["Key"], item["ETag"], item["Size"]) for item in answer.get("Contents", [])]
        results.append(
            {"Contents": contents, **{k: answer.get(k) for k in ("CommonPrefixes", "IsTruncated", "KeyCount")}}
        )
    return results


def test_prefix_listing_matches_moto(monkeypatch: pytest.MonkeyPatch) -> None:
    with mock_aws():
        expected = listings()
    monkeypatch.setattr(S3Backend, "list_objects", prefix_listing(S3Backend.list_objects))
    with mock_aws():
        assert listings() == expected
    assert expected[0]["KeyCount"] == 1 and expected[2]["CommonPrefixes"]
