"""The sync pipeline, one function per DAG task, on plain objects (no Airflow here).

read_upstream -> enumerate_targets -> plan_batches -> sync_metadata[batch] -> fetch_archives[batch]
-> publish_index. What passes between tasks is small (names, selectors, validators, counts); bytes
go through the bucket.
"""

from __future__ import annotations

import copy
import email.utils
import fnmatch
import logging
import math
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from composer_mirror.archives import ArchiveRecord, load_markers, mirror_archive
from composer_mirror.composer_format import (
    advisories_in,
    is_dev_version,
    parse_p2,
)
from composer_mirror.errors import MirrorError, UpstreamError
from composer_mirror.listing_page import publish_catalogue, publish_status
from composer_mirror.progress import track
from composer_mirror.publisher import migrated_record, publish_root, write_package
from composer_mirror.record import PackageRecord, index_fields, merge_offered
from composer_mirror.report_table import report_table
from composer_mirror.settings import Settings
from composer_mirror.state import (
    Catalog,
    dumps,
    load_catalog,
    load_shards,
    save_package_states,
    shard_windows,
    update_catalog,
)
from composer_mirror.store import STATE_CACHE, S3Store, md5_etag
from composer_mirror.store.layout import archive_id, run_report_path, shard_of, upstream_cache_path
from composer_mirror.targets import (
    Targets,
    add_selector,
    expand_patterns,
    is_pin,
    normalized_of,
    parse_selection,
    select_versions,
    wants_dev,
)
from composer_mirror.upstream import UpstreamClient
from composer_mirror.upstream.advisories import fetch_full_advisories
from composer_mirror.upstream.changes import read_changes
from composer_mirror.upstream.composer import Endpoints, list_url, package_url

logger = logging.getLogger(__name__)

FILE_KINDS = {"": False, "~dev": True}
# Below this many packages per batch, Airflow's per-task overhead outweighs the parallelism gained.
MIN_BATCH_SIZE = 200
# Changed packages planned, fetched and published together: bounds the metadata held in memory
# (50: about 3 MB less than 100 per 1,000 new packages, at the same speed with 20 threads).
CHUNK_PACKAGES = 50
# Packages whose state shards sync_metadata holds at once (whole shards: 256 of them hold the mirror).
# 250 packages of state are about 2.5 MB of objects; 1,000 were too many for a task's 300 MB budget.
STATE_WINDOW = 250


@dataclass
class Context:
    """What every task builds from settings: the store, the upstream client and the upstream's URLs."""

    settings: Settings
    store: S3Store
    client: UpstreamClient
    # The upstream's endpoints, for the tasks that make upstream requests (None for the others).
    upstream: Endpoints | None = None


def endpoints_of(ctx: Context) -> Endpoints:
    """The upstream's endpoints, for a step that makes upstream requests: its task must pass them."""
    if ctx.upstream is None:
        raise MirrorError("this step needs the upstream's endpoints (the read_upstream task's result)")
    return ctx.upstream


# --- targets and batches ----------------------------------------------------------------------
def enumerate_targets(
    ctx: Context, entries: Iterable[str], extra: Targets | None = None, catalog: Mapping[str, list[str]] | None = None
) -> Targets:
    """The selection (names, globs, constraints, PURLs) plus extra targets plus the mirrored set."""
    selection = parse_selection(entries)
    for reason, count in selection.skipped.items():
        logger.info("skipped %d selection entries: %s", count, reason)

    def list_names(pattern: str) -> list[str]:
        document = ctx.client.get_json(list_url(ctx.upstream, ctx.settings.upstream_url, pattern))
        names = document.get("packageNames", []) if isinstance(document, dict) else []
        return [n for n in names if isinstance(n, str)]

    targets = expand_patterns(selection, list_names)
    for source in (extra or {}, catalog or {}):
        for name, selectors in source.items():
            merged = set(targets.get(name, [])) | set(selectors)
            targets[name] = sorted(merged)
    return dict(sorted(targets.items()))


