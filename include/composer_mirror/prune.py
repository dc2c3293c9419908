"""Pruning: mark what the published repository no longer references, sweep it a grace period later.

Three kinds of object become garbage as the upstream moves on: archives (``dists/...``) that no
published p2 file and no state record names, journal markers (``mirror-state/archives/...``) of
such archives, and p2 files of packages that left both ``available-packages`` and the state.

**Mark, then sweep.** Each prune lists the objects, reads what references them, and records in
``mirror-state/prune/marks.json`` when it first found each one unreferenced (``{path: epoch
seconds}``). An object is deleted once its mark is older than the grace period, and only if it
is still unreferenced then. The grace period thus counts from when an object stopped being
referenced, not from its upload: a moved branch's previous archive stays as long as a p2 file
cached by the CDN (max-age 300) may still name it, so the grace period must exceed that TTL. A
mark is dropped whenever its object is found referenced again, and restarts when the object was
written after it (Last-Modified not earlier than the mark, to the second S3 keeps): a p2 file a
sync rewrote, a journal marker a sync rewrote, is not the object that was marked. The marks are
changed only through :func:`~composer_mirror.store.compare_and_swap`, as a merge, since two
prunes may overlap: the earliest valid mark of each path found unreferenced is kept and every
other mark dropped (dropping a mark only ever delays a deletion).

**Dry runs record marks too.** A mark deletes nothing, and the scheduled prune is dry by default:
if dry runs did not mark, no clock would start until someone ran a real prune, and that run
would then delete nothing for a whole grace period.

**Never deleted:** anything a version recorded in a state shard refers to, withdrawn versions
included (a pinned version stays restorable, the sync never re-uploads an archive it recorded,
a withdrawn version's archive is kept for forensics); a p2 file of a package the state records
(the sync trusts the state's ETags and would never write again a p2 file deleted under a package
it still mirrors); an archive while a journal marker naming it is kept. A sync journals an
archive right after storing or reusing it and before recording it, so a marker prune finds
unexplained by the state is marked in its turn, and holds its archive until it is due too.

**The sweep** checks each due object again immediately before deleting it: a HEAD (gone
already, or written since its mark: kept) and a fresh read of the root and every state shard (a
p2 file whose package is back in either, an archive or a marker a state record names: kept).
Deletion order is markers, archives, p2 files: a marker never outlives its archive, so a later
sync never trusts a marker whose archive is gone; an archive whose marker could not be deleted
stays. Marks of deleted objects are removed.

**Writers that reuse an object without writing it.** A sync takes an orphaned archive back into
use through the journal marker it finds, or a create-only upload that is refused because the bytes
are stored; a sync re-adding a package finds its old p2 files byte for byte what it would write.
Nothing in the object shows that reuse, and no read of prune's can order itself after a writer that
decided before the read and records after it. So archives and p2 files are deleted only through the
handshake of :mod:`composer_mirror.deletion`: intents are written before the fresh read, each
deletion is committed by compare-and-swap, and a writer's claim (written before it records the
object) either makes the commit fail or, after the commit, keeps the writer away from the object.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from composer_mirror import deletion
from composer_mirror.archives import ArchiveRecord
from composer_mirror.errors import MirrorError, SettingsError
from composer_mirror.json_record import JsonRecord
from composer_mirror.parallel import map_bounded
from composer_mirror.prune_marks import Marks, forget_marks, record_marks, written_since
from composer_mirror.publisher import load_record, read_published
from composer_mirror.record import indexed
from composer_mirror.root import read_available
from composer_mirror.run_report import Findings, keep_report, log_report
from composer_mirror.settings import Settings
from composer_mirror.state import PackageState, load_shard
from composer_mirror.store import ObjectInfo, Store
from composer_mirror.store.layout import (
    ARCHIVE_DIR,
    MARKER_DIR,
    P2_DIR,
    RECORD_DIR,
    ROOT,
    SHARD_DIR,
    archive_marker_path,
    archive_path,
    archive_path_of_url,
    is_archive_path,
    is_marker_path,
    p2_name,
    record_name,
    shard_of_path,
)

logger = logging.getLogger(__name__)

# Deletion order: a marker never outlives its archive (see the module docstring).
KINDS = ("marker", "archive", "p2")
# Kinds a writer may reuse without writing them: deleted only through composer_mirror.deletion.
GUARDED_KINDS = frozenset({"archive", "p2"})
LABELS = {"marker": "journal markers", "archive": "archives", "p2": "p2 files"}
SHOWN_PER_KIND = 20
# Airflow's run type of a run the scheduler created from the DAG's schedule (DagRunType.SCHEDULED).
SCHEDULED_RUN = "scheduled"


@dataclass(frozen=True)
class Orphan(JsonRecord):
    """An object nothing references any more, with its size for the report."""

    kind: str
    path: str
    size: int


@dataclass(frozen=True)
class PruneResult(JsonRecord):
    """``orphans`` are the objects due (marked unreferenced longer ago than the grace period);
    ``too_young`` counts the other unreferenced ones (marked more recently, or an archive a journal
    marker not yet due holds), ``kept_at_sweep`` the due ones the check right before deleting found
    referenced or written again, ``failed`` the paths whose deletion failed.

    Its JSON is every field; the DAG's XCom value is its :meth:`summary` (a :class:`PruneSummary`,
    counts only) and the report kept is :meth:`report`, the summary with every orphan's path."""

    dry_run: bool
    grace_hours: float
    scanned: dict[str, int] = field(default_factory=dict)
    orphans: list[Orphan] = field(default_factory=list)
    too_young: int = 0
    kept_at_sweep: int = 0
    deleted: int = 0
    failed: list[str] = field(default_factory=list)

    @property
    def orphan_bytes(self) -> int:
        return sum(orphan.size for orphan in self.orphans)

    def counts(self) -> dict[str, int]:
        counted = Counter(orphan.kind for orphan in self.orphans)
        return {kind: counted.get(kind, 0) for kind in KINDS}

    def summary(self) -> PruneSummary:
        """Counts only: small enough for XCom however many objects were pruned."""
        return PruneSummary(
            dry_run=self.dry_run,
            grace_hours=self.grace_hours,
            scanned=self.scanned,
            orphans=self.counts(),
            orphan_bytes=self.orphan_bytes,
            too_young=self.too_young,
            kept_at_sweep=self.kept_at_sweep,
            deleted=self.deleted,
            failed=len(self.failed),
        )

    def report(self) -> dict[str, Any]:
        """The summary with every orphan's path, as JSON: the report kept in the bucket."""
        return {**self.summary().to_json(), "orphans": [orphan.to_json() for orphan in self.orphans]}


