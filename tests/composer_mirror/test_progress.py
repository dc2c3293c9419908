"""Tests for progress lines in task logs, on a scripted clock."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest

from composer_mirror import progress
from composer_mirror.progress import track


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """time.monotonic() as seen by progress: each call advances one second."""
    now = [0.0]

    def monotonic() -> float:
        value = now[0]
        now[0] += 1.0
        return value

    monkeypatch.setattr(progress.time, "monotonic", monotonic)
    return now


def lines(caplog: Any) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "composer_mirror.progress"]


def test_track_yields_every_item_in_order(clock: list[float]) -> None:
    assert list(track(iter("abcde"), "items", 5)) == list("abcde")


def test_track_logs_one_line_at_the_end_with_done_total_and_rate(clock: list[float], caplog: Any) -> None:
    with caplog.at_level(logging.INFO, logger="composer_mirror.progress"):
        assert list(track(range(4), "archives", 4, interval=1000)) == [0, 1, 2, 3]
    # started at 0, one clock read per item (1..4), the final read at 5
    assert lines(caplog) == ["archives: 4/4 (100%) in 5.0s, 0.8/s"]


def test_track_adds_megabytes_when_it_knows_the_bytes(clock: list[float], caplog: Any) -> None:
    with caplog.at_level(logging.INFO, logger="composer_mirror.progress"):
        list(track(range(2), "archives", 2, bytes_done=lambda: 2_500_000, interval=1000))
    assert lines(caplog) == ["archives: 2/2 (100%) in 3.0s, 0.7/s, 2.5 MB"]


def test_track_logs_intermediate_lines_when_the_interval_has_passed(clock: list[float], caplog: Any) -> None:
    with caplog.at_level(logging.INFO, logger="composer_mirror.progress"):
        list(track(range(4), "metadata", 4, interval=2.0))
    assert lines(caplog) == [
        "metadata: 2/4 (50%) in 2.0s, 1.0/s",
        "metadata: 4/4 (100%) in 4.0s, 1.0/s",
        "metadata: 4/4 (100%) in 5.0s, 0.8/s",
    ]


def test_a_tiny_interval_logs_a_line_per_item_on_the_real_clock(caplog: Any) -> None:
    with caplog.at_level(logging.INFO, logger="composer_mirror.progress"):
        list(track(range(3), "p2 files", 3, interval=0.0))
    logged = lines(caplog)
    assert [line.split(" (")[0] for line in logged] == [
        "p2 files: 1/3",
        "p2 files: 2/3",
        "p2 files: 3/3",
        "p2 files: 3/3",
    ]
    assert logged[-1].startswith("p2 files: 3/3 (100%) in ")


def test_nothing_to_do_logs_nothing(clock: list[float], caplog: Any) -> None:
    with caplog.at_level(logging.INFO, logger="composer_mirror.progress"):
        assert list(track([], "archives", 0)) == []
    assert lines(caplog) == []


def test_an_unknown_total_does_not_divide_by_zero(clock: list[float], caplog: Any) -> None:
    with caplog.at_level(logging.INFO, logger="composer_mirror.progress"):
        list(track(range(2), "items", 0, interval=0.5))
    assert lines(caplog)[0] == "items: 1/0 (100%) in 1.0s, 1.0/s"


def test_track_is_lazy_and_logs_only_once_the_items_are_consumed(clock: list[float], caplog: Any) -> None:
    consumed: list[int] = []

    def source() -> Iterator[int]:
        for i in range(3):
            consumed.append(i)
            yield i

    with caplog.at_level(logging.INFO, logger="composer_mirror.progress"):
        tracked = track(source(), "items", 3, interval=1000)
        assert consumed == [] and lines(caplog) == []
        next(tracked)
        assert consumed == [0]
        list(tracked)
    assert len(lines(caplog)) == 1
