"""The upstream client: the only code that requests anything from the upstream or an archive host.

Each request passes the fetch policy (:mod:`.policy`) at every redirect hop, waits for a slot of
its host (a bound on concurrent requests per origin, however many threads ask), goes out over the
pinned session (:mod:`.transport`) with credentials for the upstream's own origin only, and is
retried while it fails transiently (:mod:`.retries`).

Every response, headers and body, must be complete within its transfer deadline, which is enforced
on each read of the socket (:mod:`.deadline`), so a server trickling bytes just inside the read
timeout cannot hold a request, or the per-host slot it takes, past it.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import IO, TypeVar, cast
from urllib.parse import urljoin

import requests

from composer_mirror.composer_format import origin_of
from composer_mirror.errors import UpstreamError
from composer_mirror.upstream.deadline import transfer_deadline
from composer_mirror.upstream.policy import FetchPolicy
from composer_mirror.upstream.redaction import redact
from composer_mirror.upstream.retries import RetryPolicy, Transient, raise_for_status, with_retries
from composer_mirror.upstream.transport import connecting_only_to, proxies_for, upstream_session

MAX_REDIRECTS = 5
CHUNK = 1024 * 1024

T = TypeVar("T")


@dataclass(frozen=True)
class Fetched:
    """A metadata response: 200 with a body, 304 not modified, or 404 absent."""

    status: int
    body: bytes = b""
    etag: str | None = None
    last_modified: str | None = None


@dataclass(frozen=True)
class Downloaded:
    """An archive streamed to a local file, with the digests computed while it streamed."""

    path: str
    size: int
    sha1: str
    sha256: str
    url: str


@dataclass
class ClientStats:
    """Counters a run reports; updated from many threads, so guarded by a lock."""

    counts: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, key: str, amount: int = 1) -> None:
        with self.lock:
            self.counts[key] += amount

    def as_dict(self) -> dict[str, int]:
        with self.lock:
            return dict(self.counts)


class UpstreamClient:
    """Talks to the upstream repository and the archive hosts it points at.

    One ``requests.Session`` pools connections for all threads of a task; a semaphore per host
    bounds concurrency however many threads ask. Credentials are attached only to requests for
    the upstream's own origin, never to a redirect that leaves it.
    """

    def __init__(
        self,
        policy: FetchPolicy,
        *,
        concurrency: int = 10,
        auth: tuple[str, str] | str | None = None,
        retry: RetryPolicy | None = None,
        timeout: tuple[float, float] = (10.0, 60.0),
        max_metadata_bytes: int = 20 * 1024 * 1024,
        transfer_seconds: float = 1800.0,
    ) -> None:
        self.policy = policy
        # Longest one response may take, from sending the request to its body's last byte (metadata
        # gets a tenth); each socket read waits at most what is left, so trickling servers are cut off.
        self.transfer_seconds = transfer_seconds
        self.concurrency = concurrency
        self.retry = retry or RetryPolicy()
        self.timeout = timeout
        self.max_metadata_bytes = max_metadata_bytes
        self.stats = ClientStats()
        self._auth = auth
        self._slots: dict[tuple[str, str, int], threading.BoundedSemaphore] = {}
        self._slots_lock = threading.Lock()
        self.session = upstream_session(concurrency)

    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> UpstreamClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- metadata -------------------------------------------------------------------------
    def get_metadata(
        self,
        url: str,
        etag: str | None = None,
        last_modified: str | None = None,
        validate: Callable[[bytes], object] | None = None,
        accept_statuses: tuple[int, ...] = (),
    ) -> Fetched:
        """GET a JSON document, conditionally when validators are known.

        304 means unchanged, 404 (and 410) absent; other statuses are retried when transient
        and raised as :class:`UpstreamError` otherwise. The body is capped at max_metadata_bytes.
        ``validate`` checks a 200 body (valid JSON, the right package); when it raises ValueError
        the body is treated like a truncated transfer and fetched again. ``accept_statuses`` are
        returned with their body instead of raised (the changes feed answers 400 with a cursor).
        """
        headers = {}
        if etag:
            headers["If-None-Match"] = etag
        if last_modified:
            headers["If-Modified-Since"] = last_modified

        def attempt() -> Fetched:
            with self._request(url, headers, self.transfer_seconds / 10) as response:
                status = response.status_code
                if status in (304, 404, 410):
                    self.stats.add(f"metadata_{status}")
                    return Fetched(404 if status == 410 else status)
                if status not in accept_statuses:
                    raise_for_status(response, url)
                body = _read_capped(response, self.max_metadata_bytes, url)
                if validate is not None:
                    try:
                        validate(body)
                    except ValueError as exc:
                        self.stats.add("metadata_invalid")
                        raise Transient(200, None, str(exc)) from exc
                self.stats.add(f"metadata_{status}")
                self.stats.add("metadata_bytes", len(body))
                return Fetched(status, body, response.headers.get("ETag"), response.headers.get("Last-Modified"))

        return self._with_retries(url, attempt)

    def get_json(self, url: str) -> object:
        """GET a JSON document unconditionally (the root, list.json); 404 is an error here."""
        fetched = self.get_metadata(url)
        if fetched.status != 200:
            raise UpstreamError(f"{redact(url)} answered {fetched.status}", url=redact(url), status=fetched.status)
        try:
            return json.loads(fetched.body)
        except ValueError as exc:
            raise UpstreamError(f"{redact(url)} is not valid JSON: {exc}", url=redact(url)) from exc

    # --- archives -------------------------------------------------------------------------
    def download(self, url: str, out: IO[bytes], *, max_bytes: int) -> Downloaded:
        """Stream an archive into ``out`` (a temporary file), hashing as it goes.

        The file is truncated before each attempt, so a retry never appends to a partial body.
        """

        def attempt() -> Downloaded:
            out.seek(0)
            out.truncate()
            sha1, sha256, size = hashlib.sha1(), hashlib.sha256(), 0
            with self._request(url, {}, self.transfer_seconds) as response:
                raise_for_status(response, url)
                try:
                    declared = int(response.headers.get("Content-Length") or 0)
                except ValueError:
                    declared = 0  # a malformed header from an untrusted server: the streamed size is still capped
                if declared > max_bytes:
                    raise UpstreamError(
                        f"{redact(url)} is {declared} bytes, over the {max_bytes} limit", url=redact(url)
                    )
                for chunk in response.iter_content(CHUNK):
                    size += len(chunk)
                    if size > max_bytes:
                        raise UpstreamError(
                            f"{redact(url)} exceeds the {max_bytes} byte archive limit", url=redact(url)
                        )
                    sha1.update(chunk)
                    sha256.update(chunk)
                    out.write(chunk)
                final_url = response.url
            out.flush()
            self.stats.add("archives_downloaded")
            self.stats.add("archive_bytes", size)
            return Downloaded(out.name, size, sha1.hexdigest(), sha256.hexdigest(), final_url)

        return self._with_retries(url, attempt)

    # --- plumbing -------------------------------------------------------------------------
    @contextmanager
    def _request(self, url: str, headers: dict[str, str], seconds: float) -> Iterator[requests.Response]:
        """One logical GET: follows redirects by hand so that every hop passes the fetch policy.

        Each hop's response, headers and body, must be complete ``seconds`` after the hop starts,
        connecting included but not the wait for a per-host slot, or
        :class:`.deadline.TransferDeadlinePassed` is raised.
        """
        current = url
        for _hop in range(MAX_REDIRECTS + 1):
            addresses = self.policy.check(current) or ()  # a subclass allowing without a check returns None
            with self._slot(current), connecting_only_to(addresses), transfer_deadline(redact(url), seconds):
                response = self.session.get(
                    current,
                    # None disables a proxy for one request: requests accepts it, its annotation does not say so.
                    proxies=cast(dict[str, str], proxies_for(current, self.session.proxies)),
                    headers=headers,
                    auth=self._auth_for(current),
                    timeout=self.timeout,
                    allow_redirects=False,
                    stream=True,
                )
                if response.is_redirect and response.headers.get("Location"):
                    current = urljoin(current, response.headers["Location"])
                    response.close()
                    self.stats.add("redirects")
                    continue
                try:
                    response.url = current
                    yield response
                finally:
                    response.close()
                return
        raise UpstreamError(f"{redact(url)}: more than {MAX_REDIRECTS} redirects", url=redact(url))

    def _auth_for(self, url: str) -> requests.auth.AuthBase | tuple[str, str] | None:
        if self._auth is None or not self.policy.is_upstream(url):
            return None
        if isinstance(self._auth, str):
            return _BearerAuth(self._auth)
        return self._auth

    @contextmanager
    def _slot(self, url: str) -> Iterator[None]:
        key = origin_of(url)
        with self._slots_lock:
            slot = self._slots.setdefault(key, threading.BoundedSemaphore(self.concurrency))
        with slot:
            yield

    def _with_retries(self, url: str, attempt_fn: Callable[[], T]) -> T:
        # Counted only when another attempt follows, so "retries" is what was really retried.
        return with_retries(self.retry, url, attempt_fn, on_retry=lambda: self.stats.add("retries"))


class _BearerAuth(requests.auth.AuthBase):
    def __init__(self, token: str) -> None:
        self.token = token

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self.token}"
        return request


def _read_capped(response: requests.Response, limit: int, url: str) -> bytes:
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_content(CHUNK):
        size += len(chunk)
        if size > limit:
            raise UpstreamError(f"{redact(url)} exceeds the {limit} byte metadata limit", url=redact(url))
        chunks.append(chunk)
    return b"".join(chunks)
