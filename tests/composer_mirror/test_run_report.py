"""Run reports: the documents the DAGs keep, the table that ends a run's task log, and the lines after it.

The documents are pinned byte for byte: operators and monitoring read them from the bucket.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

import pytest

from composer_mirror import prune, verify
from composer_mirror.composer_format import dump_p2
from composer_mirror.context import Context
from composer_mirror.root import build_root
from composer_mirror.run_report import Findings, keep_report, log_report, report_path, report_table
from composer_mirror.settings import Settings
from composer_mirror.store import STATE_CACHE
from composer_mirror.store.layout import ROOT, archive_path, p2_path
from composer_mirror.store.memory import MemoryStore
from composer_mirror.upstream import FetchPolicy, UpstreamClient
from composer_mirror.verify import Problem, VerifyResult

REPO = "https://mirror.example/repo"
WRITTEN = datetime(2020, 1, 1, tzinfo=UTC)
SETTINGS = Settings(bucket="mirror", public_url=REPO, upstream_url="https://repo.example", prune_grace_hours=0)


def records(caplog: pytest.LogCaptureFixture) -> list[tuple[str, str, str]]:
    return [(r.name, r.levelname, r.getMessage()) for r in caplog.records]


# --- the envelope -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kind", "path"),
    [("", "mirror-state/runs/manual__1.json"), ("verify", "mirror-state/runs/verify-manual__1.json")],
)
def test_a_report_is_kept_as_the_states_json_under_its_run_id(kind: str, path: str) -> None:
    store = MemoryStore()
    keep_report(store, "manual__1", {"b": [1, 2], "a": {"z": None}}, kind=kind)
    assert report_path("manual__1", kind) == path
    kept = store.head(path)
    assert kept is not None and kept.cache_control == STATE_CACHE
    assert store.get(path).body == b'{"a":{"z":null},"b":[1,2]}'


def test_a_run_ends_its_log_with_the_table_then_each_finding_through_its_own_logger(
    caplog: pytest.LogCaptureFixture,
) -> None:
    logger = logging.getLogger("composer_mirror.some_dag")
    with caplog.at_level(logging.INFO, logger="composer_mirror"):
        log_report(
            logger,
            Findings.each(logging.ERROR, "failure: %s", [{"package": "a/b"}, "late"]),
            Findings(logging.WARNING, "repaired: %s %s", [("missing_p2", "c/d")]),
            Findings.each(logging.WARNING, "none: %s", []),
            title="some report",
            rows=[("packages", 2)],
        )
        log_report(logger, Findings.each(logging.INFO, "deleted %d objects", [3]))
    assert records(caplog) == [
        ("composer_mirror.some_dag", "INFO", "some report\n  packages  2"),
        ("composer_mirror.some_dag", "ERROR", "failure: {'package': 'a/b'}"),
        ("composer_mirror.some_dag", "ERROR", "failure: late"),
        ("composer_mirror.some_dag", "WARNING", "repaired: missing_p2 c/d"),
        ("composer_mirror.some_dag", "INFO", "deleted 3 objects"),
    ]


# --- the table ----------------------------------------------------------------------------------
def test_values_line_up_after_the_longest_label() -> None:
    table = report_table("run report", [("packages", 42), ("archive bytes", "1 / 2"), ("on", True)])
    assert table == "run report\n  packages       42\n  archive bytes  1 / 2\n  on             True"


def test_an_indented_label_stays_indented_under_its_parent() -> None:
    table = report_table("verify report", [("problems", 3), ("  bad shasum", 1)])
    assert table.splitlines()[1:] == ["  problems      3", "    bad shasum  1"]


def test_an_empty_value_keeps_the_padding_of_its_row() -> None:
    assert report_table("t", [("S3 requests", ""), ("x", 0)]) == "t\n  S3 requests  \n  x            0"


def test_a_table_without_rows_is_its_title() -> None:
    assert report_table("empty report", []) == "empty report"


# --- verify and prune ---------------------------------------------------------------------------


def test_verify_keeps_its_report_next_to_the_syncs_and_logs_a_table_then_each_finding(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = MemoryStore()
    ctx = Context(SETTINGS, store, UpstreamClient(FetchPolicy(SETTINGS.upstream_url)))
    root = VerifyResult(problems=[Problem("", "", "bad_root", "metadata-url is None")]).to_json()
    batch = VerifyResult(
        packages=2,
        p2_files=3,
        versions=4,
        archives=4,
        archive_bytes=100,
        archives_hashed=1,
        problems=[Problem("a/b", "1.0", "sha256_mismatch", "dists/x.zip has sha256 0")],
        repaired=[Problem("c/d", "", "missing_p2", "p2/c/d.json does not exist")],
    )
    with caplog.at_level(logging.INFO, logger="composer_mirror"):
        total = verify.finish(ctx, root, [batch.to_json()], run_id="manual__2026-01-01T00:00:00", repair=True)
    assert total.counts_by_kind() == {"bad_root": 1, "sha256_mismatch": 1}
    kept = store.head("mirror-state/runs/verify-manual__2026-01-01T00_00_00.json")
    assert kept is not None and kept.cache_control == STATE_CACHE
    assert store.get(kept.path).body == (
        b'{"archive_bytes":100,"archives":4,"archives_hashed":1,"counts_by_kind":{"bad_root":1,"sha256_mismatch":1},'
        b'"p2_files":3,"packages":2,"problems":[{"detail":"metadata-url is None","kind":"bad_root","package":"",'
        b'"version":""},{"detail":"dists/x.zip has sha256 0","kind":"sha256_mismatch","package":"a/b",'
        b'"version":"1.0"}],"repair":true,"repaired":[{"detail":"p2/c/d.json does not exist","kind":"missing_p2",'
        b'"package":"c/d","version":""}],"run_id":"manual__2026-01-01T00:00:00","versions":4}'
    )
    table = "\n".join(
        [
            "verify report",
            "  packages           2",
            "  p2 files           3",
            "  versions           4",
            "  archives checked   4",
            "  archive bytes      100",
            "  archives hashed    1",
            "  repair             on",
            "  repaired           1",
            "  problems           2",
            "    bad_root         1",
            "    sha256_mismatch  1",
        ]
    )
    logger = "composer_mirror.verify.report"
    assert records(caplog) == [
        (logger, "INFO", table),
        (logger, "WARNING", "repaired: missing_p2 c/d : p2/c/d.json does not exist"),
        (logger, "ERROR", "problem: bad_root  : metadata-url is None"),
        (logger, "ERROR", "problem: sha256_mismatch a/b 1.0: dists/x.zip has sha256 0"),
    ]


def prunable() -> MemoryStore:
    """A root naming one package, its p2 file, and an archive nothing references."""
    store = MemoryStore(clock=lambda: WRITTEN)  # long before prune first finds the archive unreferenced
    store.put(ROOT, build_root(REPO, ["acme/tool"]))
    store.put(p2_path("acme/tool"), dump_p2("acme/tool", []))
    store.put(archive_path("ab" * 32), b"PK orphan")
    return store


@pytest.mark.parametrize("dry_run", [True, False])
def test_prune_keeps_every_path_in_its_report_and_logs_what_it_deleted(
    dry_run: bool, caplog: pytest.LogCaptureFixture
) -> None:
    store = prunable()
    with caplog.at_level(logging.INFO, logger="composer_mirror.prune"):
        result = prune.run_prune(store, SETTINGS, dry_run=dry_run, run_id="scheduled__2026-01-01")
    kept = store.head("mirror-state/runs/prune-scheduled__2026-01-01.json")
    assert kept is not None and kept.cache_control == STATE_CACHE
    orphan = archive_path("ab" * 32)
    assert store.get(kept.path).body == (
        b'{"deleted":%d,"dry_run":%s,"failed":0,"grace_hours":0,"kept_at_sweep":0,'
        b'"orphan_bytes":9,"orphans":[{"kind":"archive","path":"%s","size":9}],'
        b'"scanned":{"archive":1,"marker":0,"p2":1},"too_young":0}'
        % (0 if dry_run else 1, json.dumps(dry_run).encode(), orphan.encode())
    )
    assert result.summary().deleted == (0 if dry_run else 1)
    last: list[tuple[str, str, str]] = records(caplog)[-1:]
    if dry_run:
        expected = "[DRY RUN] nothing deleted; run with dry_run=false to delete 1 objects"
    else:
        expected = "deleted 1 objects, 0 kept (referenced or written again), 0 failed"
    assert last == [("composer_mirror.prune", "INFO", expected)]


def test_prune_logs_each_object_it_could_not_delete(caplog: pytest.LogCaptureFixture, monkeypatch: Any) -> None:
    store = prunable()
    monkeypatch.setattr(store, "delete_many", lambda paths: list(paths))
    with caplog.at_level(logging.INFO, logger="composer_mirror.prune"):
        result = prune.run_prune(store, SETTINGS, dry_run=False, run_id="manual__1")
    assert result.failed == [archive_path("ab" * 32)]
    assert records(caplog)[-2:] == [
        ("composer_mirror.prune", "INFO", "deleted 0 objects, 0 kept (referenced or written again), 1 failed"),
        ("composer_mirror.prune", "ERROR", f"could not delete {archive_path('ab' * 32)}"),
    ]
