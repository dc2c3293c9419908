"""Tests for the listing page: index.json from the shards, index.html, status.json (moto S3)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from composer_mirror.archives import ArchiveRecord
from composer_mirror.listing_page import (
    HTML,
    SHORT_CACHE,
    build_index,
    package_summary,
    page,
    publish_listing,
    publish_status,
)
from composer_mirror.state import PackageState, save_package_states
from composer_mirror.store import S3Store
from composer_mirror.store.layout import INDEX_HTML, INDEX_JSON, STATUS_JSON, shard_of


def state_with(*pretty: str, **fields: Any) -> PackageState:
    versions = {f"n{i}": ArchiveRecord(v, "r", "s", "0" * 64, 1, "u") for i, v in enumerate(pretty)}
    return PackageState(versions=versions, **fields)


# --- package_summary ----------------------------------------------------------------------------
def test_a_summary_lists_versions_newest_first_with_the_description_and_licence() -> None:
    state = state_with("1.0.0", "3.0.0", "v2.0.0", description="Logging", license=["MIT"], synced_at="2024-01-01")
    assert package_summary(state) == {
        "description": "Logging",
        "license": ["MIT"],
        "versions": ["3.0.0", "v2.0.0", "1.0.0"],
        "synced_at": "2024-01-01",
    }


def test_a_package_without_state_has_an_empty_summary() -> None:
    assert package_summary(PackageState()) == {"description": "", "license": [], "versions": [], "synced_at": ""}


@pytest.mark.parametrize(
    ("pretty", "newest_first"),
    [
        (["1.9.0", "1.10.0", "1.2.0"], ["1.10.0", "1.9.0", "1.2.0"]),
        (["1.0.0-RC1", "1.0.0", "0.9.0"], ["1.0.0", "1.0.0-RC1", "0.9.0"]),
        (["v2.0.0", "v10.0.0"], ["v10.0.0", "v2.0.0"]),
    ],
)
def test_versions_are_ordered_as_versions_not_as_strings(pretty: list[str], newest_first: list[str]) -> None:
    assert package_summary(state_with(*pretty))["versions"] == newest_first


def test_branches_sort_apart_after_the_tags() -> None:
    versions = package_summary(state_with("dev-main", "1.0.0", "1.x-dev", "2.0.0"))["versions"]
    assert versions[:2] == ["2.0.0", "1.0.0"]
    assert sorted(versions[2:]) == ["1.x-dev", "dev-main"]


# --- build_index, publish_listing -------------------------------------------------------------
STATES = {
    "psr/log": state_with("3.0.0", "2.0.0", description="PSR-3", license=["MIT"]),
    "twig/twig": state_with("v3.0.0", description="Templates", license=["BSD-3-Clause"]),
    "acme/hidden": state_with("1.0.0", description="mirrored but not available"),
}


def index_of(data: bytes) -> dict[str, Any]:
    return json.loads(data)["packages"]


def test_the_index_lists_every_available_package_from_all_shards(store: S3Store) -> None:
    save_package_states(store, STATES)
    assert len({shard_of(name) for name in STATES}) > 1
    index = index_of(build_index(store, ["twig/twig", "psr/log", "psr/log", "new/without-state"]))
    assert list(index) == ["new/without-state", "psr/log", "twig/twig"]
    assert index["psr/log"]["versions"] == ["3.0.0", "2.0.0"]
    assert index["twig/twig"]["license"] == ["BSD-3-Clause"]
    assert index["new/without-state"] == package_summary(PackageState())


def test_the_index_of_an_empty_mirror_is_empty(store: S3Store) -> None:
    assert build_index(store, []) == b'{"packages":{}}'


def test_the_index_is_canonical_json_whatever_the_names(store: S3Store) -> None:
    """Assembled from serialised summaries, it is byte for byte the sorted compact dump, so an
    unchanged repository rewrites nothing (put_if_changed compares bytes)."""
    states = {**STATES, "zz/\u00e9t\u00e9": state_with("1.0.0", description='quote " and \u2603')}
    save_package_states(store, states)
    data = build_index(store, [*states, "aa/none"])
    assert data == json.dumps(json.loads(data), sort_keys=True, separators=(",", ":")).encode()
    assert index_of(data)["zz/\u00e9t\u00e9"]["description"] == 'quote " and \u2603'


def test_the_first_publish_writes_the_index_and_the_page(store: S3Store) -> None:
    save_package_states(store, STATES)
    publish_listing(store, ["psr/log"], changed=False)
    assert index_of(store.get(INDEX_JSON).body) == {"psr/log": package_summary(STATES["psr/log"])}
    assert store.get(INDEX_HTML).body == page()
    head = store.head(INDEX_HTML)
    assert (head.content_type, head.cache_control) == (HTML, SHORT_CACHE)


def test_an_unchanged_repository_with_an_index_writes_nothing_and_reads_no_shard(store: S3Store) -> None:
    save_package_states(store, STATES)
    publish_listing(store, ["psr/log"], changed=True)
    store.requests.clear()
    publish_listing(store, ["psr/log", "twig/twig"], changed=False)
    assert store.request_counts() == {"HEAD": 1}
    assert list(index_of(store.get(INDEX_JSON).body)) == ["psr/log"]


def test_a_changed_repository_rewrites_only_what_differs(store: S3Store) -> None:
    save_package_states(store, STATES)
    publish_listing(store, ["psr/log"], changed=True)
    store.requests.clear()
    publish_listing(store, ["psr/log"], changed=True)
    assert store.request_counts().get("PUT", 0) == 0
    publish_listing(store, ["psr/log", "twig/twig"], changed=True)
    assert store.request_counts().get("PUT", 0) == 1
    assert list(index_of(store.get(INDEX_JSON).body)) == ["psr/log", "twig/twig"]


# --- publish_status -----------------------------------------------------------------------------
def test_the_status_is_the_public_face_of_the_run_report(store: S3Store) -> None:
    failures = [{"package": f"v/p{i}", "stage": "archive", "error": "x"} for i in range(205)]
    report = {
        "finished_at": "2024-01-01T00:17:00Z",
        "run_id": "scheduled__2024-01-01",
        "mode": "incremental",
        "packages_available": 12,
        "packages_published": 3,
        "failures": failures,
        "anomalies": [{"package": "a/a", "kind": "rewritten tag"}],
        "stale": ["b/b"],
        "removed": ["c/c"],
        "upstream": {"metadata_200": 4, "archive_bytes": 999, "metadata_bytes": 5, "retries": 1},
        "s3_requests": {"PUT": 9},
    }
    publish_status(store, report)
    status = json.loads(store.get(STATUS_JSON).body)
    assert status == {
        **report,
        "generated_at": "2024-01-01T00:17:00Z",
        "last_run_id": "scheduled__2024-01-01",
        "packages": 12,
        "failures": failures[:200],
        "failure_count": 205,
    }
    assert store.head(STATUS_JSON).cache_control == SHORT_CACHE


def test_the_status_of_a_minimal_report_has_defaults(store: S3Store) -> None:
    publish_status(store, {})
    status = json.loads(store.get(STATUS_JSON).body)
    assert (status["packages"], status["failure_count"], status["failures"]) == (0, 0, [])
