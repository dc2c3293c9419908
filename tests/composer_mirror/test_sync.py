"""Tests for the sync pipeline without Airflow: planning helpers, then whole runs against the fixture registry.

The end-to-end tests call the task functions in DAG order (read_upstream -> plan_sync -> plan_batches ->
sync_metadata -> fetch_archives -> publish_index) on a Context built by hand: moto S3 in process and the
packagist-like fixture registry on loopback.
"""

from __future__ import annotations

import dataclasses
import email.utils
import hashlib
import json
import logging
import math
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from composer_mirror.batches import plan_batches
from composer_mirror.composer_format import parse_p2
from composer_mirror.context import Context
from composer_mirror.errors import TargetError
from composer_mirror.publisher import load_record
from composer_mirror.sbom_upload import read_sbom_object
from composer_mirror.settings import Settings
from composer_mirror.state import Catalog, load_catalog, load_shards
from composer_mirror.store import S3Store
from composer_mirror.store.layout import ROOT, p2_path, shard_of
from composer_mirror.sync import metadata, packages, pipeline
from composer_mirror.sync.metadata import _older_than
from composer_mirror.sync.planning import incremental_targets, plan_sync, resolve_request
from composer_mirror.sync.publish import expire_deletions, log_report, record_deletions, summarise
from composer_mirror.sync.records import Anomaly, BatchResult, Failure, FeedPlan, Plan
from composer_mirror.upstream import FetchPolicy, RetryPolicy, UpstreamClient
from composer_mirror.upstream.composer import read_endpoints
from composer_mirror.versions import is_stable
from tests.fixture_registry import Registry, RegistryServer

LOCK = Path(__file__).resolve().parents[1] / "fixtures" / "symfony-demo" / "composer.lock"
BUCKET = "pipeline-bucket"
PUBLIC_URL = f"http://127.0.0.1:9/{BUCKET}/repo"


# --- plan_batches -------------------------------------------------------------------------------
def targets_of(count: int) -> dict[str, list[str]]:
    return {f"vendor{i % 7}/pkg{i}": ["*"] for i in range(count)}


def names_in_one_shard(count: int) -> list[str]:
    by_shard: dict[str, list[str]] = {}
    for i in range(5000):
        found = by_shard.setdefault(shard_of(f"acme/pkg{i}"), [])
        found.append(f"acme/pkg{i}")
        if len(found) == count:
            return found
    raise AssertionError("no shard collected enough names")


@pytest.mark.parametrize(
    ("count", "max_batches", "min_batch_size"),
    [(1000, 64, 200), (1000, 3, 200), (5000, 64, 200), (5000, 8, 200), (10, 64, 200), (300, 64, 1), (300, 1, 1)],
)
def test_batches_cover_every_target_once_within_the_limit_and_balanced(
    count: int, max_batches: int, min_batch_size: int
) -> None:
    targets = targets_of(count)
    batches = plan_batches(targets, max_batches, min_batch_size)
    shards = {shard_of(name) for name in targets}
    wanted = min(max_batches, math.ceil(count / min_batch_size), len(shards))
    assert len(batches) == wanted <= max_batches
    names = [name for batch in batches for name in batch.packages]
    assert sorted(names) == sorted(targets)
    largest_shard = max(Counter(shard_of(name) for name in targets).values())
    per_batch = count / wanted
    for batch in batches:
        assert per_batch - largest_shard < len(batch.packages) < per_batch + largest_shard


@pytest.mark.parametrize(("count", "max_batches"), [(1000, 64), (300, 7), (2000, 200)])
def test_a_shard_never_spans_two_batches(count: int, max_batches: int) -> None:
    batches = plan_batches(targets_of(count), max_batches, min_batch_size=1)
    owner: dict[str, int] = {}
    for batch in batches:
        for name in batch.packages:
            assert owner.setdefault(shard_of(name), batch.index) == batch.index, name


def test_packages_of_one_shard_stay_together_even_when_more_batches_are_allowed() -> None:
    names = names_in_one_shard(5)
    batches = plan_batches({name: ["*"] for name in names}, max_batches=10, min_batch_size=1)
    assert len(batches) == 1
    assert sorted(batches[0].packages) == sorted(names)