@dataclass(frozen=True)
class PruneSummary(JsonRecord):
    """A prune run's counts: its task's XCom value, and the head of the report it keeps."""

    dry_run: bool
    grace_hours: float
    scanned: dict[str, int]
    orphans: dict[str, int]  # due objects per kind
    orphan_bytes: int
    too_young: int
    kept_at_sweep: int
    deleted: int
    failed: int  # deletions that failed


@dataclass
class References:
    """What must stay: archive paths, live marker paths, and the packages the state records."""

    archives: set[str] = field(default_factory=set)
    markers: set[str] = field(default_factory=set)
    packages: set[str] = field(default_factory=set)
    available: set[str] = field(default_factory=set)

    def refer_to(self, kind: str, path: str, journal: Mapping[str, str | None]) -> bool:
        """Whether ``path`` must stay; a journal marker also while the archive it names (``journal``) must."""
        if kind == "archive":
            return path in self.archives
        if kind == "marker":
            return path in self.markers or journal.get(path) in self.archives
        name = p2_name(path)
        return name in self.available or name in self.packages


def prune(
    store: Store, *, grace_hours: float, dry_run: bool = True, workers: int = 10, now: datetime | None = None
) -> PruneResult:
    """Mark what is unreferenced, and delete (or only report) what was marked over ``grace_hours`` ago.

    ``now`` is the marks' clock. A dry run records marks too: see the module docstring.
    """
    if grace_hours < 0:
        raise SettingsError("composer_mirror_prune_grace_hours must not be negative; it must exceed the CDN TTL")
    now = now or datetime.now(UTC)
    listed = {kind: list(_list_kind(store, kind)) for kind in KINDS}
    refs = read_references(store, workers)
    journal = _read_journal(store, [info.path for info in listed["marker"] if info.path not in refs.markers], workers)
    unreferenced = [
        (kind, info) for kind in KINDS for info in listed[kind] if not refs.refer_to(kind, info.path, journal)
    ]
    marks = record_marks(store, {info.path: info.last_modified for _kind, info in unreferenced}, now)
    orphans = _due(unreferenced, marks, journal, now - timedelta(hours=grace_hours))
    scanned = {kind: len(infos) for kind, infos in listed.items()}
    result = PruneResult(dry_run, grace_hours, scanned, orphans, too_young=len(unreferenced) - len(orphans))
    if dry_run:
        _log_orphans("[DRY RUN] would delete", result)
        return result
    _log_orphans("deleting", result)
    result = _sweep(store, result, marks, journal, workers)
    deletion.settle(store, now - timedelta(hours=grace_hours))
    return result


