"""Deterministic zip archives shaped like GitHub zipballs, small in memory or huge and streamed.

Composer installs a dist by unzipping it, moving the single top directory's content into ``vendor/`` and
dumping the autoloader; the dump fails when a ``files`` or ``classmap`` path is missing. So every archive
holds the paths the version's ``autoload`` and ``bin`` name. Fixed timestamps make the bytes (and
therefore sha1 shasums) reproducible run after run.

Large archives (``size`` set) are generated on the fly: a stored (uncompressed) zip whose payload repeats
a 1 MiB pseudo-random block, so a 1 GB download costs no memory and no upfront pass; the payload CRC is
computed with zlib's crc32_combine algorithm in O(log n).
"""

from __future__ import annotations

import hashlib
import io
import json
import random
import struct
import zipfile
import zlib
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field
from threading import Lock
from typing import Any

FIXED_DATE_TIME = (2020, 1, 1, 0, 0, 0)
_DOS_TIME = 0
_DOS_DATE = ((2020 - 1980) << 9) | (1 << 5) | 1
_BLOCK_SIZE = 1 << 20
_MAX_STREAMED = 0xFFFFFFFF - 1  # no zip64: keeps the hand-written format simple
FILE_MODE = 0o100644
EXEC_MODE = 0o100755
DIR_MODE = 0o040755


@dataclass(frozen=True)
class ArchiveSpec:
    """Everything that determines an archive's bytes, snapshotted when its reference was published.

    A commit's zipball does not change when the registry later edits metadata, hence the snapshot.
    """

    package: str
    reference: str
    manifest_json: str  # composer.json inside the archive, serialised compactly
    salt: int = 0  # bumped by retag so a rewritten tag has different bytes
    padding: int = 0  # README filler bytes, to make archives "a few KB"
    size: int | None = None  # total archive size when streamed

    @property
    def top_dir(self) -> str:
        """GitHub's ``<owner>-<repo>-<shortsha>/`` top directory."""
        return f"{self.package.replace('/', '-')}-{self.reference[:7]}/"


def make_spec(
    package: str,
    reference: str,
    entry: dict[str, Any],
    *,
    salt: int = 0,
    padding: int = 0,
    size: int | None = None,
) -> ArchiveSpec:
    """Snapshot the parts of a version entry that belong in the archive's composer.json (no version)."""
    manifest: dict[str, Any] = {"name": package}
    for key in ("description", "type", "license", "require", "autoload", "bin"):
        if key in entry:
            manifest[key] = entry[key]
    # compact here (the C encoder is fast; a registry makes thousands), pretty-printed in the zip
    text = json.dumps(manifest, ensure_ascii=False)
    return ArchiveSpec(package, reference, text, salt, padding, size)


def _manifest_bytes(spec: ArchiveSpec) -> bytes:
    return (json.dumps(json.loads(spec.manifest_json), indent=4, ensure_ascii=False) + "\n").encode()


class Archive:
    """The interface the server streams from: a length, where the central directory starts, chunks."""

    length: int
    central_directory_offset: int

    def chunks(self, limit: int | None = None) -> Iterator[bytes]:
        """The archive's bytes in order, stopping after ``limit`` bytes when given."""
        raise NotImplementedError

    def read_all(self) -> bytes:
        """The whole archive; only sensible for small archives."""
        return b"".join(self.chunks())


@dataclass
class SmallArchive(Archive):
    """An archive built in memory (the default, a few KB)."""

    data: bytes

    def __post_init__(self) -> None:
        self.length = len(self.data)
        self.central_directory_offset = _central_directory_offset(self.data)

    def chunks(self, limit: int | None = None) -> Iterator[bytes]:
        """One chunk: small archives are sent in a single write."""
        yield self.data if limit is None else self.data[:limit]


@dataclass
class StreamedArchive(Archive):
    """A stored zip of ``size`` bytes generated chunk by chunk on each request."""

    spec: ArchiveSpec
    head: bytes = field(init=False)
    tail: bytes = field(init=False)
    block: bytes = field(init=False)
    payload_size: int = field(init=False)

    def __post_init__(self) -> None:
        size = self.spec.size
        assert size is not None
        self.block = random.Random(_seed(self.spec)).randbytes(_BLOCK_SIZE)
        top = self.spec.top_dir.encode()
        manifest = _manifest_bytes(self.spec)
        data_name = (self.spec.top_dir + "payload.bin").encode()
        fixed = _stored_overhead([top, top + b"composer.json", data_name]) + len(manifest)
        self.payload_size = size - fixed
        if self.payload_size < 0 or size > _MAX_STREAMED:
            raise ValueError(f"streamed archive size must be between {fixed} and {_MAX_STREAMED} bytes")
        entries = [
            (top, b"", zlib.crc32(b""), DIR_MODE, 0x10),
            (top + b"composer.json", manifest, zlib.crc32(manifest), FILE_MODE, 0),
        ]
        head = bytearray()
        central = bytearray()
        for name, content, crc, mode, dos_attr in entries:
            central += _central_header(name, crc, len(content), len(head), mode, dos_attr)
            head += _local_header(name, crc, len(content)) + content
        payload_crc = _repeated_crc(self.block, self.payload_size)
        central += _central_header(data_name, payload_crc, self.payload_size, len(head), FILE_MODE, 0)
        head += _local_header(data_name, payload_crc, self.payload_size)
        self.head = bytes(head)
        self.central_directory_offset = len(head) + self.payload_size
        eocd = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 3, 3, len(central), self.central_directory_offset, 0)
        self.tail = bytes(central) + eocd
        self.length = self.central_directory_offset + len(self.tail)

    def chunks(self, limit: int | None = None) -> Iterator[bytes]:
        """Header, payload blocks, central directory; trimmed at ``limit``."""
        remaining = self.length if limit is None else min(limit, self.length)
        for piece in self._pieces():
            if remaining <= 0:
                return
            if len(piece) > remaining:
                piece = piece[:remaining]
            remaining -= len(piece)
            yield piece

    def _pieces(self) -> Iterator[bytes]:
        yield self.head
        full, rest = divmod(self.payload_size, _BLOCK_SIZE)
        for _ in range(full):
            yield self.block
        if rest:
            yield self.block[:rest]
        yield self.tail


