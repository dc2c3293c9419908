"""Security advisories: full advisories from the upstream's API, embedded in the mirror's p2 files.

Packagist puts only partial advisories (``advisoryId``, ``affectedVersions``) in p2 files and
serves the full ones from the API its root names (``security-advisories.api-url``). Composer
accepts full advisories from p2 files when the root says ``{"metadata": true}`` without an
api-url, so a mirror that embeds them lets ``composer audit`` work against the mirror alone.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlencode

from composer_mirror.errors import UpstreamError
from composer_mirror.upstream import UpstreamClient, redact

logger = logging.getLogger(__name__)

# Names per API request: keeps the query string well under common URL length limits.
CHUNK = 40
FULL_KEYS = ("title", "reportedAt", "sources")


def fetch_full_advisories(
    client: UpstreamClient, api_url: str, names: Iterable[str]
) -> dict[str, list[dict[str, Any]]]:
    """name -> full advisories, for every name asked (an empty list when it has none)."""
    names = sorted(set(names))
    found: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    for start in range(0, len(names), CHUNK):
        chunk = names[start : start + CHUNK]
        query = urlencode([("packages[]", name) for name in chunk])
        url = f"{api_url}{'&' if '?' in api_url else '?'}{query}"
        document = client.get_json(url)
        advisories = document.get("advisories") if isinstance(document, dict) else None
        if isinstance(advisories, list) and not advisories:
            continue  # PHP serialises an empty map as []
        if not isinstance(advisories, dict):
            raise UpstreamError(f"{redact(api_url)} answered without an advisories object", url=redact(api_url))
        for name in chunk:
            found[name] = [a for a in advisories.get(name, []) if is_full(a)]
    return found


def is_full(advisory: Any) -> bool:
    """Composer refuses partial advisories from p2 files when the root has no api-url."""
    return isinstance(advisory, dict) and all(key in advisory for key in FULL_KEYS)
