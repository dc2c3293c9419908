"""The values that cross a task boundary, typed: a plan, a batch, a batch's manifest and result, the report.

Each stage of :mod:`composer_mirror.sync` takes and returns these; the tasks hand them on as their
JSON (:class:`~composer_mirror.json_record.JsonRecord`, inline in XCom or through the bucket, see
:mod:`composer_mirror.handoff`), so every key a later stage reads is defined here, once. What a run
reports (failures, supply-chain anomalies, withdrawals) is here too: the batches collect it and the
run report adds it up.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, cast

from composer_mirror.batches import MinTimes, Targets
from composer_mirror.json_record import OPTIONAL, JsonRecord
from composer_mirror.state import UpstreamValidators


@dataclass(frozen=True)
class FeedPlan(JsonRecord):
    """What the upstream's changes feed said: the cursor to save after publishing, deletes, updates."""

    since: int
    deletes: dict[str, int] = field(default_factory=dict)
    updates: list[str] = field(default_factory=list)


@dataclass(frozen=True)
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


@dataclass(frozen=True)
class UpstreamFile(JsonRecord):
    """One of a changed package's upstream p2 files as sync_metadata found it: the HTTP status (200,
    304 or 404) and the validators to keep for the next conditional request.

    Its JSON is the status beside the validators, each validator key only when it was given (see
    :class:`~composer_mirror.state.UpstreamValidators`), hence its own ``to_json``/``from_json``.
    """

    status: int
    validators: UpstreamValidators = field(default_factory=UpstreamValidators)

    def to_json(self) -> dict[str, Any]:
        return {"status": self.status, **self.validators}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> UpstreamFile:
        validators = cast(UpstreamValidators, {key: value for key, value in data.items() if key != "status"})
        return cls(int(data["status"]), validators)


@dataclass(frozen=True)
class PackageWork(JsonRecord):
    """A package whose upstream files changed: what the packages stage plans, fetches and publishes."""

    name: str
    selectors: list[str]
    files: dict[str, UpstreamFile]


@dataclass(frozen=True)
class Failure(JsonRecord):
    """A package (or one version of it) a stage could not mirror this run; the next run retries it.

    ``stage`` is "metadata", "archive", "publish" or "advisories" (whose ``package`` names the first
    packages of the request that failed).
    """

    package: str
    version: str | None = field(default=None, metadata=OPTIONAL)
    stage: str = ""
    error: str = ""


@dataclass(frozen=True)
class Anomaly(JsonRecord):
    """Something in the upstream or the bucket that looks wrong, reported rather than mirrored.

    A rewritten tag names the package, the version and both references; an anomaly of the
    repository itself (an unreadable ``packages.json`` rebuilt) has only a ``detail``.
    """

    package: str | None = field(default=None, metadata=OPTIONAL)
    version: str | None = field(default=None, metadata=OPTIONAL)
    mirrored_reference: str | None = field(default=None, metadata=OPTIONAL)
    upstream_reference: str | None = field(default=None, metadata=OPTIONAL)
    kind: str = ""
    detail: str | None = field(default=None, metadata=OPTIONAL)


@dataclass(frozen=True)
class WithdrawalNotice(JsonRecord):
    """A version taken out of the index on purpose (see :func:`composer_mirror.publisher.withdraw_version`).

    ``left_index``: it was the package's last version, so the package left the root.
    """

    package: str
    version: str
    reason: str
    detail: str
    by: str
    at: str
    left_index: bool


@dataclass(frozen=True)
class Manifest(JsonRecord):
    """What sync_metadata found for a batch: the packages that changed upstream (``work``), those
    unchanged and published, failures, and stale copies to retry; plus its request counts."""

    index: int
    label: str
    work: list[PackageWork] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    stale: dict[str, int] = field(default_factory=dict)
    stats: dict[str, int] = field(default_factory=dict)
    s3_requests: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class BatchResult(JsonRecord):
    """What fetch_archives published for a batch, for publish_index and the run report."""

    index: int
    published: list[str] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    anomalies: list[Anomaly] = field(default_factory=list)
    withdrawals: list[WithdrawalNotice] = field(default_factory=list)
    stale: dict[str, int] = field(default_factory=dict)
    stats: dict[str, int] = field(default_factory=dict)
    s3_requests: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class BatchTotals(JsonRecord):
    """The batches' results added up (:func:`composer_mirror.sync.publish.summarise`)."""

    batches: int = 0
    packages_published: int = 0
    failures: list[Failure] = field(default_factory=list)
    anomalies: list[Anomaly] = field(default_factory=list)
    # Versions taken out of the index on purpose this run (see publisher.withdraw_version).
    withdrawals: list[WithdrawalNotice] = field(default_factory=list)
    # The upstream client's counters (metadata_200, archive_bytes, ...) and the stages' (p2_written, ...).
    upstream: dict[str, int] = field(default_factory=dict)
    s3_requests: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class RunReport(BatchTotals):
    """A sync run's report: the batches' totals, then what publishing did.

    What publish_index returns, the report task logs, ``status.json`` shows and
    ``mirror-state/runs/<run id>.json`` keeps. ``stale`` are the packages left pending for a copy
    older than the feed's change, ``removed`` those deleted upstream that left the root.
    """

    run_id: str = ""
    mode: str = ""
    stale: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    finished_at: str = ""
    root_written: bool = False
    packages_available: int = 0
    repository_url: str = ""
