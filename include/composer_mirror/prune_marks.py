"""Prune's marks: when a prune first found each unreferenced object so, in ``mirror-state/prune/marks.json``.

An object's grace period counts from its mark, so the marks are changed only by compare-and-swap,
as a merge: two prunes may overlap, and each keeps the earliest valid mark of every path it found
unreferenced and drops every other mark (dropping a mark only ever delays a deletion).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from datetime import datetime

from composer_mirror.state import dumps
from composer_mirror.store import STATE_CACHE, Store, compare_and_swap
from composer_mirror.store.layout import PRUNE_MARKS

logger = logging.getLogger(__name__)

# Path -> when a prune first found the object unreferenced, in whole epoch seconds.
Marks = dict[str, int]


def record_marks(store: Store, unreferenced: Mapping[str, datetime | None], now: datetime) -> Marks:
    """Merge this prune's findings (path -> Last-Modified) into the stored marks; returns them.

    Applied again to whatever an overlapping prune wrote meanwhile: each path found unreferenced
    keeps its earliest mark still valid, or is marked ``now``; every other mark (its object
    referenced again, or gone) is dropped.
    """
    stamp = int(now.timestamp())

    def merge(body: bytes | None) -> bytes:
        stored = _parse_marks(store, body)
        return dumps({path: _merged_mark(stored.get(path), modified, stamp) for path, modified in unreferenced.items()})

    return _parse_marks(store, compare_and_swap(store, PRUNE_MARKS, merge, cache_control=STATE_CACHE).body)


def forget_marks(store: Store, deleted: Iterable[str]) -> None:
    """Drop the marks of deleted objects, leaving any mark another prune added meanwhile."""
    gone = set(deleted)
    if not gone:
        return

    def drop(body: bytes | None) -> bytes | None:
        if body is None:
            return None
        return dumps({path: mark for path, mark in _parse_marks(store, body).items() if path not in gone})

    compare_and_swap(store, PRUNE_MARKS, drop, cache_control=STATE_CACHE)


def written_since(modified: datetime | None, mark: int) -> bool:
    """Last-Modified not before the mark; S3 keeps whole seconds, so the mark's own second counts."""
    return modified is not None and modified.timestamp() >= mark


def _parse_marks(store: Store, body: bytes | None) -> Marks:
    """The stored marks; an unreadable document restarts every clock, which only delays deletions."""
    if body is None:
        return {}
    try:
        document = json.loads(body)
    except ValueError:
        document = None
    if not isinstance(document, dict):
        logger.warning("%s is unreadable; unreferenced objects are marked afresh", store.key(PRUNE_MARKS))
        return {}
    return {path: int(mark) for path, mark in document.items() if isinstance(mark, int | float)}


def _merged_mark(stored: int | None, modified: datetime | None, now: int) -> int:
    """The earliest valid mark: one the object was written after marked an object that is gone."""
    if stored is None or written_since(modified, stored):
        return now
    return min(stored, now)
