"""Planning: which packages a run touches, with which version selectors, in which batches.

The scheduled sync plans from the selection, the mirrored set and the upstream's changes feed
(:func:`plan_sync`); an SBOM run from an SBOM or PURLs (:func:`resolve_request`). Either way the
targets are grouped into batches that never split a state shard (:func:`plan_batches`).
"""

from __future__ import annotations

import fnmatch
import logging
from collections.abc import Iterable, Mapping
from typing import Any

from composer_mirror.context import Context, endpoints_of
from composer_mirror.state import (
    Catalog,
    load_catalog,
    load_shards,
)
from composer_mirror.store.layout import shard_of
from composer_mirror.sync.records import FeedPlan, Plan
from composer_mirror.targets import (
    Targets,
    add_selector,
    expand_patterns,
    parse_selection,
)
from composer_mirror.upstream.changes import read_changes
from composer_mirror.upstream.composer import list_names

logger = logging.getLogger(__name__)


def enumerate_targets(
    ctx: Context, entries: Iterable[str], extra: Targets | None = None, catalog: Mapping[str, list[str]] | None = None
) -> Targets:
    """The selection (names, globs, constraints, PURLs) plus extra targets plus the mirrored set."""
    selection = parse_selection(entries)
    for reason, count in selection.skipped.items():
        logger.info("skipped %d selection entries: %s", count, reason)

    targets = expand_patterns(
        selection, lambda pattern: list_names(ctx.client, ctx.upstream, ctx.settings.upstream_url, pattern)
    )
    for source in (extra or {}, catalog or {}):
        for name, selectors in source.items():
            merged = set(targets.get(name, [])) | set(selectors)
            targets[name] = sorted(merged)
    return dict(sorted(targets.items()))


def plan_sync(ctx: Context) -> Plan:
    """The scheduled sync's plan: incremental from the changes feed when it can be, full otherwise.

    Incremental needs a feed, a cursor from an earlier published run, no resync action, and the
    same selection as the last full run (a new pattern must list the upstream once). Then only
    packages named by update actions (and earlier stale ones) are revalidated.
    """
    catalog = load_catalog(ctx.store)
    selection = list(ctx.settings.packages)
    feed_url = ctx.upstream.changes_url if ctx.upstream else None
    feed: FeedPlan | None = None
    if feed_url:
        changes = read_changes(ctx.client, feed_url, catalog.changes_since)
        feed = FeedPlan(
            since=changes.next_cursor(catalog.changes_since),
            deletes=changes.deletes,
            updates=sorted(set(changes.updates) | set(changes.dev_updates)),
        )
        if not changes.resync and catalog.selection == selection:
            min_times = changes.min_times()
            targets = incremental_targets(selection, catalog, min_times)
            logger.info("incremental run: %d packages named by the changes feed", len(targets))
            return Plan(
                targets,
                "incremental",
                selection,
                feed,
                {name: times for name, times in min_times.items() if name in targets},
            )
    targets = enumerate_targets(ctx, selection, catalog=catalog.packages)
    logger.info("full run: %d packages to revalidate", len(targets))
    return Plan(targets, "full", selection, feed)


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
