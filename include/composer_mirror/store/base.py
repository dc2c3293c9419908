"""The storage contract every backend honours, and what is built once on top of it.

A :class:`Store` holds objects under a key prefix and offers a few primitives: read, read the
metadata (:class:`ObjectInfo`), write with a precondition (``If-Match`` / ``If-None-Match``, the
compare-and-swap every writer relies on), stream a local file in, replace an object's metadata in
place, list, delete many. The
precondition failures become :class:`~composer_mirror.errors.ConflictError`; absent objects are
``None``. Everything the mirror does with storage goes through this contract, so a backend (S3
today, an in-memory one for model-based tests, GCS or Azure later) only implements the primitives.

:func:`compare_and_swap` is the one read-modify-write loop of the mirror: every object that more
than one writer may change (the catalog, state shards, package records, p2 files, the root) is
changed through it and never by a blind PUT. An ETag is what makes a write conditional, so an
empty one (a proxy or S3-compatible store that strips the header) is refused with
:class:`~composer_mirror.errors.StoreError` (:func:`require_etag`) rather than sent as no
precondition at all.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, BinaryIO, TypedDict, Unpack

from composer_mirror.errors import ConflictError, StoreError

logger = logging.getLogger(__name__)

ARCHIVE_CACHE = "public, max-age=31536000, immutable"
METADATA_CACHE = "public, max-age=300"
ROOT_CACHE = "public, max-age=60"
STATE_CACHE = "no-store"
JSON = "application/json"
ZIP = "application/zip"
# Above this size a file is uploaded in parts (bounded memory); below, in one create-only PUT.
MULTIPART_THRESHOLD = 64 * 1024**2
# Writers contending for one object: each retry re-reads and re-applies its change.
CAS_ATTEMPTS = 8


@dataclass(frozen=True)
class StoredObject:
    """An object's bytes and the ETag they were read with (the precondition for a later write)."""

    body: bytes
    etag: str


@dataclass(frozen=True)
class ObjectInfo:
    """What a HEAD or a listing says about an object, in the backend's neutral terms."""

    path: str
    size: int
    etag: str = ""
    last_modified: datetime | None = None
    cache_control: str | None = None
    content_type: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)


def md5_etag(data: bytes) -> str:
    """The ETag S3 gives a single-part upload: the quoted MD5 of its bytes."""
    return '"' + hashlib.md5(data).hexdigest() + '"'


def require_etag(key: str, etag: str | None) -> None:
    """Refuse an empty ETag as a write's precondition; None (no precondition asked for) passes.

    An empty ETag is one a read did not return: a proxy or an S3-compatible store stripped it.
    Sent as "no If-Match" it would overwrite whatever is stored; compared, it matches nothing and
    looks like a conflict that no retry resolves. Neither says what is wrong, so this does.
    """
    if etag is not None and not etag.strip():
        raise StoreError(
            f"{key}: the store returned no ETag for this object, so it cannot be written conditionally "
            "(If-Match) and is not written at all rather than overwritten blindly. A proxy in front of the "
            "bucket, or the S3-compatible store itself, strips ETag headers; the mirror needs them passed through."
        )


def safe_key_part(path: str) -> str:
    """Refuse keys that could escape the prefix: everything written derives from untrusted names."""
    segments = path.split("/")
    if not path or path.startswith("/") or "\\" in path or any(s in ("", ".", "..") for s in segments):
        raise StoreError(f"refusing unsafe object key {path!r}")
    return path


class PutOptions(TypedDict, total=False):
    """How to write an object: its headers, and the precondition that makes the write a compare-and-swap."""

    content_type: str
    cache_control: str
    if_match: str | None
    if_none_match: bool
    metadata: dict[str, str] | None
    # The name the request is counted under (CREATE for a create-only write).
    kind: str


@dataclass(frozen=True)
class Put:
    """:class:`PutOptions` with every default filled in, as a backend reads them."""

    content_type: str = JSON
    cache_control: str = METADATA_CACHE
    if_match: str | None = None
    if_none_match: bool = False
    metadata: dict[str, str] = field(default_factory=dict)
    kind: str = "PUT"

    @classmethod
    def of(cls, options: PutOptions) -> Put:
        filled: dict[str, Any] = {**options, "metadata": dict(options.get("metadata") or {})}
        return cls(**filled)