def plan_sync(ctx: Context) -> dict[str, Any]:
    """The scheduled sync's plan: incremental from the changes feed when it can be, full otherwise.

    Incremental needs a feed, a cursor from an earlier published run, no resync action, and the
    same selection as the last full run (a new pattern must list the upstream once). Then only
    packages named by update actions (and earlier stale ones) are revalidated.
    """
    catalog = load_catalog(ctx.store)
    selection = list(ctx.settings.packages)
    feed_url = ctx.upstream.changes_url if ctx.upstream else None
    plan: dict[str, Any] = {"selection": selection, "feed": None}
    if feed_url:
        changes = read_changes(ctx.client, feed_url, catalog.changes_since)
        plan["feed"] = {
            "since": changes.next_cursor(catalog.changes_since),
            "deletes": changes.deletes,
            "updates": sorted(set(changes.updates) | set(changes.dev_updates)),
        }
        if not changes.resync and catalog.selection == selection:
            min_times = changes.min_times()
            plan["targets"] = incremental_targets(selection, catalog, min_times)
            plan["min_times"] = {n: t for n, t in min_times.items() if n in plan["targets"]}
            plan["mode"] = "incremental"
            logger.info("incremental run: %d packages named by the changes feed", len(plan["targets"]))
            return plan
    plan["targets"] = enumerate_targets(ctx, selection, catalog=catalog.packages)
    plan["mode"] = "full"
    logger.info("full run: %d packages to revalidate", len(plan["targets"]))
    return plan


def incremental_targets(selection: list[str], catalog: Catalog, updates: Iterable[str]) -> Targets:
    """Mirrored packages the feed names, new upstream packages the selection's patterns match,
    and packages whose last fetch was stale."""
    entries = parse_selection(selection).entries
    targets: Targets = {}
    for name in sorted(set(updates) | set(catalog.pending)):
        for selector in catalog.packages.get(name, []):
            add_selector(targets, name, selector)
        for entry in entries:
            if fnmatch.fnmatchcase(name, entry.pattern):
                add_selector(targets, name, entry.selector)
    return targets


def plan_batches(
    targets: Targets,
    max_batches: int,
    min_batch_size: int = MIN_BATCH_SIZE,
    min_times: Mapping[str, Mapping[str, int]] | None = None,
) -> list[dict[str, Any]]:
    """Group targets into at most ``max_batches`` batches, never splitting a state shard.

    A shard belongs to one batch so that mapped tasks of one run never write the same state
    object. Batches are balanced by package count.
    """
    if not targets:
        return []
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
        {
            "index": index,
            "label": f"{names[0]} .. {names[-1]} ({len(names)})",
            "packages": {name: targets[name] for name in names},
            "min_times": {name: min_times[name] for name in names if name in (min_times or {})},
        }
        for index, names in enumerate(batches)
    ]


def resolve_request(ctx: Context, params: Mapping[str, Any]) -> Targets:
    """The SBOM DAG's targets: parse, check every version upstream, add dependencies, log the plan.

    Raises TargetError (failing the run before anything is written) for bad input (an SBOM or
    PURL list over the size limit included) or versions the upstream does not have, naming each one.
    """
    from composer_mirror.resolve import describe_plan, load_request, resolve, upstream_fetcher
    from composer_mirror.sbom_upload import read_sbom_object

    sbom = params.get("sbom") or None
    key = str(params.get("sbom_s3_key") or "").strip()
    if key:
        sbom = read_sbom_object(ctx.store, key)
    requested, skipped, formats = load_request(sbom, params.get("purls") or [])
    logger.info("read %s: %d composer packages requested", "; ".join(formats), len(requested))
    for reason, count in sorted(skipped.items()):
        logger.info("skipped %d components: %s", count, reason)
    resolution = resolve(
        requested,
        upstream_fetcher(ctx.client, endpoints_of(ctx)),
        with_dependencies=bool(params.get("with_dependencies", True)),
        concurrency=ctx.settings.concurrency,
    )
    resolution.raise_for_missing()
    shards = load_shards(ctx.store, resolution.targets)
    mirrored = {name: shards[shard_of(name)].packages.get(name, {}) for name in resolution.targets}
    prefix = "[DRY RUN] " if params.get("dry_run") else ""
    for line in describe_plan(resolution, mirrored):
        logger.info("%splan: %s", prefix, line)
    return resolution.targets


