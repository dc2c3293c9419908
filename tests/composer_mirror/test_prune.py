"""Tests for pruning, on small mirrors built by the library itself in moto's mocked S3."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest

from composer_mirror import prune, verify
from composer_mirror.archives import mirror_archive
from composer_mirror.composer_format import dump_p2
from composer_mirror.errors import MirrorError, SettingsError
from composer_mirror.publisher import publish_root, read_published, withdraw_version, write_package
from composer_mirror.record import (
    MirroredVersion,
    PackageRecord,
    indexed,
    merge_offered,
    published_entry,
    stored_entry,
)
from composer_mirror.state import PackageState, dumps, load_shard, save_package_states
from composer_mirror.store import STATE_CACHE, compare_and_swap
from composer_mirror.store.layout import (
    PRUNE_MARKS,
    ROOT,
    archive_marker_path,
    archive_marker_prefix,
    archive_path,
    archive_path_of_url,
    p2_path,
    shard_of,
    shard_path,
)
from composer_mirror.store.memory import MemoryStore
from composer_mirror.versions import normalize
from tests.composer_mirror.mirror_builder import PUBLIC_URL, Mirror, built_mirror, make_zip

LATER = datetime.now(UTC) + timedelta(days=3)  # every object of a test is older than 48 hours by then
GRACE = timedelta(hours=48)


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
    return {info.path for info in mirror.store.list_objects("")}


def stored_marks(mirror: Mirror) -> dict[str, int]:
    return mirror.store.get_json(PRUNE_MARKS)


def move_branch(mirror: Mirror, name: str, branch: str, salt: str) -> str:
    """What a sync does when a branch moves: a new archive, which the p2 file and the state name
    instead of the previous one; returns the previous archive's path. An empty ``salt`` moves the
    branch back to the commit :meth:`Mirror.add_package` mirrored, a salt used before back to that
    one (the same bytes: a zip holds the time it was made)."""
    normalized = normalize(branch)
    previous = mirror.records[name][normalized]
    upstream_path = f"/dist/{name}/{branch}{'-' if salt else ''}{salt}.zip"
    mirror.upstream.files.setdefault(upstream_path, make_zip(name, branch, salt))
    reference = hashlib.sha1(f"{name}{branch}{salt}".encode()).hexdigest()
    dist = {"type": "zip", "url": mirror.upstream.url + upstream_path, "reference": reference, "shasum": ""}
    record = mirror_archive(
        mirror.store, mirror.ctx.client, name=name, version=branch, normalized=normalized, dist=dist, max_bytes=1 << 20
    )
    entry = {"name": name, "version": branch, "version_normalized": normalized, "dist": dist}
    stored, files = write_package(
        mirror.store, name, lambda current: merge_offered(current or PackageRecord(name), [(entry, record)], None),
        PUBLIC_URL,
    )  # fmt: skip
    mirror.records[name] = {**mirror.records[name], normalized: record}
    state = indexed(PackageState(selectors=["*"], published=files.etags, complete=True), stored)
    save_package_states(mirror.store, {name: state})
    return previous.path


def drop_package(mirror: Mirror, name: str) -> PackageState:
    """Take a package out of the state and the root, leaving its p2 files, archives and journal
    behind; returns the state it had."""
    dropped = load_shard(mirror.store, shard_of(name)).packages[name]
    compare_and_swap(
        mirror.store,
        shard_path(shard_of(name)),
        lambda body: dumps({n: state for n, state in json.loads(body or b"{}").items() if n != name}),
        cache_control=STATE_CACHE,
    )
    publish_root(mirror.store, PUBLIC_URL, [], removed=[name])
    return dropped


def test_a_dry_run_deletes_nothing_and_logs_what_it_would_delete(mirror: Mirror, caplog: Any) -> None:
    orphan = plant_archive(mirror)
    prune.prune(mirror.store, grace_hours=48, dry_run=True, now=LATER)
    before = all_paths(mirror)
    with caplog.at_level(logging.INFO, logger="composer_mirror.prune"):
        result = prune.prune(mirror.store, grace_hours=48, dry_run=True, now=LATER + GRACE)
    assert all_paths(mirror) == before
    assert [o.path for o in result.orphans] == [orphan]
    assert result.deleted == 0
    assert f"[DRY RUN] would delete 1 objects ({result.orphan_bytes} bytes): 1 archives" in caplog.text
    assert f"[DRY RUN] would delete archive {orphan}" in caplog.text


def test_a_dry_run_starts_the_clock_and_a_prune_a_grace_period_later_deletes(mirror: Mirror) -> None:
    """The scheduled prune is dry by default: its marks are what a real run counts the grace period from."""
    orphan = plant_archive(mirror)
    marker = plant_marker(mirror, "gone/away", orphan)
    mirror.put_raw("p2/gone/away.json", b"{}")
    mirror.put_raw("p2/gone/away~dev.json", b"{}")
    prune.prune(mirror.store, grace_hours=48, dry_run=True, now=LATER)
    assert set(stored_marks(mirror)) == {orphan, marker, "p2/gone/away.json", "p2/gone/away~dev.json"}
    before = all_paths(mirror)
    result = prune.prune(mirror.store, grace_hours=48, dry_run=False, now=LATER + GRACE)
    assert result.counts() == {"marker": 1, "archive": 1, "p2": 2}
    assert result.deleted == 4 and result.failed == []
    assert all_paths(mirror) == before - {orphan, marker, "p2/gone/away.json", "p2/gone/away~dev.json"}
    assert stored_marks(mirror) == {}, "the marks of deleted objects are removed"
    names, _root = verify.read_root(mirror.store, PUBLIC_URL)
    assert verify.verify_batch(mirror.ctx, verify.plan_verify_batches(names, 1)[0]).problems == []


def test_an_orphan_found_for_the_first_time_is_marked_now_and_kept(mirror: Mirror) -> None:
    orphan = plant_archive(mirror)
    before = int(datetime.now(UTC).timestamp())
    result = prune.prune(mirror.store, grace_hours=48, dry_run=False)
    assert result.orphans == [] and result.too_young == 1
    assert mirror.exists(orphan)
    assert before <= stored_marks(mirror)[orphan] <= datetime.now(UTC).timestamp()


def test_marks_merge_keeping_the_earliest_and_dropping_those_of_referenced_or_gone_objects(mirror: Mirror) -> None:
    """What an overlapping prune left is merged, never overwritten; dropping a mark only delays a deletion."""
    orphan, fresh = plant_archive(mirror), plant_archive(mirror, "fresh")
    earlier = int((LATER - timedelta(hours=30)).timestamp())
    referenced = mirror.records["psr/log"]["1.0.0.0"].path
    gone = archive_path("0" * 64)
    mirror.put_raw(PRUNE_MARKS, json.dumps({orphan: earlier, referenced: earlier, gone: earlier}).encode())
    prune.prune(mirror.store, grace_hours=48, dry_run=True, now=LATER)
    assert stored_marks(mirror) == {orphan: earlier, fresh: int(LATER.timestamp())}


def test_an_unreadable_marks_document_restarts_every_clock(mirror: Mirror) -> None:
    orphan = plant_archive(mirror)
    mirror.put_raw(PRUNE_MARKS, b"{broken")
    result = prune.prune(mirror.store, grace_hours=48, dry_run=False, now=LATER)
    assert result.orphans == [] and mirror.exists(orphan)
    assert stored_marks(mirror) == {orphan: int(LATER.timestamp())}


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


def test_a_journal_marker_not_yet_due_holds_the_archive_it_names(mirror: Mirror) -> None:
    """A sync reusing an old orphan journals it before recording it: the archive stays while the marker does."""
    orphan = plant_archive(mirror)
    prune.prune(mirror.store, grace_hours=48, dry_run=True, now=LATER)
    marker = plant_marker(mirror, "gone/away", orphan)
    held = prune.prune(mirror.store, grace_hours=48, dry_run=False, now=LATER + GRACE)
    assert held.orphans == [] and held.too_young == 2
    assert mirror.exists(orphan) and mirror.exists(marker)
    swept = prune.prune(mirror.store, grace_hours=48, dry_run=False, now=LATER + 2 * GRACE)
    assert {o.path for o in swept.orphans} == {orphan, marker} and swept.deleted == 2


def test_an_archive_stays_when_its_journal_marker_could_not_be_deleted(mirror: Mirror, monkeypatch: Any) -> None:
    orphan = plant_archive(mirror)
    marker = plant_marker(mirror, "gone/away", orphan)
    delete_many = mirror.store.delete_many
    monkeypatch.setattr(
        mirror.store, "delete_many", lambda paths: [p for p in paths if p == marker] or delete_many(paths)
    )
    result = prune.prune(mirror.store, grace_hours=0, dry_run=False, now=LATER)
    assert result.failed == [marker] and result.deleted == 0
    assert mirror.exists(orphan) and mirror.exists(marker)


def prune_while_the_branch_moves_back(mirror: Mirror, monkeypatch: Any, read: str) -> tuple[str, prune.PruneResult]:
    """A moved branch's previous archive, due for deletion; a sync moves the branch back to it (reusing
    the stored archive, writing nothing to it) right after prune's ``read`` of the references. Returns
    the archive's path and the deleting prune's result."""
    mirror.add_package("acme/app", ["dev-main"])
    previous = move_branch(mirror, "acme/app", "dev-main", "moved")
    prune.prune(mirror.store, grace_hours=48, dry_run=True, now=LATER)
    read_references = getattr(prune, read)

    def sync_meanwhile(store: Any, workers: int) -> prune.References:
        refs = read_references(store, workers)
        move_branch(mirror, "acme/app", "dev-main", "")
        return refs

    monkeypatch.setattr(prune, read, sync_meanwhile)
    return previous, prune.prune(mirror.store, grace_hours=48, dry_run=False, now=LATER + GRACE)


def test_an_archive_a_sync_takes_back_into_use_while_prune_runs_is_kept(mirror: Mirror, monkeypatch: Any) -> None:
    """The sweep reads the state again right before deleting: the branch moved back meanwhile."""
    previous, result = prune_while_the_branch_moves_back(mirror, monkeypatch, "read_references")
    assert previous in {o.path for o in result.orphans}
    assert result.kept_at_sweep == 2 and result.deleted == 0
    assert mirror.exists(previous)


def test_an_archive_a_sync_takes_back_into_use_after_the_sweeps_last_read_is_kept(
    mirror: Mirror, monkeypatch: Any
) -> None:
    """The same sync one step later: it reuses the archive (no write to it) after the sweep read the
    state for the last time, and commits its record before the delete. Nothing may delete it then."""
    previous, _result = prune_while_the_branch_moves_back(mirror, monkeypatch, "_read_state_references")
    assert mirror.exists(previous)
    served = read_published(mirror.store, "acme/app")
    assert all(mirror.exists(archive_path_of_url(entry["dist"]["url"])) for entry in served.values())


def test_archives_of_withdrawn_versions_are_kept(mirror: Mirror) -> None:
    """A withdrawn version's archive (and its journal marker) stays for forensics."""
    record = mirror.records["psr/log"]["1.0.0.0"]
    withdraw_version(mirror.store, "psr/log", "1.0.0.0", "policy", by="tests", repository_url=PUBLIC_URL)
    assert "1.0.0.0" not in read_published(mirror.store, "psr/log")
    result = prune.prune(mirror.store, grace_hours=0, dry_run=False, now=LATER)
    assert result.orphans == []
    assert mirror.exists(record.path)
    assert mirror.exists(archive_marker_path("psr/log", "1.0.0.0", record.reference))


