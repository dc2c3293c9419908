"""Run reports: how the run of every DAG (the sync, verify, prune) is reported, kept and logged.

Each DAG counts its own things, but operators look for every report in the same places, so the
envelope is the same for all: the report is kept in ``mirror-state/runs/`` under its run's id (the
id of a DAG's runs other than the sync's prefixed with its kind, ``verify-``, ``prune-``), as the
state's deterministic JSON with the state's cache headers; and the run ends its task log the same
way: a table of figures, aligned so that runs and DAGs compare at a glance, then one line per
finding, at the level the finding deserves (a failure is an error, a repair a warning).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from composer_mirror.state import dumps
from composer_mirror.store import STATE_CACHE, Store
from composer_mirror.store.layout import run_report_path

INDENT = "  "
GAP = "  "


def report_path(run_id: str, kind: str = "") -> str:
    """Where a run's report is kept: the sync's under its run id, another DAG's behind its ``kind``."""
    return run_report_path(f"{kind}-{run_id}" if kind else run_id)


def keep_report(store: Store, run_id: str, document: Mapping[str, Any], *, kind: str = "") -> None:
    """Keep a run's report in the mirror's state, beside every other run's."""
    store.put(report_path(run_id, kind), dumps(document), cache_control=STATE_CACHE)


@dataclass(frozen=True)
class Findings:
    """What a run found of one kind, logged one line each: ``template`` filled with an item's values."""

    level: int
    template: str
    items: Iterable[Sequence[object]]

    @classmethod
    def each(cls, level: int, template: str, values: Iterable[object]) -> Findings:
        """Findings of one value each (a failure, a path), filled into a template with one placeholder."""
        return cls(level, template, [(value,) for value in values])


def log_report(
    logger: logging.Logger, *findings: Findings, title: str | None = None, rows: Sequence[tuple[str, object]] = ()
) -> None:
    """The end of a run's task log: the table of ``rows`` under ``title`` (none without one), then every finding.

    Each DAG logs through its own logger, so a line says which DAG wrote it.
    """
    if title is not None:
        logger.info("%s", report_table(title, rows))
    for found in findings:
        for item in found.items:
            logger.log(found.level, found.template, *item)


def report_table(title: str, rows: Sequence[tuple[str, object]]) -> str:
    """``title``, then each ``(label, value)`` as an indented row with the values in one column.

    A label may carry its own leading spaces to show it as a breakdown of the row above it; the
    value is written with ``str`` as it is, so an empty value leaves the padded label alone.
    """
    width = max((len(label) for label, _ in rows), default=0)
    return "\n".join([title, *(f"{INDENT}{label.ljust(width)}{GAP}{value}" for label, value in rows)])
