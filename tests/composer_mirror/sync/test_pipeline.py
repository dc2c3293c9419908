"""Whole sync runs without Airflow: the stages in DAG order against the fixture registry.

Each test runs the stages as the DAG wires them (read_upstream -> plan_sync -> plan_batches ->
sync_metadata -> fetch_archives -> publish_index, through ``composer_mirror.sync.pipeline``) on the
``mirror`` fixture: moto S3 in process and the packagist-like fixture registry on loopback.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Any
from urllib.parse import urlsplit

import pytest

from composer_mirror.publisher import load_record
from composer_mirror.state import load_catalog
from composer_mirror.store.layout import p2_path
from composer_mirror.sync import metadata, packages
from composer_mirror.versions import is_stable
from tests.composer_mirror.mirror_builder import BUCKET, PUBLIC_URL, SELECTION, Mirror

# --- end to end ---------------------------------------------------------------------------------
SELECTED = {
    "psr/log",
    "twig/twig",
    "psr/container",
    "symfony/polyfill-intl-idn",
}


@pytest.mark.parametrize(
    "chunk", [packages.CHUNK_PACKAGES, 1], ids=["one chunk", "a chunk and a state window per shard"]
)
def test_a_first_run_publishes_every_selected_package_with_dists_on_the_mirror_and_full_advisories(
    mirror: Mirror, chunk: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(packages, "CHUNK_PACKAGES", chunk)
    monkeypatch.setattr(metadata, "STATE_WINDOW", chunk)
    report = mirror.run()
    assert report["failures"] == [] and report["anomalies"] == []
    for name in SELECTED:
        assert mirror.state(name)["versions"], name
    assert report["plan"].mode == "full"
    root = mirror.root()
    assert set(root["available-packages"]) == SELECTED
    assert root["metadata-url"] == urlsplit(PUBLIC_URL).path + "/p2/%package%.json"  # relative to the host
    assert root["security-advisories"] == {"metadata": True}
    for name in SELECTED:
        upstream = mirror.upstream_versions(name)
        assert set(mirror.published(name)) == {v for v in upstream if is_stable(v)}, name
        for version, entry in mirror.published(name).items():
            dist = entry["dist"]
            assert dist["url"].startswith(f"{PUBLIC_URL}/dists/"), dist
            body = mirror.s3.get_object(Bucket=BUCKET, Key="repo/" + dist["url"][len(PUBLIC_URL) + 1 :])["Body"]
            assert dist["shasum"] == hashlib.sha1(body.read()).hexdigest()
            assert dist["reference"] == upstream[version]["dist"]["reference"]
            assert "notification-url" not in entry
    assert set(mirror.published("psr/log", dev=True)) == {"3.0.x-dev"}
    assert mirror.published("twig/twig", dev=True) == {}
    # full advisories from the upstream's API are embedded in the stable p2 files
    advisories = mirror.p2_document("twig/twig")["security-advisories"]
    assert advisories == mirror.registry.advisories("twig/twig", mirror.server.url)
    assert mirror.p2_document("psr/log")["security-advisories"] == []


def test_a_quiet_incremental_run_writes_nothing_but_its_report_status_json(mirror: Mirror) -> None:
    mirror.run("first")
    mirror.store.requests.clear()
    mirror.server.reset_log()
    report = mirror.run("second")
    assert report["plan"].mode == "incremental"
    assert mirror.store.request_counts().get("PUT", 0) == 1  # status.json, the run's report
    assert json.loads(mirror.store.get("status.json").body)["run_id"] == "second"
    assert mirror.store.get("mirror-state/runs/second.json") is None  # the history keeps runs that did something
    assert mirror.server.count(r"^/p2/") == 0
    assert report["root_written"] is False


@pytest.mark.parametrize("mirror_options", [{"changes_feed": False}], ids=["no changes feed"])
def test_a_second_full_run_revalidates_conditionally_and_writes_nothing(mirror: Mirror) -> None:
    mirror.run("first")
    p2_requests = mirror.server.count(r"^/p2/")
    mirror.store.requests.clear()
    mirror.server.reset_log()
    report = mirror.run("second")
    assert report["plan"].mode == "full"
    assert mirror.server.count(r"^/p2/") == p2_requests == mirror.server.count(r"^/p2/", status=304)
    assert mirror.server.count(r"^/(zipball|codeload)/") == 0
    assert mirror.store.request_counts().get("PUT", 0) == 1  # status.json
    assert report["packages_published"] == len(SELECTED)
    assert report["upstream"].get("p2_written", 0) == 0


def test_a_new_upstream_version_is_mirrored_by_the_next_run(mirror: Mirror) -> None:
    mirror.run("first")
    mirror.registry.add_version("psr/log", "3.0.3")
    report = mirror.run("second")
    assert report["plan"].mode == "incremental"
    assert sorted(report["plan"].targets) == ["psr/log"]
    assert "3.0.3" in mirror.published("psr/log")
    assert report["failures"] == []


def test_a_rewritten_tag_is_reported_and_the_original_archive_kept(mirror: Mirror) -> None:
    mirror.run("first")
    before = mirror.published("psr/log")["3.0.2"]
    new_reference = mirror.registry.retag("psr/log", "3.0.2")
    report = mirror.run("second")
    assert report["anomalies"] == [
        {
            "package": "psr/log",
            "version": "3.0.2",
            "mirrored_reference": before["dist"]["reference"],
            "upstream_reference": new_reference,
            "kind": "rewritten tag: upstream reference changed",
        }
    ]
    assert mirror.published("psr/log")["3.0.2"] == before
    assert mirror.state("psr/log")["versions"]["3.0.2.0"]["reference"] == before["dist"]["reference"]


def test_a_moved_branch_is_mirrored_again_without_an_anomaly(mirror: Mirror) -> None:
    mirror.run("first")
    before = mirror.published("psr/log", dev=True)["3.0.x-dev"]
    new_reference = mirror.registry.retag("psr/log", "3.0.x-dev")
    report = mirror.run("second")
    assert report["anomalies"] == []
    assert report["stale"] == []
    after = mirror.published("psr/log", dev=True)["3.0.x-dev"]
    assert after["dist"]["reference"] == new_reference != before["dist"]["reference"]
    assert after["dist"]["url"] != before["dist"]["url"]
    assert set(mirror.published("psr/log")) == {"3.0.2", "3.0.1"}


def test_a_branch_only_change_is_synced_by_the_run_that_reads_it(mirror: Mirror) -> None:
    mirror.run("first")
    new_reference = mirror.registry.retag("psr/log", "3.0.x-dev")
    report = mirror.run("second")
    assert report["stale"] == []
    assert mirror.published("psr/log", dev=True)["3.0.x-dev"]["dist"]["reference"] == new_reference


def test_a_version_removed_upstream_stays_published(mirror: Mirror) -> None:
    mirror.run("first")
    oldest = list(mirror.published("psr/container"))[-1]
    kept = mirror.published("psr/container")[oldest]
    mirror.registry.remove_version("psr/container", oldest)
    report = mirror.run("second")
    assert report["failures"] == []
    assert mirror.published("psr/container")[oldest] == kept
    assert oldest not in mirror.upstream_versions("psr/container")


@pytest.mark.parametrize("mirror_options", [{"changes_feed": False}], ids=["no changes feed"])
def test_a_package_deleted_upstream_keeps_its_published_versions(mirror: Mirror) -> None:
    mirror.run("first")
    before = mirror.published("psr/container")
    recorded = mirror.state("psr/container")["versions"]
    mirror.registry.delete_package("psr/container")
    report = mirror.run("second")
    assert mirror.server.count(r"^/p2/psr/container\.json$", status=404) == 1
    assert mirror.published("psr/container") == before
    assert "psr/container" in mirror.root()["available-packages"]
    assert report["failures"] == []
    # The mirror's own state still holds every version: the p2 file can be rebuilt from it, prune keeps it.
    assert mirror.state("psr/container")["versions"] == recorded
    record = load_record(mirror.store, "psr/container")
    assert {v.entry["version"] for v in record.versions.values()} == set(before)


@pytest.mark.parametrize("mirror_options", [{"changes_feed": False}], ids=["no changes feed"])
def test_a_package_deleted_upstream_is_not_rewritten(mirror: Mirror) -> None:
    mirror.run("first")
    before = mirror.store.get(p2_path("psr/container")).body
    mirror.registry.delete_package("psr/container")
    mirror.run("second")
    assert mirror.store.get(p2_path("psr/container")).body == before


@pytest.mark.parametrize("mirror_options", [{"changes_feed": False}], ids=["no changes feed"])
def test_archives_stored_by_a_run_that_crashed_before_recording_them_are_found_through_their_markers(
    mirror: Mirror,
) -> None:
    mirror.run("first")
    published = {name: mirror.published(name) for name in SELECTED}
    # the state of every package is lost, as if the run had crashed before save_package_states
    for path in [info.path for info in mirror.store.list_objects("mirror-state/shards/")]:
        mirror.store.delete(path)
    mirror.server.reset_log()
    report = mirror.run("second")
    assert report["failures"] == []
    assert mirror.server.count(r"^/(zipball|codeload)/") == 0
    assert {name: mirror.published(name) for name in SELECTED} == published
    assert mirror.state("psr/log")["versions"].keys() == {"3.0.2.0", "3.0.1.0", "3.0.9999999.9999999-dev"}


def test_a_deletion_announced_by_the_feed_waits_for_the_grace_period(mirror: Mirror) -> None:
    mirror.run("first")
    before = mirror.published("psr/container")
    mirror.registry.delete_package("psr/container")
    report = mirror.run("second")
    assert report["removed"] == []
    assert "psr/container" in load_catalog(mirror.store).deleted
    assert "psr/container" in mirror.root()["available-packages"]
    assert mirror.published("psr/container") == before


def test_a_copy_older_than_the_feeds_action_is_left_pending_and_synced_next_run(mirror: Mirror) -> None:
    mirror.run("first")
    mirror.registry.touch("twig/twig", description="Changed upstream")
    announced: dict[str, int] = {}

    def stale_cdn(plan: dict[str, Any]) -> None:
        # the feed announced the change an hour after the copy the upstream's CDN still serves
        plan.min_times["twig/twig"][""] += 3600
        announced["twig/twig"] = plan.min_times["twig/twig"][""]

    report = mirror.run("second", adjust_plan=stale_cdn)
    assert report["stale"] == ["twig/twig"]
    assert report["failures"] == []
    assert load_catalog(mirror.store).pending == {"twig/twig": announced["twig/twig"]}
    assert {e["description"] for e in mirror.published("twig/twig").values()} != {"Changed upstream"}

    report = mirror.run("third")
    assert report["plan"].mode == "incremental"
    assert sorted(report["plan"].targets) == ["twig/twig"]
    assert report["stale"] == []
    assert load_catalog(mirror.store).pending == {}
    assert {e["description"] for e in mirror.published("twig/twig").values()} == {"Changed upstream"}


@pytest.mark.parametrize(
    ("dist", "error"),
    [
        ({"type": "zip", "url": "", "reference": "r1"}, "version has no dist archive"),
        ({"type": "tar", "url": "/zipball/psr/log/r2", "reference": "r2"}, "psr/log 3.0.3: dist type 'tar' is not zip"),
    ],
)
def test_a_version_whose_archive_cannot_be_mirrored_fails_alone_and_the_package_is_retried(
    mirror: Mirror, dist: dict[str, str], error: str
) -> None:
    mirror.run("first")
    mirror.registry.add_version("psr/log", "3.0.3", dist=dist)
    report = mirror.run("second")
    assert report["failures"] == [{"package": "psr/log", "version": "3.0.3", "stage": "archive", "error": error}]
    assert "3.0.3" not in mirror.published("psr/log")
    assert {"3.0.2", "3.0.1"} <= set(mirror.published("psr/log"))
    assert "psr/log" in load_catalog(mirror.store).pending
    assert mirror.state("psr/log")["complete"] is False


def test_a_changed_selection_forces_a_full_run(mirror: Mirror) -> None:
    mirror.run("first")
    mirror.ctx.settings = dataclasses.replace(mirror.ctx.settings, packages=(*SELECTION, "monolog/monolog"))
    report = mirror.run("second")
    assert report["plan"].mode == "full"
    assert "monolog/monolog" in mirror.root()["available-packages"]
    assert load_catalog(mirror.store).selection == [*SELECTION, "monolog/monolog"]