def test_no_targets_plan_no_batches() -> None:
    assert plan_batches({}, 64) == []


def test_few_targets_stay_in_one_batch() -> None:
    assert len(plan_batches(targets_of(199), 64)) == 1


def test_a_batch_carries_its_selectors_min_times_index_and_label() -> None:
    targets = {"b/b": ["^1.0"], "a/a": ["*", "1.0.0"], "c/c": ["*"]}
    [batch] = plan_batches(targets, 64, min_times={"a/a": {"": 10}, "z/z": {"": 99}})
    assert batch.index == 0
    assert batch.packages == targets
    assert batch.min_times == {"a/a": {"": 10}}
    names = list(batch.packages)
    assert batch.label == f"{names[0]} .. {names[-1]} (3)"


def test_min_times_go_to_the_batch_holding_the_package() -> None:
    targets = targets_of(600)
    min_times = {name: {"": i} for i, name in enumerate(targets) if i % 50 == 0}
    batches = plan_batches(targets, 64, min_batch_size=200, min_times=min_times)
    assert len(batches) == 3
    for batch in batches:
        assert batch.min_times == {n: t for n, t in min_times.items() if n in batch.packages}
        assert batch.label.endswith(f"({len(batch.packages)})")
    assert [b.index for b in batches] == [0, 1, 2]


# --- incremental_targets, deletions -------------------------------------------------------------
def test_incremental_targets_are_the_mirrored_packages_the_feed_names_with_their_selectors() -> None:
    catalog = Catalog(packages={"psr/log": ["*", "3.0.2"], "twig/twig": ["^3.0"], "idle/pkg": ["*"]})
    targets = incremental_targets(["psr/log", "twig/twig:^3.0"], catalog, {"psr/log": 1, "twig/twig": 2})
    assert targets == {"psr/log": ["*", "3.0.2"], "twig/twig": ["^3.0"]}


def test_new_upstream_packages_matching_a_pattern_become_targets_and_unrelated_ones_do_not() -> None:
    catalog = Catalog(packages={"symfony/console": ["*"]})
    updates = {"symfony/new-thing": 5, "symfony/console": 6, "other/vendor": 7}
    targets = incremental_targets(["symfony/*:^7.0"], catalog, updates)
    assert targets == {"symfony/console": ["*", "^7.0"], "symfony/new-thing": ["^7.0"]}


def test_pending_packages_are_retried_even_when_the_feed_is_quiet() -> None:
    catalog = Catalog(packages={"psr/log": ["*"], "twig/twig": ["*"]}, pending={"twig/twig": 0})
    assert incremental_targets(["psr/log", "twig/twig"], catalog, {}) == {"twig/twig": ["*"]}


def test_a_quiet_feed_gives_no_targets() -> None:
    assert incremental_targets(["*"], Catalog(packages={"a/a": ["*"]}), {}) == {}


def test_record_deletions_marks_mirrored_packages_and_an_update_clears_the_mark() -> None:
    catalog = Catalog(packages={"a/a": ["*"], "b/b": ["*"], "c/c": ["*"]}, deleted={"c/c": 50, "b/b": 10})
    catalog = record_deletions(catalog, FeedPlan(0, {"a/a": 100, "b/b": 20, "never/mirrored": 30}, ["c/c"]))
    assert catalog.deleted == {"a/a": 100, "b/b": 10}


def test_expired_deletions_leave_the_catalog_and_recent_ones_wait_for_the_grace_period() -> None:
    now = int(time.time())
    catalog = Catalog(
        packages={"old/gone": ["*"], "new/gone": ["*"], "kept/pkg": ["*"]},
        deleted={"old/gone": now - 8 * 86400, "new/gone": now - 3600},
    )
    catalog, expired = expire_deletions(catalog, 168, ["*"])
    assert expired == ["old/gone"]
    assert catalog.packages == {"new/gone": ["*"], "kept/pkg": ["*"]}
    assert catalog.deleted == {"new/gone": now - 3600}


