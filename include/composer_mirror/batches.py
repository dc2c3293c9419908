"""Batches: the share of a run one mapped task instance works on, whole state shards each.

Sync and verify both map over batches (never over packages: each mapped task instance costs
seconds on a real executor); a state shard belongs to one batch, so mapped tasks of one run never
write the same state object and each reads each shard once.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from composer_mirror.json_record import JsonRecord
from composer_mirror.store.layout import shard_of

Targets = dict[str, list[str]]
# Per package, per p2 file ("" or "~dev"): the time the changes feed announced a change.
MinTimes = dict[str, dict[str, int]]

# Below this many packages per batch, Airflow's per-task overhead outweighs the parallelism gained.
MIN_BATCH_SIZE = 200


@dataclass(frozen=True)
class Batch(JsonRecord):
    """One mapped task instance's share of a plan: whole state shards, with the UI's label."""

    index: int
    label: str
    packages: Targets
    min_times: MinTimes = field(default_factory=dict)


def plan_batches(
    targets: Targets,
    max_batches: int,
    min_batch_size: int = MIN_BATCH_SIZE,
    min_times: Mapping[str, Mapping[str, int]] | None = None,
) -> list[Batch]:
    """Group targets into at most ``max_batches`` batches, never splitting a state shard.

    A shard belongs to one batch so that mapped tasks of one run never write the same state
    object. Batches are balanced by package count.
    """
    if not targets:
        return []
    min_times = min_times or {}
    by_shard: dict[str, list[str]] = {}
    for name in targets:
        by_shard.setdefault(shard_of(name), []).append(name)
    wanted = max(1, min(max_batches, math.ceil(len(targets) / min_batch_size), len(by_shard)))
    per_batch = len(targets) / wanted
    batches: list[list[str]] = [[]]
    for shard in sorted(by_shard):
        if batches[-1] and len(batches) < wanted and sum(map(len, batches)) >= per_batch * len(batches):
            batches.append([])
        batches[-1].extend(sorted(by_shard[shard]))
    return [
        Batch(
            index,
            f"{names[0]} .. {names[-1]} ({len(names)})",
            {name: targets[name] for name in names},
            {name: dict(min_times[name]) for name in names if name in min_times},
        )
        for index, names in enumerate(batches)
    ]
