"""How a request reaches a host: the session, its proxies, and connections pinned to checked addresses.

The fetch policy resolves every host it allows and the connection goes to an address it checked
(:class:`PinnedAdapter`): nothing resolves the name a second time, so a name cannot answer a
public address to the check and an internal one at connect time (DNS rebinding). Behind an
HTTP(S) proxy the proxy resolves and connects, so nothing is pinned: the policy still refuses,
by resolving here, a dist host or root-named endpoint with an internal address, but which
addresses a proxied request can reach is the proxy's egress policy. The proxy is handed the host
name, not an address, because proxies filter and log by name. Hosts NO_PROXY exempts are
connected to directly, pinned. Either way the worker needs DNS for the names it fetches.

Every response read through these connections honours the transfer deadline (:mod:`.deadline`).
"""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import requests
import urllib3
from requests.utils import select_proxy

from composer_mirror.upstream.deadline import DeadlineAdapter

USER_AGENT = "composer-s3-mirror/1.0 (Composer repository mirror; see the operator contact of this mirror)"

# The addresses the fetch policy checked for the request being sent in this context (thread).
_CHECKED_ADDRESSES: ContextVar[tuple[str, ...]] = ContextVar("composer_mirror_checked_addresses", default=())


def upstream_session(concurrency: int) -> requests.Session:
    """One pooled session for all threads of a task, every connection pinned and under the deadline.

    ``concurrency`` (the most requests in flight to one host) sizes its connection pools.
    """
    session = requests.Session()
    # No ~/.netrc: its credentials would follow requests to archive hosts. Proxies still apply.
    session.trust_env = False
    session.proxies = {k: v for k, v in urllib.request.getproxies().items() if k != "no"}
    session.headers.update({"User-Agent": USER_AGENT, "Accept-Encoding": "gzip"})
    adapter = PinnedAdapter(pool_connections=8, pool_maxsize=max(concurrency * 2, 16), max_retries=0)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def proxies_for(url: str, proxies: dict[str, str]) -> dict[str, str | None]:
    """The session's proxies, unless NO_PROXY exempts the host (trust_env is off, so we check it)."""
    if proxies and requests.utils.should_bypass_proxies(url, no_proxy=None):
        return {"http": None, "https": None}
    return dict(proxies)


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
        verify: bool | str,
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
