"""The packages stage (the fetch_archives task): the write rule for every changed package.

For each changed package: plan which versions to mirror, fetch the archives it lacks, merge the
versions into the package's record and derive its p2 files (:mod:`composer_mirror.publisher`), then
save the state shards. Archives first, then records and p2 files, then state, chunk by chunk.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from composer_mirror import deletion
from composer_mirror.archives import ArchiveRecord, load_markers, mirror_archive
from composer_mirror.composer_format import (
    advisories_in,
    is_dev_version,
    parse_p2,
)
from composer_mirror.context import Context, endpoints_of
from composer_mirror.errors import MirrorError
from composer_mirror.parallel import BoundedPool, bounded_pool
from composer_mirror.progress import track
from composer_mirror.publisher import migrated_record, write_package
from composer_mirror.record import PackageRecord, indexed, merge_offered
from composer_mirror.state import (
    PackageState,
    Shard,
    UpstreamValidators,
    is_live,
    load_shards,
    save_package_states,
    shard_windows,
)
from composer_mirror.store.layout import archive_id, shard_of, upstream_cache_path
from composer_mirror.sync.records import Anomaly, BatchResult, Failure, Manifest, PackageWork, UpstreamFile
from composer_mirror.targets import (
    normalized_of,
    select_versions,
)
from composer_mirror.upstream.advisories import fetch_full_advisories

logger = logging.getLogger(__name__)


# Changed packages planned, fetched and published together: bounds the metadata held in memory
# (50: about 3 MB less than 100 per 1,000 new packages, at the same speed with 20 threads).
CHUNK_PACKAGES = 50


def _archive_bytes(ctx: Context) -> Callable[[], int]:
    return lambda: ctx.client.stats.as_dict().get("archive_bytes", 0)


@dataclass
class PackagePlan:
    """One changed package: the upstream versions chosen, and which archives must be fetched."""

    name: str
    selectors: list[str]
    files: dict[str, UpstreamFile]
    # The package's shard entry: as read while planning, as it is to be saved once published.
    state: PackageState
    chosen: list[dict[str, Any]] = field(default_factory=list)
    records: dict[str, ArchiveRecord] = field(default_factory=dict)
    fetch: list[dict[str, Any]] = field(default_factory=list)
    # Tags whose upstream reference changed: the record keeps them as first mirrored.
    rewritten: set[str] = field(default_factory=set)
    # Partial advisories from the upstream p2 file; replaced by full ones before publishing.
    advisories: list[dict[str, Any]] | None = None
    anomalies: list[Anomaly] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)


@dataclass
class BatchOutcome:
    """What a batch's chunks add up to: names to publish, state updates, failures and counts."""

    published: list[str]
    failures: list[Failure]
    anomalies: list[Anomaly] = field(default_factory=list)
    updates: dict[str, PackageState] = field(default_factory=dict)
    p2_written: int = 0
    archives: int = 0
    packages: int = 0


def fetch_archives(ctx: Context, manifest: Manifest) -> BatchResult:
    """Fetch the batch's new archives, then write its p2 files, then record the state.

    Packages go through in chunks of whole state shards (archives, then their p2 files, then their
    states), so the metadata and state held in memory are bounded whatever the batch size, and a
    long cold run keeps its progress. Returns the names this batch publishes (changed and
    unchanged) for the root. Takes the manifest's ``work`` out of it (the task's own copy, received
    from the hand-off), so that each finished chunk's items are freed.
    """
    started = time.monotonic()
    work = {item.name: item for item in manifest.work}
    manifest.work.clear()
    total = len(work)
    outcome = BatchOutcome(published=list(manifest.unchanged), failures=list(manifest.failures))
    with bounded_pool(ctx.settings.concurrency * 2) as pool:
        for names in shard_windows(list(work), CHUNK_PACKAGES):
            shards = load_shards(ctx.store, names)
            _mirror_chunk(ctx, pool, [work.pop(name) for name in names], shards, outcome)
            # Each chunk holds whole shards: its states are final, written once, and not kept.
            save_package_states(ctx.store, outcome.updates)
            outcome.updates.clear()
            if total > CHUNK_PACKAGES:
                logger.info("batch %s: %d/%d changed packages done", manifest.index, outcome.packages, total)
    stats = Counter(manifest.stats)
    stats.update(ctx.client.stats.as_dict())
    stats.update({"p2_written": outcome.p2_written, "packages_changed": outcome.packages})
    s3 = Counter(manifest.s3_requests)
    s3.update(ctx.store.request_counts())
    logger.info(
        "batch %s: %d archives fetched, %d p2 files written, %d failures in %.1fs",
        manifest.index,
        outcome.archives,
        outcome.p2_written,
        len(outcome.failures),
        time.monotonic() - started,
    )
    return BatchResult(
        manifest.index,
        published=sorted(outcome.published),
        failures=outcome.failures,
        anomalies=outcome.anomalies,
        stale=manifest.stale,
        stats=dict(stats),
        s3_requests=dict(s3),
    )


