"""Pruning: delete what the published repository no longer references, once it is older than a grace period.

Three kinds of object become garbage as the upstream moves on: archives (``dists/...``) that no
published p2 file points at, journal markers (``mirror-state/archives/...``) of such archives,
and p2 files of packages that left ``available-packages``. Each is deleted only when

- no published p2 file references it, and no version recorded in any state shard does (a
  pinned version stays restorable, and the sync never re-uploads an archive it has recorded);
- it is older than the grace period, which must exceed the CDN TTL: a client holding a cached
  p2 file may still ask for an archive that file names;
- for a p2 file, its package has no state record either: the sync trusts the state's ETags and
  would never write a p2 file again that was deleted under a package it still mirrors.

Everything that decides is read after the listing, so an object uploaded by a sync during the
prune is either too young or already referenced. The one window left: a sync that reuses an
orphaned archive between our reading of the references and the delete (content-addressed
archives are shared, and a reuse does not refresh the archive's timestamp). Its journal marker
is fresh and protects the archive when read in time; otherwise ``composer_mirror_verify`` with
``repair`` restores it from its recorded source. Deletion order is markers, archives, p2 files:
a marker never outlives its archive, so a later sync never trusts a marker whose archive is gone.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from composer_mirror.archives import ArchiveRecord
from composer_mirror.errors import MirrorError, SettingsError
from composer_mirror.publisher import read_available, read_published
from composer_mirror.settings import Settings
from composer_mirror.state import dumps, load_shard
from composer_mirror.store import STATE_CACHE, S3Store
from composer_mirror.store.layout import (
    ARCHIVE_DIR,
    MARKER_DIR,
    P2_DIR,
    SHARD_DIR,
    archive_id,
    archive_marker_prefix,
    archive_path,
    archive_path_of_url,
    is_archive_path,
    is_marker_path,
    p2_name,
    run_report_path,
    shard_of_path,
)
from composer_mirror.verify import map_bounded

logger = logging.getLogger(__name__)

# Deletion order: a marker never outlives its archive (see the module docstring).
KINDS = ("marker", "archive", "p2")
LABELS = {"marker": "journal markers", "archive": "archives", "p2": "p2 files"}
SHOWN_PER_KIND = 20


@dataclass(frozen=True)
class Orphan:
    """An object nothing references any more, with its size for the report."""

    kind: str
    path: str
    size: int


@dataclass
class PruneResult:
    dry_run: bool
    grace_hours: float
    scanned: dict[str, int] = field(default_factory=dict)
    orphans: list[Orphan] = field(default_factory=list)
    too_young: int = 0
    deleted: int = 0
    failed: list[str] = field(default_factory=list)

    @property
    def orphan_bytes(self) -> int:
        return sum(orphan.size for orphan in self.orphans)

    def counts(self) -> dict[str, int]:
        counted = Counter(orphan.kind for orphan in self.orphans)
        return {kind: counted.get(kind, 0) for kind in KINDS}

    def summary(self) -> dict[str, Any]:
        """Counts only: small enough for XCom however many objects were pruned."""
        return {
            "dry_run": self.dry_run,
            "grace_hours": self.grace_hours,
            "scanned": self.scanned,
            "orphans": self.counts(),
            "orphan_bytes": self.orphan_bytes,
            "too_young": self.too_young,
            "deleted": self.deleted,
            "failed": len(self.failed),
        }

    def to_dict(self) -> dict[str, Any]:
        """Everything, every path included: the report kept in the bucket."""
        return {**asdict(self), **self.summary(), "orphans": [asdict(orphan) for orphan in self.orphans]}


@dataclass
class References:
    """What must stay: archive paths, live marker paths, and the packages the state records."""

    archives: set[str] = field(default_factory=set)
    markers: set[str] = field(default_factory=set)
    packages: set[str] = field(default_factory=set)
    available: set[str] = field(default_factory=set)


def prune(
    store: S3Store, *, grace_hours: float, dry_run: bool = True, workers: int = 10, now: datetime | None = None
) -> PruneResult:
    """Find unreferenced objects older than ``grace_hours`` and delete them (or only report them)."""
    if grace_hours < 0:
        raise SettingsError("composer_mirror_prune_grace_hours must not be negative; it must exceed the CDN TTL")
    cutoff = (now or datetime.now(UTC)) - timedelta(hours=grace_hours)
    result = PruneResult(dry_run, grace_hours)
    listed = {kind: dict(_list_kind(store, kind)) for kind in KINDS}
    result.scanned = {kind: len(paths) for kind, paths in listed.items()}
    refs = read_references(store, workers)
    markers = _marker_orphans(store, listed["marker"], refs, cutoff, workers)
    candidates = [Orphan("archive", p, size) for p, size in listed["archive"].items() if p not in refs.archives]
    candidates += [Orphan("p2", p, size) for p, size in listed["p2"].items() if _p2_is_orphan(p, refs)]
    old, result.too_young = _older_than(store, candidates, cutoff, workers)
    result.too_young += markers.too_young
    result.orphans = sorted(markers.orphans + old, key=lambda o: (KINDS.index(o.kind), o.path))
    if dry_run:
        _log_orphans("[DRY RUN] would delete", result)
        return result
    _log_orphans("deleting", result)
    for kind in KINDS:
        paths = [orphan.path for orphan in result.orphans if orphan.kind == kind]
        failed = store.delete_many(paths) if paths else []
        result.failed.extend(failed)
        result.deleted += len(paths) - len(failed)
    return result


def read_references(store: S3Store, workers: int) -> References:
    """Everything published or recorded; raises rather than guess when any of it is unreadable.

    An empty or unreadable root would make every object look unreferenced, so it stops the prune.
    """
    try:
        available, etag = read_available(store)
    except MirrorError as exc:
        raise MirrorError(f"refusing to prune: {exc}") from exc
    if etag is None or not available:
        raise MirrorError(f"refusing to prune: {store.key('packages.json')} is missing, unreadable or lists nothing")
    refs = References(available=set(available))
    for published in map_bounded(lambda name: read_published(store, name), available, workers):
        for entry in published.values():
            path = archive_path_of_url(str((entry.get("dist") or {}).get("url") or ""))
            if path:
                refs.archives.add(path)
    shards = [shard for info in store.list(SHARD_DIR) if (shard := shard_of_path(info.path))]
    for shard in map_bounded(lambda shard: load_shard(store, shard), shards, workers):
        for name, state in shard.packages.items():
            refs.packages.add(name)
            for normalized, recorded in state.get("versions", {}).items():
                record = ArchiveRecord.from_dict(recorded)
                refs.archives.add(record.path)
                refs.markers.add(archive_marker_prefix(name) + archive_id(normalized, record.reference) + ".json")
    return refs


@dataclass
class _MarkerOrphans:
    orphans: list[Orphan] = field(default_factory=list)
    too_young: int = 0


def _marker_orphans(
    store: S3Store, listed: dict[str, int], refs: References, cutoff: datetime, workers: int
) -> _MarkerOrphans:
    """Markers no state record explains: a young one protects its archive, an old one may go.

    A young marker is a sync at work (it journals an archive right after storing or reusing it,
    before it records it), so its archive joins the references. An old marker goes unless its
    archive is still referenced by a p2 file or the state.
    """
    unexplained = [path for path in listed if path not in refs.markers]
    found = _MarkerOrphans()
    old: list[tuple[str, str | None]] = []
    for path, modified, archive in map_bounded(lambda p: (p, *_read_marker(store, p)), unexplained, workers):
        if modified is None:
            continue  # deleted meanwhile
        if modified > cutoff:
            found.too_young += 1
            if archive:
                refs.archives.add(archive)
        else:
            old.append((path, archive))
    found.orphans = [Orphan("marker", path, listed[path]) for path, archive in old if archive not in refs.archives]
    return found


def _read_marker(store: S3Store, path: str) -> tuple[datetime | None, str | None]:
    """(last modified, archive path) of a journal marker; the archive is None when unreadable."""
    head = store.head(path)
    if head is None:
        return None, None
    try:
        document = store.get_json(path)
        archive = archive_path(str(document["sha256"])) if isinstance(document, dict) else None
    except (MirrorError, KeyError):
        archive = None
    return head.last_modified, archive


def _older_than(store: S3Store, candidates: list[Orphan], cutoff: datetime, workers: int) -> tuple[list[Orphan], int]:
    """The candidates last written before the cutoff (a HEAD each), and how many are younger."""
    heads = map_bounded(lambda orphan: (orphan, store.head(orphan.path)), candidates, workers)
    old = [orphan for orphan, head in heads if head is not None and head.last_modified <= cutoff]
    young = sum(1 for _orphan, head in heads if head is not None and head.last_modified > cutoff)
    return old, young


def _list_kind(store: S3Store, kind: str) -> Iterable[tuple[str, int]]:
    """Objects of one kind whose key the mirror itself would write; anything else is left alone."""
    prefix = {"archive": ARCHIVE_DIR, "marker": MARKER_DIR, "p2": P2_DIR}[kind]
    owned = {"archive": is_archive_path, "marker": is_marker_path, "p2": lambda path: p2_name(path) is not None}
    return ((info.path, info.size) for info in store.list(prefix) if owned[kind](info.path))


def _p2_is_orphan(path: str, refs: References) -> bool:
    name = p2_name(path)
    return name is not None and name not in refs.available and name not in refs.packages


def _log_orphans(action: str, result: PruneResult) -> None:
    counts = result.counts()
    logger.info(
        "%s %d objects (%d bytes): %d archives, %d journal markers, %d p2 files; %d unreferenced but younger "
        "than %s hours kept; scanned %s",
        action,
        len(result.orphans),
        result.orphan_bytes,
        counts["archive"],
        counts["marker"],
        counts["p2"],
        result.too_young,
        result.grace_hours,
        ", ".join(f"{count} {LABELS[kind]}" for kind, count in result.scanned.items()),
    )
    for kind in KINDS:
        of_kind = [orphan for orphan in result.orphans if orphan.kind == kind]
        for orphan in of_kind[:SHOWN_PER_KIND]:
            logger.info("%s %s %s (%d bytes)", action, kind, orphan.path, orphan.size)
        if len(of_kind) > SHOWN_PER_KIND:
            logger.info("%s %d more %s objects", action, len(of_kind) - SHOWN_PER_KIND, kind)


def run_prune(store: S3Store, settings: Settings, *, dry_run: bool, run_id: str) -> PruneResult:
    """The DAG's task: prune with the configured grace period, log, and keep a report in the state."""
    result = prune(store, grace_hours=settings.prune_grace_hours, dry_run=dry_run, workers=settings.concurrency)
    log_summary(result)
    store.put(run_report_path(f"prune-{run_id}"), dumps(result.to_dict()), cache_control=STATE_CACHE)
    return result


def log_summary(result: PruneResult) -> None:
    """The end-of-run line an operator reads: what was deleted, what failed."""
    if result.dry_run:
        logger.info("[DRY RUN] nothing deleted; run with dry_run=false to delete %d objects", len(result.orphans))
        return
    logger.info("deleted %d objects, %d failed", result.deleted, len(result.failed))
    for path in result.failed:
        logger.error("could not delete %s", path)
