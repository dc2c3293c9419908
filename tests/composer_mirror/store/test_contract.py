"""The storage contract, asserted identically on the in-memory backend and on S3 over HTTP.

:class:`MemoryStore` exists so that model-based tests can run thousands of interleavings of the
mirror's writers in seconds; what they prove holds for S3 only if it answers exactly as S3 does.
So every test here runs on both backends and asserts one observable result:

- ``memory``: a :class:`MemoryStore`;
- ``s3``: an :class:`S3Store` whose boto3 client speaks HTTP to the session's moto server
  (tests/conftest.py), so ``If-Match`` / ``If-None-Match`` go through botocore's serialisation
  and moto's HTTP handling rather than an in-process mock. Its listings and batch deletes are cut
  into pages of :data:`PAGE` keys, so continuation tokens and batching run with a handful of
  objects (over 1000 keys at S3's own page size: tests/composer_mirror/store/test_s3.py).

Both backends also run without ETags (``etagless_store``): S3 reached through S3FaultProxy
stripping the ``ETag`` header from every answer, as some proxies and S3-compatible stores do, and
a MemoryStore whose reads carry none. Reads still work; a write that would need the missing ETag
as its precondition is refused, never sent without one.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import json
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest

from composer_mirror.errors import ConflictError, StoreError
from composer_mirror.store import (
    ARCHIVE_CACHE,
    JSON,
    METADATA_CACHE,
    STATE_CACHE,
    ZIP,
    ObjectInfo,
    S3Store,
    Store,
    StoredObject,
    Swapped,
    compare_and_swap,
    md5_etag,
)
from composer_mirror.store.memory import MemoryStore
from tests.faults.s3_proxy import S3FaultProxy, S3Rule

PREFIX = "repo/"
PAGE = 2  # keys per S3 listing page and per DeleteObjects batch
PATH = "state/list.json"
WRITERS = 6


def _small_pages(params: dict[str, Any], **_: Any) -> None:
    params["MaxKeys"] = PAGE


@functools.cache
def s3_client(endpoint: str) -> Any:
    """A boto3 client speaking HTTP to ``endpoint``, listing :data:`PAGE` keys per request.

    One per endpoint: clients are thread-safe, and making one costs more than most tests here.
    """
    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    client.meta.events.register("before-parameter-build.s3.ListObjectsV2", _small_pages)
    return client


def s3_store(endpoint: str, bucket: str) -> S3Store:
    return S3Store(s3_client(endpoint), bucket, PREFIX, backoff=0.001)


@pytest.fixture(params=["memory", pytest.param("s3", marks=pytest.mark.integration)])
def store(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Store:
    """A fresh, empty store under ``repo/`` on each backend (moto is only started for ``s3``)."""
    if request.param == "memory":
        return MemoryStore(PREFIX)
    monkeypatch.setattr("composer_mirror.store.s3.DELETE_BATCH", PAGE)
    return s3_store(request.getfixturevalue("moto_server").endpoint, request.getfixturevalue("bucket"))


@pytest.fixture
def atomic_store(store: Store, request: pytest.FixtureRequest) -> Iterator[Store]:
    """``store``; on S3 reached through S3FaultProxy, which makes moto's conditional PUT atomic as S3's is."""
    if not isinstance(store, S3Store):
        yield store
        return
    with S3FaultProxy(request.getfixturevalue("moto_server").endpoint) as proxy:
        yield s3_store(proxy.endpoint, store.bucket)


class EtaglessMemoryStore(MemoryStore):
    """A MemoryStore read as S3 is through a proxy that strips ETag headers: GET and HEAD carry none.

    Listings keep theirs (they travel in the XML body, which such a proxy leaves alone).
    """

    def get(self, path: str) -> StoredObject | None:
        stored = super().get(path)
        return replace(stored, etag="") if stored is not None else None

    def head(self, path: str) -> ObjectInfo | None:
        info = super().head(path)
        return replace(info, etag="") if info is not None else None


@pytest.fixture(params=["memory", pytest.param("s3", marks=pytest.mark.integration)], ids=["memory", "s3-no-etag"])
def etagless_store(request: pytest.FixtureRequest) -> Iterator[Store]:
    """A fresh store whose objects are read back without an ETag, on each backend."""
    if request.param == "memory":
        yield EtaglessMemoryStore(PREFIX)
        return
    endpoint = request.getfixturevalue("moto_server").endpoint
    with S3FaultProxy(endpoint, [S3Rule(method, "", "strip_etag") for method in ("GET", "HEAD", "PUT")]) as proxy:
        yield s3_store(proxy.endpoint, request.getfixturevalue("bucket"))


@contextlib.contextmanager
def refused_for_want_of_an_etag() -> Iterator[None]:
    """The write is refused with a StoreError naming the missing ETag: not a conflict (retried), not written."""
    with pytest.raises(StoreError, match="returned no ETag") as raised:
        yield
    assert not isinstance(raised.value, ConflictError)
    assert "strips ETag headers" in str(raised.value)


def under(store: Store, prefix: str) -> Store:
    """The same objects seen under another prefix (a shallow copy shares the bucket, or the dict)."""
    view = copy.copy(store)
    view.prefix = prefix
    return view


def listed(*items: str) -> bytes:
    return json.dumps(list(items)).encode()


def appending(item: str) -> Callable[[bytes | None], bytes]:
    """A merge, as compare_and_swap requires: add ``item`` to whatever JSON list is stored."""

    def change(before: bytes | None) -> bytes:
        return listed(*(json.loads(before) if before is not None else []), item)

    return change


def without_time(info: ObjectInfo) -> ObjectInfo:
    """S3 stamps whole seconds, MemoryStore microseconds: compared apart, as a datetime."""
    assert isinstance(info.last_modified, datetime)
    return replace(info, last_modified=None)


# --- reads and writes ---------------------------------------------------------------------
def test_a_missing_key_is_absent_not_an_error(store: Store) -> None:
    assert store.get(PATH) is None
    assert store.head(PATH) is None
    assert store.get_json(PATH) is None
    assert store.stream(PATH, 4) is None
    assert list(store.list_objects("")) == []


def test_put_then_get_returns_the_bytes_and_their_quoted_md5(store: Store) -> None:
    body = b'{"packages": []}'
    etag = store.put("p2/a/b.json", body)
    assert etag == md5_etag(body)
    assert store.get("p2/a/b.json") == StoredObject(body, etag)
    assert store.get_json("p2/a/b.json") == {"packages": []}
    head = store.head("p2/a/b.json")
    assert head is not None
    assert without_time(head) == ObjectInfo("p2/a/b.json", len(body), etag, None, METADATA_CACHE, JSON, {})


def test_head_describes_the_object(store: Store) -> None:
    """User metadata keys come back in lower case: S3 stores them so (they travel as x-amz-meta-* headers)."""
    written = datetime.now(UTC).replace(microsecond=0)
    store.put(
        "dists/a.zip", b"PK", content_type=ZIP, cache_control=ARCHIVE_CACHE, metadata={"Sha256": "abc", "by": "x"}
    )
    head = store.head("dists/a.zip")
    assert head is not None
    assert without_time(head) == ObjectInfo(
        "dists/a.zip", 2, md5_etag(b"PK"), None, ARCHIVE_CACHE, ZIP, {"sha256": "abc", "by": "x"}
    )
    assert head.last_modified is not None
    assert written <= head.last_modified <= datetime.now(UTC)


def test_if_none_match_creates_only_a_missing_object(store: Store) -> None:
    store.put(PATH, b"1", if_none_match=True)
    with pytest.raises(ConflictError):
        store.put(PATH, b"2", if_none_match=True)
    assert store.get(PATH) == StoredObject(b"1", md5_etag(b"1"))


def test_if_match_writes_only_over_the_version_read(store: Store) -> None:
    first = store.put(PATH, b"1")
    second = store.put(PATH, b"2", if_match=first)
    with pytest.raises(ConflictError):
        store.put(PATH, b"3", if_match=first)
    assert store.get(PATH) == StoredObject(b"2", second)


def test_if_match_on_a_missing_key_conflicts(store: Store) -> None:
    """S3 answers If-Match on a missing key with 404 NoSuchKey (and so does moto), not 412.

    To a writer holding an ETag, an object deleted since it was read is a lost race like any
    other: both backends raise ConflictError, and compare_and_swap reads again and finds the
    object absent (``deleted-under-us`` below). S3Store used to raise StoreError here.
    """
    with pytest.raises(ConflictError):
        store.put(PATH, b"1", if_match=md5_etag(b"0"))
    assert store.get(PATH) is None


def test_an_empty_if_match_is_refused_not_sent_without_a_precondition(store: Store) -> None:
    """``if_match=""`` is an ETag a read did not return: no precondition can be built from it."""
    etag = store.put("dists/a.zip", b"PK", content_type=ZIP, cache_control=ARCHIVE_CACHE)
    with refused_for_want_of_an_etag():
        store.put("dists/a.zip", b"PK other", content_type=ZIP, cache_control=ARCHIVE_CACHE, if_match="")
    with refused_for_want_of_an_etag():
        store.set_metadata("dists/a.zip", {"sha256": "abc"}, content_type=ZIP, cache_control=ARCHIVE_CACHE, if_match="")
    assert store.get("dists/a.zip") == StoredObject(b"PK", etag)
    head = store.head("dists/a.zip")
    assert head is not None and head.metadata == {}
    assert store.request_counts() == {"PUT": 1, "GET": 1, "HEAD": 1}


def test_create_writes_once(store: Store) -> None:
    assert store.create(PATH, b"1", content_type=JSON, cache_control=STATE_CACHE) is True
    assert store.create(PATH, b"2", content_type=JSON, cache_control=STATE_CACHE) is False
    assert store.get(PATH) == StoredObject(b"1", md5_etag(b"1"))


def test_put_if_changed_leaves_the_same_bytes_alone(store: Store) -> None:
    """A same-bytes write is no write at all, so Last-Modified (what CDNs and clients revalidate on) stays."""
    assert store.put_if_changed(PATH, b"1") is True
    before = store.head(PATH)
    assert store.put_if_changed(PATH, b"1") is False
    assert store.put_if_changed(PATH, b"1", known_etag=md5_etag(b"1")) is False
    assert store.head(PATH) == before
    assert store.request_counts().get("PUT", 0) == 0  # the first write was a CREATE
    assert store.put_if_changed(PATH, b"2") is True
    assert store.get(PATH) == StoredObject(b"2", md5_etag(b"2"))
    assert store.request_counts()["PUT"] == 1


def test_stream_yields_the_bytes_in_chunks(store: Store) -> None:
    """An empty object yields no chunk at all, as botocore's iter_chunks does."""
    store.put("dists/ten.zip", b"0123456789")
    store.put("dists/empty.zip", b"")
    ten = store.stream("dists/ten.zip", 4)
    empty = store.stream("dists/empty.zip", 4)
    assert ten is not None and empty is not None
    assert list(ten) == [b"0123", b"4567", b"89"]
    assert list(empty) == []


