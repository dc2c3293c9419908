"""The S3 store: a few primitives over a boto3 client (from the Airflow S3Hook), keyed under the prefix."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO, TypeVar

from composer_mirror.errors import ConflictError, StoreError

logger = logging.getLogger(__name__)

ARCHIVE_CACHE = "public, max-age=31536000, immutable"
METADATA_CACHE = "public, max-age=300"
ROOT_CACHE = "public, max-age=60"
STATE_CACHE = "no-store"
JSON = "application/json"
ZIP = "application/zip"
# S3 answers these when it wants the client to slow down or try again.
MULTIPART_THRESHOLD = 64 * 1024**2
THROTTLE_CODES = frozenset({"SlowDown", "Throttling", "ThrottlingException", "RequestLimitExceeded", "503"})
RETRY_CODES = THROTTLE_CODES | {"InternalError", "500", "RequestTimeout", "ServiceUnavailable"}
MISSING_CODES = frozenset({"404", "NoSuchKey", "NotFound"})
PRECONDITION_CODES = frozenset({"412", "PreconditionFailed", "ConditionalRequestConflict", "409"})
# DeleteObjects takes at most this many keys per request.
DELETE_BATCH = 1000
# A capped GET reads its body in pieces of at most this size.
READ_CHUNK = 1024**2

T = TypeVar("T")


@dataclass(frozen=True)
class StoredObject:
    body: bytes
    etag: str


def md5_etag(data: bytes) -> str:
    """The ETag S3 gives a single-part upload: the quoted MD5 of its bytes."""
    return '"' + hashlib.md5(data).hexdigest() + '"'


def safe_key_part(path: str) -> str:
    """Refuse keys that could escape the prefix: everything written derives from untrusted names."""
    segments = path.split("/")
    if not path or path.startswith("/") or "\\" in path or any(s in ("", ".", "..") for s in segments):
        raise StoreError(f"refusing unsafe object key {path!r}")
    return path


class S3Store:
    """Objects under ``<bucket>/<prefix>``, with the error handling written once.

    404 means absent; throttling and 5xx are retried with backoff and logged with the setting to
    lower; a failed precondition becomes :class:`ConflictError`; anything else is raised.
    """

    def __init__(self, client: Any, bucket: str, prefix: str = "", *, attempts: int = 6, backoff: float = 0.3):
        self.client = client
        self.bucket = bucket
        self.prefix = prefix
        self.attempts = attempts
        self.backoff = backoff
        self.requests: Counter = Counter()
        self._lock = threading.Lock()

    def key(self, path: str) -> str:
        return self.prefix + safe_key_part(path)

    # --- primitives ---------------------------------------------------------------------
    def get(self, path: str) -> StoredObject | None:
        def call() -> StoredObject | None:
            response = self._get_object(path)
            return None if response is None else StoredObject(response["Body"].read(), response.get("ETag", ""))

        return self._call("GET", call)

    def get_capped(self, path: str, max_bytes: int) -> StoredObject | None:
        """GET the first ``max_bytes`` of an object's body at most; the rest is never read.

        For objects whose size cannot be trusted (a user's upload, which may change after a HEAD):
        ask for one byte more than allowed to tell a body at the limit from a longer one. A longer
        body's connection is closed rather than drained.
        """

        def call() -> StoredObject | None:
            response = self._get_object(path)
            if response is None:
                return None
            body, data = response["Body"], bytearray()
            try:
                while len(data) < max_bytes:
                    chunk = body.read(min(READ_CHUNK, max_bytes - len(data)))
                    if not chunk:
                        break
                    data += chunk
            finally:
                body.close()
            return StoredObject(bytes(data), response.get("ETag", ""))

        return self._call("GET", call)

    def _get_object(self, path: str) -> dict[str, Any] | None:
        """The GetObject response, its body unread, or None when there is no such object."""
        try:
            return self.client.get_object(Bucket=self.bucket, Key=self.key(path))
        except Exception as exc:
            if _code(exc) in MISSING_CODES:
                return None
            raise

    def head(self, path: str) -> dict[str, Any] | None:
        def call() -> dict[str, Any] | None:
            try:
                return self.client.head_object(Bucket=self.bucket, Key=self.key(path))
            except Exception as exc:
                if _code(exc) in MISSING_CODES:
                    return None
                raise

        return self._call("HEAD", call)

    def put(
        self,
        path: str,
        data: bytes | BinaryIO,
        *,
        content_type: str = JSON,
        cache_control: str = METADATA_CACHE,
        if_match: str | None = None,
        if_none_match: bool = False,
        metadata: dict[str, str] | None = None,
        kind: str = "PUT",
    ) -> str:
        """PUT bytes; with ``if_match``/``if_none_match`` it is a compare-and-swap that may conflict."""
        kwargs: dict[str, Any] = {
            "Bucket": self.bucket,
            "Key": self.key(path),
            "Body": data,
            "ContentType": content_type,
            "CacheControl": cache_control,
        }
        if if_match:
            kwargs["IfMatch"] = if_match
        if if_none_match:
            kwargs["IfNoneMatch"] = "*"
        if metadata:
            kwargs["Metadata"] = metadata

        def call() -> str:
            try:
                if hasattr(data, "seek"):
                    data.seek(0)  # a retried attempt sends the whole file again
                return self.client.put_object(**kwargs).get("ETag", md5_etag(data) if isinstance(data, bytes) else "")
            except Exception as exc:
                if _code(exc) in PRECONDITION_CODES:
                    raise ConflictError(f"{self.key(path)} was changed by another writer") from exc
                raise

        return self._call(kind, call)

    def upload_new_file(self, path: str, filename: str, *, content_type: str, cache_control: str) -> bool:
        """Store a local file unless an object already exists at ``path``; False when one did.

        Below the multipart threshold this is one create-only PUT streamed from the file; above
        it, a HEAD and then boto3's managed multipart transfer (bounded memory).
        """
        if os.path.getsize(filename) < MULTIPART_THRESHOLD:
            with open(filename, "rb") as body:
                return self.create(path, body, content_type=content_type, cache_control=cache_control)
        if self.head(path) is not None:
            return False
        self.upload_file(path, filename, content_type=content_type, cache_control=cache_control)
        return True

    def upload_file(self, path: str, filename: str, *, content_type: str, cache_control: str) -> None:
        """Upload a local file with boto3's managed transfer (multipart above 64 MB, bounded memory)."""
        from boto3.s3.transfer import TransferConfig

        config = TransferConfig(
            multipart_threshold=MULTIPART_THRESHOLD, multipart_chunksize=16 * 1024**2, max_concurrency=4
        )
        extra = {"ContentType": content_type, "CacheControl": cache_control}
        self._call(
            "PUT",
            lambda: self.client.upload_file(filename, self.bucket, self.key(path), ExtraArgs=extra, Config=config),
        )

    def list(self, path_prefix: str) -> Iterator[tuple[str, int]]:
        """Yield (path relative to the store prefix, size) for every object under ``path_prefix``."""
        token: str | None = None
        while True:
            kwargs = {"Bucket": self.bucket, "Prefix": self.prefix + path_prefix}
            if token:
                kwargs["ContinuationToken"] = token
            page = self._call("LIST", lambda kw=kwargs: self.client.list_objects_v2(**kw))
            for item in page.get("Contents", []):
                yield item["Key"][len(self.prefix) :], int(item.get("Size", 0))
            if not page.get("IsTruncated"):
                return
            token = page.get("NextContinuationToken")

    def delete(self, path: str) -> None:
        self._call("DELETE", lambda: self.client.delete_object(Bucket=self.bucket, Key=self.key(path)))

    def delete_many(self, paths: Iterable[str]) -> list[str]:
        """Delete objects with one DeleteObjects request per 1000 keys; returns the paths S3 refused.

        S3 reports per-key failures in the response body, not as an error, so they are returned
        for the caller to report; a failed request as a whole is raised like any other.
        """
        paths = list(paths)
        failed: list[str] = []
        for start in range(0, len(paths), DELETE_BATCH):
            objects = [{"Key": self.key(path)} for path in paths[start : start + DELETE_BATCH]]
            response = self._call(
                "DELETE",
                lambda objects=objects: self.client.delete_objects(
                    Bucket=self.bucket, Delete={"Objects": objects, "Quiet": True}
                ),
            )
            failed.extend(error["Key"][len(self.prefix) :] for error in response.get("Errors", []))
        return failed

    # --- built on the primitives --------------------------------------------------------
    def get_json(self, path: str) -> Any | None:
        stored = self.get(path)
        if stored is None:
            return None
        try:
            return json.loads(stored.body)
        except ValueError as exc:
            raise StoreError(f"{self.key(path)} is not valid JSON: {exc}") from exc

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

        ``known_etag`` (from the mirror's state) decides without asking S3. Without it, a
        create-only PUT (``If-None-Match: *``) writes a new object in one request; only when an
        object is already there is its ETag asked for. Returns True when the object was written.
        """
        etag = md5_etag(data)
        if known_etag is None:
            if self.create(path, data, content_type=content_type, cache_control=cache_control):
                return True
            head = self.head(path)
            known_etag = head.get("ETag") if head else None
        if known_etag == etag:
            return False
        self.put(path, data, content_type=content_type, cache_control=cache_control)
        return True

    def create(self, path: str, body: bytes | BinaryIO, *, content_type: str, cache_control: str) -> bool:
        """PUT only if no object exists at ``path`` (one request); False when one already does.

        Counted as CREATE in request_counts: a refused create writes nothing.
        """
        try:
            self.put(
                path, body, content_type=content_type, cache_control=cache_control, if_none_match=True, kind="CREATE"
            )
        except ConflictError:
            return False
        return True

    def request_counts(self) -> dict[str, int]:
        with self._lock:
            return dict(self.requests)

    def _call(self, kind: str, call: Callable[[], T]) -> T:
        for attempt in range(self.attempts):
            with self._lock:
                self.requests[kind] += 1
            try:
                return call()
            except ConflictError:
                raise
            except Exception as exc:
                code = _code(exc)
                if code not in RETRY_CODES or attempt + 1 == self.attempts:
                    raise StoreError(f"S3 {kind} failed ({code or type(exc).__name__}): {exc}") from exc
                if code in THROTTLE_CODES:
                    logger.warning(
                        "S3 throttled a %s (%s); retrying. Lower composer_mirror_concurrency if this persists",
                        kind,
                        code,
                    )
                time.sleep(random.uniform(0, self.backoff * 2**attempt))
        raise AssertionError("unreachable")


def _code(exc: BaseException) -> str:
    """The S3 error code of a botocore ClientError (or '' for anything else).

    boto3's managed transfers (upload_file) raise S3UploadFailedError with the ClientError only as
    its context: the chain is followed, or a throttled archive upload would never be retried.
    """
    current: BaseException | None = exc
    for _depth in range(5):
        if current is None:
            break
        response = getattr(current, "response", None)
        if isinstance(response, dict):
            error = response.get("Error", {})
            return str(error.get("Code") or response.get("ResponseMetadata", {}).get("HTTPStatusCode", ""))
        current = current.__cause__ or current.__context__
    return ""
