"""Bounded parallelism for I/O: the one module that owns the mirror's thread pools.

Verify and prune issue thousands of independent S3 reads, the sync stages as many upstream
requests and S3 writes, the state module reads and writes its shards side by side; none should
import another for it, and every pool is bounded, so the helpers live here on their own (and a
test that must run every stage serially replaces :class:`ThreadPoolExecutor` here alone).

- :func:`map_bounded`: one ``map`` of a list, on a pool of at most ``workers`` threads.
- :func:`bounded_pool`: one pool of at most ``workers`` threads shared by several maps in turn (a
  stage working through its chunks), whose :meth:`BoundedPool.imap` streams the results in order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import TypeVar

A = TypeVar("A")
T = TypeVar("T")


class BoundedPool:
    """A thread pool of at most ``workers`` threads; see :func:`bounded_pool`."""

    def __init__(self, executor: ThreadPoolExecutor) -> None:
        self._executor = executor

    def imap(self, function: Callable[[A], T], items: Iterable[A]) -> Iterator[T]:
        """``function`` over every item, all submitted at once; the results in the items' order.

        Each result is yielded as soon as it and those before it are done, so a caller can consume
        (and free) them while later ones run. The first exception raised, in the items' order, is
        raised when its result is reached.
        """
        return self._executor.map(function, items)

    def map(self, function: Callable[[A], T], items: Iterable[A]) -> list[T]:
        """:meth:`imap`, collected into a list."""
        return list(self.imap(function, items))


@contextmanager
def bounded_pool(workers: int) -> Iterator[BoundedPool]:
    """A pool of at most ``max(1, workers)`` threads, shut down (after its work ends) on leaving.

    Threads start only as work arrives, so a map of fewer items than ``workers`` starts no more
    threads than it has items.
    """
    with ThreadPoolExecutor(max_workers=max(1, workers)) as executor:
        yield BoundedPool(executor)


def map_bounded(function: Callable[[A], T], items: Iterable[A], workers: int) -> list[T]:
    """``map`` on a bounded thread pool: S3 and upstream calls are I/O bound."""
    items = list(items)
    if not items:
        return []
    with bounded_pool(min(workers, len(items))) as pool:
        return pool.map(function, items)
