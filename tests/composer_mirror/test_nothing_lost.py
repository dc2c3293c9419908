"""Defects of the "nothing mirrored is ever lost" promise, each reproduced through the real pipeline.

Every test runs the task functions in DAG order (as tests/composer_mirror/sync/test_pipeline.py does) on
moto's in-process S3 and the fixture registry, and forces its interleaving deterministically by
wrapping one pipeline step: a second writer runs *inside* the first one's window, on the same
bucket, so what the racers write is shared for real.
"""

from __future__ import annotations

import dataclasses
import json
import threading
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from composer_mirror import prune, verify
from composer_mirror.batches import Batch
from composer_mirror.composer_format import parse_p2
from composer_mirror.context import Context
from composer_mirror.publisher import load_record, withdraw_version
from composer_mirror.state import Catalog, load_catalog, update_catalog
from composer_mirror.store.layout import ROOT, p2_path
from composer_mirror.store.s3 import S3Store
from composer_mirror.sync import packages, pipeline, publish
from composer_mirror.sync.metadata import sync_metadata
from composer_mirror.sync.packages import fetch_archives
from composer_mirror.sync.publish import publish_index
from composer_mirror.sync.records import Plan, WithdrawalNotice
from composer_mirror.upstream.composer import read_endpoints
from composer_mirror.versions import normalize
from tests.composer_mirror.mirror_builder import Mirror


@pytest.fixture
def mirror_options() -> dict[str, Any]:
    """One package, no changes feed: every run is a full one (a test may choose another selection)."""
    return {"changes_feed": False, "packages": ("psr/container:^2.0",)}


def run_targets(ctx: Context, targets: Mapping[str, list[str]], run_id: str) -> dict[str, Any]:
    """An SBOM run's mirroring chain: the targets it resolved, batched, synced, published."""
    return pipeline.mirror_plan(ctx, Plan(dict(targets)), run_id).to_json()


def published_versions(mirror: Mirror, name: str) -> set[str]:
    return set(mirror.published(name))


def recorded_versions(mirror: Mirror, name: str) -> set[str]:
    """The normalized versions the mirror's state says it publishes (the record, else the shard)."""
    return set(mirror.state(name).get("versions", {}))


def verify_package(ctx: Context, name: str, *, repair: bool) -> verify.VerifyResult:
    return verify.verify_batch(ctx, Batch(0, name, {name: []}), repair=repair)


@pytest.mark.parametrize("mirror_options", [{"changes_feed": False, "packages": ("psr/container",)}])
def test_versions_survive_upstream_deletion_when_the_upstream_omits_version_normalized(mirror: Mirror) -> None:
    mirror.registry.omit = frozenset({"version_normalized", "time", "dist.shasum"})
    assert mirror.run("first")["failures"] == []
    versions = published_versions(mirror, "psr/container")
    assert len(versions) >= 2
    for version in versions:
        mirror.registry.remove_version("psr/container", version)
    mirror.registry.add_version("psr/container", "9.0.0")
    report = mirror.run("second")
    assert report["failures"] == []
    assert published_versions(mirror, "psr/container") == versions | {"9.0.0"}
    assert recorded_versions(mirror, "psr/container") == {normalize(v) for v in versions | {"9.0.0"}}


def test_a_sync_and_an_sbom_run_writing_the_same_package_both_land(
    mirror: Mirror, monkeypatch: pytest.MonkeyPatch
) -> None:
    mirror.registry.add_version("psr/container", "1.0.0")
    assert mirror.run("first")["failures"] == []
    assert "1.0.0" not in published_versions(mirror, "psr/container")
    mirror.registry.add_version("psr/container", "2.1.0")
    sbom = mirror.second_writer()
    fetch_one = packages._fetch_one
    raced: list[dict[str, Any]] = []

    def slow_download(ctx: Context, plan: Any, entry: dict[str, Any]) -> Any:
        # While the sync downloads 2.1.0, an SBOM run mirrors and publishes 1.0.0 of the same package.
        if entry["version"] == "2.1.0" and not raced:
            raced.append(run_targets(sbom, {"psr/container": ["1.0.0"]}, "sbom"))
        return fetch_one(ctx, plan, entry)

    monkeypatch.setattr(packages, "_fetch_one", slow_download)
    report = mirror.run("sync")
    assert raced and raced[0]["failures"] == [] and report["failures"] == []
    assert {"1.0.0", "2.1.0"} <= published_versions(mirror, "psr/container")
    assert {"1.0.0.0", "2.1.0.0"} <= recorded_versions(mirror, "psr/container")