def read_references(store: Store, workers: int) -> References:
    """Everything published or recorded; raises rather than guess when any of it is unreadable."""
    refs = References(available=_read_root(store))
    for published in map_bounded(lambda name: read_published(store, name), refs.available, workers):
        for entry in published.values():
            path = archive_path_of_url(str((entry.get("dist") or {}).get("url") or ""))
            if path:
                refs.archives.add(path)
    _add_state(store, refs, workers)
    return refs


def _read_state_references(store: Store, workers: int) -> References:
    """The root and the state, without the p2 files: what the sweep reads again right before deleting.

    A sync taking an object back into use records it in the state (and its package in the root)
    right after publishing it, so these are what tell that it did; reading every p2 file again
    would take as long as the first time.
    """
    refs = References(available=_read_root(store))
    _add_state(store, refs, workers)
    return refs


def _read_root(store: Store) -> set[str]:
    """The packages the root lists: an empty or unreadable root would make everything look unreferenced."""
    try:
        available, etag = read_available(store)
    except MirrorError as exc:
        raise MirrorError(f"refusing to prune: {exc}") from exc
    if etag is None or not available:
        raise MirrorError(f"refusing to prune: {store.key(ROOT)} is missing, unreadable or lists nothing")
    return set(available)


def _add_state(store: Store, refs: References, workers: int) -> None:
    """Every package the state records, with the archive and journal marker of each recorded version.

    Both the package records (the source of truth, which a run writes before its p2 files and its
    shard entries) and the shards: a run that died between the two has versions only the record names.
    """
    shards = [shard for info in store.list_objects(SHARD_DIR) if (shard := shard_of_path(info.path))]
    names = [name for info in store.list_objects(RECORD_DIR) if (name := record_name(info.path))]
    recorded = map_bounded(lambda name: (name, indexed(PackageState(), load_record(store, name))), names, workers)
    in_shards = [(name, state) for shard in map_bounded(lambda s: load_shard(store, s), shards, workers)
                 for name, state in shard.packages.items()]  # fmt: skip
    for name, state in [*recorded, *in_shards]:
        refs.packages.add(name)
        for normalized, record in _recorded_archives(state):
            refs.archives.add(record.path)
            refs.markers.add(archive_marker_path(name, normalized, record.reference))


def _recorded_archives(state: PackageState) -> Iterator[tuple[str, ArchiveRecord]]:
    """(normalized version, archive record) of the versions a package state records, withdrawn ones
    included: their archives are kept for forensics."""
    yield from state.versions.items()
    for normalized, withdrawn in state.withdrawn.items():
        yield normalized, withdrawn.archive


def _read_journal(store: Store, paths: list[str], workers: int) -> dict[str, str | None]:
    """The archive each of these journal markers names (None when the marker is gone or unreadable)."""
    return dict(map_bounded(lambda path: (path, _marker_archive(store, path)), paths, workers))


def _marker_archive(store: Store, path: str) -> str | None:
    try:
        document = store.get_json(path)
        return archive_path(str(document["sha256"])) if isinstance(document, dict) else None
    except (MirrorError, KeyError):
        return None


# --- marks ------------------------------------------------------------------------------------
def _due(
    unreferenced: list[tuple[str, ObjectInfo]], marks: Marks, journal: Mapping[str, str | None], cutoff: datetime
) -> list[Orphan]:
    """The objects marked before ``cutoff``, less the archives a journal marker not yet due holds."""
    before = cutoff.timestamp()
    due = [Orphan(kind, info.path, info.size) for kind, info in unreferenced if marks[info.path] <= before]
    due_paths = {orphan.path for orphan in due}
    held = {journal.get(info.path) for kind, info in unreferenced if kind == "marker" and info.path not in due_paths}
    return sorted((o for o in due if o.path not in held), key=lambda o: (KINDS.index(o.kind), o.path))