@pytest.mark.parametrize(
    ("selectors", "selection"),
    [
        (["*"], ["named/pkg"]),
        (["*"], ["named/pkg:^1.0", "other/*"]),
        (["*"], ["pkg:composer/named/pkg@1.0.0"]),
        (["1.0.0"], ["*"]),
        (["^2.0", "dev-main"], ["*"]),
    ],
)
def test_packages_named_in_the_selection_or_pinned_are_never_expired(
    selectors: list[str], selection: list[str]
) -> None:
    catalog = Catalog(packages={"named/pkg": selectors}, deleted={"named/pkg": 0})
    catalog, expired = expire_deletions(catalog, 0, selection)
    assert expired == []
    assert catalog.packages == {"named/pkg": selectors}


def test_a_package_matched_only_by_a_pattern_expires() -> None:
    catalog = Catalog(packages={"named/pkg": ["*", "^1.0"]}, deleted={"named/pkg": 0})
    catalog, expired = expire_deletions(catalog, 0, ["named/*"])
    assert expired == ["named/pkg"]
    assert (catalog.packages, catalog.deleted) == ({}, {})


# --- _older_than --------------------------------------------------------------------------------
NOW = 1_700_000_000


@pytest.mark.parametrize(
    ("last_modified", "older"),
    [
        (email.utils.formatdate(NOW - 1, usegmt=True), True),
        (email.utils.formatdate(NOW - 86400, usegmt=True), True),
        (email.utils.formatdate(NOW, usegmt=True), False),
        (email.utils.formatdate(NOW + 5, usegmt=True), False),
        (None, False),
        ("", False),
        ("not a date", False),
    ],
)
def test_older_than_compares_a_last_modified_header_with_the_feeds_action_time(
    last_modified: str | None, older: bool
) -> None:
    assert _older_than(last_modified, NOW) is older


# --- summarise, log_report ----------------------------------------------------------------------
RESULTS = [
    BatchResult(
        0,
        published=["a/a", "b/b"],
        failures=[Failure("b/b", stage="archive", error="boom")],
        stats={"metadata_200": 2, "archives_downloaded": 3, "archive_bytes": 300},
        s3_requests={"PUT": 4, "GET": 1},
    ),
    BatchResult(
        1,
        published=["c/c"],
        anomalies=[Anomaly(package="c/c", kind="rewritten tag")],
        stats={"metadata_200": 1, "metadata_304": 5, "archive_bytes": 50},
        s3_requests={"PUT": 1, "HEAD": 2},
    ),
]


def test_summarise_adds_the_batches_counters() -> None:
    assert summarise(RESULTS).to_json() == {
        "batches": 2,
        "packages_published": 3,
        "failures": [{"package": "b/b", "stage": "archive", "error": "boom"}],
        "anomalies": [{"package": "c/c", "kind": "rewritten tag"}],
        "withdrawals": [],
        "upstream": {"metadata_200": 3, "metadata_304": 5, "archives_downloaded": 3, "archive_bytes": 350},
        "s3_requests": {"PUT": 5, "GET": 1, "HEAD": 2},
    }


def test_summarise_of_no_batches_is_all_zero() -> None:
    assert summarise([]).to_json() == {
        "batches": 0,
        "packages_published": 0,
        "failures": [],
        "anomalies": [],
        "withdrawals": [],
        "upstream": {},
        "s3_requests": {},
    }


def test_log_report_prints_a_table_then_each_failure_and_anomaly(caplog: Any) -> None:
    report = {**summarise(RESULTS).to_json(), "packages_available": 42}
    with caplog.at_level(logging.INFO, logger="composer_mirror.sync.publish"):
        log_report(report)
    table = caplog.records[0].getMessage().splitlines()
    assert table[0] == "run report"
    rows = {line.strip().split("  ")[0]: line.strip().split("  ")[-1].strip() for line in table[1:]}
    assert rows["packages available"] == "42"
    assert rows["packages published this run"] == "3"
    assert rows["metadata 200 / 304 / 404"] == "3 / 5 / 0"
    assert rows["archive bytes"] == "350"
    assert rows["S3 requests"] == "GET 1, HEAD 2, PUT 5"
    assert rows["failures"] == "1"
    assert len({len(line) - len(line.lstrip()) for line in table[1:]}) == 1
    assert [(r.levelname, r.getMessage()) for r in caplog.records[1:]] == [
        ("ERROR", "failure: {'package': 'b/b', 'stage': 'archive', 'error': 'boom'}"),
        ("WARNING", "supply-chain anomaly: {'package': 'c/c', 'kind': 'rewritten tag'}"),
    ]


