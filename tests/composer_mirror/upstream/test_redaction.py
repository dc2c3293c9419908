"""A token in an archive URL never reaches an error's text, its args, a traceback or a log record.

urllib3 names the request's path and query in its own exception text ("Max retries exceeded with
url: /a.zip?token=..."), so redacting the URL the client was handed is not enough: every text
that leaves the HTTP stack must be redacted too. The servers are scripted on 127.0.0.1; the
secret is unique per run, so any hit is a real leak.
"""

from __future__ import annotations

import logging
import secrets
import socket
import traceback
from pathlib import Path

import pytest

from composer_mirror.errors import RefusedURL, UpstreamError, redact_text
from composer_mirror.upstream import FetchPolicy, RetryPolicy, UpstreamClient, redact
from tests.composer_mirror.upstream.local_server import LocalServer, Reply

SECRET = f"SECRET{secrets.token_hex(8)}"
FAST = RetryPolicy(attempts=2, backoff=0.001, max_backoff=0.001)


class AllowLoopback(FetchPolicy):
    """Lets a redirect reach a second loopback origin, the way an allowed dist host is reached.

    The real policy refuses loopback dist hosts; what is tested here is the text of the failure.
    """

    def check(self, url: str) -> None:
        return None


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG, logger="composer_mirror")
    return caplog


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def assert_no_secret(raised: BaseException, logs: pytest.LogCaptureFixture) -> None:
    """Every way the failure reaches an operator: its text, args, url, traceback and the mirror's log records."""
    texts = {
        "str": str(raised),
        "args": repr(raised.args),
        "url": str(getattr(raised, "url", "")),
        "traceback": "".join(traceback.format_exception(raised)),
        **{
            f"log {record.name}": record.getMessage()
            for record in logs.records
            if record.name.startswith("composer_mirror")
        },
    }
    assert {where: text for where, text in texts.items() if SECRET in text} == {}


def download(client: UpstreamClient, url: str, tmp_path: Path) -> UpstreamError:
    with open(tmp_path / "a.zip", "w+b") as out, pytest.raises(UpstreamError) as raised:
        client.download(url, out, max_bytes=1000)
    return raised.value


def test_a_refused_connection_to_a_token_url_is_reported_without_the_token(
    tmp_path: Path, logs: pytest.LogCaptureFixture
) -> None:
    origin = f"http://127.0.0.1:{closed_port()}"
    with UpstreamClient(FetchPolicy(origin), retry=FAST) as client:
        error = download(client, f"{origin}/a.zip?token={SECRET}", tmp_path)
    assert "Connection refused" in str(error)  # the cause survives redaction
    assert_no_secret(error, logs)


def test_a_redirect_to_an_unreachable_location_with_a_token_is_reported_without_the_token(
    upstream: LocalServer, tmp_path: Path, logs: pytest.LogCaptureFixture
) -> None:
    upstream.play(Reply(302, b"", {"Location": f"http://127.0.0.1:{closed_port()}/b.zip?access_token={SECRET}"}))
    with UpstreamClient(AllowLoopback(upstream.url), retry=FAST) as client:
        error = download(client, upstream.url + "/a.zip", tmp_path)
    assert "Connection refused" in str(error)
    assert_no_secret(error, logs)


def test_a_refused_redirect_location_with_a_token_is_reported_without_the_token(
    upstream: LocalServer, tmp_path: Path, logs: pytest.LogCaptureFixture
) -> None:
    upstream.play(Reply(302, b"", {"Location": f"https://169.254.169.254/latest?access_token={SECRET}"}))
    with UpstreamClient(FetchPolicy(upstream.url), retry=FAST) as client:
        error = download(client, upstream.url + "/a.zip", tmp_path)
    assert isinstance(error, RefusedURL)
    assert_no_secret(error, logs)


@pytest.mark.parametrize("status", [404, 500])
def test_an_error_status_on_a_token_url_is_reported_without_the_token(
    status: int, upstream: LocalServer, tmp_path: Path, logs: pytest.LogCaptureFixture
) -> None:
    upstream.play(Reply(status, b"no"))
    with UpstreamClient(FetchPolicy(upstream.url), retry=FAST) as client:
        error = download(client, f"{upstream.url}/a.zip?token={SECRET}", tmp_path)
    assert error.status == status
    assert_no_secret(error, logs)


def test_a_read_timeout_on_a_token_url_is_reported_without_the_token(
    upstream: LocalServer, tmp_path: Path, logs: pytest.LogCaptureFixture
) -> None:
    upstream.play(Reply(delay=0.5))
    with UpstreamClient(FetchPolicy(upstream.url), retry=FAST, timeout=(2.0, 0.1)) as client:
        error = download(client, f"{upstream.url}/a.zip?token={SECRET}", tmp_path)
    assert "timed out" in str(error)
    assert_no_secret(error, logs)


def test_an_upstream_error_carries_only_redacted_text(logs: pytest.LogCaptureFixture) -> None:
    error = UpstreamError(
        f"GET http://mirror:{SECRET}@127.0.0.1/a.zip?token={SECRET} failed: url: /b.zip?access_token={SECRET}",
        url=f"http://127.0.0.1/a.zip?token={SECRET}",
    )
    assert_no_secret(error, logs)


@pytest.mark.parametrize(
    ("text", "redacted"),
    [
        pytest.param(
            "HTTPConnectionPool(host='127.0.0.1', port=1): Max retries exceeded with url: /a.zip?token=S (Caused by X)",
            "HTTPConnectionPool(host='127.0.0.1', port=1): Max retries exceeded with url: /a.zip?token=<redacted> "
            "(Caused by X)",
            id="urllib3",
        ),
        pytest.param("see https://u:p@a@repo.example:8443/x now", "see https://repo.example:8443/x now", id="userinfo"),
        pytest.param(
            "http://h/a?x=1&token=S&&flag#access_token=S b?c",
            "http://h/a?x=<redacted>&token=<redacted>&&<redacted>#<redacted> b?<redacted>",
            id="every-value",
        ),
        pytest.param("Invalid URL 'h/a?t=S': no scheme", "Invalid URL 'h/a?t=<redacted> no scheme", id="quoted"),
        pytest.param("two: /a?t=S and ftp://u@h/?t=S.", "two: /a?t=<redacted> and ftp://h/?t=<redacted>", id="two"),
        pytest.param("why? HTTP 500 at /a.zip #3", "why? HTTP 500 at /a.zip #3", id="no-url"),
    ],
)
def test_redact_text(text: str, redacted: str) -> None:
    assert redact_text(text) == redacted


@pytest.mark.parametrize(
    ("url", "redacted"),
    [
        ("https://user:secret@repo.example/p2/a.json", "https://repo.example/p2/a.json"),
        ("https://token@repo.example/p2/a.json", "https://repo.example/p2/a.json"),
        ("https://api.example.com/zipball/x?access_token=secret", "https://api.example.com/zipball/x"),
        ("https://repo.example:8443/a#frag", "https://repo.example:8443/a"),
        ("https://user:pw@repo.example:8443/a?x=1&y=2", "https://repo.example:8443/a"),
        ("http://[::1]:8080/p2/a.json?t=1", "http://[::1]:8080/p2/a.json"),
        ("https://repo.example:99999/a?t=secret", "https://repo.example/a"),
        ("https://repo.example/a", "https://repo.example/a"),
    ],
)
def test_redact(url: str, redacted: str) -> None:
    assert redact(url) == redacted
