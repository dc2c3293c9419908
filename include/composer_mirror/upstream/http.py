"""The upstream client: one pooled HTTP session with retries, per-host limits and a fetch policy.

The policy resolves every host it allows and the connection goes to an address it checked
(:class:`PinnedAdapter`): nothing resolves the name a second time, so a name cannot answer a
public address to the check and an internal one at connect time (DNS rebinding). Behind an
HTTP(S) proxy the proxy resolves and connects, so nothing is pinned: the policy still refuses,
by resolving here, a dist host or root-named endpoint with an internal address, but which
addresses a proxied request can reach is the proxy's egress policy. The proxy is handed the host
name, not an address, because proxies filter and log by name. Hosts NO_PROXY exempts are
connected to directly, pinned. Either way the worker needs DNS for the names it fetches.

Every response, headers and body, must be complete within its transfer deadline, which is enforced
on each read of the socket (:mod:`.deadline`), so a server trickling bytes just inside the read
timeout cannot hold a request, or the per-host slot it takes, past it.
"""

from __future__ import annotations

import email.utils
import hashlib
import ipaddress
import json
import logging
import random
import socket
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import IO, Any
from urllib.parse import SplitResult, urljoin, urlsplit, urlunsplit

import requests
import urllib3
from requests.utils import select_proxy

from composer_mirror.composer_format import origin_of
from composer_mirror.errors import RefusedURL, UpstreamError, redact_text
from composer_mirror.upstream.deadline import DeadlineAdapter, transfer_deadline

logger = logging.getLogger(__name__)

USER_AGENT = "composer-s3-mirror/1.0 (Composer repository mirror; see the operator contact of this mirror)"
# Statuses worth another try, and why: 408/425 the server gave up waiting; 429 rate limited
# (honour Retry-After); 500/502/503/504 the server or a proxy in front of it is failing for now.
RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
MAX_REDIRECTS = 5
CHUNK = 1024 * 1024


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
class RetryPolicy:
    """How often and how long to retry transient failures: exponential backoff with full jitter.

    Full jitter (a random wait up to the exponential bound) spreads the retries of many threads
    that failed together, instead of sending them back to a struggling upstream in step.
    """

    attempts: int = 5
    backoff: float = 0.5
    max_backoff: float = 30.0
    # A Retry-After longer than this fails the item instead of stalling the whole batch.
    max_retry_after: float = 120.0

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        if retry_after is not None:
            return min(retry_after, self.max_retry_after)
        return random.uniform(0, min(self.max_backoff, self.backoff * (2**attempt)))


@dataclass
class FetchPolicy:
    """Which URLs may be requested: the upstream's own origin, or https on an allowed dist host.

    Every redirect hop is checked again. Hosts other than the upstream's origin must not resolve
    to loopback, private or link-local addresses (the cloud metadata service lives at 169.254.169.254);
    the upstream's own origin, set by the operator, may (a registry on the internal network).
    ``endpoints`` are the URLs the upstream's root names (metadata-url, list, changes feed,
    advisories API); packagist serves some from another host, so their origins count as the
    upstream's for fetching (credentials still go to the upstream's own origin only).
    """

    upstream_url: str
    dist_hosts: tuple[str, ...] = ()
    resolve: bool = True
    endpoints: tuple[str, ...] = ()

    def check(self, url: str) -> tuple[str, ...]:
        """Refuse ``url`` unless it may be fetched; return the addresses its host resolved to.

        A direct connection goes to one of these and nowhere else (see :class:`PinnedAdapter`).
        Empty when the policy does not resolve (``resolve=False``, for tests without DNS).
        """
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise RefusedURL(f"refused {redact(url)}: not an absolute http(s) URL", url=redact(url))
        if _port(parts) == -1:
            raise RefusedURL(f"refused {redact(url)}: invalid port", url=redact(url))
        if _parsers_disagree(url, parts):
            # e.g. "http://169.254.169.254\\@upstream/": urlsplit sees the upstream, requests connects elsewhere.
            raise RefusedURL(f"refused {redact(url)}: ambiguous URL (parsers disagree on its origin)", url=redact(url))
        if self.is_upstream(url):
            return self._addresses(url, parts)
        host = parts.hostname.lower()
        # An endpoint the upstream's root names on another origin is untrusted like a dist host:
        # https only and never an internal address (a hostile root could name 169.254.169.254).
        endpoint = origin_of(url) in {origin_of(endpoint) for endpoint in self.endpoints}
        if parts.scheme != "https" or not (endpoint or host in {allowed.lower() for allowed in self.dist_hosts}):
            raise RefusedURL(
                f"refused {redact(url)}: only the upstream origin or https on composer_mirror_dist_hosts "
                f"({', '.join(self.dist_hosts) or 'none'}) may be fetched",
                url=redact(url),
            )
        addresses = self._addresses(url, parts)
        _refuse_internal_addresses(url, host, addresses)
        return addresses

    def is_upstream(self, url: str) -> bool:
        return origin_of(url) == origin_of(self.upstream_url)

    def _addresses(self, url: str, parts: SplitResult) -> tuple[str, ...]:
        """Resolved only once the URL is allowed: a refused host is never even looked up."""
        return _resolve(url, parts) if self.resolve else ()


