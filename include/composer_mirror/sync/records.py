"""The values that cross a task boundary, typed: a plan, a batch, a batch's manifest, a batch's result.

Each stage of :mod:`composer_mirror.sync` takes and returns these; the tasks hand them on as their
JSON (:meth:`to_json` / :meth:`from_json`, inline in XCom or through the bucket, see
:mod:`composer_mirror.handoff`), so every key a later stage reads is defined here, once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from composer_mirror.batches import MinTimes, Targets
from composer_mirror.json_record import JsonRecord

Failure = dict[str, Any]


@dataclass
class FeedPlan:
    """What the upstream's changes feed said: the cursor to save after publishing, deletes, updates."""

    since: int
    deletes: dict[str, int] = field(default_factory=dict)
    updates: list[str] = field(default_factory=list)


@dataclass
class Plan(JsonRecord):
    """What a run mirrors: packages with selectors; a scheduled sync's also says how it was planned.

    ``mode`` is "full" (the selection plus the mirrored set), "incremental" (what the changes feed
    named) or "targets" (an SBOM run's resolved request). ``selection`` is the sync's selection,
    recorded in the catalog after a full run.
    """

    targets: Targets
    mode: str = "targets"
    selection: list[str] | None = None
    feed: FeedPlan | None = None
    min_times: MinTimes = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Plan:
        plan = super().from_json(data)
        if isinstance(plan.feed, Mapping):
            plan.feed = FeedPlan(**plan.feed)
        return plan


@dataclass
class Manifest(JsonRecord):
    """What sync_metadata found for a batch: the packages that changed upstream (``work``), those
    unchanged and published, failures, and stale copies to retry; plus its request counts."""

    index: int
    label: str
    work: list[dict[str, Any]] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    stale: dict[str, int] = field(default_factory=dict)
    stats: dict[str, int] = field(default_factory=dict)
    s3_requests: dict[str, int] = field(default_factory=dict)


@dataclass
class BatchResult(JsonRecord):
    """What fetch_archives published for a batch, for publish_index and the run report."""

    index: int
    published: list[str] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    anomalies: list[dict[str, Any]] = field(default_factory=list)
    withdrawals: list[dict[str, str]] = field(default_factory=list)
    stale: dict[str, int] = field(default_factory=dict)
    stats: dict[str, int] = field(default_factory=dict)
    s3_requests: dict[str, int] = field(default_factory=dict)
