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
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, TypedDict

from composer_mirror.archives import ArchiveRecord
from composer_mirror.errors import StoreError
from composer_mirror.json_record import OPTIONAL, JsonRecord
from composer_mirror.parallel import map_bounded
from composer_mirror.store import STATE_CACHE, Store, compare_and_swap
from composer_mirror.store.layout import CATALOG, shard_of, shard_path

logger = logging.getLogger(__name__)

SHARD_COUNT = 256
CATALOG_FORMAT = 1


class UpstreamValidators(TypedDict, total=False):
    """What the upstream said of one p2 file when the sync last fetched it, for its next conditional request.

    Typed keys of a plain dict rather than a record: a key may be missing (a file planned from a copy
    another run cached keeps only ``cache_etag``) or null (an upstream that sends no ETag), and the
    shard and the manifest keep each as it was, so there is no field default that would stand for both.
    """

    etag: str | None
    last_modified: str | None
    cache_etag: str


@dataclass(frozen=True)
class WithdrawnVersion(JsonRecord):
    """What the shard keeps of a version the mirror withdrew: its archive (kept for forensics), why, when."""

    archive: ArchiveRecord
    reason: str  # one of composer_mirror.record.WITHDRAWAL_REASONS
    at: str  # ISO 8601, UTC


@dataclass(frozen=True)
class PackageState(JsonRecord):
    """A package's entry in its state shard.

    ``versions``, ``withdrawn`` and ``revision`` index the package's record
    (:func:`composer_mirror.record.indexed`); ``published`` are the ETags of its p2 files as published
    (``""`` and ``"~dev"``). The optional fields are the sync's, so an entry only a withdrawal wrote
    has none of them: the selectors and upstream validators of the last sync, whether it completed
    (every chosen version mirrored), and the newest version's description and licences with the time
    of the sync, for the listing page.
    """

    versions: dict[str, ArchiveRecord] = field(default_factory=dict)
    withdrawn: dict[str, WithdrawnVersion] = field(default_factory=dict)
    revision: int = 0
    published: dict[str, str] = field(default_factory=dict)
    selectors: list[str] | None = field(default=None, metadata=OPTIONAL)
    upstream: dict[str, UpstreamValidators] | None = field(default=None, metadata=OPTIONAL)
    complete: bool | None = field(default=None, metadata=OPTIONAL)
    description: str | None = field(default=None, metadata=OPTIONAL)
    license: list[str] | None = field(default=None, metadata=OPTIONAL)
    synced_at: str | None = field(default=None, metadata=OPTIONAL)


def is_live(state: PackageState) -> bool:
    """Whether the shard entry says the package is in the index: p2 files written, a version in them.

    A package whose every version was withdrawn keeps its (empty) p2 files and its entry, and is not.
    """
    return bool(state.published) and bool(state.versions)


def dumps(document: Any) -> bytes:
    """Deterministic JSON, so unchanged state serialises to unchanged bytes and is not rewritten."""
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


@dataclass(frozen=True)
class Catalog(JsonRecord):
    """The one mirrored set: package name -> selectors (constraints that choose its versions)."""

    packages: dict[str, list[str]] = field(default_factory=dict)
    changes_since: int | None = None
    # Packages whose upstream copy was older than the feed's change, or that failed: retried next run.
    pending: dict[str, int] = field(default_factory=dict)
    # Packages deleted upstream, with the time of the delete action.
    deleted: dict[str, int] = field(default_factory=dict)
    # The sync selection of the last full run: a different one forces a full run.
    selection: list[str] | None = None
    # The ETag of the object it was read from or written as; not part of the document.
    etag: str | None = None

    def merged_with(self, additions: Mapping[str, list[str]]) -> dict[str, list[str]]:
        merged = {name: list(selectors) for name, selectors in self.packages.items()}
        for name, selectors in additions.items():
            merged[name] = sorted(set(merged.get(name, [])) | set(selectors))
        return merged

    def to_json(self) -> dict[str, Any]:
        """``catalog.json``: its ``format`` (a key that is no field), then the fields but the ``etag``."""
        document = {"format": CATALOG_FORMAT, **super().to_json()}
        del document["etag"]
        return document


