"""The values that cross a task boundary, typed: a plan, a batch, a batch's manifest, a batch's result.

Each stage of :mod:`composer_mirror.sync` takes and returns these; the tasks hand them on as their
JSON (:meth:`to_json` / :meth:`from_json`, inline in XCom or through the bucket, see
:mod:`composer_mirror.handoff`), so every key a later stage reads is defined here, once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

Targets = dict[str, list[str]]
# Per package, per p2 file ("" or "~dev"): the time the changes feed announced a change.
MinTimes = dict[str, dict[str, int]]
Failure = dict[str, Any]


def _fields(cls: type, data: Mapping[str, Any]) -> dict[str, Any]:
    """The keys of ``data`` the dataclass knows (a value written by an older release may lack some)."""
    return {key: data[key] for key in cls.__dataclass_fields__ if key in data}


@dataclass
class FeedPlan:
    """What the upstream's changes feed said: the cursor to save after publishing, deletes, updates."""

    since: int
    deletes: dict[str, int] = field(default_factory=dict)
    updates: list[str] = field(default_factory=list)


@dataclass
class Plan:
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

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Plan:
        values = _fields(cls, data)
        if values.get("feed") is not None:
            values["feed"] = FeedPlan(**values["feed"])
        return cls(**values)


@dataclass
class Batch:
    """One mapped task instance's share of a plan: whole state shards, with the UI's label."""

    index: int
    label: str
    packages: Targets
    min_times: MinTimes = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Batch:
        return cls(**_fields(cls, data))


@dataclass
class Manifest:
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

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Manifest:
        return cls(**_fields(cls, data))


@dataclass
class BatchResult:
    """What fetch_archives published for a batch, for publish_index and the run report."""

    index: int
    published: list[str] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    anomalies: list[dict[str, Any]] = field(default_factory=list)
    withdrawals: list[dict[str, str]] = field(default_factory=list)
    stale: dict[str, int] = field(default_factory=dict)
    stats: dict[str, int] = field(default_factory=dict)
    s3_requests: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> BatchResult:
        return cls(**_fields(cls, data))
