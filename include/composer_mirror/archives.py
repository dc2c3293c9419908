"""Archives: download a dist, check it is a sane zip with the promised checksum, store it by content."""

from __future__ import annotations

import json
import logging
import posixpath
import tempfile
import zipfile
from dataclasses import asdict, dataclass
from typing import Any

from composer_mirror import deletion
from composer_mirror.errors import ArchiveError
from composer_mirror.store import ARCHIVE_CACHE, STATE_CACHE, ZIP, Store
from composer_mirror.store.layout import archive_id, archive_marker_prefix, archive_path
from composer_mirror.upstream import UpstreamClient, redact

logger = logging.getLogger(__name__)

MAX_ZIP_ENTRIES = 100_000


@dataclass(frozen=True)
class ArchiveRecord:
    """What the mirror knows about one stored archive of one version."""

    version: str
    reference: str
    sha1: str
    sha256: str
    size: int
    source_url: str

    @property
    def path(self) -> str:
        return archive_path(self.sha256)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ArchiveRecord:
        return cls(**{key: data[key] for key in cls.__dataclass_fields__})


def digest_metadata(sha1: str, sha256: str) -> dict[str, str]:
    """The user metadata an archive carries: its digests, computed from the bytes before they were stored.

    With them a HEAD answers whether the stored object is the recorded archive (verify compares
    them with the record instead of reading hundreds of MB); user metadata rather than S3's own
    checksum headers, so any S3-compatible store keeps them.
    """
    return {"sha1": sha1, "sha256": sha256}


def check_zip(path: str, *, url: str) -> int:
    """Open the archive's central directory and check its entries; returns the entry count.

    A truncated download has no central directory and fails here; entries with absolute paths
    or ``..`` would escape the install directory on a careless client, so they are refused too,
    and so are symlinks pointing outside the archive (``unzip``, which Composer prefers, creates them).
    """
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            for info in archive.infolist()[:MAX_ZIP_ENTRIES]:
                if info.create_system == 3 and (info.external_attr >> 16) & 0o170000 == 0o120000:
                    with archive.open(info) as link:
                        _check_symlink(info.filename, link.read(4096), url)
    except (zipfile.BadZipFile, OSError, ValueError, RuntimeError, NotImplementedError) as exc:
        raise ArchiveError(f"{redact(url)} is not a valid zip archive: {exc}") from exc
    if len(names) > MAX_ZIP_ENTRIES:
        raise ArchiveError(f"{redact(url)} has {len(names)} entries, over the {MAX_ZIP_ENTRIES} limit")
    for name in names:
        parts = name.replace("\\", "/").split("/")
        if name.startswith(("/", "\\")) or ".." in parts or (len(name) > 1 and name[1] == ":"):
            raise ArchiveError(f"{redact(url)} has an unsafe entry path {name!r}")
    return len(names)


def _check_symlink(name: str, target: bytes, url: str) -> None:
    text = target.decode("utf-8", "replace").replace("\\", "/")
    resolved = posixpath.normpath(posixpath.join(posixpath.dirname(name.replace("\\", "/")), text))
    if text.startswith("/") or (len(text) > 1 and text[1] == ":") or resolved == ".." or resolved.startswith("../"):
        raise ArchiveError(f"{redact(url)} has a symlink {name!r} pointing outside the archive ({text!r})")


def load_markers(store: Store, name: str) -> dict[str, ArchiveRecord]:
    """The journal of archives stored for a package, keyed by archive id (see state.archive_id)."""
    markers: dict[str, ArchiveRecord] = {}
    prefix = archive_marker_prefix(name)
    for info in store.list(prefix):
        document = store.get_json(info.path)
        if document:
            markers[info.path[len(prefix) :].removesuffix(".json")] = ArchiveRecord.from_dict(document)
    return markers


def mirror_archive(
    store: Store,
    client: UpstreamClient,
    *,
    name: str,
    version: str,
    normalized: str,
    dist: dict[str, Any],
    max_bytes: int,
) -> ArchiveRecord:
    """Download one dist, verify it, upload it unless the same bytes are stored, journal it."""
    url = str(dist.get("url") or "")
    reference = str(dist.get("reference") or "")
    if dist.get("type") not in ("zip", None):
        raise ArchiveError(f"{name} {version}: dist type {dist.get('type')!r} is not zip")
    with tempfile.NamedTemporaryFile(prefix="composer-mirror-", suffix=".zip") as tmp:
        downloaded = client.download(url, tmp, max_bytes=max_bytes)
        expected = str(dist.get("shasum") or "").lower()
        if expected and expected != downloaded.sha1:
            raise ArchiveError(f"{name} {version}: sha1 {downloaded.sha1} does not match upstream shasum {expected}")
        check_zip(tmp.name, url=url)
        record = ArchiveRecord(version, reference, downloaded.sha1, downloaded.sha256, downloaded.size, redact(url))
        if not store.upload_new_file(
            record.path,
            tmp.name,
            content_type=ZIP,
            cache_control=ARCHIVE_CACHE,
            metadata=digest_metadata(record.sha1, record.sha256),
        ):
            # Taken back into use without a write: claimed first, so a prune deleting it meanwhile
            # either sees the claim and keeps it, or tells us to keep away.
            if not deletion.claim(store, record.path):
                raise ArchiveError(
                    f"{name} {version}: the stored archive {store.key(record.path)} is being pruned; "
                    "it is fetched again by the next run"
                )
            logger.debug("%s %s: identical archive already stored", name, version)
    marker = archive_marker_prefix(name) + archive_id(normalized, reference) + ".json"
    store.put(marker, json.dumps(record.to_dict(), sort_keys=True).encode(), cache_control=STATE_CACHE)
    return record