# --- metadata ---------------------------------------------------------------------------------
def sync_metadata(ctx: Context, batch: Mapping[str, Any]) -> dict[str, Any]:
    """Revalidate the batch's upstream p2 files; return what changed (validators, not bodies).

    A package is asked conditionally only when its last sync completed with the same selectors:
    otherwise its archives may still be missing and the full metadata is needed again.
    """
    packages: Mapping[str, list[str]] = batch["packages"]
    manifest: dict[str, Any] = {
        "index": batch["index"],
        "label": batch.get("label", ""),
        "work": [],
        "unchanged": [],
        "failures": [],
    }

    min_times: Mapping[str, Mapping[str, int]] = batch.get("min_times", {})
    manifest["stale"] = {}

    Outcome = tuple[str, dict[str, Any], dict[str, Any] | None, str | None]  # name, state, work, error

    def one(name: str, state: dict[str, Any]) -> Outcome:
        try:
            return name, state, _revalidate(ctx, name, packages[name], state, min_times.get(name)), None
        except StaleMetadata as exc:
            logger.warning("%s", exc)
            manifest["stale"][name] = max(min_times[name].values())
            return name, state, None, None
        except MirrorError as exc:
            return name, state, None, str(exc)

    def revalidated(pool: ThreadPoolExecutor) -> Iterator[Outcome]:
        # One window of state shards in memory at a time, whatever the batch size.
        for names in shard_windows(packages, STATE_WINDOW):
            shards = load_shards(ctx.store, names)
            yield from pool.map(one, names, [shards[shard_of(name)].packages.get(name, {}) for name in names])

    with ThreadPoolExecutor(max_workers=ctx.settings.concurrency * 2) as pool:
        for name, state, work, error in track(revalidated(pool), "metadata", len(packages), _metadata_bytes(ctx)):
            if error:
                manifest["failures"].append({"package": name, "stage": "metadata", "error": error})
                logger.error("%s: %s", name, error)
                if state.get("published"):
                    manifest["unchanged"].append(name)
            elif work is None:
                if state.get("published"):
                    manifest["unchanged"].append(name)
            else:
                manifest["work"].append(work)
    logger.info(
        "batch %s: %d packages, %d changed, %d unchanged, %d failed",
        batch["index"],
        len(packages),
        len(manifest["work"]),
        len(manifest["unchanged"]),
        len(manifest["failures"]),
    )
    manifest["stats"] = ctx.client.stats.as_dict()
    manifest["s3_requests"] = ctx.store.request_counts()
    return manifest


def _metadata_bytes(ctx: Context) -> Callable[[], int]:
    return lambda: ctx.client.stats.as_dict().get("metadata_bytes", 0)


def _archive_bytes(ctx: Context) -> Callable[[], int]:
    return lambda: ctx.client.stats.as_dict().get("archive_bytes", 0)


class StaleMetadata(MirrorError):
    """The upstream served a copy older than the change the feed announced (a stale CDN copy)."""


def _revalidate(
    ctx: Context,
    name: str,
    selectors: list[str],
    state: Mapping[str, Any],
    min_times: Mapping[str, int] | None = None,
) -> dict[str, Any] | None:
    """Fetch a package's p2 files (conditionally when its last sync was complete).

    ``min_times`` (file suffix -> time) come from the changes feed: an announced file must be at
    least that new, or it is a stale CDN copy; the package is then retried on the next run instead of synced from it.
    """
    conditional = bool(state.get("complete")) and state.get("selectors") == selectors
    files: dict[str, dict[str, Any]] = {}
    for suffix, dev in FILE_KINDS.items():
        if dev and not wants_dev(selectors):
            continue
        known = state.get("upstream", {}).get(suffix, {})
        url = package_url(endpoints_of(ctx), name, dev)
        fetched = ctx.client.get_metadata(
            url,
            known.get("etag") if conditional else None,
            known.get("last_modified") if conditional else None,
            validate=lambda body: _validate_p2(body, name),
        )
        if fetched.status == 304:
            files[suffix] = {"status": 304, **known}
        elif fetched.status == 404:
            files[suffix] = {"status": 404}
        else:
            cache_etag = md5_etag(fetched.body)
            ctx.store.put_if_changed(
                upstream_cache_path(name, dev),
                fetched.body,
                known_etag=known.get("cache_etag"),
                cache_control=STATE_CACHE,
            )
            files[suffix] = {
                "status": 200,
                "etag": fetched.etag,
                "last_modified": fetched.last_modified,
                "cache_etag": cache_etag,
            }
    for suffix, when in (min_times or {}).items():
        if suffix in files and _older_than(files[suffix].get("last_modified"), when):
            raise StaleMetadata(
                f"{name}{suffix}: upstream copy is older than the change announced at {when}; retry later"
            )
    if all(f["status"] == 304 for f in files.values()):
        return None
    if files[""]["status"] == 404 and not state.get("versions"):
        raise UpstreamError(f"{name} does not exist upstream (404)", status=404)
    return {"name": name, "selectors": selectors, "files": files}


