"""Verify's report: the batches added up, logged for the operator and kept beside the sync's."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

from composer_mirror.context import Context
from composer_mirror.run_report import Findings, keep_report, log_report
from composer_mirror.verify.problems import Problem, VerifyReport, VerifyResult, merge_all

logger = logging.getLogger(__name__)


def log_summary(result: VerifyResult, *, repair: bool) -> None:
    """A summary table in the task log, then one line per repair and per problem."""
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
    log_report(
        logger,
        Findings(logging.WARNING, "repaired: %s %s %s: %s", _fields(result.repaired)),
        Findings(logging.ERROR, "problem: %s %s %s: %s", _fields(result.problems)),
        title="verify report",
        rows=rows,
    )


def _fields(problems: Iterable[Problem]) -> list[tuple[str, str, str, str]]:
    return [(p.kind, p.package, p.version, p.detail) for p in problems]


def finish(
    ctx: Context, root: Mapping[str, Any], results: Iterable[Mapping[str, Any]], *, run_id: str, repair: bool
) -> VerifyResult:
    """Add up the batches, log the summary and keep the report next to the sync's run reports.

    ``root`` and ``results`` are the JSON of the listing's and the batches' :class:`VerifyResult`, as
    the report task receives them.
    """
    total = merge_all(VerifyResult.from_json(r) for r in [root, *results])
    log_summary(total, repair=repair)
    keep_report(ctx.store, run_id, VerifyReport(total, repair, run_id).to_json(), kind="verify")
    return total
