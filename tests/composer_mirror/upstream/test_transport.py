"""The client connects to the address the fetch policy checked, never to a second DNS answer.

A resolver the tests control (``socket.getaddrinfo`` patched) answers names; IP literals pass
through, any other name fails to resolve, so nothing here reaches a real DNS server. Every
``connect`` is recorded and any that is not to loopback is refused, so the public-looking
address a check accepts is never really contacted. The servers listen on 127.0.0.1.
"""

from __future__ import annotations

import datetime
import ipaddress
import socket
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from composer_mirror.errors import RefusedURL, UpstreamError
from composer_mirror.upstream import FetchPolicy, PinnedAdapter, RetryPolicy, UpstreamClient, connecting_only_to
from tests.composer_mirror.upstream.local_server import LocalServer

# Global by Python's reckoning (the retired 6to4 relay anycast), unlike the TEST-NET ranges,
# which ipaddress counts as private; never really connected to (see ``connects``).
CHECKED = "192.88.99.1"
ONCE = RetryPolicy(attempts=1)
REAL_GETADDRINFO = socket.getaddrinfo
REAL_CONNECT = socket.socket.connect


@dataclass
class FakeDNS:
    """Answers the names in ``answers`` (the first answer once each, the last one from then on).

    Each lookup is recorded with whether the fetch policy's check made it.
    """

    answers: dict[str, list[str]] = field(default_factory=dict)
    lookups: list[tuple[str, bool]] = field(default_factory=list)
    in_check: bool = False

    def getaddrinfo(self, host: Any, port: Any, *args: Any, **kwargs: Any) -> list[Any]:
        if host in self.answers:
            self.lookups.append((host, self.in_check))
            queue = self.answers[host]
            address = queue.pop(0) if len(queue) > 1 else queue[0]
            return [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (address, int(port or 0)))]
        try:
            ipaddress.ip_address(host)
        except ValueError:
            raise socket.gaierror(socket.EAI_NONAME, f"{host} is not a name this test answers") from None
        return REAL_GETADDRINFO(host, port, *args, **kwargs)


@dataclass
class WatchedPolicy(FetchPolicy):
    """The real policy, telling the resolver which lookups are its check's own."""

    dns: FakeDNS = field(default_factory=FakeDNS)

    def check(self, url: str) -> tuple[str, ...]:
        self.dns.in_check = True
        try:
            return super().check(url)
        finally:
            self.dns.in_check = False


@pytest.fixture
def dns(monkeypatch: pytest.MonkeyPatch) -> FakeDNS:
    resolver = FakeDNS()
    monkeypatch.setattr(socket, "getaddrinfo", resolver.getaddrinfo)
    return resolver