def _mirror_chunk(
    ctx: Context, pool: BoundedPool, work: list[PackageWork], shards: Mapping[str, Shard], outcome: BatchOutcome
) -> None:
    """Plan, fetch archives for, and publish one chunk of changed packages.

    Planning reads each package's cached upstream metadata (and its journal when versions are new)
    from S3: round trips, so packages are planned side by side like the downloads.
    """

    def plan_one(item: PackageWork) -> tuple[PackagePlan, str | None]:
        plan = PackagePlan(item.name, item.selectors, dict(item.files), shards[shard_of(item.name)].entry(item.name))
        try:
            _plan_package(ctx, plan)
        except MirrorError as exc:
            return plan, str(exc)
        return plan, None

    plans = []
    for plan, error in pool.imap(plan_one, work):
        if error is None:
            plans.append(plan)
        else:
            outcome.failures.append(Failure(plan.name, stage="metadata", error=error))
    outcome.packages += len(plans)

    _complete_advisories(ctx, plans, outcome.failures)
    downloads = [(plan, entry) for plan in plans for entry in plan.fetch]
    outcome.archives += len(downloads)
    fetched = pool.imap(lambda job: (*job, _fetch_one(ctx, *job)), downloads)
    for plan, entry, result in track(fetched, "archives", len(downloads), _archive_bytes(ctx)):
        if isinstance(result, ArchiveRecord):
            plan.records[normalized_of(entry) or ""] = result
        else:
            plan.failures.append(Failure(plan.name, entry["version"], "archive", result))
            logger.error("%s %s: %s", plan.name, entry["version"], result)

    for plan, written in track(pool.imap(lambda p: (p, _publish_plan(ctx, p)), plans), "p2 files", len(plans)):
        outcome.failures.extend(plan.failures)
        outcome.anomalies.extend(plan.anomalies)
        if written is None:
            continue
        outcome.p2_written += written
        outcome.updates[plan.name] = plan.state
        if is_live(plan.state):
            outcome.published.append(plan.name)


def _plan_package(ctx: Context, plan: PackagePlan) -> None:
    entries: list[dict[str, Any]] = []
    for suffix, info in plan.files.items():
        if info.status == 404:
            continue
        cached = ctx.store.get(upstream_cache_path(plan.name, dev=bool(suffix)))
        if cached is None:
            raise MirrorError(f"{plan.name}: cached upstream metadata is missing; it will be fetched again")
        if cached.etag != info.validators.get("cache_etag"):
            # Another run cached its own copy after this one fetched (the cache is written without a
            # precondition: any copy of the package's file will do to plan from). Plan from the copy
            # read, but save no validators of the one fetched: they would make the next run's
            # conditional request answer 304 for a body whose versions this run never saw.
            logger.info("%s%s: the cached upstream copy is another run's; fetched whole next run", plan.name, suffix)
            plan.files[suffix] = UpstreamFile(200, UpstreamValidators(cache_etag=cached.etag))
        entries.extend(parse_p2(cached.body, plan.name))
        if suffix == "":
            plan.advisories = advisories_in(cached.body)
    plan.chosen = select_versions(entries, plan.selectors)
    known = plan.state.versions
    withdrawn = plan.state.withdrawn
    markers: dict[str, ArchiveRecord] | None = None
    for entry in plan.chosen:
        normalized = normalized_of(entry) or ""
        if normalized in withdrawn:
            continue  # the mirror withdrew it: never fetched or published again
        raw = entry.get("dist")
        dist: Mapping[str, Any] = raw if isinstance(raw, dict) else {}  # untrusted: any JSON value
        reference = str(dist.get("reference") or "")
        record = known.get(normalized)
        if record and record.reference == reference:
            plan.records[normalized] = record
        elif record and not is_dev_version(entry["version"]):
            plan.rewritten.add(normalized)
            plan.anomalies.append(
                Anomaly(
                    package=plan.name,
                    version=entry["version"],
                    mirrored_reference=record.reference,
                    upstream_reference=reference,
                    kind="rewritten tag: upstream reference changed",
                )
            )
        elif not isinstance(entry.get("dist"), dict) or not entry["dist"].get("url"):
            plan.failures.append(Failure(plan.name, entry["version"], "archive", "version has no dist archive"))
        else:
            if markers is None:
                markers = load_markers(ctx.store, plan.name)
            marker = markers.get(archive_id(normalized, reference))
            if marker is not None and deletion.claim(ctx.store, marker.path):
                plan.records[normalized] = marker  # an archive stored by a run that died before recording it
            else:
                plan.fetch.append(entry)