def _parsers_disagree(url: str, parts: SplitResult) -> bool:
    """Whether the origin the policy checks (urlsplit) may differ from the one requests connects to (urllib3).

    Backslashes, whitespace and control characters are where the two parsers part ways; a URL
    with any of them, or whose origin urllib3 reads differently, is refused rather than guessed at.
    """
    if any(c == "\\" or c.isspace() or ord(c) < 0x20 or ord(c) == 0x7F for c in url):
        return True
    try:
        parsed = urllib3.util.parse_url(url)
    except ValueError:
        return True
    host = (parsed.host or "").lower().strip("[]")
    return (str(parsed.scheme or "").lower(), host, parsed.port) != (parts.scheme.lower(), parts.hostname, _port(parts))


class UnresolvedHost(RefusedURL):
    """The host did not resolve, so it was never requested; retried, as DNS failures often pass."""


def _resolve(url: str, parts: SplitResult) -> tuple[str, ...]:
    """The URL's host's addresses, in the order getaddrinfo prefers them, each once."""
    port = _port(parts) or (443 if parts.scheme == "https" else 80)
    try:
        infos = socket.getaddrinfo(parts.hostname, port, proto=socket.IPPROTO_TCP)
    except OSError as exc:
        raise UnresolvedHost(f"refused {redact(url)}: host does not resolve ({exc})", url=redact(url)) from exc
    return tuple(dict.fromkeys(str(info[4][0]) for info in infos))


def _refuse_internal_addresses(url: str, host: str, addresses: tuple[str, ...]) -> None:
    for address in map(ipaddress.ip_address, addresses):
        if not address.is_global:
            raise RefusedURL(f"refused {redact(url)}: {host} resolves to internal address {address}", url=redact(url))


# The addresses the fetch policy checked for the request being sent in this context (thread).
_CHECKED_ADDRESSES: ContextVar[tuple[str, ...]] = ContextVar("composer_mirror_checked_addresses", default=())


@contextmanager
def connecting_only_to(addresses: tuple[str, ...]) -> Iterator[None]:
    """Requests sent inside connect to the first of ``addresses`` (the policy's check) when they go direct."""
    token = _CHECKED_ADDRESSES.set(addresses)
    try:
        yield
    finally:
        _CHECKED_ADDRESSES.reset(token)


class PinnedAdapter(DeadlineAdapter):
    """Connects to the address the fetch policy checked instead of resolving the host name again.

    urllib3 resolves a name when it connects, and a name that answered a public address to the
    check can answer 169.254.169.254 a moment later. Inside :func:`connecting_only_to`, a direct
    request's connection pool is the checked address's, while the name stays wherever HTTP and
    TLS use it: the ``Host`` header, and ``server_hostname``, which is both the SNI and the name
    the certificate is verified against. A proxied request is left to the proxy, which resolves
    the name itself. Its responses honour the transfer deadline (:class:`DeadlineAdapter`).
    """

    def get_connection_with_tls_context(
        self,
        request: requests.PreparedRequest,
        verify: bool | str | None,
        proxies: dict[str, str] | None = None,
        cert: str | tuple[str, str] | None = None,
    ) -> urllib3.HTTPConnectionPool:
        address = _pinned_address(request, proxies)
        if address is None:
            return super().get_connection_with_tls_context(request, verify, proxies, cert)
        host_params, pool_kwargs = self.build_connection_pool_key_attributes(request, verify, cert)
        name = host_params["host"]
        if host_params["scheme"] == "https":
            pool_kwargs["server_hostname"] = name
        return self.poolmanager.connection_from_host(**{**host_params, "host": address}, pool_kwargs=pool_kwargs)

    def add_headers(self, request: requests.PreparedRequest, **kwargs: Any) -> None:
        """The pool's host is an address, so the name goes into ``Host`` explicitly."""
        if _pinned_address(request, kwargs.get("proxies")) is not None:
            request.headers["Host"] = _host_header(request.url or "")


def _pinned_address(request: requests.PreparedRequest, proxies: dict[str, str] | None) -> str | None:
    """The checked address a request connects to; None when a proxy will carry it or nothing was checked."""
    addresses = _CHECKED_ADDRESSES.get()
    if not addresses or select_proxy(request.url or "", proxies):
        return None
    return addresses[0]


def _host_header(url: str) -> str:
    """``Host`` as http.client sends it: the name, with the port unless it is the scheme's default."""
    parsed = urllib3.util.parse_url(url)
    default = 443 if parsed.scheme == "https" else 80
    return str(parsed.host) if parsed.port in (None, default) else f"{parsed.host}:{parsed.port}"