def test_verify_repair_between_a_syncs_p2_write_and_its_state_save_undoes_nothing(
    mirror: Mirror, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert mirror.run("first")["failures"] == []
    mirror.registry.add_version("psr/container", "2.1.0")
    checker = mirror.second_writer()
    save = packages.save_package_states
    repaired: list[verify.VerifyResult] = []

    def repair_first(store: Any, updates: dict[str, Any], *args: Any, **kwargs: Any) -> int:
        if "psr/container" in updates and not repaired:
            repaired.append(verify_package(checker, "psr/container", repair=True))
        return save(store, updates, *args, **kwargs)

    monkeypatch.setattr(packages, "save_package_states", repair_first)
    assert mirror.run("sync")["failures"] == []
    assert repaired
    assert "2.1.0" in published_versions(mirror, "psr/container")
    monkeypatch.setattr(packages, "save_package_states", save)
    assert mirror.run("later")["failures"] == []
    assert "2.1.0" in published_versions(mirror, "psr/container")
    assert verify_package(checker, "psr/container", repair=False).problems == []


class Crash(Exception):
    """A worker dying at one write: nothing after it happens."""


@pytest.mark.parametrize("mirror_options", [{"packages": ("psr/*",)}])
def test_a_crash_before_the_root_is_written_does_not_lose_new_packages_for_later_runs(
    mirror: Mirror, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert mirror.run("first")["failures"] == []
    mirror.registry.add_version("psr/brand-new", "1.0.0")
    publish_root = publish.publish_root

    def crash(*args: Any, **kwargs: Any) -> Any:
        raise Crash("killed before packages.json was written")

    monkeypatch.setattr(publish, "publish_root", crash)
    with pytest.raises(Crash):
        mirror.run("crashed")
    monkeypatch.setattr(publish, "publish_root", publish_root)
    report = mirror.run("after")
    assert report["failures"] == []
    assert "psr/brand-new" in mirror.root()["available-packages"]


@pytest.mark.parametrize("mirror_options", [{}])
def test_a_corrupt_root_is_rebuilt_with_every_mirrored_package(mirror: Mirror) -> None:
    assert mirror.run("first")["failures"] == []
    available = mirror.root()["available-packages"]
    assert len(available) > 2
    mirror.store.put(ROOT, b'{"packages": [], "available-pack')  # a torn or hand-damaged root
    mirror.registry.add_version("psr/log", "3.0.3")
    report = mirror.run("second")
    assert report["plan"].mode == "incremental"
    assert mirror.root()["available-packages"] == available
    assert any("packages.json" in json.dumps(item) for item in report["anomalies"])


def test_the_record_helpers_see_what_a_run_published(mirror: Mirror) -> None:
    """The helpers above read real state: a first run's versions are both published and recorded."""
    assert mirror.run("first")["failures"] == []
    versions = published_versions(mirror, "psr/container")
    assert versions and recorded_versions(mirror, "psr/container") == {normalize(v) for v in versions}
    assert dataclasses.is_dataclass(mirror.ctx)


def test_a_withdrawn_version_leaves_the_index_for_good_and_the_record_keeps_it(mirror: Mirror) -> None:
    """The one way out: a recorded decision with its reason, its archive kept, never undone by a sync."""
    assert mirror.run("first")["failures"] == []
    versions = published_versions(mirror, "psr/container")
    victim = sorted(versions)[0]
    line = withdraw_version(
        mirror.store,
        "psr/container",
        normalize(victim),
        "malware",
        by="security team",
        detail="CVE-0000-0001",
        repository_url=mirror.ctx.settings.repository_url,
    )
    assert (line.package, line.version, line.reason, line.by) == (
        "psr/container",
        victim,
        "malware",
        "security team",
    )
    assert published_versions(mirror, "psr/container") == versions - {victim}
    record = load_record(mirror.store, "psr/container")
    withdrawal = record.withdrawn[normalize(victim)]
    assert withdrawal.reason == "malware" and withdrawal.detail == "CVE-0000-0001"
    assert mirror.store.head(withdrawal.version.archive.path) is not None
    assert normalize(victim) in mirror.state("psr/container")["withdrawn"]
    mirror.server.reset_log()
    assert mirror.run("second", adjust_plan=lambda plan: None)["failures"] == []
    assert published_versions(mirror, "psr/container") == versions - {victim}
    assert mirror.server.count(r"^/(zipball|codeload)/") == 0
    with pytest.raises(ValueError, match="unknown withdrawal reason"):
        withdraw_version(
            mirror.store, "psr/container", normalize(sorted(versions)[-1]), "dislike", by="x", repository_url=""
        )


def test_a_mirror_from_before_package_records_keeps_every_version_when_it_gets_them(mirror: Mirror) -> None:
    """Packages mirrored before records existed get one from what they publish, on their first change."""
    assert mirror.run("first")["failures"] == []
    versions = published_versions(mirror, "psr/container")
    for info in list(mirror.store.list_objects("mirror-state/packages/")):
        mirror.store.delete(info.path)  # the mirror as the code before records left it
    oldest = sorted(versions)[0]
    mirror.registry.remove_version("psr/container", oldest)
    mirror.registry.add_version("psr/container", "2.9.0")
    assert mirror.run("second")["failures"] == []
    assert published_versions(mirror, "psr/container") == versions | {"2.9.0"}
    record = load_record(mirror.store, "psr/container")
    assert {v.entry["version"] for v in record.versions.values()} == versions | {"2.9.0"}


# --- the second hostile review (issue "Nothing lost, second pass") ------------------------------
@pytest.mark.parametrize("mirror_options", [{}])
def test_an_sbom_run_never_expires_a_package_the_syncs_selection_names(mirror: Mirror) -> None:
    """Expiry of upstream deletions follows the sync's selection as the catalog records it, whoever publishes."""
    # The default selection names psr/container exactly.
    assert mirror.run("first")["failures"] == []
    mirror.registry.delete_package("psr/container")
    assert mirror.run("second")["removed"] == []
    assert "psr/container" in load_catalog(mirror.store).deleted

    def long_ago(catalog: Catalog) -> Catalog:
        # deleted upstream far longer ago than the grace period
        return dataclasses.replace(catalog, deleted={**catalog.deleted, "psr/container": 1})

    update_catalog(mirror.store, long_ago)
    other = next(name for name in mirror.registry.package_names() if name not in load_catalog(mirror.store).packages)
    newest = mirror.upstream_versions(other)
    report = run_targets(mirror.second_writer(), {other: [sorted(newest)[0]]}, "sbom")
    assert report["failures"] == [] and report["removed"] == []
    assert "psr/container" in mirror.root()["available-packages"]
    assert "psr/container" in load_catalog(mirror.store).packages
    # and the next sync, incremental, keeps it too
    assert mirror.run("third")["removed"] == []
    assert "psr/container" in mirror.root()["available-packages"]


def withdraw_all(mirror: Mirror, name: str) -> list[WithdrawalNotice]:
    lines = []
    for version in sorted(published_versions(mirror, name)):
        lines.append(
            withdraw_version(
                mirror.store,
                name,
                normalize(version),
                "malware",
                by="security team",
                detail="typosquat",
                repository_url=mirror.ctx.settings.repository_url,
            )
        )
    return lines


def served_versions(mirror: Mirror, name: str) -> set[str]:
    """Every version either p2 file of the package serves now (absent files serve none)."""
    found: set[str] = set()
    for dev in (False, True):
        stored = mirror.store.get(p2_path(name, dev))
        if stored is not None:
            found |= {str(entry["version"]) for entry in parse_p2(stored.body, name)}
    return found


@pytest.mark.parametrize("mirror_options", [{"changes_feed": False, "packages": ("psr/container:^2.0", "psr/log")}])
def test_withdrawing_a_packages_last_version_takes_the_package_out_of_the_index(mirror: Mirror) -> None:
    check_full_withdrawal(mirror)


def check_full_withdrawal(mirror: Mirror) -> None:
    assert mirror.run("first")["failures"] == []
    versions = published_versions(mirror, "psr/container")
    assert versions
    lines = withdraw_all(mirror, "psr/container")
    assert {line.version for line in lines} == versions
    assert "psr/container" not in mirror.root()["available-packages"]
    assert served_versions(mirror, "psr/container") == set()
    record = load_record(mirror.store, "psr/container")
    assert record.versions == {} and set(record.withdrawn) == {normalize(v) for v in versions}
    for withdrawal in record.withdrawn.values():  # kept for forensics
        assert mirror.store.head(withdrawal.version.archive.path) is not None
    state = mirror.state("psr/container")
    assert state["versions"] == {} and set(state["withdrawn"]) == set(record.withdrawn)
    # a sync (the package is still selected and still upstream) publishes none of them again
    mirror.server.reset_log()
    assert mirror.run("second", adjust_plan=lambda plan: None)["failures"] == []
    assert "psr/container" not in mirror.root()["available-packages"]
    assert served_versions(mirror, "psr/container") == set()
    assert mirror.server.count(r"^/(zipball|codeload)/") == 0
    # verify walks the root and agrees; prune keeps the withdrawn archives
    names, root = verify.read_root(mirror.store, mirror.ctx.settings.repository_url)
    assert "psr/container" not in names and root.problems == []
    for batch in verify.plan_verify_batches(names, 1):
        assert verify.verify_batch(mirror.ctx, batch, repair=False).problems == []
    later = datetime.now(UTC) + timedelta(days=30)
    prune.prune(mirror.store, grace_hours=1, dry_run=False, now=later)
    prune.prune(mirror.store, grace_hours=1, dry_run=False, now=later + timedelta(hours=2))
    for withdrawal in record.withdrawn.values():
        assert mirror.store.head(withdrawal.version.archive.path) is not None


def test_a_version_the_upstream_adds_after_a_full_withdrawal_brings_the_package_back(mirror: Mirror) -> None:
    """Withdrawing versions is not a ban of the package: a new release is mirrored and listed again."""
    assert mirror.run("first")["failures"] == []
    withdrawn = published_versions(mirror, "psr/container")
    withdraw_all(mirror, "psr/container")
    mirror.registry.add_version("psr/container", "2.9.0")
    assert mirror.run("second")["failures"] == []
    assert "psr/container" in mirror.root()["available-packages"]
    assert served_versions(mirror, "psr/container") == {"2.9.0"}
    assert not withdrawn & served_versions(mirror, "psr/container")


def test_verify_repair_of_a_package_without_a_record_never_overwrites_a_concurrent_sync(
    mirror: Mirror, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The legacy rebuild writes over the file verify checked (its ETag), not over whatever is there now."""
    assert mirror.run("first")["failures"] == []
    for info in list(mirror.store.list_objects("mirror-state/packages/")):
        mirror.store.delete(info.path)  # a package mirrored before records existed
    path = p2_path("psr/container")
    published = mirror.store.get(path).body
    mirror.store.put(path, published.replace(b'"packages"', b'"packages" ', 1))  # damaged: a p2_mismatch
    mirror.registry.add_version("psr/container", "2.9.0")
    rebuilt = verify.repair._rebuilt_p2
    raced: list[dict[str, Any]] = []

    def sync_meanwhile(ctx: Context, name: str, suffix: str, state: Any) -> list[bytes]:
        candidates = rebuilt(ctx, name, suffix, state)
        if not raced:
            raced.append(mirror.run("sync"))  # publishes 2.9.0 between verify's read and its write
        return candidates

    monkeypatch.setattr(verify.repair, "_rebuilt_p2", sync_meanwhile)
    checker = mirror.second_writer()
    result = verify_package(checker, "psr/container", repair=True)
    assert raced and raced[0]["failures"] == []
    assert "2.9.0" in published_versions(mirror, "psr/container")
    assert any("changed the file meanwhile" in p.detail for p in result.problems)
    monkeypatch.setattr(verify.repair, "_rebuilt_p2", rebuilt)
    assert mirror.run("later")["failures"] == []
    assert "2.9.0" in published_versions(mirror, "psr/container")


def test_concurrent_runs_caching_different_upstream_copies_never_lose_a_pinned_version(
    mirror: Mirror, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two runs fetch a new package at once, one of them an older copy (a stale CDN edge): whichever
    body the cache ends up holding, no run saves validators of a body it did not plan from."""
    name = "acme/fresh"
    mirror.registry.add_version(name, "1.0.0")
    older = mirror.second_writer()
    older.store = S3Store(mirror.s3, mirror.store.bucket, mirror.ctx.settings.key_prefix, backoff=0.001)
    older.upstream = read_endpoints(older.client, older.settings.upstream_url)
    fetched, written = threading.Event(), threading.Event()
    put_if_changed = older.store.put_if_changed

    def late_cache_write(*args: Any, **kwargs: Any) -> bool:
        fetched.set()
        assert written.wait(60), "the other run never wrote its copy"
        return put_if_changed(*args, **kwargs)

    monkeypatch.setattr(older.store, "put_if_changed", late_cache_write)
    manifests: list[Any] = []
    slow = threading.Thread(target=lambda: manifests.append(sync_metadata(older, Batch(0, name, {name: ["1.0.0"]}))))
    slow.start()
    assert fetched.wait(60)
    mirror.registry.add_version(name, "1.1.0")  # the newer copy: what the pinning run fetches
    pinning = mirror.ctx
    pinning.upstream = read_endpoints(pinning.client, pinning.settings.upstream_url)
    pinned_plan = Plan({name: ["1.1.0"]})
    manifest = sync_metadata(pinning, Batch(0, name, {name: ["1.1.0"]}))
    written.set()
    slow.join(60)
    assert manifests and manifest.work
    publish_index(older, [fetch_archives(older, manifests[0])], Plan({name: ["1.0.0"]}), "older")
    publish_index(pinning, [fetch_archives(pinning, manifest)], pinned_plan, "pinning")
    # whatever this first round managed, the next run of the same request completes it
    report = run_targets(mirror.second_writer(), {name: ["1.1.0"]}, "again")
    assert report["failures"] == []
    assert "1.1.0" in published_versions(mirror, name)
