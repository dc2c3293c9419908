"""Bounded parallelism for I/O: one helper shared by the modules that walk the whole bucket.

Verify and prune both issue thousands of independent S3 reads; neither should import the other
for it, so the helper lives here on its own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")


def map_bounded(function: Callable[[Any], T], items: Iterable[Any], workers: int) -> list[T]:
    """``map`` on a bounded thread pool: S3 and upstream calls are I/O bound."""
    items = list(items)
    if not items:
        return []
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(items)))) as pool:
        return list(pool.map(function, items))