# --- the sweep --------------------------------------------------------------------------------
def _sweep(
    store: Store, result: PruneResult, marks: Marks, journal: Mapping[str, str | None], workers: int
) -> PruneResult:
    """Delete the due objects still unreferenced and unchanged, kind by kind, and unmark them; the result
    with what was kept, deleted and failed.

    Archives and p2 files, which a writer may take back into use without writing them, go through
    the handshake of :mod:`composer_mirror.deletion`: prune's intent is written first, then what
    decides is read again (HEADs, the root and the state), then each deletion is committed by
    compare-and-swap, which fails for an object a writer claimed meanwhile. Only then is it deleted.
    """
    guarded = [o.path for o in result.orphans if o.kind in GUARDED_KINDS]
    begun = dict(map_bounded(lambda path: (path, deletion.begin(store, path, marks[path])), guarded, workers))
    claimed = {path for path, started in begun.items() if not started}
    heads = dict(map_bounded(lambda orphan: (orphan.path, store.head(orphan.path)), result.orphans, workers))
    fresh = _read_state_references(store, workers)
    held: set[str] = set()  # archives of markers kept or not deleted: a marker never outlives its archive
    deleted: list[str] = []
    kept_at_sweep = 0
    not_deleted: list[str] = []
    for kind in KINDS:
        present = {o.path: head for o in result.orphans if o.kind == kind and (head := heads[o.path]) is not None}
        kept = [
            path
            for path, head in present.items()
            if path in claimed
            or path in held
            or fresh.refer_to(kind, path, journal)
            or written_since(head.last_modified, marks[path])
        ]
        doomed = [path for path in present if path not in kept]
        if kind in GUARDED_KINDS:
            committed = dict(map_bounded(lambda path: (path, deletion.commit(store, path)), doomed, workers))
            kept += [path for path in doomed if not committed[path]]
            doomed = [path for path in doomed if committed[path]]
            for path in kept:
                if path not in claimed:
                    deletion.release(store, path)
        failed = set(store.delete_many(doomed) if doomed else [])
        held.update(archive for path in (*kept, *failed) if (archive := journal.get(path)))
        for path in kept:
            logger.info("kept %s %s: referenced, claimed or written again since it was marked", kind, path)
        kept_at_sweep += len(kept)
        not_deleted.extend(sorted(failed))
        gone = [path for path in doomed if path not in failed]
        if kind in GUARDED_KINDS:
            for path in gone:
                deletion.finish(store, path)
        deleted.extend(gone)
    # A claimed object's clock restarts: if its writer never recorded it, a later prune finds it
    # unreferenced again, with a mark newer than the claim.
    forget_marks(store, [*deleted, *claimed])
    return replace(result, kept_at_sweep=kept_at_sweep, deleted=len(deleted), failed=not_deleted)


def _list_kind(store: Store, kind: str) -> Iterable[ObjectInfo]:
    """Objects of one kind whose key the mirror itself would write; anything else is left alone."""
    prefix = {"archive": ARCHIVE_DIR, "marker": MARKER_DIR, "p2": P2_DIR}[kind]
    owned: dict[str, Callable[[str], bool]] = {
        "archive": is_archive_path,
        "marker": is_marker_path,
        "p2": lambda path: p2_name(path) is not None,
    }
    return (info for info in store.list_objects(prefix) if owned[kind](info.path))


def _log_orphans(action: str, result: PruneResult) -> None:
    counts = result.counts()
    logger.info(
        "%s %d objects (%d bytes): %d archives, %d journal markers, %d p2 files; %d unreferenced for less "
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


def is_dry_run(run_type: str, dry_run_param: bool, scheduled_delete: bool) -> bool:
    """Whether a prune run only marks and logs, or also deletes.

    A scheduled run cannot be given params (it gets the defaults, dry run on), so the setting
    ``composer_mirror_prune_scheduled_delete`` decides for it. Every other run (triggered from the
    UI or API, ``dags test``, a backfill) is someone asking explicitly and follows its ``dry_run``
    param, which stays on by default.
    """
    if run_type == SCHEDULED_RUN:
        return not scheduled_delete
    return dry_run_param


def run_prune(store: Store, settings: Settings, *, dry_run: bool, run_id: str) -> PruneResult:
    """The DAG's task: prune with the configured grace period, log, and keep a report in the state."""
    result = prune(store, grace_hours=settings.prune_grace_hours, dry_run=dry_run, workers=settings.concurrency)
    log_summary(result)
    keep_report(store, run_id, result.report(), kind="prune")
    return result


def log_summary(result: PruneResult) -> None:
    """The end-of-run line an operator reads: what was deleted, what was kept at the last check, what failed.

    No table: what prune found was logged, object by object, before it deleted anything.
    """
    if result.dry_run:
        template = "[DRY RUN] nothing deleted; run with dry_run=false to delete %d objects"
        log_report(logger, Findings.each(logging.INFO, template, [len(result.orphans)]))
        return
    outcome = (result.deleted, result.kept_at_sweep, len(result.failed))
    log_report(
        logger,
        Findings(logging.INFO, "deleted %d objects, %d kept (referenced or written again), %d failed", [outcome]),
        Findings.each(logging.ERROR, "could not delete %s", result.failed),
    )
