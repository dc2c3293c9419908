"""The S3 backend of the store: the primitives over a boto3 client (from the Airflow S3Hook), keyed
under the prefix, with S3's error codes mapped onto the contract's (absent, conflict, retried)."""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from functools import partial
from typing import Any, BinaryIO, TypeVar, Unpack

from composer_mirror.errors import ConflictError, StoreError
from composer_mirror.store.base import (
    MULTIPART_THRESHOLD,
    ObjectInfo,
    Put,
    PutOptions,
    Store,
    StoredObject,
    md5_etag,
    require_etag,
)

logger = logging.getLogger(__name__)

# S3 answers these when it wants the client to slow down or try again.
THROTTLE_CODES = frozenset({"SlowDown", "Throttling", "ThrottlingException", "RequestLimitExceeded", "503"})
RETRY_CODES = THROTTLE_CODES | {"InternalError", "500", "RequestTimeout", "ServiceUnavailable"}
MISSING_CODES = frozenset({"404", "NoSuchKey", "NotFound"})
PRECONDITION_CODES = frozenset({"412", "PreconditionFailed", "ConditionalRequestConflict", "409"})
# DeleteObjects takes at most this many keys per request.
DELETE_BATCH = 1000
# A capped GET reads its body in pieces of at most this size.
READ_CHUNK = 1024**2

T = TypeVar("T")


