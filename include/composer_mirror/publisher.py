"""The publisher: p2 files that point at the mirror's own archives, and the root ``packages.json``.

Order is what keeps the index whole: archives are stored before the p2 files that name them,
and the root, written last with compare-and-swap, only lists packages whose p2 files exist.
"""

from __future__ import annotations

import copy
import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from composer_mirror.archives import ArchiveRecord
from composer_mirror.composer_format import dump_p2, parse_p2, split_dev
from composer_mirror.errors import ConflictError
from composer_mirror.state import CAS_ATTEMPTS
from composer_mirror.store import ROOT_CACHE, S3Store, md5_etag
from composer_mirror.store.layout import ROOT, p2_path

logger = logging.getLogger(__name__)

# Version keys that would send clients back to the upstream (install statistics).
UPSTREAM_ONLY_KEYS = ("notification-url",)


def mirror_entry(entry: Mapping[str, Any], record: ArchiveRecord, repository_url: str) -> dict[str, Any]:
    """An upstream version entry whose dist now points at the mirror, with the served bytes' sha1."""
    mirrored = copy.deepcopy(dict(entry))
    for key in UPSTREAM_ONLY_KEYS:
        mirrored.pop(key, None)
    mirrored["dist"] = {
        "type": "zip",
        "url": f"{repository_url}/{record.path}",
        "reference": record.reference,
        "shasum": record.sha1,
    }
    return mirrored


def read_published(store: S3Store, name: str) -> dict[str, dict[str, Any]]:
    """The versions the mirror serves now for a package, by normalized version (both files)."""
    published: dict[str, dict[str, Any]] = {}
    for dev in (False, True):
        stored = store.get(p2_path(name, dev))
        if stored is None:
            continue
        for entry in parse_p2(stored.body, name):
            published[str(entry.get("version_normalized") or entry["version"])] = entry
    return published


@dataclass(frozen=True)
class PublishedFiles:
    etags: dict[str, str]
    written: int


def publish_package(
    store: S3Store,
    name: str,
    entries: Iterable[Mapping[str, Any]],
    known_etags: Mapping[str, str],
    advisories: list[Any] | None = None,
) -> PublishedFiles:
    """Write ``name.json`` and ``name~dev.json`` (both, as packagist does), only where bytes changed.

    Full security advisories, when known, go in the stable file as packagist puts its partial ones.
    """
    tagged, dev = split_dev(entries)
    etags: dict[str, str] = {}
    written = 0
    for suffix, versions in (("", tagged), ("~dev", dev)):
        body = dump_p2(name, versions, advisories if not suffix else None)
        path = p2_path(name, dev=bool(suffix))
        if store.put_if_changed(path, body, known_etag=known_etags.get(suffix)):
            written += 1
        etags[suffix] = md5_etag(body)
    return PublishedFiles(etags, written)


def metadata_url(repository_url: str) -> str:
    """``/bucket/prefix/p2/%package%.json``: path-absolute, so it resolves on any host serving the repo."""
    path = urlsplit(repository_url).path.rstrip("/")
    return f"{path}/p2/%package%.json"


def build_root(repository_url: str, available: Iterable[str], advisories: bool = False) -> bytes:
    """The root file: v2 metadata-url and the complete package list, nothing pointing upstream.

    With ``advisories`` it tells Composer that full advisories are inside the p2 files (no
    api-url), so ``composer audit`` works against the mirror alone.
    """
    document: dict[str, Any] = {
        "packages": [],
        "metadata-url": metadata_url(repository_url),
        "available-packages": sorted(set(available)),
    }
    if advisories:
        document["security-advisories"] = {"metadata": True}
    return json.dumps(document, indent=1, sort_keys=True).encode() + b"\n"


def read_available(store: S3Store) -> tuple[list[str], str | None]:
    stored = store.get(ROOT)
    if stored is None:
        return [], None
    try:
        document = json.loads(stored.body)
    except ValueError:
        logger.warning("published %s is not valid JSON; rebuilding it from this run", store.key(ROOT))
        return [], stored.etag
    return list(document.get("available-packages", [])), stored.etag


def publish_root(
    store: S3Store,
    repository_url: str,
    published: Iterable[str],
    removed: Iterable[str] = (),
    advisories: bool = False,
) -> tuple[bool, list[str]]:
    """Add this run's packages to the root, keeping every package already published.

    Compare-and-swap on the root's ETag: two runs publishing at once both land, neither undoes
    the other. Returns (written, available packages).
    """
    published = set(published)
    removed = set(removed) - published
    for _attempt in range(CAS_ATTEMPTS):
        current, etag = read_available(store)
        available = sorted((set(current) | published) - removed)
        body = build_root(repository_url, available, advisories)
        if etag is not None and etag == md5_etag(body):
            return False, available
        try:
            store.put(ROOT, body, cache_control=ROOT_CACHE, if_match=etag, if_none_match=etag is None)
            return True, available
        except ConflictError:
            logger.info("packages.json changed under us; merging again")
    raise ConflictError(f"could not update {store.key(ROOT)} after {CAS_ATTEMPTS} attempts")