def test_markers_are_deleted_before_their_archives_and_p2_files_last(mirror: Mirror, monkeypatch: Any) -> None:
    plant_marker(mirror, "gone/away", plant_archive(mirror))
    mirror.put_raw("p2/gone/away.json", b"{}")
    order: list[str] = []
    delete_many = mirror.store.delete_many
    monkeypatch.setattr(mirror.store, "delete_many", lambda paths: order.extend(paths) or delete_many(paths))
    prune.prune(mirror.store, grace_hours=0, dry_run=False, now=LATER)
    objects = [path for path in order if not path.startswith("mirror-state/prune/")]  # then the intents, tidied
    assert [path.split("/")[0] for path in objects] == ["mirror-state", "dists", "p2"]


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
    assert result.summary().orphans == {"marker": 0, "archive": 1, "p2": 0}
    assert json.loads(json.dumps(result.report()))["orphans"][0]["path"] == orphan
    assert prune.PruneResult.from_json(json.loads(json.dumps(result.to_json()))) == result


def test_a_moved_branch_keeps_its_previous_archive_for_the_grace_period_after_prune_first_finds_it(
    mirror: Mirror,
) -> None:
    """Uploaded days ago, unreferenced just now: CDN-cached p2 files may still name it."""
    mirror.add_package("acme/app", ["dev-main"])
    previous = move_branch(mirror, "acme/app", "dev-main", "moved")
    marker = archive_marker_path("acme/app", "dev-main", hashlib.sha1(b"acme/appdev-main").hexdigest())
    first = prune.prune(mirror.store, grace_hours=48, dry_run=False, now=LATER)
    assert first.orphans == [] and first.too_young == 2
    assert mirror.exists(previous) and mirror.exists(marker)
    almost = prune.prune(mirror.store, grace_hours=48, dry_run=False, now=LATER + GRACE - timedelta(hours=1))
    assert almost.orphans == [] and mirror.exists(previous)
    swept = prune.prune(mirror.store, grace_hours=48, dry_run=False, now=LATER + GRACE)
    assert {o.path for o in swept.orphans} == {previous, marker} and swept.deleted == 2
    assert not mirror.exists(previous) and not mirror.exists(marker)
    assert mirror.exists(mirror.records["acme/app"]["dev-main"].path)


