"""Tests for verification and repair, on small mirrors built by the library itself in moto's mocked S3."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections import Counter
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from composer_mirror import verify
from composer_mirror.archives import ArchiveRecord, digest_metadata
from composer_mirror.errors import StoreError
from composer_mirror.publisher import load_record
from composer_mirror.state import dumps, load_shard
from composer_mirror.store import ARCHIVE_CACHE, ZIP
from composer_mirror.store.layout import ROOT, p2_path, record_path, shard_of, shard_path, upstream_cache_path
from composer_mirror.verify import Problem, VerifyResult
from tests.composer_mirror.mirror_builder import BUCKET, PUBLIC_URL, Mirror, built_mirror


@pytest.fixture
def mirror(session: boto3.session.Session) -> Iterator[Mirror]:
    with built_mirror(session) as built:
        built.add_package("psr/log", ["1.0.0", "1.1.0", "2.0.0"])
        built.add_package("acme/tool", ["0.1.0"])
        yield built


def run(mirror: Mirror, *, repair: bool = False, deep: bool = False) -> VerifyResult:
    """Verify the whole mirror as the DAG does: the root, then every batch."""
    names, root = verify.read_root(mirror.store, PUBLIC_URL)
    batches = verify.plan_verify_batches(names, 4)
    results = [verify.verify_batch(mirror.ctx, batch, repair=repair, deep=deep) for batch in batches]
    return verify.merge_all([root, *results])


def archive_gets(mirror: Mirror) -> Counter[str]:
    """GetObject requests for archive keys from now on, by key: a hook on the mirror's boto3 client."""
    gets: Counter[str] = Counter()
    archives = mirror.store.prefix + "dists/"

    def count(params: dict[str, Any], **_: Any) -> None:
        if params["Key"].startswith(archives):
            gets[params["Key"]] += 1

    mirror.s3.meta.events.register("before-parameter-build.s3.GetObject", count)
    return gets


def all_archives(mirror: Mirror) -> list[ArchiveRecord]:
    return [r for records in mirror.records.values() for r in records.values()]


def set_raw_metadata(mirror: Mirror, path: str, metadata: dict[str, str]) -> None:
    """Replace an archive's metadata behind the library's back (``{}``: as stored before archives carried digests)."""
    key = mirror.key(path)
    mirror.s3.copy_object(
        Bucket=BUCKET,
        Key=key,
        CopySource={"Bucket": BUCKET, "Key": key},
        MetadataDirective="REPLACE",
        Metadata=metadata,
        ContentType=ZIP,
        CacheControl=ARCHIVE_CACHE,
    )


def kinds(result: VerifyResult) -> set[tuple[str, str, str]]:
    return {(p.package, p.version, p.kind) for p in result.problems}


def record(mirror: Mirror, name: str, normalized: str) -> ArchiveRecord:
    return mirror.records[name][normalized]


def edit_state(mirror: Mirror, name: str, change) -> None:  # type: ignore[no-untyped-def]
    shard = load_shard(mirror.store, shard_of(name))
    change(shard.packages[name])
    mirror.put_raw(shard_path(shard_of(name)), dumps(shard.packages))


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
    monkeypatch.setattr(verify, "CHUNK", 1000)
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
    shard = load_shard(mirror.store, shard_of("acme/tool"))
    del shard.packages["acme/tool"]
    mirror.put_raw(shard_path(shard_of("acme/tool")), dumps(shard.packages))
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
    stale = {**stale, "versions": {n: r for n, r in stale["versions"].items() if n != "2.0.0.0"}}
    check = verify._check_package_settled(mirror.ctx, "psr/log", stale, repair=False)
    assert check.problems == []
    assert len(check.refs) == 3


def test_batch_results_add_up_and_survive_xcom() -> None:
    one = VerifyResult(packages=2, archives=3, problems=[Problem("a/b", "1.0", "missing_archive", "gone")])
    two = VerifyResult(
        packages=1, archive_bytes=10, archives_hashed=1, repaired=[Problem("c/d", "", "missing_p2", "gone")]
    )
    total = verify.merge_all([one, two])
    assert (total.packages, total.archives, total.archive_bytes, total.archives_hashed) == (3, 3, 10, 1)
    assert total.counts_by_kind() == {"missing_archive": 1}
    assert not total.ok
    assert VerifyResult.from_dict(json.loads(json.dumps(total.to_dict()))) == total


# --- repair -----------------------------------------------------------------------------------
def test_repair_restores_corrupt_and_missing_archives_from_the_recorded_source(mirror: Mirror) -> None:
    corrupt, missing = record(mirror, "psr/log", "1.0.0.0"), record(mirror, "acme/tool", "0.1.0.0")
    mirror.put_raw(corrupt.path, b"y" * corrupt.size)
    mirror.delete_raw(missing.path)
    repaired = run(mirror, repair=True)
    assert repaired.problems == []
    assert {(p.package, p.version, p.kind) for p in repaired.repaired} == {
        ("psr/log", "1.0.0", "sha256_mismatch"),
        ("acme/tool", "0.1.0", "missing_archive"),
    }
    assert run(mirror).problems == []