@pytest.fixture
def connects(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    """Every address a socket connects to; anything but loopback is refused before it leaves."""
    seen: list[tuple[str, int]] = []

    def connect(sock: socket.socket, address: Any) -> None:
        seen.append((address[0], address[1]))
        if not ipaddress.ip_address(address[0]).is_loopback:
            raise ConnectionRefusedError(111, "refused by the test: not loopback")
        REAL_CONNECT(sock, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    return seen


@contextmanager
def serving(local: LocalServer) -> Iterator[LocalServer]:
    local.thread.start()
    try:
        yield local
    finally:
        local.httpd.shutdown()
        local.httpd.server_close()


@pytest.fixture
def server() -> Iterator[LocalServer]:
    with serving(LocalServer()) as running:
        yield running


def port_of(local: LocalServer) -> int:
    return int(local.httpd.server_address[1])


def test_a_dist_host_rebound_to_loopback_after_its_check_is_never_connected_to(
    server: LocalServer, dns: FakeDNS, connects: list[tuple[str, int]], tmp_path: Path
) -> None:
    port = port_of(server)
    dns.answers["dist.test"] = [CHECKED, "127.0.0.1"]  # what the check sees, then the rebinding
    policy = WatchedPolicy("http://registry.test", ("dist.test",), dns=dns)
    with (
        UpstreamClient(policy, retry=ONCE) as client,
        open(tmp_path / "a.zip", "w+b") as out,
        pytest.raises(UpstreamError) as raised,
    ):
        client.download(f"https://dist.test:{port}/a.zip", out, max_bytes=1000)
    assert connects == [(CHECKED, port)]
    assert server.requests == 0
    assert dns.lookups == [("dist.test", True)]
    assert "refused by the test" in str(raised.value)


def test_the_upstream_origin_is_connected_to_at_the_address_its_check_resolved(
    server: LocalServer, dns: FakeDNS, connects: list[tuple[str, int]]
) -> None:
    port = port_of(server)
    dns.answers["registry.test"] = ["127.0.0.1"]
    origin = f"http://registry.test:{port}"
    with UpstreamClient(WatchedPolicy(origin, dns=dns), retry=ONCE) as client:
        assert client.get_metadata(origin + "/p2/a/b.json").status == 200
    assert dns.lookups == [("registry.test", True)]
    assert connects == [("127.0.0.1", port)]
    assert [seen.headers["Host"] for seen in server.seen] == [f"registry.test:{port}"]


def test_a_url_the_policy_refuses_is_never_looked_up(dns: FakeDNS) -> None:
    dns.answers["dist.test"] = [CHECKED]
    with pytest.raises(RefusedURL, match="only the upstream origin"):
        FetchPolicy("http://registry.test", ("dist.test",)).check("http://dist.test/a.zip")
    assert dns.lookups == []


def test_a_host_that_does_not_resolve_is_retried_then_reported(dns: FakeDNS, connects: list[tuple[str, int]]) -> None:
    origin = "http://registry.test"
    with (
        UpstreamClient(FetchPolicy(origin), retry=RetryPolicy(attempts=2, backoff=0.001)) as client,
        pytest.raises(UpstreamError, match=r"failed after 2 attempt.*host does not resolve"),
    ):
        client.get_metadata(origin + "/p2/a/b.json")
    assert connects == []


# --- https: SNI and the certificate check stay on the name --------------------------------
def test_the_adapter_keys_an_https_pool_by_the_checked_address_and_keeps_the_name_for_tls() -> None:
    adapter = PinnedAdapter()
    request = requests.Request("GET", "https://dist.test:8443/a.zip").prepare()
    with connecting_only_to((CHECKED, "192.0.0.9")):
        pool = adapter.get_connection_with_tls_context(request, verify=True)
        adapter.add_headers(request, proxies={})
    assert (pool.host, pool.port) == (CHECKED, 8443)
    assert pool.conn_kw["server_hostname"] == "dist.test"  # SNI, and the name the certificate must bear
    assert "assert_hostname" not in pool.conn_kw  # hostname checking is not switched off
    assert pool.cert_reqs == "CERT_REQUIRED"
    assert request.headers["Host"] == "dist.test:8443"


def test_the_adapter_leaves_a_proxied_request_to_the_proxy() -> None:
    adapter = PinnedAdapter()
    request = requests.Request("GET", "https://dist.test/a.zip").prepare()
    proxies = {"https": "http://127.0.0.1:3128"}
    with connecting_only_to((CHECKED,)):
        pool = adapter.get_connection_with_tls_context(request, verify=True, proxies=proxies)
        adapter.add_headers(request, proxies=proxies)
    assert pool.host == "dist.test"
    assert "Host" not in request.headers


@dataclass
class TLSFiles:
    ca: Path
    chain: Path
    key: Path


def issue(tmp_path: Path, name: str) -> TLSFiles:
    """A throwaway CA and a leaf certificate for ``name`` signed by it."""
    now = datetime.datetime.now(datetime.UTC)

    def certificate(subject: str, issuer: str, key: Any, signer: Any, ca: bool) -> x509.Certificate:
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if ca:
            builder = builder.add_extension(
                x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
            )
        else:
            builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(subject)]), critical=False)
        return builder.sign(signer, hashes.SHA256())

    ca_key, leaf_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = certificate("pinning test CA", "pinning test CA", ca_key, ca_key, ca=True)
    leaf = certificate(name, "pinning test CA", leaf_key, ca_key, ca=False)
    files = TLSFiles(tmp_path / "ca.pem", tmp_path / "chain.pem", tmp_path / "key.pem")
    files.ca.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    files.chain.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    files.key.write_bytes(
        leaf_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return files


@pytest.fixture
def tls_server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[LocalServer, TLSFiles, list[str]]]:
    """An https LocalServer whose certificate names ``request.param``; yields it, its files and the SNI names seen."""
    files = issue(tmp_path, request.param)
    names: list[str] = []
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(files.chain, files.key)
    context.sni_callback = lambda _sock, name, _context: names.append(name)  # type: ignore[assignment,func-returns-value]
    local = LocalServer()
    local.httpd.socket = context.wrap_socket(local.httpd.socket, server_side=True)
    with serving(local) as running:
        yield running, files, names