# --- end to end ---------------------------------------------------------------------------------
SELECTION = ("psr/log", "psr/log:3.0.x-dev", "twig/twig", "psr/container", "symfony/polyfill-intl-id*:^1.0")


@dataclass
class Mirror:
    registry: Registry
    server: RegistryServer
    s3: Any
    ctx: Context

    @property
    def store(self) -> S3Store:
        return self.ctx.store

    def run(self, run_id: str = "run", adjust_plan: Callable[[Plan], None] | None = None) -> dict[str, Any]:
        """One sync run, task by task, as the DAG wires them: its report as the report task gets it, and its plan."""
        ctx = self.ctx
        ctx.upstream = read_endpoints(ctx.client, ctx.settings.upstream_url)
        plan = plan_sync(ctx)
        if adjust_plan:
            adjust_plan(plan)
        return {**pipeline.mirror_plan(ctx, plan, run_id).to_json(), "plan": plan}

    def root(self) -> dict[str, Any]:
        return json.loads(self.store.get(ROOT).body)

    def published(self, name: str, dev: bool = False) -> dict[str, dict[str, Any]]:
        stored = self.store.get(p2_path(name, dev))
        assert stored is not None, f"{name} has no published p2 file"
        return {entry["version"]: entry for entry in parse_p2(stored.body, name)}

    def p2_document(self, name: str) -> dict[str, Any]:
        return json.loads(self.store.get(p2_path(name)).body)

    def upstream_versions(self, name: str, dev: bool = False) -> dict[str, dict[str, Any]]:
        return {e["version"]: e for e in self.registry.versions(name, self.server.url, dev=dev)}

    def state(self, name: str) -> dict[str, Any]:
        """The package's shard entry as stored ({} without one)."""
        entry = load_shards(self.store, [name])[shard_of(name)].packages.get(name)
        return entry.to_json() if entry is not None else {}


@contextmanager
def built(
    session: boto3.session.Session, *, changes_feed: bool = True, packages: tuple[str, ...] = SELECTION
) -> Iterator[Mirror]:
    registry = Registry.from_lock(LOCK, extra_versions=1)
    with RegistryServer(registry, changes_feed=changes_feed) as server, mock_aws():
        s3 = session.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket=BUCKET)
        settings = Settings(
            bucket=BUCKET, public_url=PUBLIC_URL, upstream_url=server.url, prefix="repo", packages=tuple(packages)
        )
        store = S3Store(s3, BUCKET, settings.key_prefix, backoff=0.001)
        client = UpstreamClient(FetchPolicy(server.url), concurrency=4, retry=RetryPolicy(attempts=2, backoff=0.01))
        try:
            yield Mirror(registry, server, s3, Context(settings, store, client))
        finally:
            client.close()
        assert server.errors == []


@pytest.fixture
def mirror(session: boto3.session.Session) -> Iterator[Mirror]:
    with built(session) as running:
        yield running


@pytest.fixture
def mirror_without_feed(session: boto3.session.Session) -> Iterator[Mirror]:
    with built(session, changes_feed=False) as running:
        yield running


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
    assert root["metadata-url"] == f"/{BUCKET}/repo/p2/%package%.json"
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


def test_a_second_full_run_revalidates_conditionally_and_writes_nothing(mirror_without_feed: Mirror) -> None:
    mirror = mirror_without_feed
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


def test_a_package_deleted_upstream_keeps_its_published_versions(mirror_without_feed: Mirror) -> None:
    mirror = mirror_without_feed
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


def test_a_package_deleted_upstream_is_not_rewritten(mirror_without_feed: Mirror) -> None:
    mirror = mirror_without_feed
    mirror.run("first")
    before = mirror.store.get(p2_path("psr/container")).body
    mirror.registry.delete_package("psr/container")
    mirror.run("second")
    assert mirror.store.get(p2_path("psr/container")).body == before