def _older_than(last_modified: str | None, min_time: int) -> bool:
    if not last_modified:
        return False
    try:
        return email.utils.parsedate_to_datetime(last_modified).timestamp() < min_time
    except (TypeError, ValueError):
        return False


def _validate_p2(body: bytes, name: str) -> None:
    try:
        parse_p2(body, name)
    except MirrorError as exc:
        raise ValueError(str(exc)) from exc


# --- archives and p2 files --------------------------------------------------------------------
@dataclass
class PackagePlan:
    """One changed package: the upstream versions chosen, and which archives must be fetched."""

    name: str
    selectors: list[str]
    files: dict[str, dict[str, Any]]
    state: dict[str, Any]
    chosen: list[dict[str, Any]] = field(default_factory=list)
    records: dict[str, ArchiveRecord] = field(default_factory=dict)
    fetch: list[dict[str, Any]] = field(default_factory=list)
    # Tags whose upstream reference changed: the record keeps them as first mirrored.
    rewritten: set[str] = field(default_factory=set)
    # Partial advisories from the upstream p2 file; replaced by full ones before publishing.
    advisories: list[dict[str, Any]] | None = None
    anomalies: list[dict[str, str]] = field(default_factory=list)
    failures: list[dict[str, str]] = field(default_factory=list)


@dataclass
class BatchOutcome:
    """What a batch's chunks add up to: names to publish, state updates, failures and counts."""

    published: list[str]
    failures: list[dict[str, Any]]
    anomalies: list[dict[str, str]] = field(default_factory=list)
    updates: dict[str, dict[str, Any]] = field(default_factory=dict)
    p2_written: int = 0
    archives: int = 0
    packages: int = 0


def fetch_archives(ctx: Context, manifest: dict[str, Any]) -> dict[str, Any]:
    """Fetch the batch's new archives, then write its p2 files, then record the state.

    Packages go through in chunks of whole state shards (archives, then their p2 files, then their
    states), so the metadata and state held in memory are bounded whatever the batch size, and a
    long cold run keeps its progress. Returns the names this batch publishes (changed and
    unchanged) for the root. Takes the manifest's ``work`` out of it (the task's own copy, received
    from the hand-off), so that each finished chunk's items are freed.
    """
    started = time.monotonic()
    work = {item["name"]: item for item in manifest.pop("work")}
    total = len(work)
    outcome = BatchOutcome(published=list(manifest["unchanged"]), failures=list(manifest["failures"]))
    with ThreadPoolExecutor(max_workers=ctx.settings.concurrency * 2) as pool:
        for names in shard_windows(list(work), CHUNK_PACKAGES):
            shards = load_shards(ctx.store, names)
            _mirror_chunk(ctx, pool, [work.pop(name) for name in names], shards, outcome)
            # Each chunk holds whole shards: its states are final, written once, and not kept.
            save_package_states(ctx.store, outcome.updates)
            outcome.updates.clear()
            if total > CHUNK_PACKAGES:
                logger.info("batch %s: %d/%d changed packages done", manifest["index"], outcome.packages, total)
    stats = Counter(manifest.get("stats", {}))
    stats.update(ctx.client.stats.as_dict())
    stats.update({"p2_written": outcome.p2_written, "packages_changed": outcome.packages})
    s3 = Counter(manifest.get("s3_requests", {}))
    s3.update(ctx.store.request_counts())
    logger.info(
        "batch %s: %d archives fetched, %d p2 files written, %d failures in %.1fs",
        manifest["index"],
        outcome.archives,
        outcome.p2_written,
        len(outcome.failures),
        time.monotonic() - started,
    )
    return {
        "index": manifest["index"],
        "stale": manifest.get("stale", {}),
        "published": sorted(outcome.published),
        "failures": outcome.failures,
        "anomalies": outcome.anomalies,
        "stats": dict(stats),
        "s3_requests": dict(s3),
    }


