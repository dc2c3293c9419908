"""The write rule: how every writer changes a package and the root.

Every writer (the sync, an SBOM run, verify's repair, and anything later) changes what the mirror
publishes the same way, through :func:`~composer_mirror.store.compare_and_swap`, never by a blind PUT:

1. Archives first (content-addressed, create-only: they never change once stored).
2. The package's record (:mod:`composer_mirror.record`), by compare-and-swap with a merge: on a
   conflict the record another writer left is read again and the change applied to it, so both
   writers' versions land.
3. Each p2 file, by compare-and-swap against the file as read, with bytes derived from the record
   read *after* the file. Whoever writes a p2 file last has therefore read the latest record, and the
   file ends up derived from it, whatever the interleaving of writers.
4. The root, by compare-and-swap, listing only packages whose p2 files exist (steps 1-3 came first).
5. Then, and only then, the changes-feed cursor (see :mod:`composer_mirror.sync.publish`).

A crash between two steps leaves every published object valid: the root names only what was
written before it, and the next run redoes the rest from the record or the upstream.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any, TypeGuard

from composer_mirror import deletion
from composer_mirror.archives import ArchiveRecord
from composer_mirror.composer_format import advisories_in, is_valid_package_name, parse_p2
from composer_mirror.errors import MirrorError
from composer_mirror.record import PackageRecord, Withdrawal, bootstrap, derive_files, indexed, withdraw
from composer_mirror.root import announces_advisories, build_root, parse_available
from composer_mirror.state import load_shards, save_package_states
from composer_mirror.store import METADATA_CACHE, ROOT_CACHE, STATE_CACHE, Store, compare_and_swap
from composer_mirror.store.layout import FILE_SUFFIXES, ROOT, p2_path, record_path, shard_of
from composer_mirror.sync.records import WithdrawalNotice
from composer_mirror.targets import normalized_of

logger = logging.getLogger(__name__)

RecordChange = Callable[[PackageRecord | None], PackageRecord | None]


# --- the package record -------------------------------------------------------------------------
def load_record(store: Store, name: str) -> PackageRecord | None:
    stored = store.get(record_path(name))
    return PackageRecord.from_bytes(name, stored.body) if stored is not None else None


def commit_record(store: Store, name: str, change: RecordChange) -> PackageRecord | None:
    """Apply ``change`` to the package's record (a copy; None when there is none yet) and store it.

    ``change`` must be a merge: on a conflict it is applied again to the record the other writer
    left. Returns the record as stored now (None when there is still none).
    """
    return _commit_record(store, name, change)[0]


def _commit_record(store: Store, name: str, change: RecordChange) -> tuple[PackageRecord | None, bool]:
    """:func:`commit_record`, and whether this commit created the record."""
    created = [False]

    def apply(body: bytes | None) -> bytes | None:
        current = PackageRecord.from_bytes(name, body) if body is not None else None
        updated = change(current.copy() if current is not None else None)
        if updated is None or (current is not None and updated.content() == current.content()):
            return None
        updated.revision = (current.revision if current is not None else 0) + 1
        created[0] = current is None
        return updated.to_bytes()

    swapped = compare_and_swap(store, record_path(name), apply, cache_control=STATE_CACHE)
    record = PackageRecord.from_bytes(name, swapped.body) if swapped.body is not None else None
    return record, created[0] and swapped.written


# --- p2 files ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class PublishedFiles:
    """The ETags of the package's p2 files as they are now, how many this writer wrote, and whether
    the record they were derived from publishes any version (``live``: the package belongs in the root)."""

    etags: dict[str, str]
    written: int
    live: bool = False


def has_content(record: PackageRecord | None) -> TypeGuard[PackageRecord]:
    """A record with anything to derive p2 files from: published versions, or withdrawn ones.

    A package whose every version was withdrawn keeps p2 files listing none, so the files a client
    or a CDN still has are replaced, never left serving what was withdrawn.
    """
    return record is not None and bool(record.versions or record.withdrawn)


def publish_files(store: Store, name: str, repository_url: str, *, new_record: bool = False) -> PublishedFiles:
    """Write both p2 files from the package's record, each by compare-and-swap (step 3 of the rule).

    The record is read inside the swap, after the file: a retry after a conflict reads both again.
    A package with no record, or one that never published a version, gets no files. With
    ``new_record`` (the record was just created: the package was unknown to the state, so prune may
    be deleting p2 files left from before) a file found to be the bytes already stored is claimed
    (:mod:`composer_mirror.deletion`), and one being pruned fails the package for this run.
    """
    etags: dict[str, str] = {}
    written = 0
    live = False
    for suffix in FILE_SUFFIXES:

        def derive(_current: bytes | None, suffix: str = suffix) -> bytes | None:
            nonlocal live
            record = load_record(store, name)
            live = record is not None and bool(record.versions)
            if not has_content(record):
                return None
            return derive_files(record, repository_url)[suffix]

        path = p2_path(name, dev=bool(suffix))
        swapped = compare_and_swap(store, path, derive, cache_control=METADATA_CACHE)
        if new_record and not swapped.written and swapped.body is not None and not deletion.claim(store, path):
            raise MirrorError(f"{store.key(path)} is being pruned; the package is published again by the next run")
        written += swapped.written
        if swapped.etag is not None:
            etags[suffix] = swapped.etag
    return PublishedFiles(etags, written, live)


def write_package(
    store: Store, name: str, change: RecordChange, repository_url: str
) -> tuple[PackageRecord | None, PublishedFiles]:
    """Steps 2 and 3 of the write rule for one package: its record, then its p2 files."""
    record, created = _commit_record(store, name, change)
    if not has_content(record):
        return record, PublishedFiles({}, 0)
    return record, publish_files(store, name, repository_url, new_record=created)


def publishes_versions(store: Store, name: str) -> bool:
    """Whether the package belongs in the root: its record publishes a version, or (a package
    mirrored before records existed) its p2 file exists."""
    record = load_record(store, name)
    if record is not None:
        return bool(record.versions)
    return store.head(p2_path(name)) is not None


def read_published(store: Store, name: str) -> dict[str, dict[str, Any]]:
    """The versions the mirror serves now for a package (both files), by Composer's normalisation.

    Keyed as the record and the state are (``version_normalized`` is optional in p2 files).
    """
    return _entries_by_version(name, _published_files(store, name).values())


def _published_files(store: Store, name: str) -> dict[str, bytes]:
    """The bodies of the package's p2 files that exist, by suffix."""
    files = {suffix: store.get(p2_path(name, dev=bool(suffix))) for suffix in FILE_SUFFIXES}
    return {suffix: stored.body for suffix, stored in files.items() if stored is not None}