def test_archives_stored_by_a_run_that_crashed_before_recording_them_are_found_through_their_markers(
    mirror_without_feed: Mirror,
) -> None:
    mirror = mirror_without_feed
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


# --- resolve_request, read_sbom_object ----------------------------------------------------------
def test_resolve_request_checks_versions_upstream_and_adds_dependencies(mirror: Mirror, caplog: Any) -> None:
    mirror.ctx.upstream = read_endpoints(mirror.ctx.client, mirror.ctx.settings.upstream_url)
    params = {"purls": ["pkg:composer/twig/twig@v3.27.1"], "with_dependencies": True, "dry_run": True}
    with caplog.at_level(logging.INFO, logger="composer_mirror.sync.planning"):
        targets = resolve_request(mirror.ctx, params)
    assert targets["twig/twig"] == ["v3.27.1"]
    assert targets["symfony/polyfill-mbstring"] == ["^1.3"]
    assert "[DRY RUN] plan: twig/twig [v3.27.1]: 1 versions, 1 archives to fetch (v3.27.1)" in caplog.text


def test_resolve_request_fails_before_writing_for_a_version_the_upstream_lacks(mirror: Mirror) -> None:
    mirror.ctx.upstream = read_endpoints(mirror.ctx.client, mirror.ctx.settings.upstream_url)
    with pytest.raises(TargetError, match=r"twig/twig 9\.9\.9: version not found upstream"):
        resolve_request(mirror.ctx, {"purls": ["pkg:composer/twig/twig@9.9.9"]})
    assert list(mirror.store.list_objects("")) == []


def test_resolve_request_reads_an_sbom_uploaded_under_the_prefix(mirror: Mirror) -> None:
    mirror.ctx.upstream = read_endpoints(mirror.ctx.client, mirror.ctx.settings.upstream_url)
    sbom = {"bomFormat": "CycloneDX", "specVersion": "1.5", "version": 1,
            "components": [{"type": "library", "name": "log", "purl": "pkg:composer/psr/log@3.0.2"}]}  # fmt: skip
    mirror.store.put("uploads/app.cdx.json", json.dumps(sbom).encode())
    targets = resolve_request(mirror.ctx, {"sbom_s3_key": "repo/uploads/app.cdx.json", "with_dependencies": False})
    assert targets == {"psr/log": ["3.0.2"]}


@pytest.mark.parametrize("key", ["other/app.json", "/repo/app.json", "repo/../secrets.json", "repoX/app.json"])
def test_read_sbom_object_refuses_keys_outside_the_prefix(mirror: Mirror, key: str) -> None:
    with pytest.raises(TargetError, match="must be a key under the mirror prefix 'repo/'"):
        read_sbom_object(mirror.store, key)


def test_read_sbom_object_names_a_missing_key(mirror: Mirror) -> None:
    with pytest.raises(TargetError, match=f"sbom_s3_key 'repo/missing.json' does not exist in bucket {BUCKET}"):
        read_sbom_object(mirror.store, "repo/missing.json")


def test_read_sbom_object_returns_the_stored_bytes(mirror: Mirror) -> None:
    mirror.store.put("uploads/sbom.json", b'{"x": 1}')
    assert read_sbom_object(mirror.store, "repo/uploads/sbom.json") == b'{"x": 1}'


def test_every_sbom_format_of_the_application_resolves_to_the_same_targets(mirror: Mirror) -> None:
    """CycloneDX JSON and XML, SPDX JSON and tag-value of one lock file plan the same mirror."""
    mirror.ctx.upstream = read_endpoints(mirror.ctx.client, mirror.ctx.settings.upstream_url)
    sboms = Path(__file__).resolve().parents[1] / "fixtures/sboms"
    plans = {
        name: resolve_request(mirror.ctx, {"sbom": (sboms / name).read_text(), "with_dependencies": True})
        for name in ("symfony-demo.cdx.json", "symfony-demo.cdx.xml", "symfony-demo.spdx.json", "symfony-demo.spdx")
    }
    reference = plans.pop("symfony-demo.cdx.json")
    assert len([name for name, selectors in reference.items() if any(s != "*" for s in selectors)]) >= 153
    for name, targets in plans.items():
        assert targets == reference, name