def _mirror_chunk(
    ctx: Context, pool: ThreadPoolExecutor, work: list[dict[str, Any]], shards: Mapping[str, Any], outcome: BatchOutcome
) -> None:
    """Plan, fetch archives for, and publish one chunk of changed packages.

    Planning reads each package's cached upstream metadata (and its journal when versions are new)
    from S3: round trips, so packages are planned side by side like the downloads.
    """

    def plan_one(item: dict[str, Any]) -> tuple[PackagePlan, str | None]:
        plan = PackagePlan(
            item["name"],
            item["selectors"],
            item["files"],
            dict(shards[shard_of(item["name"])].packages.get(item["name"], {})),
        )
        try:
            _plan_package(ctx, plan)
        except MirrorError as exc:
            return plan, str(exc)
        return plan, None

    plans = []
    for plan, error in pool.map(plan_one, work):
        if error is None:
            plans.append(plan)
        else:
            outcome.failures.append({"package": plan.name, "stage": "metadata", "error": error})
    outcome.packages += len(plans)

    _complete_advisories(ctx, plans, outcome.failures)
    downloads = [(plan, entry) for plan in plans for entry in plan.fetch]
    outcome.archives += len(downloads)
    fetched = pool.map(lambda job: (*job, _fetch_one(ctx, *job)), downloads)
    for plan, entry, result in track(fetched, "archives", len(downloads), _archive_bytes(ctx)):
        if isinstance(result, ArchiveRecord):
            plan.records[normalized_of(entry) or ""] = result
        else:
            plan.failures.append(
                {"package": plan.name, "version": entry["version"], "stage": "archive", "error": result}
            )
            logger.error("%s %s: %s", plan.name, entry["version"], result)

    for plan, written in track(pool.map(lambda p: (p, _publish_plan(ctx, p)), plans), "p2 files", len(plans)):
        outcome.failures.extend(plan.failures)
        outcome.anomalies.extend(plan.anomalies)
        if written is None:
            continue
        outcome.p2_written += written
        outcome.updates[plan.name] = plan.state
        if plan.state.get("published"):
            outcome.published.append(plan.name)


def _plan_package(ctx: Context, plan: PackagePlan) -> None:
    entries: list[dict[str, Any]] = []
    for suffix, info in plan.files.items():
        if info["status"] == 404:
            continue
        cached = ctx.store.get(upstream_cache_path(plan.name, FILE_KINDS[suffix]))
        if cached is None:
            raise MirrorError(f"{plan.name}: cached upstream metadata is missing; it will be fetched again")
        entries.extend(parse_p2(cached.body, plan.name))
        if suffix == "":
            plan.advisories = advisories_in(cached.body)
    plan.chosen = select_versions(entries, plan.selectors)
    known = {n: ArchiveRecord.from_dict(r) for n, r in plan.state.get("versions", {}).items()}
    withdrawn = plan.state.get("withdrawn", {})
    markers: dict[str, ArchiveRecord] | None = None
    for entry in plan.chosen:
        normalized = normalized_of(entry) or ""
        if normalized in withdrawn:
            continue  # the mirror withdrew it: never fetched or published again
        dist = entry.get("dist") if isinstance(entry.get("dist"), dict) else {}  # untrusted: any JSON value
        reference = str(dist.get("reference") or "")
        record = known.get(normalized)
        if record and record.reference == reference:
            plan.records[normalized] = record
        elif record and not is_dev_version(entry["version"]):
            plan.rewritten.add(normalized)
            plan.anomalies.append(
                {
                    "package": plan.name,
                    "version": entry["version"],
                    "mirrored_reference": record.reference,
                    "upstream_reference": reference,
                    "kind": "rewritten tag: upstream reference changed",
                }
            )
        elif not isinstance(entry.get("dist"), dict) or not entry["dist"].get("url"):
            plan.failures.append(
                {
                    "package": plan.name,
                    "version": entry["version"],
                    "stage": "archive",
                    "error": "version has no dist archive",
                }
            )
        else:
            if markers is None:
                markers = load_markers(ctx.store, plan.name)
            marker = markers.get(archive_id(normalized, reference))
            if marker is not None:
                plan.records[normalized] = marker
            else:
                plan.fetch.append(entry)


