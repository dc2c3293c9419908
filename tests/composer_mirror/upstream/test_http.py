"""Tests for the upstream client against real HTTP servers on 127.0.0.1, scripted per test."""

from __future__ import annotations

import email.utils
import gzip
import hashlib
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from composer_mirror.errors import RefusedURL, UpstreamError
from composer_mirror.upstream import (
    USER_AGENT,
    FetchPolicy,
    RetryPolicy,
    UpstreamClient,
    parse_retry_after,
    redact,
)
from devtools.loopback import LoopbackServer

FAST = RetryPolicy(attempts=4, backoff=0.01, max_backoff=0.02)


@dataclass
class Reply:
    """What the server does for one request."""

    status: int = 200
    body: bytes = b"{}"
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    reset: bool = False  # close the connection with a TCP reset instead of answering
    content_length: int | None = None  # announce this instead of len(body); -1 announces nothing


@dataclass
class Seen:
    path: str
    headers: dict[str, str]


class LocalServer:
    """A loopback server (devtools.loopback) that plays a list of replies (the last one repeats).

    Bound when made; ``thread.start()`` serves, ``httpd.shutdown()`` stops serving.
    """

    def __init__(self) -> None:
        self.replies: list[Reply] = [Reply()]
        self.route: Callable[[str], Reply] | None = None
        self.seen: list[Seen] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        self._served = 0
        self.loopback = LoopbackServer(_Handler, owner=self, poll_interval=0.01, name="local-server")
        self.httpd = self.loopback.httpd
        self.thread = self.loopback.thread

    @property
    def url(self) -> str:
        return self.loopback.url

    @property
    def requests(self) -> int:
        return len(self.seen)

    def play(self, *replies: Reply) -> LocalServer:
        self.replies = list(replies)
        return self

    def next_reply(self, path: str) -> Reply:
        with self._lock:
            if self.route is not None:
                return self.route(path)
            reply = self.replies[min(self._served, len(self.replies) - 1)]
            self._served += 1
            return reply

    def enter(self) -> None:
        with self._lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def leave(self) -> None:
        with self._lock:
            self.in_flight -= 1


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        server: LocalServer = self.server.owner  # type: ignore[attr-defined]
        server.seen.append(Seen(self.path, dict(self.headers.items())))
        reply = server.next_reply(self.path)
        # Counted while the handler waits, before it answers: that window always lies inside the
        # client's request, so the count never includes a request the client has already finished.
        server.enter()
        try:
            time.sleep(reply.delay)
        finally:
            server.leave()
        if reply.reset:
            self.request.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.request.close()
            self.close_connection = True
            return
        self.send_response(reply.status)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        length = len(reply.body) if reply.content_length is None else reply.content_length
        if length >= 0:
            self.send_header("Content-Length", str(length))
        if length != len(reply.body):
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(reply.body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def servers() -> Iterator[Callable[[], LocalServer]]:
    started: list[LocalServer] = []

    def start() -> LocalServer:
        server = LocalServer()
        server.thread.start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.httpd.shutdown()
        server.httpd.server_close()


@pytest.fixture
def upstream(servers: Callable[[], LocalServer]) -> LocalServer:
    return servers()


@pytest.fixture
def client(upstream: LocalServer) -> Iterator[UpstreamClient]:
    with UpstreamClient(FetchPolicy(upstream.url), retry=FAST, timeout=(2.0, 2.0)) as made:
        yield made


class AllowEverything(FetchPolicy):
    """A policy that lets a test reach a second loopback server (real policies never would)."""

    def check(self, url: str) -> None:
        return None


class RecordingPolicy(FetchPolicy):
    """The real policy, remembering every URL it was asked about."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.checked: list[str] = []

    def check(self, url: str) -> None:
        self.checked.append(url)
        super().check(url)


# --- metadata: statuses -------------------------------------------------------------------
def test_a_200_returns_the_body_and_validators(upstream: LocalServer, client: UpstreamClient) -> None:
    upstream.play(
        Reply(body=b'{"packages": {}}', headers={"ETag": '"v1"', "Last-Modified": "Wed, 01 Jan 2025 00:00:00 GMT"})
    )
    fetched = client.get_metadata(upstream.url + "/p2/acme/tool.json")
    assert (fetched.status, fetched.body) == (200, b'{"packages": {}}')
    assert (fetched.etag, fetched.last_modified) == ('"v1"', "Wed, 01 Jan 2025 00:00:00 GMT")
    assert upstream.seen[0].path == "/p2/acme/tool.json"
    assert upstream.seen[0].headers["User-Agent"] == USER_AGENT


def test_an_unconditional_get_sends_no_validators(upstream: LocalServer, client: UpstreamClient) -> None:
    client.get_metadata(upstream.url + "/packages.json")
    assert "If-None-Match" not in upstream.seen[0].headers
    assert "If-Modified-Since" not in upstream.seen[0].headers


def test_a_conditional_get_sends_validators_and_returns_304(upstream: LocalServer, client: UpstreamClient) -> None:
    upstream.play(Reply(304, b""))
    fetched = client.get_metadata(upstream.url + "/p2/a/b.json", '"v1"', "Wed, 01 Jan 2025 00:00:00 GMT")
    assert fetched.status == 304
    assert fetched.body == b""
    assert upstream.seen[0].headers["If-None-Match"] == '"v1"'
    assert upstream.seen[0].headers["If-Modified-Since"] == "Wed, 01 Jan 2025 00:00:00 GMT"
    assert client.stats.as_dict()["metadata_304"] == 1


@pytest.mark.parametrize("status", [404, 410])
def test_a_missing_package_is_404_without_retries(status: int, upstream: LocalServer, client: UpstreamClient) -> None:
    upstream.play(Reply(status, b"gone"))
    assert client.get_metadata(upstream.url + "/p2/a/b.json").status == 404
    assert upstream.requests == 1


@pytest.mark.parametrize("status", [408, 425, 429, 500, 502, 503, 504])
def test_a_transient_status_is_retried(status: int, upstream: LocalServer, client: UpstreamClient) -> None:
    upstream.play(Reply(status, b"busy"), Reply(200, b"{}"))
    assert client.get_metadata(upstream.url + "/p2/a/b.json").status == 200
    assert upstream.requests == 2
    assert client.stats.as_dict()["retries"] == 1


@pytest.mark.parametrize("status", [400, 401, 403, 405, 418, 451, 501])
def test_a_permanent_status_fails_at_once(status: int, upstream: LocalServer, client: UpstreamClient) -> None:
    upstream.play(Reply(status, b"no"), Reply(200, b"{}"))
    with pytest.raises(UpstreamError) as raised:
        client.get_metadata(upstream.url + "/p2/a/b.json")
    assert raised.value.status == status
    assert upstream.requests == 1


def test_503_twice_then_200_succeeds_after_two_retries(upstream: LocalServer, client: UpstreamClient) -> None:
    upstream.play(Reply(503), Reply(503), Reply(200, b'{"ok": 1}'))
    assert client.get_metadata(upstream.url + "/p2/a/b.json").body == b'{"ok": 1}'
    assert upstream.requests == 3
    assert client.stats.as_dict()["retries"] == 2


def test_a_permanent_500_fails_after_all_attempts(upstream: LocalServer) -> None:
    upstream.play(Reply(500, b"broken"))
    with UpstreamClient(FetchPolicy(upstream.url), retry=RetryPolicy(attempts=3, backoff=0.01)) as client:
        with pytest.raises(UpstreamError) as raised:
            client.get_metadata(upstream.url + "/p2/a/b.json?token=secret")
        stats = client.stats.as_dict()
    error = raised.value
    assert (error.url, error.status, error.attempts) == (upstream.url + "/p2/a/b.json", 500, 3)
    assert "secret" not in str(error)
    assert "3 attempt" in str(error)
    assert upstream.requests == 3
    assert stats["retries"] == 2


def test_get_json_treats_404_as_an_error(upstream: LocalServer, client: UpstreamClient) -> None:
    upstream.play(Reply(404))
    with pytest.raises(UpstreamError) as raised:
        client.get_json(upstream.url + "/packages.json")
    assert raised.value.status == 404


def test_get_json_parses_the_body(upstream: LocalServer, client: UpstreamClient) -> None:
    upstream.play(Reply(body=b'{"metadata-url": "/p2/%package%.json"}'))
    assert client.get_json(upstream.url + "/packages.json") == {"metadata-url": "/p2/%package%.json"}


# --- metadata: Retry-After ----------------------------------------------------------------
def test_429_waits_as_long_as_retry_after_says(upstream: LocalServer, client: UpstreamClient) -> None:
    upstream.play(Reply(429, headers={"Retry-After": "1"}), Reply(200))
    started = time.monotonic()
    assert client.get_metadata(upstream.url + "/p2/a/b.json").status == 200
    assert 0.95 <= time.monotonic() - started < 3
    assert upstream.requests == 2


def test_a_retry_after_above_the_limit_gives_up_at_once(upstream: LocalServer) -> None:
    upstream.play(Reply(429, headers={"Retry-After": "3600"}), Reply(200))
    retry = RetryPolicy(attempts=5, backoff=0.01, max_retry_after=1.0)
    with UpstreamClient(FetchPolicy(upstream.url), retry=retry) as client:
        started = time.monotonic()
        with pytest.raises(UpstreamError) as raised:
            client.get_metadata(upstream.url + "/p2/a/b.json")
        assert time.monotonic() - started < 1
    assert raised.value.status == 429
    assert raised.value.attempts == 1
    assert upstream.requests == 1


def test_a_retry_after_date_above_the_limit_gives_up_at_once(upstream: LocalServer) -> None:
    upstream.play(Reply(503, headers={"Retry-After": email.utils.formatdate(time.time() + 600, usegmt=True)}))
    client = UpstreamClient(FetchPolicy(upstream.url), retry=RetryPolicy(max_retry_after=5.0))
    with client, pytest.raises(UpstreamError):
        client.get_metadata(upstream.url + "/p2/a/b.json")
    assert upstream.requests == 1


# --- metadata: broken transfers -----------------------------------------------------------
def test_a_connection_reset_is_retried(upstream: LocalServer, client: UpstreamClient) -> None:
    upstream.play(Reply(reset=True), Reply(body=b'{"ok": 1}'))
    assert client.get_metadata(upstream.url + "/p2/a/b.json").body == b'{"ok": 1}'
    assert upstream.requests == 2
    assert client.stats.as_dict()["retries"] == 1


def test_connection_resets_fail_after_all_attempts(upstream: LocalServer, client: UpstreamClient) -> None:
    upstream.play(Reply(reset=True))
    with pytest.raises(UpstreamError) as raised:
        client.get_metadata(upstream.url + "/p2/a/b.json")
    assert raised.value.attempts == FAST.attempts
    assert upstream.requests == FAST.attempts


def test_a_truncated_body_is_retried(upstream: LocalServer, client: UpstreamClient) -> None:
    upstream.play(Reply(body=b'{"packa', content_length=500), Reply(body=b'{"packages": {}}'))
    assert client.get_metadata(upstream.url + "/p2/a/b.json").body == b'{"packages": {}}'
    assert upstream.requests == 2


def test_a_slow_response_times_out_and_is_retried(upstream: LocalServer) -> None:
    upstream.play(Reply(delay=1.0), Reply(body=b'{"fast": 1}'))
    with UpstreamClient(FetchPolicy(upstream.url), retry=FAST, timeout=(1.0, 0.2)) as client:
        started = time.monotonic()
        assert client.get_metadata(upstream.url + "/p2/a/b.json").body == b'{"fast": 1}'
        assert time.monotonic() - started < 0.9
    assert upstream.requests == 2


def test_a_body_the_validator_rejects_is_fetched_again(upstream: LocalServer, client: UpstreamClient) -> None:
    upstream.play(Reply(body=b"<html>maintenance</html>"), Reply(body=b'{"packages": {}}'))
    seen: list[bytes] = []

    def validate(body: bytes) -> None:
        seen.append(body)
        if not body.startswith(b"{"):
            raise ValueError("not JSON")

    assert client.get_metadata(upstream.url + "/p2/a/b.json", validate=validate).body == b'{"packages": {}}'
    assert seen == [b"<html>maintenance</html>", b'{"packages": {}}']


def test_a_body_the_validator_always_rejects_fails_after_all_attempts(
    upstream: LocalServer, client: UpstreamClient
) -> None:
    upstream.play(Reply(body=b"[]"))

    def validate(body: bytes) -> None:
        raise ValueError("holds another package")

    with pytest.raises(UpstreamError, match="holds another package") as raised:
        client.get_metadata(upstream.url + "/p2/a/b.json", validate=validate)
    assert raised.value.attempts == FAST.attempts
    assert upstream.requests == FAST.attempts
    assert client.stats.as_dict()["metadata_invalid"] == FAST.attempts


def test_metadata_above_the_size_cap_fails_without_retries(upstream: LocalServer) -> None:
    upstream.play(Reply(body=b"[" + b"0," * 600 + b"0]"))
    client = UpstreamClient(FetchPolicy(upstream.url), retry=FAST, max_metadata_bytes=1000)
    with client, pytest.raises(UpstreamError, match="1000 byte metadata limit"):
        client.get_metadata(upstream.url + "/p2/a/b.json")
    assert upstream.requests == 1


def test_the_size_cap_applies_to_decompressed_metadata(upstream: LocalServer) -> None:
    bomb = gzip.compress(b" " * 100_000)
    upstream.play(Reply(body=bomb, headers={"Content-Encoding": "gzip"}))
    client = UpstreamClient(FetchPolicy(upstream.url), retry=FAST, max_metadata_bytes=10_000)
    with client, pytest.raises(UpstreamError, match="metadata limit"):
        client.get_metadata(upstream.url + "/p2/a/b.json")


def test_metadata_at_the_size_cap_is_accepted(upstream: LocalServer) -> None:
    upstream.play(Reply(body=b"x" * 1000))
    with UpstreamClient(FetchPolicy(upstream.url), retry=FAST, max_metadata_bytes=1000) as client:
        assert len(client.get_metadata(upstream.url + "/p2/a/b.json").body) == 1000


# --- archives -----------------------------------------------------------------------------
ARCHIVE = bytes(range(256)) * 800  # 200 KiB


def test_download_streams_to_the_file_with_digests(
    upstream: LocalServer, client: UpstreamClient, tmp_path: Path
) -> None:
    upstream.play(Reply(body=ARCHIVE, headers={"Content-Type": "application/zip"}))
    with open(tmp_path / "a.zip", "w+b") as out:
        downloaded = client.download(upstream.url + "/dist/a.zip", out, max_bytes=10**6)
    assert (tmp_path / "a.zip").read_bytes() == ARCHIVE
    assert downloaded.size == len(ARCHIVE)
    assert downloaded.sha1 == hashlib.sha1(ARCHIVE).hexdigest()
    assert downloaded.sha256 == hashlib.sha256(ARCHIVE).hexdigest()
    assert downloaded.path == str(tmp_path / "a.zip")
    assert downloaded.url == upstream.url + "/dist/a.zip"


def test_download_replaces_what_the_file_held(upstream: LocalServer, client: UpstreamClient, tmp_path: Path) -> None:
    upstream.play(Reply(body=b"new"))
    with open(tmp_path / "a.zip", "w+b") as out:
        out.write(b"stale bytes from an earlier run")
        client.download(upstream.url + "/dist/a.zip", out, max_bytes=100)
    assert (tmp_path / "a.zip").read_bytes() == b"new"


def test_a_truncated_download_leaves_no_bytes_behind(
    upstream: LocalServer, client: UpstreamClient, tmp_path: Path
) -> None:
    first = b"x" * (3 * 1024 * 1024)  # more than one chunk reaches the file before the transfer breaks
    upstream.play(Reply(body=first, content_length=len(first) + 1000), Reply(body=b"complete"))
    with open(tmp_path / "a.zip", "w+b") as out:
        downloaded = client.download(upstream.url + "/dist/a.zip", out, max_bytes=10**8)
    assert (tmp_path / "a.zip").read_bytes() == b"complete"
    assert (downloaded.size, downloaded.sha1) == (8, hashlib.sha1(b"complete").hexdigest())
    assert upstream.requests == 2


def test_download_refuses_a_declared_size_above_the_limit(
    upstream: LocalServer, client: UpstreamClient, tmp_path: Path
) -> None:
    upstream.play(Reply(body=b"x" * 2000))
    with open(tmp_path / "a.zip", "w+b") as out, pytest.raises(UpstreamError, match="over the 1000 limit"):
        client.download(upstream.url + "/dist/a.zip", out, max_bytes=1000)
    assert upstream.requests == 1


def test_download_stops_a_streamed_body_above_the_limit(
    upstream: LocalServer, client: UpstreamClient, tmp_path: Path
) -> None:
    upstream.play(Reply(body=b"x" * 5000, content_length=-1))  # no Content-Length: read until close
    with open(tmp_path / "a.zip", "w+b") as out, pytest.raises(UpstreamError, match="1000 byte archive limit"):
        client.download(upstream.url + "/dist/a.zip", out, max_bytes=1000)
    assert upstream.requests == 1


@pytest.mark.parametrize(("body", "max_bytes", "ok"), [(b"x" * 50, 100, True), (b"x" * 5000, 1000, False)])
def test_a_malformed_content_length_is_ignored_and_the_streamed_size_capped(
    body: bytes, max_bytes: int, ok: bool, upstream: LocalServer, client: UpstreamClient, tmp_path: Path
) -> None:
    upstream.play(Reply(body=body, headers={"Content-Length": "lots"}, content_length=-1))
    with open(tmp_path / "a.zip", "w+b") as out:
        if ok:
            assert client.download(upstream.url + "/dist/a.zip", out, max_bytes=max_bytes).size == len(body)
        else:
            with pytest.raises(UpstreamError, match="archive limit"):
                client.download(upstream.url + "/dist/a.zip", out, max_bytes=max_bytes)


def test_a_download_error_carries_a_redacted_url(upstream: LocalServer, client: UpstreamClient, tmp_path: Path) -> None:
    upstream.play(Reply(body=b"x" * 2000))
    with open(tmp_path / "a.zip", "w+b") as out, pytest.raises(UpstreamError) as raised:
        client.download(upstream.url + "/dist/a.zip?access_token=secret", out, max_bytes=1000)
    assert raised.value.url == upstream.url + "/dist/a.zip"
    assert "secret" not in str(raised.value)


def test_download_retries_a_transient_status(upstream: LocalServer, client: UpstreamClient, tmp_path: Path) -> None:
    upstream.play(Reply(502, b"bad gateway"), Reply(body=ARCHIVE))
    with open(tmp_path / "a.zip", "w+b") as out:
        downloaded = client.download(upstream.url + "/dist/a.zip", out, max_bytes=10**6)
    assert downloaded.sha1 == hashlib.sha1(ARCHIVE).hexdigest()
    assert (tmp_path / "a.zip").read_bytes() == ARCHIVE


# --- redirects and the fetch policy -------------------------------------------------------
def test_a_redirect_within_the_upstream_is_followed(upstream: LocalServer, client: UpstreamClient) -> None:
    upstream.route = lambda path: (
        Reply(302, b"", {"Location": "/moved/b.json"}) if path == "/p2/a/b.json" else Reply(body=b'{"moved": 1}')
    )
    fetched = client.get_metadata(upstream.url + "/p2/a/b.json")
    assert fetched.body == b'{"moved": 1}'
    assert [seen.path for seen in upstream.seen] == ["/p2/a/b.json", "/moved/b.json"]
    assert client.stats.as_dict()["redirects"] == 1


def test_every_redirect_hop_is_checked_by_the_policy(upstream: LocalServer, tmp_path: Path) -> None:
    upstream.route = lambda path: {
        "/dist/a.zip": Reply(301, b"", {"Location": "/hop/1"}),
        "/hop/1": Reply(307, b"", {"Location": upstream.url + "/hop/2"}),
    }.get(path, Reply(body=ARCHIVE))
    policy = RecordingPolicy(upstream.url)
    with UpstreamClient(policy, retry=FAST) as client, open(tmp_path / "a.zip", "w+b") as out:
        downloaded = client.download(upstream.url + "/dist/a.zip", out, max_bytes=10**6)
    assert policy.checked == [upstream.url + "/dist/a.zip", upstream.url + "/hop/1", upstream.url + "/hop/2"]
    assert downloaded.url == upstream.url + "/hop/2"


def test_a_redirect_to_a_host_not_allowed_is_refused_before_any_request(
    servers: Callable[[], LocalServer], upstream: LocalServer, client: UpstreamClient, tmp_path: Path
) -> None:
    target = servers()
    upstream.play(Reply(302, b"", {"Location": target.url + "/latest/meta-data/"}))
    with open(tmp_path / "a.zip", "w+b") as out, pytest.raises(RefusedURL) as raised:
        client.download(upstream.url + "/dist/a.zip", out, max_bytes=1000)
    assert target.requests == 0
    assert upstream.requests == 1
    assert raised.value.url == target.url + "/latest/meta-data/"


def test_a_redirect_to_an_invalid_port_is_refused(upstream: LocalServer, client: UpstreamClient) -> None:
    upstream.play(Reply(302, b"", {"Location": "https://codeload.github.com:99999/x"}))
    with pytest.raises(RefusedURL):
        client.get_metadata(upstream.url + "/p2/a/b.json")


def test_a_redirect_loop_stops(upstream: LocalServer, client: UpstreamClient) -> None:
    upstream.play(Reply(302, b"", {"Location": "/again"}))
    with pytest.raises(UpstreamError, match="more than 5 redirects"):
        client.get_metadata(upstream.url + "/p2/a/b.json")
    assert upstream.requests == 6


UPSTREAM = "https://repo.example"
DIST_HOSTS = ("codeload.github.com", "api.github.com")


@pytest.mark.parametrize(
    "url",
    [
        "https://repo.example/p2/acme/tool.json",
        "https://repo.example:443/packages.json",
        "https://REPO.example/p2/acme/tool.json",
        "https://codeload.github.com/acme/tool/legacy.zip/abc",
        "https://Api.GitHub.com/repos/acme/tool/zipball/abc",
        "https://user:token@codeload.github.com/x.zip",
    ],
)
def test_the_policy_accepts(url: str) -> None:
    FetchPolicy(UPSTREAM, DIST_HOSTS, resolve=False).check(url)


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        pytest.param("http://repo.example/p2/acme/tool.json", "only the upstream origin", id="upstream-over-http"),
        pytest.param("https://repo.example:8443/x", "only the upstream origin", id="upstream-other-port"),
        pytest.param("http://codeload.github.com/x.zip", "only the upstream origin", id="dist-host-over-http"),
        pytest.param("https://evil.example/x.zip", "only the upstream origin", id="host-not-allowed"),
        pytest.param("https://codeload.github.com.evil.example/x", "only the upstream origin", id="suffix-trick"),
        pytest.param("https://github.com/x.zip", "only the upstream origin", id="parent-domain"),
        pytest.param("https://169.254.169.254/latest/meta-data/", "only the upstream origin", id="metadata-ip"),
        pytest.param("ftp://codeload.github.com/x.zip", "not an absolute http", id="ftp"),
        pytest.param("file:///etc/passwd", "not an absolute http", id="file"),
        pytest.param("/p2/acme/tool.json", "not an absolute http", id="relative"),
        pytest.param("https:///x.zip", "not an absolute http", id="no-host"),
        pytest.param("https://codeload.github.com:99999/x", "invalid port", id="invalid-port"),
    ],
)
def test_the_policy_refuses(url: str, reason: str) -> None:
    with pytest.raises(RefusedURL, match=reason):
        FetchPolicy(UPSTREAM, DIST_HOSTS, resolve=False).check(url)


def test_the_policy_compares_allowed_hosts_without_case() -> None:
    FetchPolicy(UPSTREAM, ("CodeLoad.GitHub.com",), resolve=False).check("https://codeload.github.com/x.zip")


@pytest.mark.parametrize(
    ("host", "url"),
    [
        ("localhost", "https://localhost/x.zip"),
        ("127.0.0.1", "https://127.0.0.1/x.zip"),
        ("127.0.0.2", "https://127.0.0.2:8443/x.zip"),
        ("0.0.0.0", "https://0.0.0.0/x.zip"),
        ("10.1.2.3", "https://10.1.2.3/x.zip"),
        ("192.168.0.1", "https://192.168.0.1/x.zip"),
        ("172.16.0.1", "https://172.16.0.1/x.zip"),
        ("169.254.169.254", "https://169.254.169.254/latest/meta-data/"),
        ("100.64.0.1", "https://100.64.0.1/x.zip"),
    ],
)
def test_the_policy_refuses_a_dist_host_resolving_to_an_internal_address(host: str, url: str) -> None:
    with pytest.raises(RefusedURL, match="resolves to internal address"):
        FetchPolicy(UPSTREAM, (host,)).check(url)


def test_the_policy_refuses_a_dist_host_that_does_not_resolve() -> None:
    with pytest.raises(RefusedURL, match="does not resolve"):
        FetchPolicy(UPSTREAM, ("nonexistent.invalid",)).check("https://nonexistent.invalid/x.zip")


def test_the_policy_accepts_the_upstream_origin_on_loopback() -> None:
    FetchPolicy("http://127.0.0.1:8080").check("http://127.0.0.1:8080/p2/acme/tool.json")
    FetchPolicy("http://localhost:8080/repo").check("http://localhost:8080/p2/acme/tool.json")


def test_the_client_refuses_a_url_before_requesting_it(upstream: LocalServer, client: UpstreamClient) -> None:
    with pytest.raises(RefusedURL):
        client.get_metadata(upstream.url.replace("127.0.0.1", "localhost") + "/p2/a/b.json")
    assert upstream.requests == 0


# --- credentials --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("auth", "header"),
    [
        pytest.param(("mirror", "s3cret"), "Basic bWlycm9yOnMzY3JldA==", id="basic"),
        pytest.param("tok3n", "Bearer tok3n", id="bearer"),
    ],
)
def test_credentials_go_to_the_upstream_only(
    auth: tuple[str, str] | str, header: str, servers: Callable[[], LocalServer], upstream: LocalServer
) -> None:
    other = servers()
    upstream.route = lambda path: (
        Reply(302, b"", {"Location": other.url + "/archive.zip"}) if path == "/dist/a.zip" else Reply(body=b"{}")
    )
    other.play(Reply(body=b"zip bytes"))
    with UpstreamClient(AllowEverything(upstream.url), auth=auth, retry=FAST) as client:
        client.get_metadata(upstream.url + "/p2/a/b.json")
        client.get_metadata(upstream.url + "/dist/a.zip")
    assert [seen.headers.get("Authorization") for seen in upstream.seen] == [header, header]
    assert [seen.path for seen in other.seen] == ["/archive.zip"]
    assert "Authorization" not in other.seen[0].headers


def test_no_credentials_are_sent_without_auth(upstream: LocalServer, client: UpstreamClient) -> None:
    client.get_metadata(upstream.url + "/p2/a/b.json")
    assert "Authorization" not in upstream.seen[0].headers


# --- concurrency --------------------------------------------------------------------------
def test_the_per_host_semaphore_bounds_requests_in_flight(upstream: LocalServer) -> None:
    upstream.play(Reply(body=b"{}", delay=0.05))
    errors: list[BaseException] = []
    with UpstreamClient(FetchPolicy(upstream.url), concurrency=3, retry=FAST) as client:

        def fetch(index: int) -> None:
            try:
                client.get_metadata(f"{upstream.url}/p2/a/b{index}.json")
            except BaseException as exc:  # collected and asserted below
                errors.append(exc)

        threads = [threading.Thread(target=fetch, args=(i,)) for i in range(30)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert errors == []
    assert upstream.requests == 30
    assert upstream.max_in_flight == 3


# --- helpers ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("url", "redacted"),
    [
        ("https://user:secret@repo.example/p2/a.json", "https://repo.example/p2/a.json"),
        ("https://token@repo.example/p2/a.json", "https://repo.example/p2/a.json"),
        ("https://api.github.com/zipball/x?access_token=secret", "https://api.github.com/zipball/x"),
        ("https://repo.example:8443/a#frag", "https://repo.example:8443/a"),
        ("https://user:pw@repo.example:8443/a?x=1&y=2", "https://repo.example:8443/a"),
        ("http://[::1]:8080/p2/a.json?t=1", "http://[::1]:8080/p2/a.json"),
        ("https://repo.example:99999/a?t=secret", "https://repo.example/a"),
        ("https://repo.example/a", "https://repo.example/a"),
    ],
)
def test_redact(url: str, redacted: str) -> None:
    assert redact(url) == redacted


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (None, None),
        ("", None),
        ("0", 0.0),
        ("5", 5.0),
        (" 120 ", 120.0),
        ("-1", None),
        ("1.5", None),
        ("soon", None),
        ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0),  # in the past: no wait
    ],
)
def test_parse_retry_after(value: str | None, seconds: float | None) -> None:
    assert parse_retry_after(value) == seconds


def test_parse_retry_after_reads_an_http_date_in_the_future() -> None:
    value = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 28 <= parse_retry_after(value) <= 30  # type: ignore[operator]


@pytest.mark.parametrize(
    ("attempt", "retry_after", "low", "high"),
    [(0, None, 0.0, 1.0), (3, None, 0.0, 8.0), (10, None, 0.0, 30.0), (0, 7.0, 7.0, 7.0), (0, 500.0, 120.0, 120.0)],
)
def test_retry_policy_delay_stays_within_bounds(
    attempt: int, retry_after: float | None, low: float, high: float
) -> None:
    policy = RetryPolicy(backoff=1.0, max_backoff=30.0, max_retry_after=120.0)
    for _ in range(50):
        assert low <= policy.delay(attempt, retry_after) <= high


def test_endpoints_named_by_the_upstream_root_may_be_fetched_but_other_hosts_may_not() -> None:
    policy = FetchPolicy(
        "https://repo.example.org",
        endpoints=("https://lists.example.org/packages/list.json", "https://meta.example.org/p2/%package%.json"),
        resolve=False,
    )
    policy.check("https://lists.example.org/packages/list.json?vendor=psr")
    policy.check("https://meta.example.org/p2/psr/log.json")
    with pytest.raises(RefusedURL):
        policy.check("https://elsewhere.example.org/p2/psr/log.json")
    with pytest.raises(RefusedURL):
        policy.check("http://meta.example.org/p2/psr/log.json")


def test_a_server_that_trickles_its_body_is_given_up_on_after_the_transfer_time_limit(tmp_path: Path) -> None:
    from devtools.fixture_registry import FaultRule, Registry, RegistryServer

    registry = Registry()
    registry.add_version("acme/slow", "1.0.0")
    rule = FaultRule(r"^/codeload/", "slow_body", delay=0.05, chunk_size=16)
    with RegistryServer(registry, faults=[rule]) as server:
        url = server.versions("acme/slow")[0]["dist"]["url"]
        client = UpstreamClient(FetchPolicy(server.url), retry=RetryPolicy(attempts=1), transfer_seconds=0.3)
        with open(tmp_path / "a.zip", "w+b") as out, pytest.raises(UpstreamError, match="too slow"):
            client.download(url, out, max_bytes=10**8)
