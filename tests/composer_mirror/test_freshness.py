"""The staleness verdict from status.json: its age against the threshold, missing or unreadable as stale."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from composer_mirror.errors import StoreError
from composer_mirror.freshness import check, judge
from composer_mirror.store import S3Store
from composer_mirror.store.layout import STATUS_JSON

NOW = datetime(2026, 12, 6, 18, 0, tzinfo=UTC)
WHERE = "repo/status.json"


def status(generated_at: object) -> bytes:
    return json.dumps({"generated_at": generated_at, "packages": 3}).encode()


@pytest.mark.parametrize(("published", "fresh"), [("2026-12-06T12:00:00Z", True), ("2026-12-06T11:59:59Z", False)])
def test_the_repository_is_stale_only_when_older_than_the_threshold(published: str, fresh: bool) -> None:
    verdict = judge(status(published), NOW, 6, WHERE)
    assert verdict.fresh is fresh


def test_a_stale_verdict_says_which_time_how_old_and_the_threshold() -> None:
    verdict = judge(status("2026-12-06T08:30:00Z"), NOW, 6, WHERE)
    assert verdict.message == (
        "repository is stale: repo/status.json: last published at 2026-12-06T08:30:00Z, 9.5 h ago; "
        "threshold 6 h (composer_mirror_max_age_hours)"
    )


def test_a_missing_status_is_stale() -> None:
    verdict = judge(None, NOW, 6, WHERE)
    assert not verdict.fresh and "repo/status.json is missing" in verdict.message


@pytest.mark.parametrize(
    "body", [b"not json", b"[]", b"{}", status(None), status("yesterday"), status("2026-12-06 08:30:00")]
)
def test_an_unreadable_status_is_stale(body: bytes) -> None:
    verdict = judge(body, NOW, 6, WHERE)
    assert not verdict.fresh and "repo/status.json is unreadable" in verdict.message


def test_check_reads_status_json_through_the_store(store: S3Store) -> None:
    assert not check(store, NOW, 6).fresh
    store.put(STATUS_JSON, status("2026-12-06T17:00:00Z"))
    verdict = check(store, NOW, 6)
    assert verdict.fresh and "repo/status.json: last published at 2026-12-06T17:00:00Z, 1.0 h ago" in verdict.message


def test_a_failed_read_is_a_stale_verdict_not_a_crash(store: S3Store, monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(path: str) -> None:
        raise StoreError("S3 GET failed (AccessDenied)")

    monkeypatch.setattr(store, "get", fail)
    verdict = check(store, NOW, 6)
    assert not verdict.fresh and "could not be read (S3 GET failed (AccessDenied))" in verdict.message
