"""Repair: what verify restores, and what it refuses to invent, on small mirrors in moto's mocked S3."""

from __future__ import annotations

import json

from composer_mirror.store.layout import p2_path, record_path, upstream_cache_path
from composer_mirror.verify import VerifyResult
from tests.composer_mirror.mirror_builder import Mirror
from tests.composer_mirror.verify.helpers import kinds, record, run


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
