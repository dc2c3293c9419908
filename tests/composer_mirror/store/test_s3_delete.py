"""Tests for the store's batch delete (DeleteObjects, 1000 keys per request) against moto's mocked S3."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from composer_mirror.errors import StoreError
from composer_mirror.store import S3Store
from composer_mirror.store import s3 as store_module

BUCKET = "mirror-bucket"
PREFIX = "repo/"


@pytest.fixture
def client() -> Iterator[Any]:
    with mock_aws():
        made = boto3.client("s3", region_name="us-east-1", aws_access_key_id="t", aws_secret_access_key="t")
        made.create_bucket(Bucket=BUCKET)
        yield made


@pytest.fixture
def calls(client: Any) -> Counter:
    seen: Counter = Counter()
    client.meta.events.register("before-call.s3", lambda model, **kwargs: seen.update([model.name]))
    return seen


@pytest.fixture
def store(client: Any) -> S3Store:
    return S3Store(client, BUCKET, PREFIX, backoff=0.001)


def keys(client: Any) -> set[str]:
    return {item["Key"] for item in client.list_objects_v2(Bucket=BUCKET).get("Contents", [])}


def test_delete_many_deletes_every_path_under_the_prefix_in_chunks(
    store: S3Store, client: Any, calls: Counter, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store_module, "DELETE_BATCH", 2)
    for index in range(5):
        client.put_object(Bucket=BUCKET, Key=f"{PREFIX}dists/{index}.zip", Body=b"x")
    client.put_object(Bucket=BUCKET, Key="other/dists/0.zip", Body=b"x")
    calls.clear()
    assert store.delete_many(f"dists/{index}.zip" for index in range(5)) == []
    assert keys(client) == {"other/dists/0.zip"}
    assert calls["DeleteObjects"] == 3


def test_a_chunk_is_at_most_the_1000_keys_s3_accepts(store: S3Store, calls: Counter) -> None:
    assert store.delete_many(f"dists/{index}.zip" for index in range(1001)) == []
    assert calls["DeleteObjects"] == 2


def test_delete_many_of_nothing_sends_no_request(store: S3Store, calls: Counter) -> None:
    assert store.delete_many([]) == []
    assert calls["DeleteObjects"] == 0


def test_delete_many_returns_the_paths_s3_refused_one_by_one() -> None:
    class Refusing:
        def delete_objects(self, **kwargs: Any) -> dict[str, Any]:
            first = kwargs["Delete"]["Objects"][0]["Key"]
            return {"Errors": [{"Key": first, "Code": "AccessDenied", "Message": "no"}]}

    assert S3Store(Refusing(), BUCKET, PREFIX).delete_many(["p2/a/b.json", "p2/c/d.json"]) == ["p2/a/b.json"]


def test_delete_many_retries_a_throttled_request_and_raises_other_errors(store: S3Store, client: Any) -> None:
    failures = iter([("SlowDown", 503), ("AccessDenied", 403)])

    def fail(**kwargs: Any) -> None:
        code, status = next(failures, (None, 0))
        if code:
            raise ClientError(
                {"Error": {"Code": code}, "ResponseMetadata": {"HTTPStatusCode": status}}, "DeleteObjects"
            )

    client.meta.events.register("before-call.s3.DeleteObjects", fail)
    with pytest.raises(StoreError, match="AccessDenied"):
        store.delete_many(["dists/a.zip"])
    assert store.request_counts()["DELETE"] == 2


def test_delete_many_refuses_unsafe_paths_before_sending_anything(store: S3Store, calls: Counter) -> None:
    with pytest.raises(StoreError, match="unsafe"):
        store.delete_many(["dists/../../escape"])
    assert calls["DeleteObjects"] == 0
