"""Tests for pruning, on small mirrors built by the library itself in moto's mocked S3."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest

from composer_mirror import prune, verify
from composer_mirror.composer_format import dump_p2
from composer_mirror.errors import MirrorError, SettingsError
from composer_mirror.publisher import read_published
from composer_mirror.record import MirroredVersion, published_entry, stored_entry
from composer_mirror.store import ObjectInfo
from composer_mirror.store.layout import ROOT, archive_marker_prefix, archive_path, p2_path
from tests.composer_mirror.mirror_builder import PUBLIC_URL, Mirror, built_mirror, make_zip

LATER = datetime.now(UTC) + timedelta(days=3)  # every object of a test is older than 48 hours by then


@pytest.fixture
def mirror(session: boto3.session.Session) -> Iterator[Mirror]:
    with built_mirror(session) as built:
        built.add_package("psr/log", ["1.0.0", "2.0.0"])
        built.add_package("acme/tool", ["0.1.0"])
        yield built


def plant_archive(mirror: Mirror, salt: str = "orphan") -> str:
    data = make_zip("gone/away", "1.0.0", salt)
    path = archive_path(hashlib.sha256(data).hexdigest())
    mirror.put_raw(path, data)
    return path


def plant_marker(mirror: Mirror, name: str, archive: str) -> str:
    path = archive_marker_prefix(name) + "a" * 40 + ".json"
    sha256 = archive.rsplit("/", 1)[-1].removesuffix(".zip")
    mirror.put_raw(path, json.dumps({"sha256": sha256, "version": "1.0.0"}).encode())
    return path


def all_paths(mirror: Mirror) -> set[str]:
    return {info.path for info in mirror.store.list("")}


def test_a_dry_run_deletes_nothing_and_logs_what_it_would_delete(mirror: Mirror, caplog: Any) -> None:
    orphan = plant_archive(mirror)
    before = all_paths(mirror)
    with caplog.at_level(logging.INFO, logger="composer_mirror.prune"):
        result = prune.prune(mirror.store, grace_hours=48, dry_run=True, now=LATER)
    assert all_paths(mirror) == before
    assert [o.path for o in result.orphans] == [orphan]
    assert result.deleted == 0
    assert f"[DRY RUN] would delete 1 objects ({result.orphan_bytes} bytes): 1 archives" in caplog.text
    assert f"[DRY RUN] would delete archive {orphan}" in caplog.text


def test_prune_deletes_old_orphans_and_leaves_a_repository_that_still_verifies(mirror: Mirror) -> None:
    orphan = plant_archive(mirror)
    marker = plant_marker(mirror, "gone/away", orphan)
    mirror.put_raw("p2/gone/away.json", b"{}")
    mirror.put_raw("p2/gone/away~dev.json", b"{}")
    before = all_paths(mirror)
    result = prune.prune(mirror.store, grace_hours=48, dry_run=False, now=LATER)
    assert result.counts() == {"marker": 1, "archive": 1, "p2": 2}
    assert result.deleted == 4 and result.failed == []
    assert all_paths(mirror) == before - {orphan, marker, "p2/gone/away.json", "p2/gone/away~dev.json"}
    names, _root = verify.read_root(mirror.store, PUBLIC_URL)
    assert verify.verify_batch(mirror.ctx, verify.plan_verify_batches(names, 1)[0]).problems == []


def test_orphans_younger_than_the_grace_period_are_kept(mirror: Mirror) -> None:
    orphan = plant_archive(mirror)
    result = prune.prune(mirror.store, grace_hours=48, dry_run=False)
    assert result.orphans == [] and result.too_young == 1
    assert mirror.exists(orphan)


def test_archives_of_versions_recorded_in_the_state_are_never_deleted(mirror: Mirror) -> None:
    """A version dropped from the p2 file but still recorded (pinned) keeps its archive."""
    kept = mirror.records["psr/log"]["1.0.0.0"]
    # The p2 file as an older mirror (or a hand edit) left it: only 2.0.0, while the state records 1.0.0 too.
    published = read_published(mirror.store, "psr/log")
    version = MirroredVersion(stored_entry(published["2.0.0.0"]), mirror.records["psr/log"]["2.0.0.0"])
    mirror.put_raw(p2_path("psr/log"), dump_p2("psr/log", [published_entry(version, PUBLIC_URL)]))
    result = prune.prune(mirror.store, grace_hours=0, dry_run=False, now=LATER)
    assert result.orphans == []
    assert mirror.exists(kept.path)


def test_p2_files_of_a_package_the_state_still_records_are_kept_when_it_leaves_the_root(mirror: Mirror) -> None:
    mirror.put_raw(
        ROOT, json.dumps({"metadata-url": "/repo/p2/%package%.json", "available-packages": ["psr/log"]}).encode()
    )
    result = prune.prune(mirror.store, grace_hours=0, dry_run=False, now=LATER)
    assert result.orphans == []
    assert mirror.exists(p2_path("acme/tool"))


@pytest.mark.parametrize("root", [None, b"{broken", b'{"available-packages": []}'])
def test_a_missing_unreadable_or_empty_root_stops_the_prune(mirror: Mirror, root: bytes | None) -> None:
    plant_archive(mirror)
    if root is None:
        mirror.delete_raw(ROOT)
    else:
        mirror.put_raw(ROOT, root)
    before = all_paths(mirror)
    with pytest.raises(MirrorError, match="refusing to prune"):
        prune.prune(mirror.store, grace_hours=0, dry_run=False, now=LATER)
    assert all_paths(mirror) == before


def test_an_unreadable_p2_file_stops_the_prune_rather_than_guess_what_it_references(mirror: Mirror) -> None:
    plant_archive(mirror)
    mirror.put_raw(p2_path("psr/log"), b"{broken")
    before = all_paths(mirror)
    with pytest.raises(MirrorError):
        prune.prune(mirror.store, grace_hours=0, dry_run=False, now=LATER)
    assert all_paths(mirror) == before


def test_a_young_journal_marker_protects_the_archive_it_names(mirror: Mirror, monkeypatch: Any) -> None:
    """A sync that reused an old orphan journals it before recording it: the archive must stay."""
    orphan = plant_archive(mirror)
    marker = plant_marker(mirror, "gone/away", orphan)
    head = mirror.store.head

    def aged(path: str) -> ObjectInfo | None:
        found = head(path)
        if found is not None and path != marker and found.last_modified is not None:
            found = replace(found, last_modified=found.last_modified - timedelta(days=3))
        return found

    monkeypatch.setattr(mirror.store, "head", aged)
    result = prune.prune(mirror.store, grace_hours=48, dry_run=False)
    assert result.orphans == [] and result.too_young == 1
    assert mirror.exists(orphan) and mirror.exists(marker)


def test_markers_are_deleted_before_their_archives_and_p2_files_last(mirror: Mirror, monkeypatch: Any) -> None:
    plant_marker(mirror, "gone/away", plant_archive(mirror))
    mirror.put_raw("p2/gone/away.json", b"{}")
    order: list[str] = []
    delete_many = mirror.store.delete_many
    monkeypatch.setattr(mirror.store, "delete_many", lambda paths: order.extend(paths) or delete_many(paths))
    prune.prune(mirror.store, grace_hours=0, dry_run=False, now=LATER)
    assert [path.split("/")[0] for path in order] == ["mirror-state", "dists", "p2"]


def test_keys_the_mirror_never_writes_are_left_alone(mirror: Mirror) -> None:
    for path in ("dists/README.txt", "dists/ab/cd/not-a-digest.zip", "p2/notes.txt", "p2/Bad/Name.json"):
        mirror.put_raw(path, b"x")
    result = prune.prune(mirror.store, grace_hours=0, dry_run=False, now=LATER)
    assert result.orphans == []
    assert mirror.exists("p2/Bad/Name.json") and mirror.exists("dists/README.txt")


def test_a_negative_grace_period_is_refused(mirror: Mirror) -> None:
    with pytest.raises(SettingsError, match="CDN TTL"):
        prune.prune(mirror.store, grace_hours=-1)


def test_the_summary_for_xcom_holds_counts_and_the_report_every_path(mirror: Mirror) -> None:
    orphan = plant_archive(mirror)
    result = prune.prune(mirror.store, grace_hours=0, dry_run=True, now=LATER)
    assert result.summary()["orphans"] == {"marker": 0, "archive": 1, "p2": 0}
    assert json.loads(json.dumps(result.to_dict()))["orphans"][0]["path"] == orphan
