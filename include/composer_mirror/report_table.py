"""The aligned label/value table that ends a run's task log (sync's run report, verify's report).

Operators read these tables first and compare them across runs and DAGs, so they are laid out in
one place: a title line, then one row per figure, labels padded to the longest so the values line
up in a column.
"""

from __future__ import annotations

from collections.abc import Sequence

INDENT = "  "
GAP = "  "


def report_table(title: str, rows: Sequence[tuple[str, object]]) -> str:
    """``title``, then each ``(label, value)`` as an indented row with the values in one column.

    A label may carry its own leading spaces to show it as a breakdown of the row above it; the
    value is written with ``str`` as it is, so an empty value leaves the padded label alone.
    """
    width = max((len(label) for label, _ in rows), default=0)
    return "\n".join([title, *(f"{INDENT}{label.ljust(width)}{GAP}{value}" for label, value in rows)])
