"""A line-by-line port of composer/metadata-minifier, used to write p2 files exactly as packagist does.

PHP's ``isset`` is false for ``null`` values, so a key whose value is ``None`` is always re-sent and a
key that became ``None`` is written as ``"__unset"``; the port keeps that quirk on purpose. The
fixture never stores ``None`` values, so the quirk does not show in served files.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from typing import Any

UNSET = "__unset"


def minify(versions: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """First entry whole, then only the top-level keys that differ from the previous expanded entry."""
    minified: list[dict[str, Any]] = []
    last: dict[str, Any] | None = None
    for version in versions:
        if last is None:
            last = dict(version)
            minified.append(dict(version))
            continue
        diff: dict[str, Any] = {}
        for key, value in version.items():
            if last.get(key) is None or last[key] != value:
                diff[key] = value
                last[key] = value
        for key in list(last):
            if version.get(key) is None:
                diff[key] = UNSET
                del last[key]
        minified.append(diff)
    return minified


def expand(versions: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Rebuild full entries from a minified list; results are deep copies, safe to edit independently."""
    expanded: list[dict[str, Any]] = []
    current: dict[str, Any] | None = None
    for version in versions:
        if current is None:
            current = copy.deepcopy(dict(version))
        else:
            current = copy.deepcopy(current)
            for key, value in version.items():
                if value == UNSET:
                    current.pop(key, None)
                else:
                    current[key] = copy.deepcopy(value)
        expanded.append(current)
    return expanded