def redact(url: str) -> str:
    """Drop user info and query strings (tokens hide there) before a URL is logged or reported."""
    try:
        parts = urlsplit(url)
        netloc = parts.hostname or ""
    except ValueError:  # untrusted input Python cannot parse ("http://[::1/"): never echoed
        return "<invalid URL>"
    if ":" in netloc:  # an IPv6 literal keeps its brackets
        netloc = f"[{netloc}]"
    port = _port(parts)
    if port and port > 0:
        netloc += f":{port}"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def _port(parts: SplitResult) -> int | None:
    """The URL's explicit port, None without one, -1 when it is not a valid port (untrusted input)."""
    try:
        return parts.port
    except ValueError:
        return -1


@dataclass
class ClientStats:
    """Counters a run reports; updated from many threads, so guarded by a lock."""

    counts: Counter = field(default_factory=Counter)
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
        self.session = requests.Session()
        # No ~/.netrc: its credentials would follow requests to archive hosts. Proxies still apply.
        self.session.trust_env = False
        self.session.proxies = {k: v for k, v in urllib.request.getproxies().items() if k != "no"}
        self.session.headers.update({"User-Agent": USER_AGENT, "Accept-Encoding": "gzip"})
        adapter = PinnedAdapter(pool_connections=8, pool_maxsize=max(concurrency * 2, 16), max_retries=0)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)

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
                    _raise_for_status(response, url)
                body = _read_capped(response, self.max_metadata_bytes, url)
                if validate is not None:
                    try:
                        validate(body)
                    except ValueError as exc:
                        self.stats.add("metadata_invalid")
                        raise _Transient(200, None, str(exc)) from exc
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
                _raise_for_status(response, url)
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
                    proxies=_proxies_for(current, self.session.proxies),
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

    def _with_retries(self, url: str, attempt_fn):  # type: ignore[no-untyped-def]
        last: Exception | None = None
        made = 0
        for attempt in range(self.retry.attempts):
            made = attempt + 1
            try:
                return attempt_fn()
            except _Transient as exc:
                last = exc
                wait = self.retry.delay(attempt, exc.retry_after)
                if exc.retry_after is not None and exc.retry_after > self.retry.max_retry_after:
                    break
            except (
                requests.ConnectionError,
                requests.Timeout,
                requests.exceptions.ChunkedEncodingError,
                UnresolvedHost,
            ) as exc:
                last = exc
                wait = self.retry.delay(attempt)
            except (ValueError, requests.RequestException, urllib3.exceptions.HTTPError) as exc:
                # A URL or redirect Location no parser accepts (requests' InvalidURL is one too), or any
                # other failure of the HTTP stack: this fetch fails for good, as an UpstreamError so it
                # never takes a whole batch down. Not chained: the cause's text names the URL, query and all.
                raise UpstreamError(f"{redact(url)}: {_describe(exc)}", url=redact(url)) from None
            if made < self.retry.attempts:
                # Counted only when another attempt follows, so "retries" is what was really retried.
                self.stats.add("retries")
                logger.info("retrying %s in %.2fs after %s", redact(url), wait, _describe(last))
                time.sleep(wait)
        status = last.status if isinstance(last, _Transient) else None
        # ``made`` is below the configured attempts when a Retry-After too long ended the loop.
        raise UpstreamError(
            f"{redact(url)} failed after {made} attempt(s): {_describe(last)}",
            url=redact(url),
            status=status,
            attempts=made,
        )


class _BearerAuth(requests.auth.AuthBase):
    def __init__(self, token: str) -> None:
        self.token = token

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self.token}"
        return request


class _Transient(Exception):
    """A retryable HTTP status, with the server's Retry-After in seconds when it sent one."""

    def __init__(self, status: int, retry_after: float | None, detail: str = "") -> None:
        super().__init__(detail or f"HTTP {status}")
        self.status = status
        self.retry_after = retry_after


def _raise_for_status(response: requests.Response, url: str) -> None:
    status = response.status_code
    if status == 200:
        return
    if status in RETRY_STATUSES:
        raise _Transient(status, parse_retry_after(response.headers.get("Retry-After")))
    raise UpstreamError(f"{redact(url)} answered HTTP {status}", url=redact(url), status=status)


def _proxies_for(url: str, proxies: dict[str, str]) -> dict[str, str | None]:
    """The session's proxies, unless NO_PROXY exempts the host (trust_env is off, so we check it)."""
    if proxies and requests.utils.should_bypass_proxies(url, no_proxy=None):
        return {"http": None, "https": None}
    return dict(proxies)


def parse_retry_after(value: str | None) -> float | None:
    """Retry-After is either delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _read_capped(response: requests.Response, limit: int, url: str) -> bytes:
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_content(CHUNK):
        size += len(chunk)
        if size > limit:
            raise UpstreamError(f"{redact(url)} exceeds the {limit} byte metadata limit", url=redact(url))
        chunks.append(chunk)
    return b"".join(chunks)


def _describe(exc: Exception | None) -> str:
    """An exception for a log line or an error message; urllib3 names the URL in its text, query included."""
    return f"{type(exc).__name__}: {redact_text(str(exc))}" if exc else "unknown error"
