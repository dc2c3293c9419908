"""An in-memory backend with S3's semantics: for model-based tests and dry experiments.

It honours the contract exactly as S3 does (and as the conformance tests check against a real S3
endpoint): ``If-Match`` and ``If-None-Match: *`` are evaluated atomically with the write, ETags are
the quoted MD5 of the bytes, a listing is in key order, a missing object is ``None``. Thousands of
interleavings of the mirror's writers then run in seconds instead of hours.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import BinaryIO, Unpack

from composer_mirror.errors import ConflictError
from composer_mirror.store.base import ObjectInfo, Put, PutOptions, Store, StoredObject, md5_etag, require_etag


@dataclass(frozen=True)
class _Object:
    body: bytes
    etag: str
    last_modified: datetime
    cache_control: str
    content_type: str
    metadata: dict[str, str]


class MemoryStore(Store):
    """Objects in a dict under a lock; ``clock`` gives Last-Modified (a test can move time)."""

    def __init__(self, prefix: str = "", clock: Callable[[], datetime] | None = None) -> None:
        self.prefix = prefix
        self.bucket = "memory"
        self.clock = clock or (lambda: datetime.now(UTC))
        self.objects: dict[str, _Object] = {}
        self.requests: Counter[str] = Counter()
        self._lock = threading.Lock()

    def _count(self, kind: str) -> None:
        self.requests[kind] += 1

    def get(self, path: str) -> StoredObject | None:
        key = self.key(path)
        with self._lock:
            self._count("GET")
            found = self.objects.get(key)
        return StoredObject(found.body, found.etag) if found else None

    def get_capped(self, path: str, max_bytes: int) -> StoredObject | None:
        stored = self.get(path)
        return StoredObject(stored.body[:max_bytes], stored.etag) if stored is not None else None

    def head(self, path: str) -> ObjectInfo | None:
        key = self.key(path)
        with self._lock:
            self._count("HEAD")
            found = self.objects.get(key)
        if found is None:
            return None
        return ObjectInfo(
            path,
            len(found.body),
            found.etag,
            found.last_modified,
            found.cache_control,
            found.content_type,
            dict(found.metadata),
        )

    def put(self, path: str, data: bytes | BinaryIO, **options: Unpack[PutOptions]) -> str:
        put = Put.of(options)
        key = self.key(path)
        require_etag(key, put.if_match)
        body = data if isinstance(data, bytes) else _read_all(data)
        with self._lock:
            self._count(put.kind)
            current = self.objects.get(key)
            if put.if_none_match and current is not None:
                raise ConflictError(f"{key} already exists")
            if put.if_match is not None and (current is None or current.etag != put.if_match):
                raise ConflictError(f"{key} was changed by another writer")
            etag = md5_etag(body)
            stored = _Object(body, etag, self.clock(), put.cache_control, put.content_type, _lower_keys(put.metadata))
            self.objects[key] = stored
        return etag

    def stream(self, path: str, chunk_size: int) -> Iterator[bytes] | None:
        stored = self.get(path)
        if stored is None:
            return None
        # As botocore's iter_chunks: an empty object yields no chunk at all.
        return iter([stored.body[i : i + chunk_size] for i in range(0, len(stored.body), chunk_size)])

    def upload_file(self, path: str, filename: str, **options: Unpack[PutOptions]) -> None:
        with open(filename, "rb") as body:
            self.put(path, body, **options)

    def set_metadata(
        self, path: str, metadata: dict[str, str], *, content_type: str, cache_control: str, if_match: str
    ) -> None:
        """As S3's copy onto itself: same bytes and ETag (a single-part object's), new metadata and Last-Modified."""
        key = self.key(path)
        require_etag(key, if_match)
        with self._lock:
            self._count("COPY")
            current = self.objects.get(key)
            if current is None or current.etag != if_match:
                raise ConflictError(f"{key} was changed or deleted since it was read")
            self.objects[key] = _Object(
                current.body, current.etag, self.clock(), cache_control, content_type, _lower_keys(metadata)
            )

    def list_objects(self, path_prefix: str) -> Iterator[ObjectInfo]:
        start = self.prefix + path_prefix
        with self._lock:
            self._count("LIST")
            found = sorted((key, obj) for key, obj in self.objects.items() if key.startswith(start))
        for key, obj in found:
            yield ObjectInfo(key[len(self.prefix) :], len(obj.body), obj.etag, obj.last_modified)

    def delete_many(self, paths: Iterable[str]) -> list[str]:
        keys = [self.key(path) for path in paths]
        with self._lock:
            self._count("DELETE")
            for key in keys:
                self.objects.pop(key, None)
        return []

    def request_counts(self) -> dict[str, int]:
        with self._lock:
            return dict(self.requests)


def _lower_keys(metadata: dict[str, str] | None) -> dict[str, str]:
    """S3 keeps user metadata keys in lower case (they travel as x-amz-meta-* headers)."""
    return {name.lower(): value for name, value in (metadata or {}).items()}


def _read_all(stream: BinaryIO) -> bytes:
    if hasattr(stream, "seek"):
        stream.seek(0)
    return stream.read()
