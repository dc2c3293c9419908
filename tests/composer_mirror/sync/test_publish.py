"""Tests for the sync's publishing step on its own: deletions recorded and expired, the run report summed and logged."""

from __future__ import annotations

import logging
import time
from typing import Any

import pytest

from composer_mirror.state import Catalog
from composer_mirror.sync.publish import expire_deletions, log_report, record_deletions, summarise
from composer_mirror.sync.records import Anomaly, BatchResult, Failure, FeedPlan


# --- record_deletions, expire_deletions --------------------------------------------------------
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