def _complete_advisories(ctx: Context, plans: list[PackagePlan], failures: list[Failure]) -> None:
    """Swap the partial advisories of the batch's packages for full ones from the upstream's API.

    Without an advisories API the key is left out (an empty list would claim "no advisories").
    """
    api_url = endpoints_of(ctx).advisories_url
    if not api_url:
        for plan in plans:
            plan.advisories = None
        return
    wanted = [plan.name for plan in plans if plan.advisories]
    try:
        full = fetch_full_advisories(ctx.client, api_url, wanted) if wanted else {}
    except MirrorError as exc:
        failures.append(Failure(", ".join(wanted[:5]), stage="advisories", error=str(exc)))
        full = {}
    for plan in plans:
        if plan.advisories:
            plan.advisories = full.get(plan.name)
        else:
            plan.advisories = []


def _fetch_one(ctx: Context, plan: PackagePlan, entry: dict[str, Any]) -> ArchiveRecord | str:
    try:
        return mirror_archive(
            ctx.store,
            ctx.client,
            name=plan.name,
            version=entry["version"],
            normalized=normalized_of(entry) or "",
            dist=entry["dist"],
            max_bytes=ctx.settings.max_archive_bytes,
        )
    except MirrorError as exc:
        return str(exc)


def _publish_plan(ctx: Context, plan: PackagePlan) -> int | None:
    """Merge the package's mirrored versions into its record, then write its p2 files (the write rule).

    Returns the number of p2 files written, None when nothing could be published.
    """
    offered = [
        (entry, plan.records[normalized])
        for entry in plan.chosen
        if (normalized := normalized_of(entry) or "") in plan.records and normalized not in plan.rewritten
    ]

    def change(record: PackageRecord | None) -> PackageRecord:
        archives = plan.state.versions
        if record is None and archives:
            # Mirrored before records existed: start from what it publishes, never from nothing.
            record = migrated_record(ctx.store, plan.name, archives)
        return merge_offered(record or PackageRecord(plan.name), offered, plan.advisories)

    try:
        record, files = write_package(ctx.store, plan.name, change, ctx.settings.repository_url)
    except MirrorError as exc:
        # Its state is not saved: the next run publishes it again. The batch's other packages go on.
        plan.failures.append(Failure(plan.name, stage="publish", error=str(exc)))
        return None
    upstream = {suffix: info.validators for suffix, info in plan.files.items() if info.status != 404}
    state = indexed(replace(plan.state, selectors=plan.selectors, upstream=upstream), record)
    plan.state = replace(_with_summary(plan, state), complete=not plan.failures, published=files.etags)
    return files.written


def _with_summary(plan: PackagePlan, state: PackageState) -> PackageState:
    """The state with the description and licence of the newest chosen version, for the listing page."""
    if not plan.chosen:
        return state
    newest = plan.chosen[0]
    license_ = newest.get("license")
    return replace(
        state,
        description=str(newest.get("description") or "")[:500],
        license=[str(x) for x in license_] if isinstance(license_, list) else [],
        synced_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    )
