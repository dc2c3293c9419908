"""The mirror's own state in the bucket: the catalog of what is mirrored, and per-package shards.

Layout under the prefix (next to the published repository):
- ``mirror-state/catalog.json``: every mirrored package with the selectors that chose its versions,
  plus the changes-feed cursor. Read once per run, written with compare-and-swap.
- ``mirror-state/shards/<xx>.json``: per package, the upstream validators (ETag/Last-Modified),
  the ETags of the published p2 files and a record of every mirrored version and its archive.
  Sharded by a hash of the name so a batch reads a few objects instead of one per package.
- ``mirror-state/upstream/<name>[~dev].json``: the last upstream p2 bytes, so a 304 can be acted on.
- ``mirror-state/archives/<name>/<id>.json``: one marker per stored archive, written right after
  the upload: the journal that lets a run after a crash find archives stored but not yet recorded.
- ``mirror-state/runs/<run id>.json``: run reports.
- ``mirror-state/handoff/<dag id>/<run id>/``: values too large for XCom, passed between the tasks
  of a running DAG run (see :mod:`composer_mirror.handoff`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from composer_mirror.errors import ConflictError, StoreError
from composer_mirror.store import STATE_CACHE, S3Store
from composer_mirror.store.layout import CATALOG, shard_of, shard_path

logger = logging.getLogger(__name__)

SHARD_COUNT = 256
CAS_ATTEMPTS = 8

PackageState = dict[str, Any]


def dumps(document: Any) -> bytes:
    """Deterministic JSON, so unchanged state serialises to unchanged bytes and is not rewritten."""
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


@dataclass
class Catalog:
    """The one mirrored set: package name -> selectors (constraints that choose its versions)."""

    packages: dict[str, list[str]] = field(default_factory=dict)
    changes_since: int | None = None
    # Packages whose upstream copy was older than the feed's change, or that failed: retried next run.
    pending: dict[str, int] = field(default_factory=dict)
    # Packages deleted upstream, with the time of the delete action.
    deleted: dict[str, int] = field(default_factory=dict)
    # The sync selection of the last full run: a different one forces a full run.
    selection: list[str] | None = None
    etag: str | None = None

    def merged_with(self, additions: dict[str, list[str]]) -> dict[str, list[str]]:
        merged = {name: list(selectors) for name, selectors in self.packages.items()}
        for name, selectors in additions.items():
            merged[name] = sorted(set(merged.get(name, [])) | set(selectors))
        return merged

    def to_document(self) -> dict[str, Any]:
        return {
            "format": 1,
            "packages": dict(sorted(self.packages.items())),
            "changes_since": self.changes_since,
            "pending": dict(sorted(self.pending.items())),
            "deleted": dict(sorted(self.deleted.items())),
            "selection": self.selection,
        }


def load_catalog(store: S3Store) -> Catalog:
    stored = store.get(CATALOG)
    if stored is None:
        return Catalog()
    try:
        document = json.loads(stored.body)
    except ValueError as exc:
        raise StoreError(f"{store.key(CATALOG)} is corrupt: {exc}") from exc
    return Catalog(
        packages={name: list(sel) for name, sel in document.get("packages", {}).items()},
        changes_since=document.get("changes_since"),
        pending=dict(document.get("pending") or {}),
        deleted=dict(document.get("deleted") or {}),
        selection=document.get("selection"),
        etag=stored.etag,
    )


def update_catalog(store: S3Store, change: Callable[[Catalog], None]) -> Catalog:
    """Read-modify-write the catalog with compare-and-swap, retrying when another run wrote first."""
    for _attempt in range(CAS_ATTEMPTS):
        catalog = load_catalog(store)
        before = dumps(catalog.to_document())
        change(catalog)
        after = dumps(catalog.to_document())
        if after == before:
            return catalog
        try:
            catalog.etag = store.put(
                CATALOG,
                after,
                cache_control=STATE_CACHE,
                if_match=catalog.etag,
                if_none_match=catalog.etag is None,
            )
            return catalog
        except ConflictError:
            logger.info("catalog changed under us; merging again")
    raise ConflictError(f"could not update {store.key(CATALOG)} after {CAS_ATTEMPTS} attempts")


@dataclass
class Shard:
    shard: str
    packages: dict[str, PackageState]
    etag: str | None


def load_shard(store: S3Store, shard: str) -> Shard:
    stored = store.get(shard_path(shard))
    if stored is None:
        return Shard(shard, {}, None)
    try:
        packages = json.loads(stored.body)
    except ValueError as exc:
        raise StoreError(f"{store.key(shard_path(shard))} is corrupt: {exc}") from exc
    return Shard(shard, packages, stored.etag)


def load_shards(store: S3Store, names: Iterable[str], workers: int = 16) -> dict[str, Shard]:
    """The shards holding these packages, read in parallel (one GET each, whatever their size)."""
    shards = sorted({shard_of(name) for name in names})
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(shards)))) as pool:
        return dict(zip(shards, pool.map(lambda shard: load_shard(store, shard), shards), strict=True))


def shard_windows(names: Iterable[str], packages: int) -> Iterator[list[str]]:
    """The names grouped by shard, in windows of whole shards holding at least ``packages`` names.

    A task working through its batch one window at a time holds only that window's shards, and
    writes each shard once, whatever the size of the batch and of the mirror.
    """
    by_shard: dict[str, list[str]] = {}
    for name in names:
        by_shard.setdefault(shard_of(name), []).append(name)
    window: list[str] = []
    for shard in sorted(by_shard):
        window.extend(by_shard[shard])
        if len(window) >= packages:
            yield window
            window = []
    if window:
        yield window


def save_package_states(store: S3Store, updates: dict[str, PackageState], workers: int = 16) -> int:
    """Write the changed package states, one compare-and-swap per shard (in parallel); returns shards written."""
    by_shard: dict[str, dict[str, PackageState]] = {}
    for name, state in updates.items():
        by_shard.setdefault(shard_of(name), {})[name] = state
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(by_shard)))) as pool:
        return sum(pool.map(lambda item: _save_shard(store, *item), sorted(by_shard.items())))


def _save_shard(store: S3Store, shard: str, packages: dict[str, PackageState]) -> int:
    """A conflict means another run wrote the shard meanwhile: re-read it and apply our packages
    on top (package states are independent), so neither run's update is lost."""
    for _attempt in range(CAS_ATTEMPTS):
        current = load_shard(store, shard)
        merged = {**current.packages, **packages}
        if dumps(merged) == dumps(current.packages):
            return 0
        try:
            store.put(
                shard_path(shard),
                dumps(merged),
                cache_control=STATE_CACHE,
                if_match=current.etag,
                if_none_match=current.etag is None,
            )
            return 1
        except ConflictError:
            logger.info("shard %s changed under us; merging again", shard)
    raise ConflictError(f"could not update shard {shard} after {CAS_ATTEMPTS} attempts")
