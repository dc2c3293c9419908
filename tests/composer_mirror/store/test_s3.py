"""Tests for the S3 store against moto's in-process S3 (mock_aws) and a boto3 client."""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from composer_mirror.errors import ConflictError, StoreError
from composer_mirror.store import (
    ARCHIVE_CACHE,
    METADATA_CACHE,
    ZIP,
    S3Store,
    md5_etag,
    safe_key_part,
)
from composer_mirror.store import s3 as store_module

BUCKET = "mirror-bucket"
PREFIX = "repo/"


@pytest.fixture
def client(session: boto3.session.Session) -> Iterator[Any]:
    with mock_aws():
        made = session.client("s3", region_name="us-east-1")
        made.create_bucket(Bucket=BUCKET)
        yield made


@pytest.fixture
def calls(client: Any) -> Counter:
    """S3 operations that really reached the (mocked) service, counted by operation name."""
    seen: Counter = Counter()

    def count(model: Any, **kwargs: Any) -> None:
        seen[model.name] += 1

    client.meta.events.register("before-call.s3", count)
    return seen


@pytest.fixture
def store(client: Any) -> S3Store:
    return S3Store(client, BUCKET, PREFIX, backoff=0.001)


def fail_first(client: Any, operation: str, times: int, code: str, status: int) -> list[int]:
    """Make the next ``times`` calls of ``operation`` fail with an S3 error; returns the call log."""
    made: list[int] = []

    def fail(**kwargs: Any) -> None:
        made.append(1)
        if len(made) <= times:
            raise ClientError(
                {"Error": {"Code": code, "Message": "injected"}, "ResponseMetadata": {"HTTPStatusCode": status}},
                operation,
            )

    client.meta.events.register(f"before-call.s3.{operation}", fail)
    return made


# --- keys ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "path",
    ["packages.json", "p2/psr/log.json", "p2/psr/log~dev.json", "dists/psr/log/1.0.0/abc.zip", "state/cursor.json"],
)
def test_safe_key_part_accepts(path: str) -> None:
    assert safe_key_part(path) == path


@pytest.mark.parametrize(
    "path",
    [
        "",
        "/packages.json",
        "..",
        "../other-prefix/packages.json",
        "p2/../../x",
        "p2/psr/..",
        ".",
        "./p2/x.json",
        "p2/./x.json",
        "p2//x.json",
        "p2/x/",
        "p2\\psr\\log.json",
        "p2/psr\\..\\x.json",
    ],
)
def test_safe_key_part_refuses(path: str) -> None:
    with pytest.raises(StoreError, match="unsafe object key"):
        safe_key_part(path)


def test_an_unsafe_key_is_refused_before_any_request(store: S3Store, calls: Counter) -> None:
    with pytest.raises(StoreError):
        store.put("../escape.json", b"{}")
    with pytest.raises(StoreError):
        store.get("p2//x.json")
    assert sum(calls.values()) == 0


def test_the_prefix_is_applied_to_every_key(store: S3Store, client: Any) -> None:
    store.put("p2/psr/log.json", b"{}")
    assert client.get_object(Bucket=BUCKET, Key="repo/p2/psr/log.json")["Body"].read() == b"{}"
    assert [o["Key"] for o in client.list_objects_v2(Bucket=BUCKET)["Contents"]] == ["repo/p2/psr/log.json"]


def test_an_empty_prefix_writes_at_the_bucket_root(client: Any) -> None:
    S3Store(client, BUCKET).put("packages.json", b"{}")
    assert client.get_object(Bucket=BUCKET, Key="packages.json")["Body"].read() == b"{}"


# --- primitives ---------------------------------------------------------------------------
def test_get_of_a_missing_key_is_none(store: S3Store) -> None:
    assert store.get("p2/absent/package.json") is None


def test_head_of_a_missing_key_is_none(store: S3Store) -> None:
    assert store.head("p2/absent/package.json") is None


def test_get_json_of_a_missing_key_is_none(store: S3Store) -> None:
    assert store.get_json("state/absent.json") is None