@pytest.mark.parametrize("tls_server", ["registry.test"], indirect=True)
def test_a_pinned_https_connection_sends_and_verifies_the_host_name(
    tls_server: tuple[LocalServer, TLSFiles, list[str]], dns: FakeDNS, connects: list[tuple[str, int]]
) -> None:
    local, files, names = tls_server
    port = port_of(local)
    dns.answers["registry.test"] = ["127.0.0.1"]
    origin = f"https://registry.test:{port}"
    with UpstreamClient(WatchedPolicy(origin, dns=dns), retry=ONCE) as client:
        client.session.verify = str(files.ca)
        assert client.get_metadata(origin + "/p2/a/b.json").status == 200
    assert connects == [("127.0.0.1", port)]
    assert names == ["registry.test"]
    assert [seen.headers["Host"] for seen in local.seen] == [f"registry.test:{port}"]


@pytest.mark.parametrize("tls_server", ["elsewhere.test"], indirect=True)
def test_a_pinned_https_connection_refuses_a_certificate_for_another_name(
    tls_server: tuple[LocalServer, TLSFiles, list[str]], dns: FakeDNS, connects: list[tuple[str, int]]
) -> None:
    local, files, _names = tls_server
    dns.answers["registry.test"] = ["127.0.0.1"]
    origin = f"https://registry.test:{port_of(local)}"
    with UpstreamClient(WatchedPolicy(origin, dns=dns), retry=ONCE) as client:
        client.session.verify = str(files.ca)
        with pytest.raises(UpstreamError, match="CERTIFICATE_VERIFY_FAILED"):
            client.get_metadata(origin + "/p2/a/b.json")
    assert local.requests == 0


# --- behind an HTTP proxy ------------------------------------------------------------------
@pytest.fixture
def proxy() -> Iterator[LocalServer]:
    with serving(LocalServer()) as running:
        yield running


def test_behind_a_proxy_the_proxy_is_given_the_name_not_an_address(
    proxy: LocalServer, dns: FakeDNS, connects: list[tuple[str, int]], monkeypatch: pytest.MonkeyPatch
) -> None:
    for variable in ("no_proxy", "NO_PROXY"):
        monkeypatch.delenv(variable, raising=False)
    dns.answers["registry.test"] = ["127.0.0.1"]
    origin = "http://registry.test:8080"
    with UpstreamClient(WatchedPolicy(origin, dns=dns), retry=ONCE) as client:
        client.session.proxies = {"http": proxy.url, "https": proxy.url}
        assert client.get_metadata(origin + "/p2/a/b.json").status == 200
    assert connects == [("127.0.0.1", port_of(proxy))]
    assert [(seen.path, seen.headers["Host"]) for seen in proxy.seen] == [
        (origin + "/p2/a/b.json", "registry.test:8080")
    ]


def test_behind_a_proxy_a_dist_host_resolving_to_an_internal_address_is_still_refused(
    proxy: LocalServer, dns: FakeDNS, connects: list[tuple[str, int]], tmp_path: Path
) -> None:
    dns.answers["dist.test"] = ["127.0.0.1"]
    with UpstreamClient(WatchedPolicy("http://registry.test", ("dist.test",), dns=dns), retry=ONCE) as client:
        client.session.proxies = {"http": proxy.url, "https": proxy.url}
        with open(tmp_path / "a.zip", "w+b") as out, pytest.raises(RefusedURL, match="internal address"):
            client.download("https://dist.test/a.zip", out, max_bytes=1000)
    assert connects == []
    assert proxy.requests == 0
