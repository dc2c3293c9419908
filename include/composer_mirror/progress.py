"""Progress lines for task logs: done/total, rate and bytes, at most every few seconds."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

logger = logging.getLogger(__name__)

T = TypeVar("T")
INTERVAL = 5.0


def track(
    items: Iterable[T], what: str, total: int, bytes_done: Callable[[], int] | None = None, interval: float = INTERVAL
) -> Iterator[T]:
    """Yield the items, logging progress while a long batch runs and a last line at the end."""
    started = last = time.monotonic()
    done = 0
    for item in items:
        yield item
        done += 1
        now = time.monotonic()
        if now - last >= interval:
            last = now
            _log(what, done, total, now - started, bytes_done)
    if total:
        _log(what, done, total, time.monotonic() - started, bytes_done)


def _log(what: str, done: int, total: int, elapsed: float, bytes_done: Callable[[], int] | None) -> None:
    rate = done / elapsed if elapsed > 0 else 0.0
    extra = f", {bytes_done() / 1e6:.1f} MB" if bytes_done else ""
    percent = 100 * done / max(total, 1)
    logger.info("%s: %d/%d (%.0f%%) in %.1fs, %.1f/s%s", what, done, total, percent, elapsed, rate, extra)
