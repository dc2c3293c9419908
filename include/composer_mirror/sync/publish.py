"""The publish stage: the mirrored set, the root, then the changes-feed cursor; and the run report."""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import fields, replace
from typing import Any

from composer_mirror import run_report
from composer_mirror.context import Context
from composer_mirror.listing_page import STATUS_TIME_FORMAT, publish_listing, publish_status
from composer_mirror.publisher import publish_root
from composer_mirror.state import Catalog, update_catalog
from composer_mirror.sync.records import Anomaly, BatchResult, BatchTotals, FeedPlan, Plan, RunReport
from composer_mirror.targets import (
    is_pin,
    parse_selection,
)

logger = logging.getLogger(__name__)


def publish_index(ctx: Context, results: Iterable[BatchResult], plan: Plan, run_id: str) -> RunReport:
    """Record the mirrored set, publish the root, then advance the changes-feed cursor; write the report.

    The root keeps every package already published and adds this run's: a run that touched a
    few packages (an SBOM run) never shrinks the index. Only packages deleted upstream longer
    ago than the grace period, and neither pinned nor named in the sync's selection, leave it. That
    selection is the one the catalog records (set by the sync's full runs), whichever DAG publishes:
    an SBOM run has no selection of its own, and must not expire what the sync names.

    Order (the write rule's last steps): the mirrored set first (a package joins it only once its
    p2 files exist), then the root, then the cursor and the removal of expired packages from the
    catalog. A crash before the cursor is saved makes the next run read the same feed entries again.
    """
    results = list(results)
    published = {name for result in results for name in result.published}
    stale = {name: when for result in results for name, when in result.stale.items()}
    # Packages that failed are revalidated by the next run even when the changes feed is quiet.
    failed = {f.package: 0 for result in results for f in result.failures if f.package}
    feed = plan.feed
    removed: list[str] = []

    def join(catalog: Catalog) -> Catalog:
        joined = {name: selectors for name, selectors in plan.targets.items() if name in published}
        catalog = replace(
            catalog,
            packages=catalog.merged_with(joined),
            pending={n: t for n, t in catalog.pending.items() if n not in plan.targets} | failed | stale,
            selection=list(plan.selection) if plan.selection is not None and plan.mode == "full" else catalog.selection,
        )
        if feed:
            catalog = record_deletions(catalog, feed)
        removed[:] = expire_deletions(catalog, ctx.settings.delete_grace_hours, catalog.selection or [])[1]
        return catalog

    def advance(catalog: Catalog) -> Catalog:
        if feed:
            catalog = replace(catalog, changes_since=feed.since)
        return expire_deletions(catalog, ctx.settings.delete_grace_hours, catalog.selection or [])[0]

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
    totals = summarise(results)
    if root.rebuilt_because:
        rebuilt = Anomaly(kind="unreadable packages.json rebuilt from the mirrored set", detail=root.rebuilt_because)
        totals = replace(totals, anomalies=[*totals.anomalies, rebuilt])
    report = RunReport(
        **{total.name: getattr(totals, total.name) for total in fields(BatchTotals)},
        run_id=run_id,
        mode=plan.mode,
        stale=sorted(stale),
        removed=removed,
        finished_at=time.strftime(STATUS_TIME_FORMAT, time.gmtime()),
        root_written=written,
        packages_available=len(available),
        repository_url=ctx.settings.repository_url,
    )
    changed = written or bool(report.upstream.get("p2_written")) or bool(removed)
    publish_listing(ctx.store, available, changed=changed)
    document = report.to_json()
    publish_status(ctx.store, document)
    if changed or report.failures or report.anomalies or report.stale or report.withdrawals:
        # The history keeps runs that did something; status.json is every run's report.
        run_report.keep_report(ctx.store, run_id, document)
    return report


def record_deletions(catalog: Catalog, feed: FeedPlan) -> Catalog:
    """Remember when mirrored packages were deleted upstream; an update clears the mark."""
    updated = set(feed.updates)
    deleted = {name: when for name, when in catalog.deleted.items() if name not in updated}
    for name, when in feed.deletes.items():
        if name in catalog.packages:
            deleted.setdefault(name, int(when))
    return replace(catalog, deleted=deleted)


def expire_deletions(catalog: Catalog, grace_hours: int, selection: list[str]) -> tuple[Catalog, list[str]]:
    """Drop packages deleted upstream more than the grace period ago, unless pinned or named.

    A package named in the selection, or pinned to exact versions by an SBOM, stays mirrored
    whatever the upstream does. Returns the catalog without them, and their names (to remove from the root).
    """
    named = {entry.pattern for entry in parse_selection(selection).entries if not entry.is_pattern}
    cutoff = time.time() - grace_hours * 3600
    expired = [
        name
        for name, when in sorted(catalog.deleted.items())
        if not (when > cutoff or name in named or any(is_pin(s) for s in catalog.packages.get(name, [])))
    ]
    if not expired:
        return catalog, expired
    packages = {name: selectors for name, selectors in catalog.packages.items() if name not in expired}
    deleted = {name: when for name, when in catalog.deleted.items() if name not in expired}
    return replace(catalog, packages=packages, deleted=deleted), expired


def summarise(results: Iterable[BatchResult]) -> BatchTotals:
    """Add up the batches' counters."""
    results = list(results)
    stats: Counter[str] = Counter()
    s3: Counter[str] = Counter()
    for result in results:
        stats.update(result.stats)
        s3.update(result.s3_requests)
    return BatchTotals(
        batches=len(results),
        packages_published=sum(len(r.published) for r in results),
        failures=[f for r in results for f in r.failures],
        anomalies=[a for r in results for a in r.anomalies],
        withdrawals=[w for r in results for w in r.withdrawals],
        upstream=dict(stats),
        s3_requests=dict(s3),
    )


def log_report(report: RunReport | Mapping[str, Any]) -> None:
    """A summary table in the task log: what an operator reads first.

    The report task passes the report as it received it, its JSON: that reads as the record.
    """
    if not isinstance(report, RunReport):
        report = RunReport.from_json(report)
    upstream = report.upstream
    rows = [
        ("packages available", report.packages_available),
        ("packages published this run", report.packages_published),
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
        ("S3 requests", ", ".join(f"{k} {v}" for k, v in sorted(report.s3_requests.items()))),
        ("failures", len(report.failures)),
        ("anomalies", len(report.anomalies)),
        ("withdrawals", len(report.withdrawals)),
    ]
    # Each finding as its JSON, the form status.json and the kept report show it in.
    run_report.log_report(
        logger,
        run_report.Findings.each(logging.ERROR, "failure: %s", [f.to_json() for f in report.failures]),
        run_report.Findings.each(logging.WARNING, "supply-chain anomaly: %s", [a.to_json() for a in report.anomalies]),
        run_report.Findings.each(logging.WARNING, "withdrawn: %s", [w.to_json() for w in report.withdrawals]),
        title="run report",
        rows=rows,
    )
