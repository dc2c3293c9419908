"""The fetch policy: which URLs the client may request, checked before every request and redirect hop."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from composer_mirror.errors import RefusedURL
from composer_mirror.upstream import FetchPolicy, UpstreamClient
from tests.composer_mirror.upstream.local_server import ARCHIVE, FAST, LocalServer, Reply


class RecordingPolicy(FetchPolicy):
    """The real policy, remembering every URL it was asked about."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.checked: list[str] = []

    def check(self, url: str) -> None:
        self.checked.append(url)
        super().check(url)


# --- redirects ----------------------------------------------------------------------------
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
    upstream.play(Reply(302, b"", {"Location": "https://codeload.example.com:99999/x"}))
    with pytest.raises(RefusedURL):
        client.get_metadata(upstream.url + "/p2/a/b.json")


# --- the policy ---------------------------------------------------------------------------
UPSTREAM = "https://repo.example"
DIST_HOSTS = ("codeload.example.com", "api.example.com")


@pytest.mark.parametrize(
    "url",
    [
        "https://repo.example/p2/acme/tool.json",
        "https://repo.example:443/packages.json",
        "https://REPO.example/p2/acme/tool.json",
        "https://codeload.example.com/acme/tool/legacy.zip/abc",
        "https://Api.Example.com/repos/acme/tool/zipball/abc",
        "https://user:token@codeload.example.com/x.zip",
    ],
)
def test_the_policy_accepts(url: str) -> None:
    FetchPolicy(UPSTREAM, DIST_HOSTS, resolve=False).check(url)


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        pytest.param("http://repo.example/p2/acme/tool.json", "only the upstream origin", id="upstream-over-http"),
        pytest.param("https://repo.example:8443/x", "only the upstream origin", id="upstream-other-port"),
        pytest.param("http://codeload.example.com/x.zip", "only the upstream origin", id="dist-host-over-http"),
        pytest.param("https://evil.example/x.zip", "only the upstream origin", id="host-not-allowed"),
        pytest.param("https://codeload.example.com.evil.example/x", "only the upstream origin", id="suffix-trick"),
        pytest.param("https://example.com/x.zip", "only the upstream origin", id="parent-domain"),
        pytest.param("https://169.254.169.254/latest/meta-data/", "only the upstream origin", id="metadata-ip"),
        pytest.param("ftp://codeload.example.com/x.zip", "not an absolute http", id="ftp"),
        pytest.param("file:///etc/passwd", "not an absolute http", id="file"),
        pytest.param("/p2/acme/tool.json", "not an absolute http", id="relative"),
        pytest.param("https:///x.zip", "not an absolute http", id="no-host"),
        pytest.param("https://codeload.example.com:99999/x", "invalid port", id="invalid-port"),
    ],
)
def test_the_policy_refuses(url: str, reason: str) -> None:
    with pytest.raises(RefusedURL, match=reason):
        FetchPolicy(UPSTREAM, DIST_HOSTS, resolve=False).check(url)


def test_the_policy_compares_allowed_hosts_without_case() -> None:
    FetchPolicy(UPSTREAM, ("CodeLoad.Example.com",), resolve=False).check("https://codeload.example.com/x.zip")


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
