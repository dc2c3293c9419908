"""Planning: which packages a run touches, with which version selectors, in which batches.

The scheduled sync plans from the selection, the mirrored set and the upstream's changes feed
(:func:`plan_sync`); an SBOM run from an SBOM or PURLs (:func:`resolve_request`). Either way the
targets are grouped into batches that never split a state shard (:func:`plan_batches`).
"""

from __future__ import annotations

import fnmatch
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from composer_mirror.context import Context, endpoints_of
from composer_mirror.json_record import JsonRecord
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


@dataclass(frozen=True)
class SbomRequest(JsonRecord):
    """What an SBOM run is asked to mirror: the SBOM DAG's params.

    ``sbom`` is an SBOM pasted as text, ``sbom_s3_key`` the key of one in the bucket (read instead),
    ``purls`` composer PURLs; ``with_dependencies`` adds what the named versions require, and a
    ``dry_run`` only logs the plan.
    """

    sbom: str | None = None
    sbom_s3_key: str = ""
    purls: list[str] = field(default_factory=list)
    with_dependencies: bool = True
    dry_run: bool = False

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SbomRequest:
        """The params as the form or the API leaves them: an empty field for none, any value for a flag."""
        return cls(
            sbom=data.get("sbom") or None,
            sbom_s3_key=str(data.get("sbom_s3_key") or "").strip(),
            purls=list(data.get("purls") or []),
            with_dependencies=bool(data.get("with_dependencies", True)),
            dry_run=bool(data.get("dry_run")),
        )


def resolve_request(ctx: Context, params: Mapping[str, Any]) -> Targets:
    """The SBOM DAG's targets from its params: parse, check every version upstream, add dependencies, log the plan.

    Raises TargetError (failing the run before anything is written) for bad input (an SBOM or
    PURL list over the size limit included) or versions the upstream does not have, naming each one.
    """
    from composer_mirror.resolve import describe_plan, load_request, resolve, upstream_fetcher
    from composer_mirror.sbom_upload import read_sbom_object

    request = SbomRequest.from_json(params)
    sbom = read_sbom_object(ctx.store, request.sbom_s3_key) if request.sbom_s3_key else request.sbom
    requested, skipped, formats = load_request(sbom, request.purls)
    logger.info("read %s: %d composer packages requested", "; ".join(formats), len(requested))
    for reason, count in sorted(skipped.items()):
        logger.info("skipped %d components: %s", count, reason)
    resolution = resolve(
        requested,
        upstream_fetcher(ctx.client, endpoints_of(ctx)),
        with_dependencies=request.with_dependencies,
        concurrency=ctx.settings.concurrency,
    )
    resolution.raise_for_missing()
    shards = load_shards(ctx.store, resolution.targets)
    mirrored = {name: shards[shard_of(name)].entry(name).versions.keys() for name in resolution.targets}
    prefix = "[DRY RUN] " if request.dry_run else ""
    for line in describe_plan(resolution, mirrored):
        logger.info("%splan: %s", prefix, line)
    return resolution.targets