def test_get_on_a_missing_bucket_raises(client: Any) -> None:
    with pytest.raises(StoreError, match="NoSuchBucket"):
        S3Store(client, "no-such-bucket", backoff=0.001).get("packages.json")


def test_put_then_get_round_trips_bytes_and_headers(store: S3Store, client: Any) -> None:
    etag = store.put("dists/a/b/1.0.0/ref.zip", b"PK\x03\x04zip", content_type=ZIP, cache_control=ARCHIVE_CACHE)
    stored = store.get("dists/a/b/1.0.0/ref.zip")
    assert stored is not None
    assert (stored.body, stored.etag) == (b"PK\x03\x04zip", etag)
    assert etag == md5_etag(b"PK\x03\x04zip")
    head = client.head_object(Bucket=BUCKET, Key="repo/dists/a/b/1.0.0/ref.zip")
    assert (head["ContentType"], head["CacheControl"]) == (ZIP, ARCHIVE_CACHE)


def test_get_capped_reads_no_more_than_asked_in_bounded_pieces(store: S3Store, monkeypatch: pytest.MonkeyPatch) -> None:
    etag = store.put("sboms/app.json", b"0123456789")
    monkeypatch.setattr(store_module, "READ_CHUNK", 3)
    capped = store.get_capped("sboms/app.json", 4)
    assert capped is not None
    assert (capped.body, capped.etag) == (b"0123", etag)
    whole = [store.get_capped("sboms/app.json", size) for size in (10, 11)]
    assert [stored and stored.body for stored in whole] == [b"0123456789"] * 2
    assert store.get_capped("sboms/absent.json", 4) is None
    assert store.request_counts() == {"PUT": 1, "GET": 4}


def test_put_defaults_to_json_with_the_metadata_cache(store: S3Store) -> None:
    store.put("p2/a/b.json", b"{}")
    head = store.head("p2/a/b.json")
    assert head is not None
    assert (head.content_type, head.cache_control) == ("application/json", METADATA_CACHE)


def test_put_stores_metadata(store: S3Store) -> None:
    store.put("dists/a.zip", b"zip", content_type=ZIP, metadata={"sha256": "abc"})
    head = store.head("dists/a.zip")
    assert head is not None
    assert head.metadata == {"sha256": "abc"}


def test_get_json_parses_and_refuses_invalid_json(store: S3Store) -> None:
    store.put("state/good.json", json.dumps({"since": 1}).encode())
    store.put("state/bad.json", b"{not json")
    assert store.get_json("state/good.json") == {"since": 1}
    with pytest.raises(StoreError, match=r"repo/state/bad\.json is not valid JSON"):
        store.get_json("state/bad.json")


def test_delete_removes_the_object(store: S3Store) -> None:
    store.put("p2/a/b.json", b"{}")
    store.delete("p2/a/b.json")
    assert store.get("p2/a/b.json") is None


def test_upload_file_sends_a_local_file_with_its_headers(store: S3Store, tmp_path: Path) -> None:
    archive = tmp_path / "a.zip"
    archive.write_bytes(b"PK" + bytes(range(256)) * 40)
    store.upload_file("dists/a/b/1.0.0/ref.zip", str(archive), content_type=ZIP, cache_control=ARCHIVE_CACHE)
    stored = store.get("dists/a/b/1.0.0/ref.zip")
    head = store.head("dists/a/b/1.0.0/ref.zip")
    assert stored is not None
    assert head is not None
    assert stored.body == archive.read_bytes()
    assert (head.content_type, head.cache_control) == (ZIP, ARCHIVE_CACHE)


# --- put_if_changed -----------------------------------------------------------------------
def test_put_if_changed_writes_a_new_object(store: S3Store, calls: Counter) -> None:
    assert store.put_if_changed("p2/a/b.json", b'{"v": 1}') is True
    assert calls["PutObject"] == 1
    stored = store.get("p2/a/b.json")
    assert stored is not None
    assert stored.body == b'{"v": 1}'


