"""Archives: download a dist, check it is a sane zip with the promised checksum, store it by content."""

from __future__ import annotations

import json
import logging
import os
import posixpath
import struct
import tempfile
import zipfile
from dataclasses import dataclass
from typing import IO, Any

from composer_mirror import deletion
from composer_mirror.errors import ArchiveError
from composer_mirror.json_record import JsonRecord
from composer_mirror.store import ARCHIVE_CACHE, STATE_CACHE, ZIP, Store
from composer_mirror.store.layout import archive_id, archive_marker_prefix, archive_path
from composer_mirror.upstream import UpstreamClient, redact

logger = logging.getLogger(__name__)

MAX_ZIP_ENTRIES = 100_000
CENTRAL_RECORD_ALLOWANCE = 1024
"""Bytes a central-directory record may take on average, to bound a directory's declared size.

A record is 46 bytes plus its path, extra fields and comment. A dist's records average about 100
bytes (``git archive`` of a repository under a top directory named after the commit), so ten times
that refuses no directory a ``MAX_ZIP_ENTRIES`` archive plausibly has. The bound matters because
zipfile reads the whole directory into memory at once.
"""
MAX_CENTRAL_DIRECTORY_BYTES = MAX_ZIP_ENTRIES * CENTRAL_RECORD_ALLOWANCE

# The records zipfile locates the central directory by (APPNOTE.TXT 4.3.12, 4.3.14-16), as it packs them.
_END = struct.Struct("<4s4H2LH")  # end of central directory record
_END64 = struct.Struct("<4sQ2H2L4Q")  # zip64 end of central directory record
_LOCATOR64 = struct.Struct("<4sLQL")  # zip64 end of central directory locator
_RECORD = struct.Struct("<4s4B4HL2L5H2L")  # central directory file header
_END_SIGNATURE = b"PK\x05\x06"
_END64_SIGNATURE = b"PK\x06\x06"
_LOCATOR64_SIGNATURE = b"PK\x06\x07"
_RECORD_SIGNATURE = b"PK\x01\x02"
_END_SEARCH = (1 << 16) + _END.size  # a comment of up to 64 KiB may follow the end record


