"""composer_mirror.parallel: the bounds and the ordering every stage relies on."""

from __future__ import annotations

import threading
import time

import pytest

from composer_mirror.parallel import bounded_pool, map_bounded


class Gauge:
    """Counts the calls running at once, and the threads they ran on."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.running = 0
        self.peak = 0
        self.threads: set[int] = set()

    def __call__(self, item: int) -> int:
        with self.lock:
            self.running += 1
            self.peak = max(self.peak, self.running)
            self.threads.add(threading.get_ident())
        time.sleep(0.01 * (item % 3))  # finish out of order
        with self.lock:
            self.running -= 1
        return item * item


def test_map_bounded_keeps_the_order_and_the_bound() -> None:
    gauge = Gauge()
    assert map_bounded(gauge, range(40), workers=4) == [i * i for i in range(40)]
    assert 1 < gauge.peak <= 4


def test_map_bounded_starts_no_more_threads_than_items_nor_fewer_than_one() -> None:
    gauge = Gauge()
    assert map_bounded(gauge, [1, 2], workers=50) == [1, 4]
    assert len(gauge.threads) <= 2
    assert map_bounded(gauge, [3], workers=0) == [9]
    assert map_bounded(gauge, [], workers=4) == []


def test_a_shared_pool_streams_each_map_in_order_under_one_bound() -> None:
    gauge = Gauge()
    with bounded_pool(3) as pool:
        first = pool.imap(gauge, range(12))
        assert next(first) == 0
        assert list(first) == [i * i for i in range(1, 12)]
        assert pool.map(gauge, [5, 4]) == [25, 16]
    assert 1 < gauge.peak <= 3
    assert len(gauge.threads) <= 3


def test_the_first_failure_in_order_reaches_the_caller() -> None:
    def fail_on_odd(item: int) -> int:
        if item % 2:
            raise ValueError(f"odd {item}")
        return item

    with bounded_pool(4) as pool:
        results = pool.imap(fail_on_odd, [0, 2, 3, 5])
        assert [next(results), next(results)] == [0, 2]
        with pytest.raises(ValueError, match="odd 3"):
            next(results)