def _complete_advisories(ctx: Context, plans: list[PackagePlan], failures: list[dict[str, Any]]) -> None:
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
        failures.append({"package": ", ".join(wanted[:5]), "stage": "advisories", "error": str(exc)})
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
        if record is None:
            # Mirrored before records existed: start from what it publishes, never from nothing.
            record = migrated_record(ctx.store, plan.name, plan.state.get("versions", {})) or PackageRecord(plan.name)
        return merge_offered(record, offered, plan.advisories)

    try:
        record, files = write_package(ctx.store, plan.name, change, ctx.settings.repository_url)
    except MirrorError as exc:
        # Its state is not saved: the next run publishes it again. The batch's other packages go on.
        plan.failures.append({"package": plan.name, "stage": "publish", "error": str(exc)})
        return None
    state = plan.state
    state["selectors"] = plan.selectors
    state["upstream"] = {
        suffix: {k: v for k, v in info.items() if k != "status"}
        for suffix, info in plan.files.items()
        if info["status"] != 404
    }
    state.update(index_fields(record))
    state["complete"] = not plan.failures
    state.update(_summary_fields(plan))
    state["published"] = files.etags
    return files.written


def _summary_fields(plan: PackagePlan) -> dict[str, Any]:
    """Description and licence of the newest chosen version, for the browsable catalogue."""
    if not plan.chosen:
        return {}
    newest = plan.chosen[0]
    license_ = newest.get("license")
    return {
        "description": str(newest.get("description") or "")[:500],
        "license": [str(x) for x in license_] if isinstance(license_, list) else [],
        "synced_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


# --- the root and the report ------------------------------------------------------------------
def publish_index(
    ctx: Context, results: Iterable[Mapping[str, Any]], plan: Mapping[str, Any], run_id: str
) -> dict[str, Any]:
    """Record the mirrored set, publish the root, then advance the changes-feed cursor; write the report.

    The root keeps every package already published and adds this run's: a run that touched a
    few packages (an SBOM run) never shrinks the index. Only packages deleted upstream longer
    ago than the grace period, and neither pinned nor named in the selection, leave it.

    Order (the write rule's last steps): the mirrored set first (a package joins it only once its
    p2 files exist), then the root, then the cursor and the removal of expired packages from the
    catalog. A crash before the cursor is saved makes the next run read the same feed entries again.
    """
    results = list(results)
    published = {name for result in results for name in result["published"]}
    stale = {name: when for result in results for name, when in result.get("stale", {}).items()}
    # Packages that failed are revalidated by the next run even when the changes feed is quiet.
    failed = {f["package"]: 0 for result in results for f in result["failures"] if f.get("package")}
    feed = plan.get("feed")
    selection = plan.get("selection") or []
    removed: list[str] = []

    def join(catalog: Catalog) -> None:
        joined = {name: selectors for name, selectors in plan["targets"].items() if name in published}
        catalog.packages = catalog.merged_with(joined)
        catalog.pending = {n: t for n, t in catalog.pending.items() if n not in plan["targets"]} | failed | stale
        if plan.get("selection") is not None and plan.get("mode") == "full":
            catalog.selection = list(plan["selection"])
        if feed:
            record_deletions(catalog, feed)
        removed[:] = expire_deletions(copy.deepcopy(catalog), ctx.settings.delete_grace_hours, selection)

    def advance(catalog: Catalog) -> None:
        if feed:
            catalog.changes_since = feed["since"]
        expire_deletions(catalog, ctx.settings.delete_grace_hours, selection)

    catalog = update_catalog(ctx.store, join)
    root = publish_root(
        ctx.store,
        ctx.settings.repository_url,
        published,
        removed=removed,
        advisories=bool(ctx.upstream and ctx.upstream.advisories_url),
        mirrored=catalog.packages,
    )
    update_catalog(ctx.store, advance)
    written, available = root.written, root.available
    logger.info("packages.json %s: %d packages available", "written" if written else "unchanged", len(available))
    report = summarise(results)
    if root.rebuilt_because:
        report["anomalies"].append(
            {"kind": "unreadable packages.json rebuilt from the mirrored set", "detail": root.rebuilt_because}
        )
    report.update(
        run_id=run_id,
        mode=plan.get("mode", "targets"),
        stale=sorted(stale),
        removed=removed,
        finished_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        root_written=written,
        packages_available=len(available),
        repository_url=ctx.settings.repository_url,
    )
    changed = written or bool(report["upstream"].get("p2_written")) or bool(removed)
    publish_catalogue(ctx.store, available, changed=changed)
    publish_status(ctx.store, report)
    if changed or any(report.get(key) for key in ("failures", "anomalies", "stale", "withdrawals")):
        # The history keeps runs that did something; status.json is every run's report.
        ctx.store.put(run_report_path(run_id), dumps(report), cache_control=STATE_CACHE)
    return report


def record_deletions(catalog: Catalog, feed: Mapping[str, Any]) -> None:
    """Remember when mirrored packages were deleted upstream; an update clears the mark."""
    for name in feed.get("updates", []):
        catalog.deleted.pop(name, None)
    for name, when in feed.get("deletes", {}).items():
        if name in catalog.packages:
            catalog.deleted.setdefault(name, int(when))


def expire_deletions(catalog: Catalog, grace_hours: int, selection: list[str]) -> list[str]:
    """Drop packages deleted upstream more than the grace period ago, unless pinned or named.

    A package named in the selection, or pinned to exact versions by an SBOM, stays mirrored
    whatever the upstream does. Returns the names to remove from the root.
    """
    named = {entry.pattern for entry in parse_selection(selection).entries if not entry.is_pattern}
    cutoff = time.time() - grace_hours * 3600
    expired = []
    for name, when in sorted(catalog.deleted.items()):
        if when > cutoff or name in named or any(is_pin(s) for s in catalog.packages.get(name, [])):
            continue
        expired.append(name)
        catalog.packages.pop(name, None)
        del catalog.deleted[name]
    return expired


def summarise(results: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Add up the batches' counters into one run report."""
    results = list(results)
    stats: Counter = Counter()
    s3: Counter = Counter()
    for result in results:
        stats.update(result.get("stats", {}))
        s3.update(result.get("s3_requests", {}))
    return {
        "batches": len(results),
        "packages_published": sum(len(r["published"]) for r in results),
        "failures": [f for r in results for f in r["failures"]],
        "anomalies": [a for r in results for a in r["anomalies"]],
        # Versions taken out of the index on purpose this run (see publisher.withdraw_version).
        "withdrawals": [w for r in results for w in r.get("withdrawals", [])],
        "upstream": dict(stats),
        "s3_requests": dict(s3),
    }


def run_with_context(build: Callable[[], Context], step: Callable[[Context], Any]) -> Any:
    """Build a context, run one step, always close the HTTP session."""
    ctx = build()
    try:
        return step(ctx)
    finally:
        ctx.client.close()


def log_report(report: Mapping[str, Any]) -> None:
    """A summary table in the task log: what an operator reads first."""
    upstream = report.get("upstream", {})
    rows = [
        ("packages available", report.get("packages_available", 0)),
        ("packages published this run", report.get("packages_published", 0)),
        ("packages changed upstream", upstream.get("packages_changed", 0)),
        (
            "metadata 200 / 304 / 404",
            f"{upstream.get('metadata_200', 0)} / {upstream.get('metadata_304', 0)} / "
            f"{upstream.get('metadata_404', 0)}",
        ),
        ("archives fetched", upstream.get("archives_downloaded", 0)),
        ("archive bytes", upstream.get("archive_bytes", 0)),
        ("p2 files written", upstream.get("p2_written", 0)),
        ("retries", upstream.get("retries", 0)),
        ("S3 requests", ", ".join(f"{k} {v}" for k, v in sorted(report.get("s3_requests", {}).items()))),
        ("failures", len(report.get("failures", []))),
        ("anomalies", len(report.get("anomalies", []))),
        ("withdrawals", len(report.get("withdrawals", []))),
    ]
    logger.info("%s", report_table("run report", rows))
    for failure in report.get("failures", []):
        logger.error("failure: %s", failure)
    for anomaly in report.get("anomalies", []):
        logger.warning("supply-chain anomaly: %s", anomaly)
    for withdrawal in report.get("withdrawals", []):
        logger.warning("withdrawn: %s", withdrawal)
