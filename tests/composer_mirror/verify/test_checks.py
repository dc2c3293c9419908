"""Verification: what a walk of the published repository finds, on small mirrors in moto's mocked S3."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections import Counter
from typing import Any

import pytest

from composer_mirror import verify
from composer_mirror.archives import digest_metadata
from composer_mirror.errors import StoreError
from composer_mirror.publisher import load_record
from composer_mirror.state import dumps, load_shard
from composer_mirror.store import ARCHIVE_CACHE, ZIP
from composer_mirror.store.layout import ROOT, p2_path, record_path, shard_of, shard_path
from composer_mirror.verify import batch, checks
from tests.composer_mirror.mirror_builder import BUCKET, PUBLIC_URL, Mirror
from tests.composer_mirror.verify.helpers import (
    all_archives,
    archive_gets,
    edit_state,
    kinds,
    record,
    run,
    set_raw_metadata,
)


# --- verification -----------------------------------------------------------------------------
def test_a_freshly_mirrored_repository_verifies_clean_and_counts_what_it_walked(mirror: Mirror) -> None:
    result = run(mirror)
    assert result.problems == []
    assert (result.packages, result.p2_files, result.versions, result.archives) == (2, 4, 4, 4)
    assert result.archive_bytes == sum(r.size for records in mirror.records.values() for r in records.values())


def test_an_archive_overwritten_with_bytes_of_the_same_size_is_a_sha256_mismatch(mirror: Mirror) -> None:
    broken = record(mirror, "psr/log", "1.1.0.0")
    mirror.put_raw(broken.path, b"x" * broken.size)
    assert kinds(run(mirror)) == {("psr/log", "1.1.0", "sha256_mismatch")}


def test_an_archive_of_another_size_is_a_size_mismatch(mirror: Mirror) -> None:
    mirror.put_raw(record(mirror, "psr/log", "2.0.0.0").path, b"truncated")
    result = run(mirror)
    assert kinds(result) == {("psr/log", "2.0.0", "size_mismatch")}
    assert "is 9 bytes" in result.problems[0].detail


def test_a_missing_archive_is_reported_with_its_package_and_version(mirror: Mirror) -> None:
    mirror.delete_raw(record(mirror, "acme/tool", "0.1.0.0").path)
    result = run(mirror)
    assert kinds(result) == {("acme/tool", "0.1.0", "missing_archive")}
    assert result.counts_by_kind() == {"missing_archive": 1}


def test_a_legacy_state_record_whose_sha1_differs_from_the_bytes_is_a_sha1_mismatch(mirror: Mirror) -> None:
    """A package mirrored before records existed is checked against its shard entry."""
    mirror.delete_raw(record_path("acme/tool"))
    edit_state(mirror, "acme/tool", lambda state: state["versions"]["0.1.0.0"].update(sha1="0" * 40))
    # The published dist's shasum no longer matches the record either: both are reported.
    assert kinds(run(mirror)) == {("acme/tool", "0.1.0", "sha1_mismatch"), ("acme/tool", "0.1.0", "dist_mismatch")}


def test_a_package_record_whose_sha1_differs_from_the_bytes_is_a_sha1_mismatch(mirror: Mirror) -> None:
    """The record is the truth: the archive differs from it, and so do the published file and dist."""
    stored = load_record(mirror.store, "acme/tool")
    version = stored.versions["0.1.0.0"]
    stored.versions["0.1.0.0"] = dataclasses.replace(
        version, archive=dataclasses.replace(version.archive, sha1="0" * 40)
    )
    mirror.put_raw(record_path("acme/tool"), stored.to_bytes())
    assert kinds(run(mirror)) == {
        ("acme/tool", "0.1.0", "sha1_mismatch"),
        ("acme/tool", "0.1.0", "dist_mismatch"),
        ("acme/tool", "", "p2_mismatch"),
    }


# --- digests in the archives' metadata -------------------------------------------------------
def test_an_unchanged_mirror_is_verified_with_heads_and_no_archive_read(mirror: Mirror) -> None:
    gets = archive_gets(mirror)
    result = run(mirror)
    assert result.problems == []
    assert (result.archives, result.archives_hashed, sum(gets.values())) == (4, 0, 0)
    assert "COPY" not in mirror.store.request_counts()


def test_deep_reads_and_hashes_every_archive_once(mirror: Mirror) -> None:
    gets = archive_gets(mirror)
    result = run(mirror, deep=True)
    assert result.problems == []
    assert result.archives_hashed == 4
    assert gets == Counter({mirror.key(r.path): 1 for r in all_archives(mirror)})


def test_an_archive_stored_without_digests_is_hashed_once_and_given_them(mirror: Mirror) -> None:
    """Archives uploaded before they carried digests: the first verify hashes them, the next only HEADs."""
    for archive in all_archives(mirror):
        set_raw_metadata(mirror, archive.path, {})
    gets = archive_gets(mirror)
    first = run(mirror)
    assert first.problems == []
    assert (first.archives_hashed, sum(gets.values()), max(gets.values())) == (4, 4, 1)
    for archive in all_archives(mirror):
        head = mirror.store.head(archive.path)
        assert head is not None
        assert (head.metadata, head.content_type, head.cache_control) == (
            digest_metadata(archive.sha1, archive.sha256),
            ZIP,
            ARCHIVE_CACHE,
        )
    gets.clear()
    second = run(mirror)
    assert second.problems == []
    assert (second.archives_hashed, sum(gets.values())) == (0, 0)


def test_an_archive_whose_digests_cannot_be_recorded_is_still_verified_and_hashed_again(
    mirror: Mirror, monkeypatch: pytest.MonkeyPatch
) -> None:
    legacy = record(mirror, "acme/tool", "0.1.0.0")
    set_raw_metadata(mirror, legacy.path, {})

    def refused(*_: Any, **__: Any) -> None:
        raise StoreError("S3 COPY failed (AccessDenied)")

    monkeypatch.setattr(mirror.store, "set_metadata", refused)
    assert [run(mirror).archives_hashed for _ in range(2)] == [1, 1]
    assert run(mirror).problems == []


def test_bytes_changed_with_their_metadata_kept_are_caught_only_by_deep(mirror: Mirror) -> None:
    tampered = record(mirror, "psr/log", "1.1.0.0")
    head = mirror.store.head(tampered.path)
    mirror.s3.put_object(
        Bucket=BUCKET, Key=mirror.key(tampered.path), Body=b"x" * tampered.size, Metadata=head.metadata
    )
    assert run(mirror).problems == []
    result = run(mirror, deep=True)
    assert kinds(result) == {("psr/log", "1.1.0", "sha256_mismatch")}
    assert hashlib.sha256(b"x" * tampered.size).hexdigest() in result.problems[0].detail
    repaired = run(mirror, deep=True, repair=True)
    assert (repaired.problems, len(repaired.repaired)) == ([], 1)
    assert run(mirror, deep=True).problems == []


@pytest.mark.parametrize(
    ("digest", "kind"), [("sha256", "sha256_mismatch"), ("sha1", "sha1_mismatch")], ids=["sha256", "sha1"]
)
def test_metadata_disagreeing_with_the_record_is_reported_without_reading_the_archive(
    mirror: Mirror, digest: str, kind: str
) -> None:
    broken = record(mirror, "psr/log", "2.0.0.0")
    set_raw_metadata(mirror, broken.path, {**digest_metadata(broken.sha1, broken.sha256), digest: "0" * 40})
    gets = archive_gets(mirror)
    result = run(mirror)
    assert kinds(result) == {("psr/log", "2.0.0", kind)}
    assert "in its metadata" in result.problems[0].detail
    assert sum(gets.values()) == 0
    repaired = run(mirror, repair=True)
    assert (repaired.problems, [p.kind for p in repaired.repaired]) == ([], [kind])
    assert mirror.store.head(broken.path).metadata == digest_metadata(broken.sha1, broken.sha256)


def test_archives_are_streamed_and_hashed_in_chunks(mirror: Mirror, monkeypatch: pytest.MonkeyPatch) -> None:
    data = bytes(range(256)) * 40
    mirror.put_raw("dists/big.bin", data)
    monkeypatch.setattr(checks, "CHUNK", 1000)
    assert verify.hash_object(mirror.store, "dists/big.bin") == (
        hashlib.sha1(data).hexdigest(),
        hashlib.sha256(data).hexdigest(),
        len(data),
    )
    assert verify.hash_object(mirror.store, "dists/absent.bin") is None


def test_a_missing_p2_file_is_reported(mirror: Mirror) -> None:
    mirror.delete_raw(p2_path("psr/log"))
    result = run(mirror)
    assert kinds(result) == {("psr/log", "", "missing_p2")}
    assert result.versions == 1, "only acme/tool's version is reachable by a client"


def test_a_p2_file_changed_behind_the_mirror_is_a_p2_mismatch_and_bad_json_when_unparseable(mirror: Mirror) -> None:
    mirror.put_raw(p2_path("acme/tool", dev=True), b"{not json")
    assert kinds(run(mirror)) == {("acme/tool", "~dev", "p2_mismatch"), ("acme/tool", "~dev", "bad_json")}


def test_a_dist_that_points_elsewhere_is_a_dist_mismatch(mirror: Mirror) -> None:
    document = json.loads(mirror.store.get(p2_path("acme/tool")).body)
    document["packages"]["acme/tool"][0]["dist"]["url"] = "https://elsewhere.example/x.zip"
    mirror.put_raw(p2_path("acme/tool"), json.dumps(document).encode())
    assert ("acme/tool", "0.1.0", "dist_mismatch") in kinds(run(mirror))


def test_a_published_package_the_state_does_not_know_is_not_in_state_but_its_archives_are_checked(
    mirror: Mirror,
) -> None:
    entries = mirror.store.get_json(shard_path(shard_of("acme/tool")))
    del entries["acme/tool"]
    mirror.put_raw(shard_path(shard_of("acme/tool")), dumps(entries))
    mirror.delete_raw(record(mirror, "acme/tool", "0.1.0.0").path)
    assert kinds(run(mirror)) == {("acme/tool", "", "not_in_state"), ("acme/tool", "0.1.0", "missing_archive")}


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (None, "does not exist"),
        (b"{", "not valid JSON"),
        (b'{"metadata-url": "/p2/%package%.json", "available-packages": []}', "metadata-url"),
        (b'{"metadata-url": "/repo/p2/%package%.json"}', "available-packages"),
    ],
)
def test_a_root_a_client_cannot_use_is_the_first_problem(mirror: Mirror, body: bytes | None, detail: str) -> None:
    if body is None:
        mirror.delete_raw(ROOT)
    else:
        mirror.put_raw(ROOT, body)
    names, root = verify.read_root(mirror.store, PUBLIC_URL)
    assert names == []
    assert [p.kind for p in root.problems] in (["missing_root"], ["bad_root"])
    assert detail in root.problems[0].detail


def test_a_sync_publishing_during_the_walk_is_read_again_before_it_counts(mirror: Mirror) -> None:
    stale = load_shard(mirror.store, shard_of("psr/log")).packages["psr/log"]
    stale = dataclasses.replace(stale, versions={n: r for n, r in stale.versions.items() if n != "2.0.0.0"})
    check = batch._check_package_settled(mirror.ctx, "psr/log", stale, repair=False)
    assert check.problems == []
    assert len(check.refs) == 3
