"""Defects of the "nothing mirrored is ever lost" promise, each reproduced through the real pipeline.

Every test runs the task functions in DAG order (as tests/composer_mirror/test_sync.py does) on
moto's in-process S3 and the fixture registry, and forces its interleaving deterministically by
wrapping one pipeline step: a second writer runs *inside* the first one's window, on the same
bucket, so what the racers write is shared for real.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import boto3
import pytest

from composer_mirror import verify
from composer_mirror.batches import Batch, plan_batches
from composer_mirror.context import Context
from composer_mirror.publisher import load_record, withdraw_version
from composer_mirror.store.layout import ROOT
from composer_mirror.sync import packages, publish
from composer_mirror.sync.metadata import sync_metadata
from composer_mirror.sync.packages import fetch_archives
from composer_mirror.sync.publish import publish_index
from composer_mirror.sync.records import Plan
from composer_mirror.upstream import FetchPolicy, RetryPolicy, UpstreamClient
from composer_mirror.upstream.composer import read_endpoints
from composer_mirror.versions import normalize
from tests.composer_mirror.test_sync import Mirror, built


@pytest.fixture
def session_mirror(session: boto3.session.Session) -> Callable[..., Any]:
    return lambda **kwargs: built(session, **kwargs)


@pytest.fixture
def mirror(session: boto3.session.Session) -> Iterator[Mirror]:
    with built(session, changes_feed=False, packages=("psr/container:^2.0",)) as running:
        yield running


def second_writer(mirror: Mirror) -> Context:
    """Another worker on the same bucket: its own upstream client, the same settings and store."""
    client = UpstreamClient(
        FetchPolicy(mirror.ctx.settings.upstream_url), concurrency=2, retry=RetryPolicy(attempts=2, backoff=0.01)
    )
    return Context(mirror.ctx.settings, mirror.ctx.store, client)


def run_targets(ctx: Context, targets: Mapping[str, list[str]], run_id: str) -> dict[str, Any]:
    """An SBOM run's mirroring chain: the targets it resolved, batched, synced, published."""
    ctx.upstream = read_endpoints(ctx.client, ctx.settings.upstream_url)
    plan = Plan(dict(targets))
    batches = plan_batches(plan.targets, ctx.settings.max_batches)
    results = [fetch_archives(ctx, sync_metadata(ctx, batch)) for batch in batches]
    return publish_index(ctx, results, plan, run_id)


def published_versions(mirror: Mirror, name: str) -> set[str]:
    return set(mirror.published(name))


def recorded_versions(mirror: Mirror, name: str) -> set[str]:
    """The normalized versions the mirror's state says it publishes (the record, else the shard)."""
    return set(mirror.state(name).get("versions", {}))


def verify_package(ctx: Context, name: str, *, repair: bool) -> verify.VerifyResult:
    return verify.verify_batch(ctx, Batch(0, name, {name: []}), repair=repair)


def test_versions_survive_upstream_deletion_when_the_upstream_omits_version_normalized(
    session_mirror: Callable[..., Any],
) -> None:
    with session_mirror(changes_feed=False, packages=("psr/container",)) as mirror:
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
    sbom = second_writer(mirror)
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
    checker = second_writer(mirror)
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


def test_a_crash_before_the_root_is_written_does_not_lose_new_packages_for_later_runs(
    session_mirror: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    with session_mirror(changes_feed=True, packages=("psr/*",)) as mirror:
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


def test_a_corrupt_root_is_rebuilt_with_every_mirrored_package(session_mirror: Callable[..., Any]) -> None:
    with session_mirror(changes_feed=True) as mirror:
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
    assert (line["package"], line["version"], line["reason"], line["by"]) == (
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
    for info in list(mirror.store.list("mirror-state/packages/")):
        mirror.store.delete(info.path)  # the mirror as the code before records left it
    oldest = sorted(versions)[0]
    mirror.registry.remove_version("psr/container", oldest)
    mirror.registry.add_version("psr/container", "2.9.0")
    assert mirror.run("second")["failures"] == []
    assert published_versions(mirror, "psr/container") == versions | {"2.9.0"}
    record = load_record(mirror.store, "psr/container")
    assert {v.entry["version"] for v in record.versions.values()} == versions | {"2.9.0"}
