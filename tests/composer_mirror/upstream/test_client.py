"""Tests for the upstream client against real HTTP servers on 127.0.0.1, scripted per test."""

from __future__ import annotations

import gzip
import hashlib
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from composer_mirror.errors import UpstreamError
from composer_mirror.upstream import USER_AGENT, FetchPolicy, RetryPolicy, UpstreamClient
from tests.composer_mirror.upstream.local_server import ARCHIVE, FAST, LocalServer, Reply


class AllowEverything(FetchPolicy):
    """A policy that lets a test reach a second loopback server (real policies never would)."""

    def check(self, url: str) -> None:
        return None


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


def test_get_json_treats_404_as_an_error(upstream: LocalServer, client: UpstreamClient) -> None:
    upstream.play(Reply(404))
    with pytest.raises(UpstreamError) as raised:
        client.get_json(upstream.url + "/packages.json")
    assert raised.value.status == 404


def test_get_json_parses_the_body(upstream: LocalServer, client: UpstreamClient) -> None:
    upstream.play(Reply(body=b'{"metadata-url": "/p2/%package%.json"}'))
    assert client.get_json(upstream.url + "/packages.json") == {"metadata-url": "/p2/%package%.json"}


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


# --- redirects ----------------------------------------------------------------------------
def test_a_redirect_within_the_upstream_is_followed(upstream: LocalServer, client: UpstreamClient) -> None:
    upstream.route = lambda path: (
        Reply(302, b"", {"Location": "/moved/b.json"}) if path == "/p2/a/b.json" else Reply(body=b'{"moved": 1}')
    )
    fetched = client.get_metadata(upstream.url + "/p2/a/b.json")
    assert fetched.body == b'{"moved": 1}'
    assert [seen.path for seen in upstream.seen] == ["/p2/a/b.json", "/moved/b.json"]
    assert client.stats.as_dict()["redirects"] == 1


def test_a_redirect_loop_stops(upstream: LocalServer, client: UpstreamClient) -> None:
    upstream.play(Reply(302, b"", {"Location": "/again"}))
    with pytest.raises(UpstreamError, match="more than 5 redirects"):
        client.get_metadata(upstream.url + "/p2/a/b.json")
    assert upstream.requests == 6


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
