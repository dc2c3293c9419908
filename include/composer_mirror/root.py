"""The mirror's root, ``packages.json``: built here, and parsed here for every reader.

The publisher rewrites it, verify checks it as a client reads it, prune reads the package list it
must keep. Each draws its own conclusion from an unusable root (the publisher rebuilds it from the
mirrored set, verify reports it, prune refuses to run), but all of them read it through
:func:`parse_root`, so they never disagree about what a stored root says.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from composer_mirror.composer_format import is_valid_package_name
from composer_mirror.errors import MirrorError
from composer_mirror.store import Store
from composer_mirror.store.layout import ROOT

# What the root says when full advisories are inside the p2 files (no api-url to ask instead).
ADVISORIES_IN_METADATA = {"metadata": True}


def metadata_url(repository_url: str) -> str:
    """``/bucket/prefix/p2/%package%.json``: path-absolute, so it resolves on any host serving the repo."""
    path = urlsplit(repository_url).path.rstrip("/")
    return f"{path}/p2/%package%.json"


def build_root(repository_url: str, available: Iterable[str], advisories: bool = False) -> bytes:
    """The root file: v2 metadata-url and the complete package list, nothing pointing upstream.

    With ``advisories`` it tells Composer that full advisories are inside the p2 files (no
    api-url), so ``composer audit`` works against the mirror alone.
    """
    document: dict[str, Any] = {
        "packages": [],
        "metadata-url": metadata_url(repository_url),
        "available-packages": sorted(set(available)),
    }
    if advisories:
        document["security-advisories"] = dict(ADVISORIES_IN_METADATA)
    return json.dumps(document, indent=1, sort_keys=True).encode() + b"\n"


class UnreadableRoot(MirrorError):
    """A stored root that is not JSON at all; ``reason`` says why, without naming the key."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"{ROOT} {reason}")
        self.reason = reason


@dataclass(frozen=True)
class StoredRoot:
    """What a stored root holds, read without judging it: each reader decides what makes it unusable.

    ``listed`` is ``available-packages`` as stored, whatever its type; ``is_object`` is False for
    JSON that is not an object, which holds none of the keys.
    """

    is_object: bool
    metadata_url: Any = None
    listed: Any = None
    advisories: bool = False

    def available(self) -> list[str]:
        """The package list, as a writer keeps it; raises MirrorError when there is no list of names."""
        if not isinstance(self.listed, list) or not all(isinstance(name, str) for name in self.listed):
            raise MirrorError(f"{ROOT} has no list of available-packages")
        return list(self.listed)

    def package_names(self) -> tuple[list[str], list[Any]]:
        """The listed package names (sorted, each once), and the entries that are not package names.

        Only for a root whose ``listed`` is a list.
        """
        valid: list[str] = []
        invalid: list[Any] = []
        for name in self.listed:
            (valid if isinstance(name, str) and is_valid_package_name(name) else invalid).append(name)
        return sorted(set(valid)), invalid


def parse_root(body: bytes) -> StoredRoot:
    """Read a stored root; raises :class:`UnreadableRoot` when it is not JSON."""
    try:
        document = json.loads(body)
    except ValueError as exc:
        raise UnreadableRoot(f"is not valid JSON: {exc}") from exc
    if not isinstance(document, dict):
        return StoredRoot(is_object=False)
    return StoredRoot(
        is_object=True,
        metadata_url=document.get("metadata-url"),
        listed=document.get("available-packages"),
        advisories=document.get("security-advisories") == ADVISORIES_IN_METADATA,
    )


def parse_available(body: bytes) -> list[str]:
    """The root's package list; raises MirrorError when the root is not a usable root."""
    return parse_root(body).available()


def announces_advisories(body: bytes | None) -> bool:
    """Whether a root says full advisories are in the p2 files; False for none or an unreadable one."""
    if body is None:
        return False
    try:
        return parse_root(body).advisories
    except UnreadableRoot:
        return False


def read_available(store: Store) -> tuple[list[str], str | None]:
    """The published package list and the root's ETag; raises MirrorError for an unusable root."""
    stored = store.get(ROOT)
    if stored is None:
        return [], None
    return parse_available(stored.body), stored.etag
