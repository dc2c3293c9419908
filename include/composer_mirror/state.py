"""The mirror's own state in the bucket: the catalog of what is mirrored, and the state shards.

- the catalog (``mirror-state/catalog.json``): every mirrored package with the selectors that chose
  its versions, plus the changes-feed cursor. Read once per run, changed by compare-and-swap.
- the shards (``mirror-state/shards/<xx>.json``): per package, the upstream validators
  (ETag/Last-Modified), the ETags of the published p2 files, the archive records of its versions
  and the revision of its record (:mod:`composer_mirror.record`, the source of truth the shard
  indexes). Sharded by a hash of the name so a batch reads a few objects instead of one per package.

Every key is in :mod:`composer_mirror.store.layout`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from composer_mirror.errors import StoreError
from composer_mirror.parallel import map_bounded
from composer_mirror.store import STATE_CACHE, Store, compare_and_swap
from composer_mirror.store.layout import CATALOG, shard_of, shard_path

logger = logging.getLogger(__name__)

SHARD_COUNT = 256

PackageState = dict[str, Any]


def is_live(state: PackageState) -> bool:
    """Whether the shard entry says the package is in the index: p2 files written, a version in them.

    A package whose every version was withdrawn keeps its (empty) p2 files and its entry, and is not.
    """
    return bool(state.get("published")) and bool(state.get("versions"))


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


def load_catalog(store: Store) -> Catalog:
    stored = store.get(CATALOG)
    if stored is None:
        return Catalog()
    return _parse_catalog(store, stored.body, stored.etag)


def _parse_catalog(store: Store, body: bytes, etag: str | None) -> Catalog:
    try:
        document = json.loads(body)
    except ValueError as exc:
        raise StoreError(f"{store.key(CATALOG)} is corrupt: {exc}") from exc
    return Catalog(
        packages={name: list(sel) for name, sel in document.get("packages", {}).items()},
        changes_since=document.get("changes_since"),
        pending=dict(document.get("pending") or {}),
        deleted=dict(document.get("deleted") or {}),
        selection=document.get("selection"),
        etag=etag,
    )


def update_catalog(store: Store, change: Callable[[Catalog], None]) -> Catalog:
    """Apply ``change`` to the catalog by compare-and-swap; on a conflict, to the catalog the other run left."""
    catalog = Catalog()

    def apply(body: bytes | None) -> bytes:
        nonlocal catalog
        catalog = _parse_catalog(store, body, None) if body is not None else Catalog()
        change(catalog)
        return dumps(catalog.to_document())

    catalog.etag = compare_and_swap(store, CATALOG, apply, cache_control=STATE_CACHE).etag
    return catalog


@dataclass
class Shard:
    shard: str
    packages: dict[str, PackageState]
    etag: str | None


def load_shard(store: Store, shard: str) -> Shard:
    stored = store.get(shard_path(shard))
    if stored is None:
        return Shard(shard, {}, None)
    return Shard(shard, _parse_shard(store, shard, stored.body), stored.etag)


def _parse_shard(store: Store, shard: str, body: bytes) -> dict[str, PackageState]:
    try:
        return json.loads(body)
    except ValueError as exc:
        raise StoreError(f"{store.key(shard_path(shard))} is corrupt: {exc}") from exc


def load_shards(store: Store, names: Iterable[str], workers: int = 16) -> dict[str, Shard]:
    """The shards holding these packages, read in parallel (one GET each, whatever their size)."""
    shards = sorted({shard_of(name) for name in names})
    return dict(zip(shards, map_bounded(lambda shard: load_shard(store, shard), shards, workers), strict=True))


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


def save_package_states(store: Store, updates: dict[str, PackageState], workers: int = 16) -> int:
    """Write the changed package states, one compare-and-swap per shard (in parallel); returns shards written."""
    by_shard: dict[str, dict[str, PackageState]] = {}
    for name, state in updates.items():
        by_shard.setdefault(shard_of(name), {})[name] = state
    return sum(map_bounded(lambda item: _save_shard(store, *item), sorted(by_shard.items()), workers))


def _save_shard(store: Store, shard: str, packages: dict[str, PackageState]) -> int:
    """Merge our package entries into the shard by compare-and-swap; returns 1 when it was written.

    Package entries are independent; for one package written by two runs, the entry of the newer
    record (higher ``revision``) wins, so the index converges on the record whatever the order.
    """

    def merge(body: bytes | None) -> bytes:
        current = _parse_shard(store, shard, body) if body is not None else {}
        merged = dict(current)
        for name, state in packages.items():
            if int(state.get("revision", 0)) >= int(current.get(name, {}).get("revision", 0)):
                merged[name] = state
        return dumps(merged)

    return int(compare_and_swap(store, shard_path(shard), merge, cache_control=STATE_CACHE).written)
