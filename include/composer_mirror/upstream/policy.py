"""The fetch policy: which URLs the client may request, and which addresses it may connect to.

The upstream's own origin, set by the operator, may be anywhere (a registry on the internal
network). Anything else the upstream names (an archive's dist URL, an endpoint its root lists, a
redirect) is untrusted: https only, on a host the operator allowed, and never resolving to an
internal address. The policy resolves every host it allows and returns the addresses it checked,
so the connection can be made to one of them and nowhere else (:mod:`.transport`).
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

import urllib3

from composer_mirror.composer_format import origin_of
from composer_mirror.errors import RefusedURL
from composer_mirror.upstream.redaction import explicit_port, redact


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

        A direct connection goes to one of these and nowhere else (see :class:`.transport.PinnedAdapter`).
        Empty when the policy does not resolve (``resolve=False``, for tests without DNS).
        """
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise RefusedURL(f"refused {redact(url)}: not an absolute http(s) URL", url=redact(url))
        if explicit_port(parts) == -1:
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
    theirs = (str(parsed.scheme or "").lower(), host, parsed.port)
    return theirs != (parts.scheme.lower(), parts.hostname, explicit_port(parts))


class UnresolvedHost(RefusedURL):
    """The host did not resolve, so it was never requested; retried, as DNS failures often pass."""


def _resolve(url: str, parts: SplitResult) -> tuple[str, ...]:
    """The URL's host's addresses, in the order getaddrinfo prefers them, each once."""
    port = explicit_port(parts) or (443 if parts.scheme == "https" else 80)
    try:
        infos = socket.getaddrinfo(parts.hostname, port, proto=socket.IPPROTO_TCP)
    except OSError as exc:
        raise UnresolvedHost(f"refused {redact(url)}: host does not resolve ({exc})", url=redact(url)) from exc
    return tuple(dict.fromkeys(str(info[4][0]) for info in infos))


def _refuse_internal_addresses(url: str, host: str, addresses: tuple[str, ...]) -> None:
    for address in map(ipaddress.ip_address, addresses):
        if not address.is_global:
            raise RefusedURL(f"refused {redact(url)}: {host} resolves to internal address {address}", url=redact(url))