def test_an_archive_referenced_again_and_then_dropped_again_starts_its_grace_period_anew(mirror: Mirror) -> None:
    mirror.add_package("acme/app", ["dev-main"])
    previous = move_branch(mirror, "acme/app", "dev-main", "moved")
    prune.prune(mirror.store, grace_hours=48, dry_run=False, now=LATER)
    assert move_branch(mirror, "acme/app", "dev-main", "") != previous  # moved back: referenced again
    prune.prune(mirror.store, grace_hours=48, dry_run=False, now=LATER + timedelta(hours=24))
    move_branch(mirror, "acme/app", "dev-main", "moved")  # and away again
    again = LATER + GRACE + timedelta(hours=1)
    assert prune.prune(mirror.store, grace_hours=48, dry_run=False, now=again).orphans == []
    assert mirror.exists(previous)
    swept = prune.prune(mirror.store, grace_hours=48, dry_run=False, now=again + GRACE)
    assert previous in {o.path for o in swept.orphans} and not mirror.exists(previous)


def test_an_unreferenced_p2_file_written_again_after_it_was_marked_is_kept() -> None:
    """Its Last-Modified is later than its mark: a sync wrote it, its grace period starts again."""
    clock = [datetime(2026, 1, 1, tzinfo=UTC)]
    store = MemoryStore(clock=lambda: clock[0])
    for dev in (False, True):
        store.put(p2_path("psr/log", dev), dump_p2("psr/log", []))
    save_package_states(store, {"psr/log": PackageState()})
    publish_root(store, PUBLIC_URL, ["psr/log"])
    rewritten, untouched = p2_path("gone/away"), p2_path("gone/away", dev=True)
    for path in (rewritten, untouched):
        store.put(path, b"{}")
    marked = clock[0] + timedelta(hours=1)
    prune.prune(store, grace_hours=48, dry_run=True, now=marked)
    clock[0] = marked + timedelta(minutes=30)
    store.put(rewritten, b'{"packages": {}}')
    result = prune.prune(store, grace_hours=48, dry_run=False, now=marked + GRACE + timedelta(hours=1))
    assert [o.path for o in result.orphans] == [untouched]
    assert store.head(rewritten) is not None and store.head(untouched) is None