@pytest.mark.parametrize("managed", [False, True], ids=["one-put", "managed-upload"])
def test_upload_new_file_writes_once_with_its_metadata(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, managed: bool
) -> None:
    """Below the multipart threshold a create-only PUT; above it a HEAD and the backend's upload_file."""
    if managed:
        monkeypatch.setattr("composer_mirror.store.base.MULTIPART_THRESHOLD", 0)
    archive = tmp_path / "a.zip"
    body = b"PK\x05\x06" + b"\0" * 18
    archive.write_bytes(body)

    def upload() -> bool:
        return store.upload_new_file(
            "dists/a.zip", str(archive), content_type=ZIP, cache_control=ARCHIVE_CACHE, metadata={"sha256": "abc"}
        )

    assert upload() is True
    archive.write_bytes(b"other bytes")
    assert upload() is False
    assert store.get("dists/a.zip") == StoredObject(body, md5_etag(body))
    head = store.head("dists/a.zip")
    assert head is not None
    assert without_time(head) == ObjectInfo(
        "dists/a.zip", len(body), md5_etag(body), None, ARCHIVE_CACHE, ZIP, {"sha256": "abc"}
    )


def test_set_metadata_replaces_the_metadata_and_keeps_the_bytes(store: Store) -> None:
    """A copy onto itself: same bytes and ETag, the metadata given (keys in lower case), a new Last-Modified."""
    body = b"PK\x05\x06" + b"\0" * 18
    etag = store.put("dists/a.zip", body, content_type=ZIP, cache_control=ARCHIVE_CACHE, metadata={"old": "x"})
    before = store.head("dists/a.zip")
    assert before is not None and before.last_modified is not None
    store.set_metadata("dists/a.zip", {"Sha256": "abc"}, content_type=ZIP, cache_control=ARCHIVE_CACHE, if_match=etag)
    assert store.get("dists/a.zip") == StoredObject(body, etag)
    after = store.head("dists/a.zip")
    assert after is not None and after.last_modified is not None
    assert without_time(after) == ObjectInfo(
        "dists/a.zip", len(body), etag, None, ARCHIVE_CACHE, ZIP, {"sha256": "abc"}
    )
    assert after.last_modified >= before.last_modified
    assert store.request_counts()["COPY"] == 1