def _entries_by_version(name: str, bodies: Iterable[bytes]) -> dict[str, dict[str, Any]]:
    return {normalized_of(entry) or str(entry["version"]): entry for body in bodies for entry in parse_p2(body, name)}


def migrated_record(store: Store, name: str, archives: Mapping[str, ArchiveRecord]) -> PackageRecord | None:
    """The record of a package mirrored before records existed, built from what it publishes now.

    ``archives`` are the shard's archive records of the package. None when nothing is published.
    """
    files = _published_files(store, name)  # each file read once: entries and advisories
    published = _entries_by_version(name, files.values())
    if not published:
        return None
    record = bootstrap(name, published.values(), archives)
    stable = files.get("")
    if stable is not None and b'"security-advisories"' in stable:
        record.advisories = advisories_in(stable)
    return record


# --- the root ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class RootUpdate:
    written: bool
    available: list[str]
    # Why the published root could not be read, when it was rebuilt from the mirrored set instead.
    rebuilt_because: str | None = None


def publish_root(
    store: Store,
    repository_url: str,
    published: Iterable[str],
    removed: Iterable[str] = (),
    advisories: bool | None = False,
    mirrored: Iterable[str] = (),
    emptied: Iterable[str] = (),
) -> RootUpdate:
    """Add this run's packages, and every mirrored one, to the root, keeping what it lists (step 4).

    ``mirrored`` are the catalog's packages, every one of which joined it once its p2 files existed:
    those the root lacks are added back when they publish a version (their record, read for each;
    normally none is missing). That heals a root a run died before writing, and rebuilds one that is
    unreadable. ``removed`` leave it unconditionally (expired deletions); ``emptied`` (packages whose
    last version was withdrawn) only while their record, read after the root in each attempt,
    still publishes nothing, so a writer that added a version meanwhile is never undone.
    ``advisories`` None keeps what the root says about them (a writer that knows nothing of the
    upstream's endpoints).
    """
    published = set(published)
    removed = set(removed) - published
    emptied = set(emptied) - published
    problems: list[str] = []
    checked: dict[str, bool] = {}

    def live(name: str) -> bool:
        if name not in checked:
            checked[name] = is_valid_package_name(name) and publishes_versions(store, name)
        return checked[name]

    def change(body: bytes | None) -> bytes:
        problems.clear()
        checked.clear()  # a retry reads the records again, after the root it now read
        current: set[str] = set()
        if body is not None:
            try:
                current = set(parse_available(body))
            except MirrorError as exc:
                logger.warning("%s; rebuilding it from the mirrored set", exc)
                problems.append(str(exc))
        healed = {name for name in set(mirrored) - current - published if live(name)}
        gone = {name for name in emptied & current if not live(name)}
        announce = advisories if advisories is not None else announces_advisories(body)
        return build_root(repository_url, (current | published | healed) - removed - gone, announce)

    swapped = compare_and_swap(store, ROOT, change, cache_control=ROOT_CACHE)
    available = parse_available(swapped.body) if swapped.body is not None else []
    return RootUpdate(swapped.written, available, problems[0] if problems else None)


# --- withdrawal -------------------------------------------------------------------------------
def withdraw_version(
    store: Store, name: str, normalized: str, reason: str, *, by: str, detail: str = "", repository_url: str
) -> WithdrawalNotice:
    """Take one version out of the published files on purpose, by the write rule; returns the report line.

    The record keeps the version, its archive, the reason, who and when; its shard entry is updated
    too, so prune keeps the archive and the next sync does not publish the version again.
    """
    made: list[Withdrawal] = []

    def change(record: PackageRecord | None) -> PackageRecord | None:
        if record is not None and normalized in record.withdrawn:
            made[:] = [record.withdrawn[normalized]]
            return record
        if record is None or normalized not in record.versions:
            raise MirrorError(f"{name} {normalized} is not published by the mirror: nothing to withdraw")
        made[:] = [withdraw(record, normalized, reason, detail=detail, by=by)]
        return record

    record = commit_record(store, name, change)
    left_index = record is not None and not record.versions
    if left_index:
        # No version left: out of the root first (while the record still publishes none), then
        # the p2 files, derived from the record as ever: they list no version.
        publish_root(store, repository_url, [], emptied=[name], advisories=None)
    files = publish_files(store, name, repository_url)
    if left_index and files.live:
        # A writer added a version between our root and our files: the package is back.
        publish_root(store, repository_url, [name], advisories=None)
    entry = load_shards(store, [name])[shard_of(name)].entry(name)
    save_package_states(store, {name: replace(indexed(entry, record), published=files.etags)})
    withdrawal = made[0]
    version = str(withdrawal.version.entry.get("version", normalized))
    return WithdrawalNotice(
        name, version, withdrawal.reason, withdrawal.detail, withdrawal.by, withdrawal.at, left_index and not files.live
    )
