"""A Composer v2 repository as the mirror reads it: the endpoints its root names, and their URLs.

Everything else about an upstream derives from its ``packages.json``: where package files are
(``metadata-url``), where the package list is (``list``), the changes feed
(``metadata-changes-url``) and the security-advisories API. :class:`Endpoints` carries them, typed,
between tasks (as JSON through XCom) and into the fetch policy, which lets the client fetch from
every origin they name.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import urlencode

from composer_mirror.composer_format import DEV_SUFFIX, resolve_url
from composer_mirror.errors import UpstreamError
from composer_mirror.upstream.client import UpstreamClient


@dataclass(frozen=True)
class Endpoints:
    """The upstream's root, resolved: ``metadata_url`` always, the others when the root names them."""

    metadata_url: str
    list_url: str | None = None
    changes_url: str | None = None
    advisories_url: str | None = None

    def urls(self) -> tuple[str, ...]:
        """Every URL the root names: their origins may be fetched from like the upstream's own."""
        return tuple(url for url in asdict(self).values() if url)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Endpoints:
        fields: dict[str, Any] = {key: data.get(key) for key in cls.__dataclass_fields__}
        return cls(**fields)


def read_endpoints(client: UpstreamClient, upstream_url: str) -> Endpoints:
    """Discover the upstream's v2 endpoints from its root; everything else derives from them."""
    root_url = upstream_url.rstrip("/") + "/packages.json"
    root = client.get_json(root_url)
    if not isinstance(root, dict) or "%package%" not in str(root.get("metadata-url", "")):
        raise UpstreamError(f"{root_url} has no metadata-url: not a Composer 2 repository", url=root_url)

    def named(value: Any) -> str | None:
        return resolve_url(upstream_url, value) if isinstance(value, str) and value else None

    advisories = root.get("security-advisories")
    return Endpoints(
        metadata_url=resolve_url(upstream_url, root["metadata-url"]),
        list_url=named(root.get("list")),
        changes_url=named(root.get("metadata-changes-url")),
        advisories_url=named(advisories.get("api-url")) if isinstance(advisories, dict) else None,
    )


def package_url(endpoints: Endpoints, name: str, dev: bool = False) -> str:
    """A package's p2 file (or its ``~dev`` variant) upstream: the ``metadata-url`` template filled in."""
    return endpoints.metadata_url.replace("%package%", name + (DEV_SUFFIX if dev else ""))


def list_url(endpoints: Endpoints | None, upstream_url: str, pattern: str) -> str:
    """The upstream's package list, narrowed server-side where the pattern allows it."""
    base = (endpoints.list_url if endpoints else None) or upstream_url.rstrip("/") + "/packages/list.json"
    if pattern == "*":
        return base
    vendor, _, package = pattern.partition("/")
    query = {"vendor": vendor} if package == "*" and "*" not in vendor else {"filter": pattern}
    return f"{base}{'&' if '?' in base else '?'}{urlencode(query)}"


def list_names(client: UpstreamClient, endpoints: Endpoints | None, upstream_url: str, pattern: str) -> list[str]:
    """The package names the upstream's list returns for a pattern (narrowed server-side where it can be).

    Untrusted: anything that is not a string is dropped here, names are validated by the caller.
    """
    document = client.get_json(list_url(endpoints, upstream_url, pattern))
    names = document.get("packageNames") if isinstance(document, dict) else None
    return [name for name in names if isinstance(name, str)] if isinstance(names, list) else []