def test_set_metadata_of_a_missing_object_conflicts(store: Store) -> None:
    with pytest.raises(ConflictError):
        store.set_metadata(
            "dists/a.zip", {"sha256": "abc"}, content_type=ZIP, cache_control=ARCHIVE_CACHE, if_match=md5_etag(b"PK")
        )
    assert store.head("dists/a.zip") is None


def test_set_metadata_over_other_bytes_than_those_read_conflicts(store: Store, request: pytest.FixtureRequest) -> None:
    """Metadata describing bytes a caller read must never land on other bytes (S3: CopySourceIfMatch, 412)."""
    if isinstance(store, S3Store):
        request.applymarker(
            pytest.mark.xfail(
                reason="moto ignores x-amz-copy-source-if-match on CopyObject; S3 answers 412", strict=True
            )
        )
    read = store.put("dists/a.zip", b"PK", content_type=ZIP, cache_control=ARCHIVE_CACHE)
    store.put("dists/a.zip", b"PK other", content_type=ZIP, cache_control=ARCHIVE_CACHE)
    with pytest.raises(ConflictError):
        store.set_metadata(
            "dists/a.zip", {"sha256": "abc"}, content_type=ZIP, cache_control=ARCHIVE_CACHE, if_match=read
        )
    head = store.head("dists/a.zip")
    assert head is not None and head.metadata == {}