@dataclass(frozen=True)
class ArchiveRecord(JsonRecord):
    """What the mirror knows about one stored archive of one version: in its journal marker, the
    package's record and the state shard."""

    version: str
    reference: str
    sha1: str
    sha256: str
    size: int
    source_url: str

    @property
    def path(self) -> str:
        return archive_path(self.sha256)


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
    The directory is sized up first (:func:`_check_directory`): zipfile builds an object per record
    before anything here can count them.
    """
    try:
        _check_directory(path, url)
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


@dataclass(frozen=True)
class _Directory:
    """The central directory as the end records declare it and where zipfile reads it."""

    entries: int
    size: int
    end: int  # where the directory ends: at the (zip64) end record, whatever offset is declared


def _check_directory(path: str, url: str) -> None:
    """Refuse a central directory that would cost memory out of proportion to ``MAX_ZIP_ENTRIES``.

    zipfile reads the declared directory whole and builds a ZipInfo per record it holds, trusting
    the size over the declared count, and records can all point at one local header (about 7 MiB
    of ZipInfos per MB of archive). So the declared count and size are checked against the limits,
    and the records are counted (without keeping them) so that no more than the declared count are
    there. Malformed end records raise ``zipfile.BadZipFile``, which the caller reports as not a zip.
    """
    with open(path, "rb") as fp:
        directory = _declared_directory(fp, os.fstat(fp.fileno()).st_size)
        if directory.entries > MAX_ZIP_ENTRIES:
            raise ArchiveError(f"{redact(url)} declares {directory.entries} entries, over the {MAX_ZIP_ENTRIES} limit")
        if directory.size > MAX_CENTRAL_DIRECTORY_BYTES:
            raise ArchiveError(
                f"{redact(url)} declares a central directory of {directory.size} bytes, over the "
                f"{MAX_CENTRAL_DIRECTORY_BYTES}-byte limit ({MAX_ZIP_ENTRIES} entries of "
                f"{CENTRAL_RECORD_ALLOWANCE} bytes)"
            )
        if directory.size > directory.end:
            raise zipfile.BadZipFile(
                f"its end record declares a central directory of {directory.size} bytes, "
                f"more than the {directory.end} bytes before it"
            )
        if _count_records(fp, directory) > directory.entries:
            raise ArchiveError(
                f"{redact(url)} has more central directory records than the {directory.entries} "
                "entries its end record declares"
            )


def _declared_directory(fp: IO[bytes], file_size: int) -> _Directory:
    """Find the end records the way zipfile does and return what they declare.

    The end record is the last 22 bytes when there is no comment, else the last signature within
    the last 64 KiB + 22 bytes; a zip64 locator right before it points at the zip64 end record, which
    zipfile looks for right before the locator. Later zipfile versions prefer the record the locator
    points at, so a locator pointing at another zip64 end record is refused: both versions then read
    the directory that ends at the record before the locator.
    """
    if file_size < _END.size:
        raise zipfile.BadZipFile("it is too short for an end of central directory record")
    fp.seek(file_size - _END.size)
    data = fp.read(_END.size)
    if data.startswith(_END_SIGNATURE) and data.endswith(b"\0\0"):
        location = file_size - _END.size
    else:
        tail_start = max(file_size - _END_SEARCH, 0)
        fp.seek(tail_start)
        tail = fp.read(_END_SEARCH)
        found = tail.rfind(_END_SIGNATURE)
        if found < 0 or found + _END.size > len(tail):
            raise zipfile.BadZipFile("it has no end of central directory record")
        data = tail[found : found + _END.size]
        location = tail_start + found
    _signature, _disk, _disk_start, _disk_entries, entries, size, _offset, _comment = _END.unpack(data)
    if location < _LOCATOR64.size:
        return _Directory(entries, size, location)
    fp.seek(location - _LOCATOR64.size)
    locator = _LOCATOR64.unpack(fp.read(_LOCATOR64.size))
    if locator[0] != _LOCATOR64_SIGNATURE:
        return _Directory(entries, size, location)
    record_at = location - _LOCATOR64.size - _END64.size
    if record_at < 0:
        raise zipfile.BadZipFile("its zip64 locator has no room for a zip64 end record before it")
    fp.seek(record_at)
    record = _END64.unpack(fp.read(_END64.size))
    if record[0] != _END64_SIGNATURE:
        raise zipfile.BadZipFile("its zip64 locator has no zip64 end record before it")
    pointed_at = locator[2]
    if pointed_at != record_at:
        fp.seek(pointed_at)
        if fp.read(len(_END64_SIGNATURE)) == _END64_SIGNATURE:
            raise zipfile.BadZipFile(
                f"its zip64 locator points at a zip64 end record at byte {pointed_at}, "
                "not at the one before the locator"
            )
    _signature, _length, _made_by, _needed, _disk, _disk_start, _disk_entries, entries, size, _offset = record
    return _Directory(entries, size, record_at)


def _count_records(fp: IO[bytes], directory: _Directory) -> int:
    """The records zipfile would parse from the directory, counted up to one more than declared.

    zipfile walks record headers until it has consumed the declared size; so does this, reading
    46 bytes a record and skipping its name, extra field and comment.
    """
    start = directory.end - directory.size
    position = count = 0
    while position < directory.size and count <= directory.entries:
        if position + _RECORD.size > directory.size:
            raise zipfile.BadZipFile("its central directory ends inside a record")
        fp.seek(start + position)
        header = _RECORD.unpack(fp.read(_RECORD.size))
        if header[0] != _RECORD_SIGNATURE:
            raise zipfile.BadZipFile(f"its central directory has no record at byte {start + position}")
        count += 1
        position += _RECORD.size + header[12] + header[13] + header[14]
    return count


def _check_symlink(name: str, target: bytes, url: str) -> None:
    text = target.decode("utf-8", "replace").replace("\\", "/")
    resolved = posixpath.normpath(posixpath.join(posixpath.dirname(name.replace("\\", "/")), text))
    if text.startswith("/") or (len(text) > 1 and text[1] == ":") or resolved == ".." or resolved.startswith("../"):
        raise ArchiveError(f"{redact(url)} has a symlink {name!r} pointing outside the archive ({text!r})")


def load_markers(store: Store, name: str) -> dict[str, ArchiveRecord]:
    """The journal of archives stored for a package, keyed by archive id (see state.archive_id)."""
    markers: dict[str, ArchiveRecord] = {}
    prefix = archive_marker_prefix(name)
    for info in store.list_objects(prefix):
        document = store.get_json(info.path)
        if document:
            markers[info.path[len(prefix) :].removesuffix(".json")] = ArchiveRecord.from_json(document)
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
    store.put(marker, json.dumps(record.to_json(), sort_keys=True).encode(), cache_control=STATE_CACHE)
    return record