class S3Store(Store):
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
        self.requests: Counter[str] = Counter()
        self._lock = threading.Lock()

    # --- primitives ---------------------------------------------------------------------
    def get(self, path: str) -> StoredObject | None:
        key = self.key(path)  # an unsafe key is refused before it counts as a request

        def call() -> StoredObject | None:
            response = self._get_object(key)
            return None if response is None else StoredObject(response["Body"].read(), response.get("ETag", ""))

        return self._call("GET", call)

    def get_capped(self, path: str, max_bytes: int) -> StoredObject | None:
        """GET the first ``max_bytes`` of an object's body at most; the rest is never read.

        For objects whose size cannot be trusted (a user's upload, which may change after a HEAD):
        ask for one byte more than allowed to tell a body at the limit from a longer one. A longer
        body's connection is closed rather than drained.
        """
        key = self.key(path)

        def call() -> StoredObject | None:
            response = self._get_object(key)
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

    def _get_object(self, key: str) -> dict[str, Any] | None:
        """The GetObject response, its body unread, or None when there is no such object."""
        try:
            return self.client.get_object(Bucket=self.bucket, Key=key)
        except Exception as exc:
            if _code(exc) in MISSING_CODES:
                return None
            raise

    def head(self, path: str) -> ObjectInfo | None:
        key = self.key(path)

        def call() -> ObjectInfo | None:
            try:
                response = self.client.head_object(Bucket=self.bucket, Key=key)
            except Exception as exc:
                if _code(exc) in MISSING_CODES:
                    return None
                raise
            return ObjectInfo(
                path,
                int(response.get("ContentLength", 0)),
                response.get("ETag", ""),
                response.get("LastModified"),
                response.get("CacheControl"),
                response.get("ContentType"),
                dict(response.get("Metadata") or {}),
            )

        return self._call("HEAD", call)

    def stream(self, path: str, chunk_size: int) -> Iterator[bytes] | None:
        """The object's bytes in chunks (archives can be hundreds of MB); None when it is absent."""
        key = self.key(path)

        def call() -> Any:
            try:
                return self.client.get_object(Bucket=self.bucket, Key=key)["Body"]
            except Exception as exc:
                if _code(exc) in MISSING_CODES:
                    return None
                raise

        body = self._call("GET", call)
        if body is None:
            return None

        def chunks() -> Iterator[bytes]:
            try:
                yield from body.iter_chunks(chunk_size)
            finally:
                body.close()

        return chunks()

    def put(self, path: str, data: bytes | BinaryIO, **options: Unpack[PutOptions]) -> str:
        """PUT bytes; with ``if_match``/``if_none_match`` it is a compare-and-swap that may conflict."""
        put = Put.of(options)
        key = self.key(path)
        if_match = put.if_match
        require_etag(key, if_match)
        kwargs: dict[str, Any] = {
            "Bucket": self.bucket,
            "Key": key,
            "Body": data,
            "ContentType": put.content_type,
            "CacheControl": put.cache_control,
        }
        if if_match is not None:
            kwargs["IfMatch"] = if_match
        if put.if_none_match:
            kwargs["IfNoneMatch"] = "*"
        if put.metadata:
            kwargs["Metadata"] = put.metadata

        def call() -> str:
            try:
                if hasattr(data, "seek"):
                    data.seek(0)  # a retried attempt sends the whole file again
                # An answer without an ETag (stripped on the way): the MD5 S3 gives a single-part
                # upload. A wrong guess fails the If-Match it is later sent as; it overwrites nothing.
                return self.client.put_object(**kwargs).get("ETag", md5_etag(data) if isinstance(data, bytes) else "")
            except Exception as exc:
                code = _code(exc)
                # If-Match on a key deleted since it was read is answered 404 NoSuchKey, not 412: it
                # is the same lost race (compare_and_swap reads again and finds the object absent).
                if code in PRECONDITION_CODES or (if_match is not None and code in MISSING_CODES):
                    raise ConflictError(f"{key} was changed by another writer") from exc
                raise

        return self._call(put.kind, call)

    def upload_file(self, path: str, filename: str, **options: Unpack[PutOptions]) -> None:
        """Upload a local file with boto3's managed transfer (multipart above 64 MB, bounded memory)."""
        from boto3.s3.transfer import TransferConfig

        key = self.key(path)
        config = TransferConfig(
            multipart_threshold=MULTIPART_THRESHOLD, multipart_chunksize=16 * 1024**2, max_concurrency=4
        )
        put = Put.of(options)
        extra: dict[str, Any] = {"ContentType": put.content_type, "CacheControl": put.cache_control}
        if put.metadata:
            extra["Metadata"] = put.metadata
        self._call("PUT", lambda: self.client.upload_file(filename, self.bucket, key, ExtraArgs=extra, Config=config))

    def set_metadata(
        self, path: str, metadata: dict[str, str], *, content_type: str, cache_control: str, if_match: str
    ) -> None:
        """Replace an object's user metadata, its bytes untouched: a server-side copy onto its own key.

        S3 cannot edit metadata, only write it with the object; copying the object onto itself
        with ``MetadataDirective=REPLACE`` does that inside S3, no byte through the client. REPLACE
        drops whatever is not given again, hence ``content_type`` and ``cache_control``. The copy
        is conditional on the source's ETag (``CopySourceIfMatch``), so metadata describing the
        bytes a caller read never lands on other bytes; a changed or deleted object is a
        :class:`ConflictError`; an empty ``if_match`` is refused before the copy is sent. It is a
        write: Last-Modified changes (and a multipart object's ETag, which a single copy recomputes).
        """
        key = self.key(path)
        require_etag(key, if_match)

        def call() -> None:
            try:
                self.client.copy_object(
                    Bucket=self.bucket,
                    Key=key,
                    CopySource={"Bucket": self.bucket, "Key": key},
                    CopySourceIfMatch=if_match,
                    MetadataDirective="REPLACE",
                    Metadata=metadata,
                    ContentType=content_type,
                    CacheControl=cache_control,
                )
            except Exception as exc:
                if _code(exc) in PRECONDITION_CODES | MISSING_CODES:
                    raise ConflictError(f"{key} was changed or deleted since it was read") from exc
                raise

        self._call("COPY", call)

    def list_objects(self, path_prefix: str) -> Iterator[ObjectInfo]:
        """Every object under ``path_prefix``, its path relative to the store prefix, in key order."""
        token: str | None = None
        while True:
            kwargs = {"Bucket": self.bucket, "Prefix": self.prefix + path_prefix}
            if token:
                kwargs["ContinuationToken"] = token
            page = self._call("LIST", partial(self.client.list_objects_v2, **kwargs))
            for item in page.get("Contents", []):
                yield ObjectInfo(
                    item["Key"][len(self.prefix) :],
                    int(item.get("Size", 0)),
                    item.get("ETag", ""),
                    item.get("LastModified"),
                )
            if not page.get("IsTruncated"):
                return
            token = page.get("NextContinuationToken")

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
                partial(self.client.delete_objects, Bucket=self.bucket, Delete={"Objects": objects, "Quiet": True}),
            )
            failed.extend(error["Key"][len(self.prefix) :] for error in response.get("Errors", []))
        return failed

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
