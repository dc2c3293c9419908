"""Retries: which failures the client tries again, how long it waits, and when it gives up."""

from __future__ import annotations

import email.utils
import hashlib
import time
from pathlib import Path

import pytest

from composer_mirror.errors import UpstreamError
from composer_mirror.upstream import FetchPolicy, RetryPolicy, UpstreamClient, parse_retry_after
from tests.composer_mirror.upstream.local_server import ARCHIVE, FAST, LocalServer, Reply


# --- statuses -----------------------------------------------------------------------------
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


def test_download_retries_a_transient_status(upstream: LocalServer, client: UpstreamClient, tmp_path: Path) -> None:
    upstream.play(Reply(502, b"bad gateway"), Reply(body=ARCHIVE))
    with open(tmp_path / "a.zip", "w+b") as out:
        downloaded = client.download(upstream.url + "/dist/a.zip", out, max_bytes=10**6)
    assert downloaded.sha1 == hashlib.sha1(ARCHIVE).hexdigest()
    assert (tmp_path / "a.zip").read_bytes() == ARCHIVE


# --- the policy ---------------------------------------------------------------------------
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