def test_put_if_changed_does_not_rewrite_identical_bytes_found_by_head(
    store: S3Store, client: Any, calls: Counter
) -> None:
    store.put_if_changed("p2/a/b.json", b'{"v": 1}')
    before = client.head_object(Bucket=BUCKET, Key="repo/p2/a/b.json")
    assert store.put_if_changed("p2/a/b.json", b'{"v": 1}') is False
    after = client.head_object(Bucket=BUCKET, Key="repo/p2/a/b.json")
    assert (after["ETag"], after["LastModified"]) == (before["ETag"], before["LastModified"])
    assert calls["PutObject"] == 2  # two create-only PUTs: the first wrote, the second was refused
    assert calls["HeadObject"] == 3  # one from put_if_changed after the refused create, two from this test
    assert store.request_counts() == {"CREATE": 2, "HEAD": 1}


def test_put_if_changed_with_a_known_etag_needs_no_request(store: S3Store, calls: Counter) -> None:
    etag = store.put("p2/a/b.json", b'{"v": 1}')
    calls.clear()
    assert store.put_if_changed("p2/a/b.json", b'{"v": 1}', known_etag=etag) is False
    assert sum(calls.values()) == 0


def test_put_if_changed_writes_changed_bytes(store: S3Store, calls: Counter) -> None:
    etag = store.put("p2/a/b.json", b'{"v": 1}')
    assert store.put_if_changed("p2/a/b.json", b'{"v": 2}') is True
    assert store.put_if_changed("p2/a/c.json", b'{"v": 2}', known_etag=etag) is True
    stored = store.get("p2/a/b.json")
    assert stored is not None
    assert stored.body == b'{"v": 2}'
    assert calls["PutObject"] == 4  # the first put, a refused create then the rewrite, the known-ETag put


def test_put_if_changed_passes_content_type_and_cache_control(store: S3Store) -> None:
    store.put_if_changed("dists/a.zip", b"zip", content_type=ZIP, cache_control=ARCHIVE_CACHE)
    head = store.head("dists/a.zip")
    assert head is not None
    assert (head.content_type, head.cache_control) == (ZIP, ARCHIVE_CACHE)


# --- conditional writes -------------------------------------------------------------------
def test_if_none_match_creates_a_missing_object(store: S3Store) -> None:
    store.put("state/lock.json", b"{}", if_none_match=True)
    assert store.get_json("state/lock.json") == {}


def test_if_none_match_on_an_existing_object_conflicts(store: S3Store, calls: Counter) -> None:
    store.put("state/lock.json", b"first")
    with pytest.raises(ConflictError, match=r"repo/state/lock\.json was changed by another writer"):
        store.put("state/lock.json", b"second", if_none_match=True)
    assert calls["PutObject"] == 2  # a conflict is not retried
    stored = store.get("state/lock.json")
    assert stored is not None
    assert stored.body == b"first"


def test_if_match_with_the_current_etag_replaces_the_object(store: S3Store) -> None:
    etag = store.put("state/cursor.json", b"1")
    store.put("state/cursor.json", b"2", if_match=etag)
    stored = store.get("state/cursor.json")
    assert stored is not None
    assert stored.body == b"2"


def test_if_match_with_a_stale_etag_conflicts(store: S3Store) -> None:
    stale = store.put("state/cursor.json", b"1")
    store.put("state/cursor.json", b"2")
    with pytest.raises(ConflictError):
        store.put("state/cursor.json", b"3", if_match=stale)
    stored = store.get("state/cursor.json")
    assert stored is not None
    assert stored.body == b"2"


# --- list ---------------------------------------------------------------------------------
def test_list_pages_through_more_than_a_thousand_keys(store: S3Store, client: Any) -> None:
    names = {f"dists/v/p{i:04d}.zip" for i in range(1100)}
    for name in names:
        client.put_object(Bucket=BUCKET, Key=PREFIX + name, Body=b"z" * (len(name) % 7))
    client.put_object(Bucket=BUCKET, Key=PREFIX + "p2/v/p.json", Body=b"{}")
    client.put_object(Bucket=BUCKET, Key="other/dists/v/x.zip", Body=b"z")
    listed = {info.path: info.size for info in store.list_objects("dists/")}
    assert set(listed) == names
    assert all(size == len(name) % 7 for name, size in listed.items())
    assert store.request_counts()["LIST"] == 2


