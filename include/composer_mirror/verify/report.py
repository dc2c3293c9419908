"""Verify's report: the batches added up, logged for the operator and kept next to the sync's."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

from composer_mirror.context import Context
from composer_mirror.report_table import report_table
from composer_mirror.state import dumps
from composer_mirror.store import STATE_CACHE
from composer_mirror.store.layout import run_report_path
from composer_mirror.verify.problems import VerifyResult, merge_all

logger = logging.getLogger(__name__)


def log_summary(result: VerifyResult, *, repair: bool) -> None:
    """A summary table in the task log, then one line per problem and per repair."""
    rows = [
        ("packages", result.packages),
        ("p2 files", result.p2_files),
        ("versions", result.versions),
        ("archives checked", result.archives),
        ("archive bytes", result.archive_bytes),
        ("archives hashed", result.archives_hashed),
        ("repair", "on" if repair else "off"),
        ("repaired", len(result.repaired)),
        ("problems", len(result.problems)),
        *((f"  {kind}", count) for kind, count in result.counts_by_kind().items()),
    ]
    logger.info("%s", report_table("verify report", rows))
    for problem in result.repaired:
        logger.warning("repaired: %s %s %s: %s", problem.kind, problem.package, problem.version, problem.detail)
    for problem in result.problems:
        logger.error("problem: %s %s %s: %s", problem.kind, problem.package, problem.version, problem.detail)


def finish(
    ctx: Context, root: Mapping[str, Any], results: Iterable[Mapping[str, Any]], *, run_id: str, repair: bool
) -> VerifyResult:
    """Add up the batches, log the summary and keep the report next to the sync's run reports."""
    total = merge_all(VerifyResult.from_dict(r) for r in [root, *results])
    log_summary(total, repair=repair)
    report = {**total.to_dict(), "counts_by_kind": total.counts_by_kind(), "repair": repair, "run_id": run_id}
    ctx.store.put(run_report_path(f"verify-{run_id}"), dumps(report), cache_control=STATE_CACHE)
    return total