def load_catalog(store: Store) -> Catalog:
    stored = store.get(CATALOG)
    if stored is None:
        return Catalog()
    return _parse_catalog(store, stored.body, stored.etag)


def _parse_catalog(store: Store, body: bytes, etag: str | None) -> Catalog:
    return replace(Catalog.from_json(_json_object(store, CATALOG, body)), etag=etag)


def _json_object(store: Store, path: str, body: bytes) -> dict[str, Any]:
    """The state object's JSON document; a StoreError naming its key when it is not an object."""
    try:
        document = json.loads(body)
    except ValueError as exc:
        raise StoreError(f"{store.key(path)} is corrupt: {exc}") from exc
    if not isinstance(document, dict):
        raise StoreError(f"{store.key(path)} is corrupt: not a JSON object")
    return document


def update_catalog(store: Store, change: Callable[[Catalog], Catalog]) -> Catalog:
    """Store ``change(catalog)`` by compare-and-swap; on a conflict, apply it to the catalog the other run left.

    Returns the catalog as stored.
    """
    catalog = Catalog()

    def apply(body: bytes | None) -> bytes:
        nonlocal catalog
        catalog = change(_parse_catalog(store, body, None) if body is not None else Catalog())
        return dumps(catalog.to_json())

    swapped = compare_and_swap(store, CATALOG, apply, cache_control=STATE_CACHE)
    return replace(catalog, etag=swapped.etag)


@dataclass(frozen=True)
class Shard:
    shard: str
    packages: dict[str, PackageState]
    etag: str | None

    def entry(self, name: str) -> PackageState:
        """The package's entry; an empty one (nothing mirrored, nothing published) when it has none."""
        return self.packages.get(name) or PackageState()


def load_shard(store: Store, shard: str) -> Shard:
    stored = store.get(shard_path(shard))
    if stored is None:
        return Shard(shard, {}, None)
    entries = _parse_shard(store, shard, stored.body)
    try:
        packages = {name: PackageState.from_json(entry) for name, entry in entries.items()}
    except (TypeError, AttributeError, ValueError) as exc:
        raise StoreError(f"{store.key(shard_path(shard))} is corrupt: {exc}") from exc
    return Shard(shard, packages, stored.etag)


def _parse_shard(store: Store, shard: str, body: bytes) -> dict[str, Any]:
    """The shard's entries as JSON, as stored: what a merge writes back for the packages it does not change."""
    return _json_object(store, shard_path(shard), body)


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


def save_package_states(store: Store, updates: Mapping[str, PackageState], workers: int = 16) -> int:
    """Write the changed package states, one compare-and-swap per shard (in parallel); returns shards written."""
    by_shard: dict[str, dict[str, PackageState]] = {}
    for name, state in updates.items():
        by_shard.setdefault(shard_of(name), {})[name] = state
    return sum(map_bounded(lambda item: _save_shard(store, *item), sorted(by_shard.items()), workers))


def _save_shard(store: Store, shard: str, packages: dict[str, PackageState]) -> int:
    """Merge our package entries into the shard by compare-and-swap; returns 1 when it was written.

    Package entries are independent; for one package written by two runs, the entry of the newer
    record (higher ``revision``) wins, so the index converges on the record whatever the order. The
    entries of other packages are written back as they were read, keys this release does not know included.
    """

    def merge(body: bytes | None) -> bytes:
        current = _parse_shard(store, shard, body) if body is not None else {}
        merged = dict(current)
        for name, state in packages.items():
            if state.revision >= int(current.get(name, {}).get("revision", 0)):
                merged[name] = state.to_json()
        return dumps(merged)

    return int(compare_and_swap(store, shard_path(shard), merge, cache_control=STATE_CACHE).written)