def test_a_p2_file_a_sync_reuses_while_prune_runs_is_kept(mirror: Mirror, monkeypatch: Any) -> None:
    """The sync finds the old p2 files byte for byte what it would write, so it skips writing them,
    and records the package in its shard and the root."""
    state = drop_package(mirror, "acme/tool")
    prune.prune(mirror.store, grace_hours=48, dry_run=True, now=LATER)
    read_references = prune.read_references

    def sync_meanwhile(store: Any, workers: int) -> prune.References:
        refs = read_references(store, workers)
        save_package_states(store, {"acme/tool": state})
        publish_root(store, PUBLIC_URL, ["acme/tool"])
        return refs

    monkeypatch.setattr(prune, "read_references", sync_meanwhile)
    prune.prune(mirror.store, grace_hours=48, dry_run=False, now=LATER + GRACE + timedelta(hours=1))
    assert mirror.exists(p2_path("acme/tool")) and mirror.exists(p2_path("acme/tool", dev=True))
    names, _root = verify.read_root(mirror.store, PUBLIC_URL)
    assert verify.verify_batch(mirror.ctx, verify.plan_verify_batches(names, 1)[0]).problems == []


@pytest.mark.parametrize(
    ("run_type", "dry_run_param", "scheduled_delete", "dry_run"),
    [
        # Scheduled runs get the params' defaults: the setting decides for them.
        ("scheduled", True, False, True),
        ("scheduled", True, True, False),
        ("scheduled", False, False, True),
        # Every other run follows its dry_run param, whatever the setting says.
        ("manual", True, True, True),
        ("manual", False, False, False),
        ("manual", True, False, True),
        ("backfill", True, True, True),
        ("asset_triggered", False, True, False),
    ],
)
def test_only_scheduled_runs_follow_the_scheduled_delete_setting(
    run_type: str, dry_run_param: bool, scheduled_delete: bool, dry_run: bool
) -> None:
    assert prune.is_dry_run(run_type, dry_run_param, scheduled_delete) is dry_run