def test_repair_refuses_upstream_bytes_that_differ_from_the_recorded_ones(mirror: Mirror) -> None:
    broken = record(mirror, "psr/log", "1.1.0.0")
    mirror.put_raw(broken.path, b"z" * broken.size)
    mirror.upstream.files["/dist/psr/log/1.1.0.zip"] = b"PK other bytes now"
    result = run(mirror, repair=True)
    assert kinds(result) == {("psr/log", "1.1.0", "sha256_mismatch")}
    assert "cannot restore the original" in result.problems[0].detail
    assert result.repaired == []


def test_repair_keeps_a_broken_archive_whose_source_the_fetch_policy_now_refuses(mirror: Mirror) -> None:
    broken = record(mirror, "psr/log", "1.1.0.0")
    mirror.put_raw(broken.path, b"z" * broken.size)
    mirror.ctx.client.policy.upstream_url = "https://elsewhere.example"
    result = run(mirror, repair=True)
    assert kinds(result) == {("psr/log", "1.1.0", "sha256_mismatch")}
    assert "refused" in result.problems[0].detail
    assert mirror.exists(broken.path)


def test_repair_rebuilds_a_missing_p2_file_byte_for_byte_and_walks_on_to_its_archives(mirror: Mirror) -> None:
    published = mirror.store.get(p2_path("psr/log")).body
    mirror.delete_raw(p2_path("psr/log"))
    mirror.delete_raw(record(mirror, "psr/log", "2.0.0.0").path)
    result = run(mirror, repair=True)
    assert result.problems == []
    assert {(p.package, p.kind) for p in result.repaired} == {("psr/log", "missing_p2"), ("psr/log", "missing_archive")}
    assert mirror.store.get(p2_path("psr/log")).body == published
    assert run(mirror).problems == []


def test_repair_rebuilds_a_stable_file_published_with_an_empty_advisories_list(mirror: Mirror) -> None:
    mirror.add_package("acme/audited", ["1.0.0"], advisories=[])
    published = mirror.store.get(p2_path("acme/audited")).body
    assert b'"security-advisories":[]' in published
    mirror.delete_raw(p2_path("acme/audited"))
    assert run(mirror, repair=True).problems == []
    assert mirror.store.get(p2_path("acme/audited")).body == published


def test_repair_rebuilds_a_p2_file_from_the_record_alone(mirror: Mirror) -> None:
    """No upstream metadata needed: the record holds every published version."""
    before = mirror.store.get(p2_path("psr/log")).body
    mirror.delete_raw(p2_path("psr/log"))
    mirror.delete_raw(upstream_cache_path("psr/log", dev=False))
    result = run(mirror, repair=True)
    assert result.problems == []
    assert kinds(VerifyResult(problems=result.repaired)) == {("psr/log", "", "missing_p2")}
    assert mirror.store.get(p2_path("psr/log")).body == before


def test_repair_does_not_invent_a_legacy_p2_file_the_cached_metadata_cannot_rebuild_exactly(mirror: Mirror) -> None:
    mirror.delete_raw(record_path("psr/log"))
    mirror.delete_raw(p2_path("psr/log"))
    mirror.delete_raw(upstream_cache_path("psr/log", dev=False))
    result = run(mirror, repair=True)
    assert kinds(result) == {("psr/log", "", "missing_p2")}
    assert "differs from the published file" in result.problems[0].detail
    assert mirror.store.get(p2_path("psr/log")) is None


def test_repair_restores_a_file_that_carried_full_advisories_from_the_record(mirror: Mirror) -> None:
    """Full advisories come from the upstream's API at sync time; the record keeps them."""
    advisories = [{"advisoryId": "PKSA-1", "title": "XSS"}]
    mirror.add_package("acme/vulnerable", ["1.0.0"], advisories=advisories)
    mirror.delete_raw(p2_path("acme/vulnerable"))
    assert kinds(run(mirror, repair=True)) == set()
    assert json.loads(mirror.store.get(p2_path("acme/vulnerable")).body)["security-advisories"] == advisories


def test_repair_leaves_a_legacy_file_that_carried_full_advisories_reported(mirror: Mirror) -> None:
    """Without a record, full advisories (from the upstream's API) have no copy to rebuild from."""
    mirror.add_package("acme/vulnerable", ["1.0.0"], advisories=[{"advisoryId": "PKSA-1", "title": "XSS"}])
    mirror.delete_raw(record_path("acme/vulnerable"))
    mirror.delete_raw(p2_path("acme/vulnerable"))
    assert kinds(run(mirror, repair=True)) == {("acme/vulnerable", "", "missing_p2")}