# --- listing and deleting -----------------------------------------------------------------
def test_list_yields_the_objects_under_a_prefix_in_key_order(store: Store) -> None:
    """Key order is byte order ("B" < "a" < "b", "." < "~"); a prefix is a string prefix, not a folder."""
    bodies = {
        "p2/b/c.json": b"{}",
        "p2/a/b~dev.json": b"{ }",
        "p2/a/b.json": b"[1]",
        "p2/a/B.json": b"[12]",
        "p2/ab.json": b"",
        "p2a.json": b"x",
        "packages.json": b"{}",
    }
    for path, body in bodies.items():
        store.put(path, body)
    under_p2 = sorted(path for path in bodies if path.startswith("p2/"))
    assert [without_time(info) for info in store.list_objects("p2/")] == [
        ObjectInfo(path, len(bodies[path]), md5_etag(bodies[path])) for path in under_p2
    ]
    if isinstance(store, S3Store):  # the listing really went page by page
        assert store.request_counts()["LIST"] == -(-len(under_p2) // PAGE)
    assert [info.path for info in store.list_objects("p2/a")] == [
        "p2/a/B.json",
        "p2/a/b.json",
        "p2/a/b~dev.json",
        "p2/ab.json",
    ]


def test_delete_many_removes_the_keys_and_a_missing_key_is_no_error(store: Store) -> None:
    doomed = [f"dists/v/{i}.zip" for i in range(5)]
    for path in [*doomed, "dists/keep.zip"]:
        store.put(path, b"z")
    assert store.delete_many([*doomed, "dists/v/absent.zip"]) == []
    assert [info.path for info in store.list_objects("")] == ["dists/keep.zip"]
    assert store.delete_many([]) == []
    store.delete("dists/keep.zip")
    store.delete("dists/keep.zip")
    assert list(store.list_objects("")) == []


# --- prefix and key safety ----------------------------------------------------------------
def test_the_prefix_confines_the_store(store: Store) -> None:
    root, other = under(store, ""), under(store, "other/")
    store.put("packages.json", b"1")
    other.put("packages.json", b"2")
    assert store.key("packages.json") == "repo/packages.json"
    assert root.get("repo/packages.json") == StoredObject(b"1", md5_etag(b"1"))
    assert [info.path for info in root.list_objects("")] == ["other/packages.json", "repo/packages.json"]
    assert [info.path for info in store.list_objects("")] == ["packages.json"]
    head = store.head("packages.json")
    assert head is not None and head.path == "packages.json"
    store.delete("packages.json")
    assert other.get("packages.json") == StoredObject(b"2", md5_etag(b"2"))


def test_an_unsafe_key_is_refused_before_any_request(store: Store) -> None:
    """Keys derive from untrusted package names: one that could escape the prefix never reaches storage."""
    operations: list[Callable[[str], object]] = [
        store.get,
        store.head,
        lambda path: store.stream(path, 4),
        lambda path: store.put(path, b"x"),
        lambda path: store.create(path, b"x", content_type=JSON, cache_control=STATE_CACHE),
        lambda path: store.delete_many([path]),
        lambda path: store.set_metadata(path, {}, content_type=ZIP, cache_control=ARCHIVE_CACHE, if_match='"x"'),
        lambda path: compare_and_swap(store, path, appending("x"), cache_control=STATE_CACHE),
    ]
    for path in ["../x", "/x", "a//b"]:
        for operation in operations:
            with pytest.raises(StoreError, match="unsafe object key"):
                operation(path)
    assert store.request_counts() == {}
    assert list(under(store, "").list_objects("")) == []


# --- compare_and_swap ---------------------------------------------------------------------
def test_compare_and_swap_creates_then_changes(store: Store) -> None:
    created = compare_and_swap(store, PATH, appending("a"), cache_control=STATE_CACHE)
    changed = compare_and_swap(store, PATH, appending("b"), cache_control=STATE_CACHE)
    assert created == Swapped(listed("a"), md5_etag(listed("a")), True)
    assert changed == Swapped(listed("a", "b"), md5_etag(listed("a", "b")), True)
    head = store.head(PATH)
    assert head is not None and (head.cache_control, head.content_type) == (STATE_CACHE, JSON)


@pytest.mark.parametrize("change", [lambda before: None, lambda before: before], ids=["none", "same-bytes"])
def test_compare_and_swap_writes_nothing_when_nothing_changes(
    store: Store, change: Callable[[bytes | None], bytes | None]
) -> None:
    etag = store.put(PATH, listed("base"))
    assert compare_and_swap(store, PATH, change, cache_control=STATE_CACHE) == Swapped(listed("base"), etag, False)
    assert compare_and_swap(store, "state/absent.json", change, cache_control=STATE_CACHE) == Swapped(None, None, False)
    assert store.request_counts()["PUT"] == 1
    assert store.get("state/absent.json") is None


@pytest.mark.parametrize(
    ("initial", "rival", "merged"),
    [
        pytest.param(None, listed("rival"), listed("rival", "mine"), id="created-under-us"),
        pytest.param(listed("base"), listed("base", "rival"), listed("base", "rival", "mine"), id="changed-under-us"),
        pytest.param(listed("base"), None, listed("mine"), id="deleted-under-us"),
    ],
)
def test_compare_and_swap_merges_into_what_a_competing_writer_left(
    store: Store, initial: bytes | None, rival: bytes | None, merged: bytes
) -> None:
    """Another writer changes the object between our read and our write: our conditional PUT
    conflicts, and the second attempt applies our change to what that writer left."""
    if initial is not None:
        store.put(PATH, initial)
    seen: list[bytes | None] = []

    def change(before: bytes | None) -> bytes:
        seen.append(before)
        if len(seen) == 1:
            if rival is None:
                store.delete(PATH)
            else:
                store.put(PATH, rival)
        return appending("mine")(before)

    assert compare_and_swap(store, PATH, change, cache_control=STATE_CACHE) == Swapped(merged, md5_etag(merged), True)
    assert seen == [initial, rival]
    assert store.get(PATH) == StoredObject(merged, md5_etag(merged))


def test_compare_and_swap_gives_up_after_its_attempts(store: Store) -> None:
    seen: list[bytes | None] = []

    def change(before: bytes | None) -> bytes:
        seen.append(before)
        store.put(PATH, listed(f"rival-{len(seen)}"))
        return appending("mine")(before)

    with pytest.raises(ConflictError, match=r"repo/state/list\.json after 3 attempts"):
        compare_and_swap(store, PATH, change, cache_control=STATE_CACHE, attempts=3)
    assert seen == [None, listed("rival-1"), listed("rival-2")]
    assert store.get(PATH) == StoredObject(listed("rival-3"), md5_etag(listed("rival-3")))


def test_concurrent_writers_lose_no_update(atomic_store: Store) -> None:
    """WRITERS threads each append their name to one JSON list through compare_and_swap.

    A barrier in ``change`` holds every writer until all have read the same (absent) version, so
    all but one of the first writes conflict. A writer loses at most once to each other writer,
    hence ``attempts=WRITERS``.

    moto checks a PUT's precondition and stores the object in separate steps (put_object in
    moto/s3/responses.py); S3 does both atomically. Several hundred contended swaps against moto
    alone lost no update, but a loss there would be moto's race, not the store's: the S3 variant
    goes through S3FaultProxy, which forwards conditional PUTs one key at a time. It serialises
    only requests that carry a condition, so a store that dropped If-Match would still fail here.
    """
    read_together = threading.Barrier(WRITERS, timeout=30)
    tries: list[str] = []

    def writer(name: str) -> Swapped:
        def change(before: bytes | None) -> bytes:
            tries.append(name)
            if tries.count(name) == 1:
                read_together.wait()
            return appending(name)(before)

        return compare_and_swap(atomic_store, PATH, change, cache_control=STATE_CACHE, attempts=WRITERS)

    names = [f"writer-{i}" for i in range(WRITERS)]
    with ThreadPoolExecutor(WRITERS) as pool:
        results = list(pool.map(writer, names))
    assert all(result.written for result in results)
    stored = atomic_store.get_json(PATH)
    assert sorted(stored) == names
    assert len(tries) >= 2 * WRITERS - 1


# --- without ETags ------------------------------------------------------------------------
def test_without_etags_reads_still_work(etagless_store: Store) -> None:
    """Nothing but a conditional write needs the ETag: reads, and a swap that changes nothing."""
    etag = etagless_store.put(PATH, listed("base"))
    assert etag == md5_etag(listed("base"))  # S3Store: the MD5 a single-part upload is given
    assert etagless_store.get(PATH) == StoredObject(listed("base"), "")
    assert etagless_store.get_json(PATH) == ["base"]
    head = etagless_store.head(PATH)
    assert head is not None and head.etag == ""
    stream = etagless_store.stream(PATH, 4)
    assert stream is not None and b"".join(stream) == listed("base")
    unchanged = compare_and_swap(etagless_store, PATH, lambda before: before, cache_control=STATE_CACHE)
    assert unchanged == Swapped(listed("base"), "", False)


def test_without_etags_compare_and_swap_still_creates(etagless_store: Store) -> None:
    """Creating is conditional on absence (``If-None-Match: *``), which needs no ETag."""
    created = compare_and_swap(etagless_store, PATH, appending("a"), cache_control=STATE_CACHE)
    assert created == Swapped(listed("a"), md5_etag(listed("a")), True)
    assert etagless_store.get(PATH) == StoredObject(listed("a"), "")


def test_without_etags_compare_and_swap_fails_closed(etagless_store: Store) -> None:
    """The ETag read is empty: the write is refused at once, not sent without If-Match, not retried."""
    etagless_store.put(PATH, listed("base"))
    with refused_for_want_of_an_etag():
        compare_and_swap(etagless_store, PATH, appending("mine"), cache_control=STATE_CACHE)
    assert etagless_store.get(PATH) == StoredObject(listed("base"), "")
    assert etagless_store.request_counts() == {"PUT": 1, "GET": 2}


def test_without_etags_set_metadata_fails_closed(etagless_store: Store) -> None:
    """Metadata is replaced only on the bytes a HEAD saw: with no ETag to name them, it is not replaced."""
    etagless_store.put("dists/a.zip", b"PK", content_type=ZIP, cache_control=ARCHIVE_CACHE, metadata={"old": "x"})
    seen = etagless_store.head("dists/a.zip")
    assert seen is not None
    with refused_for_want_of_an_etag():
        etagless_store.set_metadata(
            "dists/a.zip", {"sha256": "abc"}, content_type=ZIP, cache_control=ARCHIVE_CACHE, if_match=seen.etag
        )
    after = etagless_store.head("dists/a.zip")
    assert after is not None and after.metadata == {"old": "x"}
    assert "COPY" not in etagless_store.request_counts()


def test_without_etags_put_if_changed_compares_the_bytes(etagless_store: Store) -> None:
    """An empty ETag says nothing about the bytes stored: they are read and compared instead."""
    assert etagless_store.put_if_changed(PATH, b"1") is True
    assert etagless_store.put_if_changed(PATH, b"1") is False
    assert etagless_store.put_if_changed(PATH, b"1", known_etag="") is False
    assert etagless_store.request_counts().get("PUT", 0) == 0  # the first write was a CREATE
    assert etagless_store.put_if_changed(PATH, b"2", known_etag="") is True
    assert etagless_store.get(PATH) == StoredObject(b"2", "")
    assert etagless_store.request_counts()["PUT"] == 1