def test_list_returns_paths_relative_to_the_prefix(store: S3Store) -> None:
    store.put("p2/a/b.json", b"{}")
    store.put("p2/a/b~dev.json", b"{ }")
    store.put("packages.json", b"{}")
    assert [(info.path, info.size) for info in store.list_objects("p2/")] == [
        ("p2/a/b.json", 2),
        ("p2/a/b~dev.json", 3),
    ]
    assert sorted(info.path for info in store.list_objects("")) == ["p2/a/b.json", "p2/a/b~dev.json", "packages.json"]


def test_list_of_an_empty_prefix_yields_nothing(store: S3Store) -> None:
    assert list(store.list_objects("dists/")) == []


# --- errors, throttling and retries -------------------------------------------------------
@pytest.mark.parametrize(
    ("code", "status"),
    [("SlowDown", 503), ("503", 503), ("InternalError", 500), ("ServiceUnavailable", 503), ("RequestTimeout", 400)],
)
def test_a_throttled_put_is_retried_and_succeeds(store: S3Store, client: Any, code: str, status: int) -> None:
    made = fail_first(client, "PutObject", 2, code, status)
    store.put("p2/a/b.json", b"{}")
    assert len(made) == 3
    assert store.request_counts() == {"PUT": 3}
    assert client.get_object(Bucket=BUCKET, Key="repo/p2/a/b.json")["Body"].read() == b"{}"


def test_throttling_is_logged_with_the_setting_to_lower(
    store: S3Store, client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    fail_first(client, "PutObject", 1, "SlowDown", 503)
    with caplog.at_level(logging.WARNING, logger="composer_mirror.store"):
        store.put("p2/a/b.json", b"{}")
    assert "composer_mirror_concurrency" in caplog.text


@pytest.mark.parametrize("operation", ["GetObject", "HeadObject", "ListObjectsV2", "DeleteObjects"])
def test_every_operation_retries_throttling(store: S3Store, client: Any, operation: str) -> None:
    store.put("p2/a/b.json", b"{}")
    made = fail_first(client, operation, 1, "SlowDown", 503)
    {
        "GetObject": lambda: store.get("p2/a/b.json"),
        "HeadObject": lambda: store.head("p2/a/b.json"),
        "ListObjectsV2": lambda: list(store.list_objects("p2/")),
        "DeleteObjects": lambda: store.delete("p2/a/b.json"),
    }[operation]()
    assert len(made) == 2


def test_throttling_that_never_ends_raises_store_error(client: Any) -> None:
    store = S3Store(client, BUCKET, PREFIX, attempts=3, backoff=0.001)
    made = fail_first(client, "PutObject", 100, "SlowDown", 503)
    with pytest.raises(StoreError, match=r"S3 PUT failed \(SlowDown\)"):
        store.put("p2/a/b.json", b"{}")
    assert len(made) == 3


@pytest.mark.parametrize(("code", "status"), [("AccessDenied", 403), ("InvalidRequest", 400), ("403", 403)])
def test_a_non_retryable_error_raises_store_error_at_once(store: S3Store, client: Any, code: str, status: int) -> None:
    made = fail_first(client, "PutObject", 100, code, status)
    with pytest.raises(StoreError, match=code) as raised:
        store.put("p2/a/b.json", b"{}")
    assert not isinstance(raised.value, ConflictError)
    assert len(made) == 1


def test_a_403_on_head_is_not_taken_for_a_missing_key(store: S3Store, client: Any) -> None:
    fail_first(client, "HeadObject", 100, "403", 403)
    with pytest.raises(StoreError):
        store.head("p2/a/b.json")