def build(spec: ArchiveSpec) -> Archive:
    """The archive for ``spec``: streamed when a size was set, otherwise a small in-memory zip."""
    if spec.size is not None:
        return StreamedArchive(spec)
    return SmallArchive(build_small_zip(spec))


def build_small_zip(spec: ArchiveSpec) -> bytes:
    """A deflated zip with composer.json, README and every autoload/bin path, byte-for-byte reproducible."""
    manifest = json.loads(spec.manifest_json)
    files: dict[str, tuple[bytes, int]] = {"composer.json": (_manifest_bytes(spec), FILE_MODE)}
    files.update(_autoload_files(spec.package, manifest))
    files["README.md"] = (_readme(spec), FILE_MODE)
    directories = {spec.top_dir}
    for path in files:
        parts = path.split("/")[:-1]
        for depth in range(1, len(parts) + 1):
            directories.add(spec.top_dir + "/".join(parts[:depth]) + "/")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for directory in sorted(directories):
            archive.writestr(_zip_info(directory, DIR_MODE), b"")
        for path in sorted(files):
            content, mode = files[path]
            archive.writestr(
                _zip_info(spec.top_dir + path, mode),
                content,
                compress_type=zipfile.ZIP_DEFLATED,
                compresslevel=6,
            )
    return buffer.getvalue()


def _zip_info(name: str, mode: int) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, FIXED_DATE_TIME)
    info.create_system = 3
    info.external_attr = (mode << 16) | (0x10 if name.endswith("/") else 0)
    return info