class Store(ABC):
    """Objects under a key prefix: the primitives a backend implements, and what is built on them once.

    Modules above the store type against this class; only the adapter builds a concrete backend.
    """

    prefix: str
    bucket: str

    @abstractmethod
    def get(self, path: str) -> StoredObject | None:
        """The object's bytes and ETag; None when it does not exist."""

    @abstractmethod
    def get_capped(self, path: str, max_bytes: int) -> StoredObject | None:
        """At most ``max_bytes`` of the object's bytes (the rest is never read); None when absent."""

    @abstractmethod
    def head(self, path: str) -> ObjectInfo | None:
        """What the object is without its bytes; None when it does not exist."""

    @abstractmethod
    def put(self, path: str, data: bytes | BinaryIO, **options: Unpack[PutOptions]) -> str:
        """Write the object; a failed precondition raises ConflictError. Returns the new ETag.

        An empty ``if_match`` raises StoreError before any request (:func:`require_etag`).
        """

    @abstractmethod
    def stream(self, path: str, chunk_size: int) -> Iterator[bytes] | None:
        """The object's bytes in chunks (archives can be hundreds of MB); None when absent."""

    @abstractmethod
    def upload_file(self, path: str, filename: str, **options: Unpack[PutOptions]) -> None:
        """Write a local file with bounded memory (in parts when large); no precondition."""

    @abstractmethod
    def list_objects(self, path_prefix: str) -> Iterator[ObjectInfo]:
        """Every object under ``path_prefix``, its path relative to the store prefix, in key order."""

    @abstractmethod
    def delete_many(self, paths: Iterable[str]) -> list[str]:
        """Delete the objects (a missing one is no error); returns the paths the backend refused."""

    @abstractmethod
    def set_metadata(
        self, path: str, metadata: dict[str, str], *, content_type: str, cache_control: str, if_match: str
    ) -> None:
        """Replace an object's user metadata, its bytes untouched, only if its ETag is still ``if_match``.

        An empty ``if_match`` raises StoreError before any request (:func:`require_etag`).
        """

    @abstractmethod
    def request_counts(self) -> dict[str, int]:
        """Requests made so far, by kind (GET, PUT, CREATE, HEAD, LIST, DELETE, ...)."""

    def key(self, path: str) -> str:
        return self.prefix + safe_key_part(path)

    def get_json(self, path: str) -> Any | None:
        stored = self.get(path)
        if stored is None:
            return None
        try:
            return json.loads(stored.body)
        except ValueError as exc:
            raise StoreError(f"{self.key(path)} is not valid JSON: {exc}") from exc

    def create(self, path: str, body: bytes | BinaryIO, **options: Unpack[PutOptions]) -> bool:
        """PUT only if no object exists at ``path`` (one request); False when one already does.

        Counted as CREATE in request_counts: a refused create writes nothing.
        """
        try:
            self.put(path, body, **(options | {"if_none_match": True, "kind": "CREATE"}))
        except ConflictError:
            return False
        return True

    def upload_new_file(self, path: str, filename: str, **options: Unpack[PutOptions]) -> bool:
        """Store a local file unless an object already exists at ``path``; False when one did.

        Below the multipart threshold this is one create-only PUT streamed from the file; above
        it, a HEAD and then the backend's managed upload (bounded memory).
        """
        if os.path.getsize(filename) < MULTIPART_THRESHOLD:
            with open(filename, "rb") as body:
                return self.create(path, body, **options)
        if self.head(path) is not None:
            return False
        self.upload_file(path, filename, **options)
        return True

    def put_if_changed(
        self,
        path: str,
        data: bytes,
        *,
        known_etag: str | None = None,
        content_type: str = JSON,
        cache_control: str = METADATA_CACHE,
    ) -> bool:
        """Write only when the bytes differ from what is stored, so Last-Modified stays stable.

        For objects only one writer owns (the upstream cache, reports): shared objects go through
        :func:`compare_and_swap`. ``known_etag`` decides without asking; without it, a create-only
        PUT writes a new object in one request, and only when one exists is its ETag asked for.
        An empty ETag (a store that returns none) says nothing about the bytes stored, so they are
        read and compared instead: taken for a difference, every run would rewrite the object.
        """
        etag = md5_etag(data)
        if known_etag is None:
            if self.create(path, data, content_type=content_type, cache_control=cache_control):
                return True
            head = self.head(path)
            known_etag = head.etag if head else None
        if known_etag is not None and not known_etag.strip():
            stored = self.get(path)
            if stored is not None and stored.body == data:
                return False
        elif known_etag == etag:
            return False
        self.put(path, data, content_type=content_type, cache_control=cache_control)
        return True

    def delete(self, path: str) -> None:
        failed = self.delete_many([path])
        if failed:
            raise StoreError(f"could not delete {self.key(path)}")


@dataclass(frozen=True)
class Swapped:
    """The outcome of :func:`compare_and_swap`: the object as it now is, and whether we wrote it."""

    body: bytes | None
    etag: str | None
    written: bool


def compare_and_swap(
    store: Store,
    path: str,
    change: Callable[[bytes | None], bytes | None],
    *,
    cache_control: str,
    content_type: str = JSON,
    attempts: int = CAS_ATTEMPTS,
) -> Swapped:
    """Read ``path``, apply ``change`` to its bytes (None: absent), write the result conditionally.

    The write carries ``If-Match`` with the ETag read (``If-None-Match: *`` when absent), so it
    lands only on the version ``change`` saw; when another writer got there first, the object is
    read again and ``change`` applied again to what that writer left. ``change`` must therefore
    be a merge (apply the same intent to any version), never an overwrite. It returns None, or
    the same bytes, for "nothing to change", and then nothing is written.

    An object read without an ETag cannot be written conditionally: the backend's ``put`` refuses
    the empty If-Match with StoreError (:func:`require_etag`), which is not retried.
    """
    for _attempt in range(attempts):
        current = store.get(path)
        before = current.body if current is not None else None
        after = change(before)
        if after is None or after == before:
            return Swapped(before, current.etag if current is not None else None, False)
        try:
            etag = store.put(
                path,
                after,
                content_type=content_type,
                cache_control=cache_control,
                if_match=current.etag if current is not None else None,
                if_none_match=current is None,
            )
        except ConflictError:
            logger.info("%s changed under us; merging again", store.key(path))
            continue
        return Swapped(after, etag, True)
    raise ConflictError(f"could not update {store.key(path)} after {attempts} attempts")
