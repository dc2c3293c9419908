"""Tests for plan_batches: every target once, within the limit, balanced, and a shard never split."""

from __future__ import annotations

import math
from collections import Counter

import pytest

from composer_mirror.batches import plan_batches
from composer_mirror.store.layout import shard_of


# --- plan_batches -------------------------------------------------------------------------------
def targets_of(count: int) -> dict[str, list[str]]:
    return {f"vendor{i % 7}/pkg{i}": ["*"] for i in range(count)}


def names_in_one_shard(count: int) -> list[str]:
    by_shard: dict[str, list[str]] = {}
    for i in range(5000):
        found = by_shard.setdefault(shard_of(f"acme/pkg{i}"), [])
        found.append(f"acme/pkg{i}")
        if len(found) == count:
            return found
    raise AssertionError("no shard collected enough names")


@pytest.mark.parametrize(
    ("count", "max_batches", "min_batch_size"),
    [(1000, 64, 200), (1000, 3, 200), (5000, 64, 200), (5000, 8, 200), (10, 64, 200), (300, 64, 1), (300, 1, 1)],
)
def test_batches_cover_every_target_once_within_the_limit_and_balanced(
    count: int, max_batches: int, min_batch_size: int
) -> None:
    targets = targets_of(count)
    batches = plan_batches(targets, max_batches, min_batch_size)
    shards = {shard_of(name) for name in targets}
    wanted = min(max_batches, math.ceil(count / min_batch_size), len(shards))
    assert len(batches) == wanted <= max_batches
    names = [name for batch in batches for name in batch.packages]
    assert sorted(names) == sorted(targets)
    largest_shard = max(Counter(shard_of(name) for name in targets).values())
    per_batch = count / wanted
    for batch in batches:
        assert per_batch - largest_shard < len(batch.packages) < per_batch + largest_shard


@pytest.mark.parametrize(("count", "max_batches"), [(1000, 64), (300, 7), (2000, 200)])
def test_a_shard_never_spans_two_batches(count: int, max_batches: int) -> None:
    batches = plan_batches(targets_of(count), max_batches, min_batch_size=1)
    owner: dict[str, int] = {}
    for batch in batches:
        for name in batch.packages:
            assert owner.setdefault(shard_of(name), batch.index) == batch.index, name


def test_packages_of_one_shard_stay_together_even_when_more_batches_are_allowed() -> None:
    names = names_in_one_shard(5)
    batches = plan_batches({name: ["*"] for name in names}, max_batches=10, min_batch_size=1)
    assert len(batches) == 1
    assert sorted(batches[0].packages) == sorted(names)


def test_no_targets_plan_no_batches() -> None:
    assert plan_batches({}, 64) == []


def test_few_targets_stay_in_one_batch() -> None:
    assert len(plan_batches(targets_of(199), 64)) == 1


def test_a_batch_carries_its_selectors_min_times_index_and_label() -> None:
    targets = {"b/b": ["^1.0"], "a/a": ["*", "1.0.0"], "c/c": ["*"]}
    [batch] = plan_batches(targets, 64, min_times={"a/a": {"": 10}, "z/z": {"": 99}})
    assert batch.index == 0
    assert batch.packages == targets
    assert batch.min_times == {"a/a": {"": 10}}
    names = list(batch.packages)
    assert batch.label == f"{names[0]} .. {names[-1]} (3)"


def test_min_times_go_to_the_batch_holding_the_package() -> None:
    targets = targets_of(600)
    min_times = {name: {"": i} for i, name in enumerate(targets) if i % 50 == 0}
    batches = plan_batches(targets, 64, min_batch_size=200, min_times=min_times)
    assert len(batches) == 3
    for batch in batches:
        assert batch.min_times == {n: t for n, t in min_times.items() if n in batch.packages}
        assert batch.label.endswith(f"({len(batch.packages)})")
    assert [b.index for b in batches] == [0, 1, 2]