def _readme(spec: ArchiveSpec) -> bytes:
    text = f"# {spec.package}\n\nFixture archive of {spec.reference} (revision {spec.salt}).\n"
    if spec.padding:
        filler = random.Random(_seed(spec)).randbytes((spec.padding + 1) // 2).hex()[: spec.padding]
        text += "\n" + "\n".join(filler[i : i + 76] for i in range(0, len(filler), 76)) + "\n"
    return text.encode()


def _autoload_files(package: str, manifest: dict[str, Any]) -> dict[str, tuple[bytes, int]]:
    """Files so that ``composer dump-autoload`` finds every path the package declares."""
    files: dict[str, tuple[bytes, int]] = {}
    autoload = manifest.get("autoload") or {}
    for namespace, paths in (autoload.get("psr-4") or {}).items():
        for path in _as_list(paths):
            _add_class(files, package, _clean(path), namespace.strip("\\"))
    for prefix, paths in (autoload.get("psr-0") or {}).items():
        for path in _as_list(paths):
            sub = prefix.strip("\\").replace("\\", "/").rstrip("_").replace("_", "/")
            _add_class(files, package, _join(_clean(path), sub), prefix.strip("\\") if "\\" in prefix else "")
    for path in _as_list(autoload.get("classmap") or []):
        cleaned = _clean(path)
        if cleaned is not None and cleaned.endswith((".php", ".inc")):
            files[cleaned] = (b"<?php\n\n// classmap file of the fixture registry\n", FILE_MODE)
        else:
            _add_class(files, package, cleaned, "ComposerFixture")
    for path in _as_list(autoload.get("files") or []):
        cleaned = _clean(path)
        if cleaned:
            files[cleaned] = (b"<?php\n\n// autoloaded file of the fixture registry\n", FILE_MODE)
    for path in _as_list(manifest.get("bin") or []):
        cleaned = _clean(path)
        if cleaned:
            files[cleaned] = (b'#!/usr/bin/env php\n<?php\n\necho "fixture\\n";\n', EXEC_MODE)
    return files


def _add_class(files: dict[str, tuple[bytes, int]], package: str, directory: str | None, namespace: str) -> None:
    if directory is None:
        return
    digest = hashlib.sha1(f"{package}|{namespace}|{directory}".encode()).hexdigest()[:10]
    class_name = f"Fixture{digest}"
    header = f"namespace {namespace};\n\n" if namespace else ""
    source = f"<?php\n\n{header}final class {class_name}\n{{\n}}\n"
    files[_join(directory, class_name + ".php")] = (source.encode(), FILE_MODE)


def _as_list(value: Any) -> list[str]:
    return [value] if isinstance(value, str) else [v for v in value if isinstance(v, str)]


def _clean(path: str) -> str | None:
    """A relative path inside the archive, or None for anything escaping it (metadata is untrusted)."""
    path = path.replace("\\", "/").strip()
    while path.startswith("./"):
        path = path[2:]
    path = path.strip("/")
    if any(part == ".." for part in path.split("/")):
        return None
    return path


def _join(directory: str | None, name: str) -> str:
    return f"{directory}/{name}" if directory else name


def _seed(spec: ArchiveSpec) -> int:
    digest = hashlib.sha256(f"{spec.package}|{spec.reference}|{spec.salt}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


def _central_directory_offset(data: bytes) -> int:
    """Where the central directory starts, read from the end-of-central-directory record."""
    position = data.rfind(b"PK\x05\x06")
    if position < 0:
        raise ValueError("not a zip archive")
    return struct.unpack_from("<I", data, position + 16)[0]


def _local_header(name: bytes, crc: int, size: int) -> bytes:
    return struct.pack("<IHHHHHIIIHH", 0x04034B50, 10, 0, 0, _DOS_TIME, _DOS_DATE, crc, size, size, len(name), 0) + name


def _central_header(name: bytes, crc: int, size: int, offset: int, mode: int, dos_attr: int) -> bytes:
    return (
        struct.pack(
            "<IHHHHHHIIIHHHHHII",
            0x02014B50,
            (3 << 8) | 20,
            10,
            0,
            0,
            _DOS_TIME,
            _DOS_DATE,
            crc,
            size,
            size,
            len(name),
            0,
            0,
            0,
            0,
            (mode << 16) | dos_attr,
            offset,
        )
        + name
    )


def _stored_overhead(names: list[bytes]) -> int:
    return sum(30 + 46 + 2 * len(name) for name in names) + 22


def _repeated_crc(block: bytes, length: int) -> int:
    """CRC-32 of ``block`` repeated to ``length`` bytes without reading them (binary exponentiation)."""
    full, rest = divmod(length, len(block))
    result, result_len = 0, 0
    power_crc, power_len = zlib.crc32(block), len(block)
    while full:
        if full & 1:
            result = crc32_combine(result, power_crc, power_len) if result_len else power_crc
            result_len += power_len
        full >>= 1
        if full:
            power_crc = crc32_combine(power_crc, power_crc, power_len)
            power_len *= 2
    if rest:
        tail_crc = zlib.crc32(block[:rest])
        result = crc32_combine(result, tail_crc, rest) if result_len else tail_crc
    return result


def crc32_combine(crc1: int, crc2: int, len2: int) -> int:
    """zlib's crc32_combine: the CRC of A+B from crc(A), crc(B) and len(B)."""
    if len2 <= 0:
        return crc1
    odd = [0xEDB88320] + [1 << n for n in range(31)]
    even = _gf2_square(odd)
    odd = _gf2_square(even)
    while True:
        even = _gf2_square(odd)
        if len2 & 1:
            crc1 = _gf2_times(even, crc1)
        len2 >>= 1
        if not len2:
            break
        odd = _gf2_square(even)
        if len2 & 1:
            crc1 = _gf2_times(odd, crc1)
        len2 >>= 1
        if not len2:
            break
    return crc1 ^ crc2


def _gf2_times(matrix: list[int], vector: int) -> int:
    total, index = 0, 0
    while vector:
        if vector & 1:
            total ^= matrix[index]
        vector >>= 1
        index += 1
    return total


def _gf2_square(matrix: list[int]) -> list[int]:
    return [_gf2_times(matrix, row) for row in matrix]


class ArchiveCache:
    """A small LRU of built archives so repeated downloads do not rebuild zips, bounded in bytes."""

    def __init__(self, max_bytes: int = 64 << 20) -> None:
        self._items: OrderedDict[ArchiveSpec, Archive] = OrderedDict()
        self._bytes = 0
        self._max_bytes = max_bytes
        self._lock = Lock()

    def get(self, spec: ArchiveSpec) -> Archive:
        """The cached archive for ``spec``, building it on a miss (outside the lock)."""
        with self._lock:
            archive = self._items.get(spec)
            if archive is not None:
                self._items.move_to_end(spec)
                return archive
        archive = build(spec)
        cost = archive.length if isinstance(archive, SmallArchive) else _BLOCK_SIZE
        with self._lock:
            if spec not in self._items:
                self._items[spec] = archive
                self._bytes += cost
            while self._bytes > self._max_bytes and len(self._items) > 1:
                _, old = self._items.popitem(last=False)
                self._bytes -= old.length if isinstance(old, SmallArchive) else _BLOCK_SIZE
        return archive
