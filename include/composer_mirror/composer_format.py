"""The Composer 2 repository format: names, p2 files (minified and expanded), the root, URLs."""

from __future__ import annotations

import copy
import json
import logging
import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urljoin, urlsplit

from composer_mirror.errors import InvalidPackageName, MirrorError

logger = logging.getLogger(__name__)

# Composer's own rule (ValidatingArrayLoader / packagist): lower case, one slash, runs of letters and
# digits joined by one "_", "." or "-" ("--" too after the slash). Composer writes it
# "^[a-z0-9]([_.-]?[a-z0-9]+)*/[a-z0-9](([_.]|-{1,2})?[a-z0-9]+)*$", which can split a run in
# exponentially many ways before giving up on a near miss (15 s for a 52-character PURL). Here a
# separator is never optional and a run is taken whole, never given back (possessive), so every
# character is looked at a fixed number of times.
PACKAGE_NAME_RE = re.compile(r"[a-z0-9]++(?:[_.-][a-z0-9]++)*+/[a-z0-9]++(?:(?:[_.]|--?)[a-z0-9]++)*+")
# Longer names are refused before any pattern runs: names from outside are unbounded, S3 keys are not.
MAX_NAME_LENGTH = 255
# Names the resolver handles itself; they never exist in a repository.
PLATFORM_NAME_RE = re.compile(
    r"^(php(-64bit|-ipv6|-zts|-debug)?|hhvm|composer(-plugin|-runtime)?-api|composer|ext-.+|lib-.+)$",
    re.IGNORECASE,
)
MINIFIED_MARKER = "composer/2.0"
UNSET = "__unset"
DEV_SUFFIX = "~dev"

Version = dict[str, Any]


def is_valid_package_name(name: str) -> bool:
    """True when ``name`` is a lower-case Composer package name (``vendor/package``)."""
    return isinstance(name, str) and len(name) <= MAX_NAME_LENGTH and PACKAGE_NAME_RE.fullmatch(name) is not None


def validate_package_name(name: str) -> str:
    """Return ``name`` or raise: every name from outside becomes an S3 key, so it is checked first."""
    if not is_valid_package_name(name):
        raise InvalidPackageName(f"invalid Composer package name: {name!r} (expected vendor/package)")
    return name


def is_platform_package(name: str) -> bool:
    """True for php, ext-*, lib-*, composer-*-api: requirements no repository can serve.

    ``require`` keys come from the upstream, so the length is checked first, as for package names."""
    return len(name) <= MAX_NAME_LENGTH and PLATFORM_NAME_RE.fullmatch(name) is not None


def is_dev_version(version: str) -> bool:
    """Branch versions (``dev-main``, ``2.x-dev``) live in the ``~dev`` file; tags in the main one."""
    return version.startswith("dev-") or version.endswith("-dev")


def expand(versions: Iterable[Mapping[str, Any]]) -> list[Version]:
    """Undo composer/metadata-minifier: each entry only lists keys that changed from the previous one.

    Entries are deep-copied so that editing one expanded version never leaks into another.
    """
    expanded: list[Version] = []
    previous: Version | None = None
    for entry in versions:
        if previous is None:
            current = copy.deepcopy(dict(entry))
        else:
            current = copy.deepcopy(previous)
            for key, value in entry.items():
                if value == UNSET:
                    current.pop(key, None)
                else:
                    current[key] = copy.deepcopy(value)
        expanded.append(current)
        previous = current
    return expanded


def minify(versions: Iterable[Mapping[str, Any]]) -> list[Version]:
    """Shallow diff of each entry against the previous expanded one, as packagist writes p2 files."""
    minified: list[Version] = []
    previous: Mapping[str, Any] | None = None
    for entry in versions:
        if previous is None:
            minified.append(dict(entry))
        else:
            diff = {
                key: value for key, value in entry.items() if key not in previous or not _same(previous[key], value)
            }
            diff.update({key: UNSET for key in previous if key not in entry})
            minified.append(diff)
        previous = entry
    return minified


def _same(a: Any, b: Any) -> bool:
    """Equality of decoded JSON values as PHP's ``===`` sees it: 1, 1.0 and true are different."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[key], b[key]) for key in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def parse_p2(raw: bytes | str, expected_name: str) -> list[Version]:
    """Parse an upstream p2 file and return the expanded versions of ``expected_name``.

    The file is untrusted: it must be a JSON object holding the requested package (and only
    that package is read), each version must be an object with a string ``version``.
    """
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise MirrorError(f"p2 file of {expected_name} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("packages"), dict):
        raise MirrorError(f"p2 file of {expected_name} has no 'packages' object")
    entries = data["packages"].get(expected_name)
    if entries is None:
        other = ", ".join(sorted(map(str, data["packages"]))[:3]) or "nothing"
        raise MirrorError(f"p2 file of {expected_name} holds {other} instead")
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise MirrorError(f"p2 file of {expected_name} does not hold a list of versions")
    versions = expand(entries) if data.get("minified") == MINIFIED_MARKER else copy.deepcopy(entries)
    for version in versions:
        if not isinstance(version.get("version"), str) or not version["version"]:
            raise MirrorError(f"p2 file of {expected_name} has a version entry without a version string")
    return versions


def dump_p2(name: str, versions: Iterable[Mapping[str, Any]], advisories: list[Any] | None = None) -> bytes:
    """Serialise a package's versions as a minified p2 file, deterministic byte for byte.

    Deterministic bytes matter: the store compares them with what is already published and
    never rewrites an unchanged object (its Last-Modified drives Composer's cache).
    ``advisories`` (full security advisories) go in the file's ``security-advisories`` key.
    """
    document: dict[str, Any] = {"minified": MINIFIED_MARKER, "packages": {name: minify(versions)}}
    if advisories is not None:
        document["security-advisories"] = advisories
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def advisories_in(raw: bytes | str) -> list[Any]:
    """The (partial) security advisories an upstream p2 file lists, as packagist writes them."""
    try:
        data = json.loads(raw)
    except ValueError:
        return []
    listed = data.get("security-advisories") if isinstance(data, dict) else None
    return [a for a in listed if isinstance(a, dict)] if isinstance(listed, list) else []


def split_dev(versions: Iterable[Mapping[str, Any]]) -> tuple[list[Version], list[Version]]:
    """Split versions into (tagged, branches): the contents of ``name.json`` and ``name~dev.json``."""
    tagged: list[Version] = []
    dev: list[Version] = []
    for version in versions:
        (dev if is_dev_version(str(version.get("version", ""))) else tagged).append(dict(version))
    return tagged, dev


def resolve_url(base_url: str, value: str) -> str:
    """Resolve a URL from a root file the way Composer does.

    An absolute URL stays; one starting with ``/`` joins the repository's scheme and host only
    (not its path); anything else is relative to the repository URL itself.
    """
    if urlsplit(value).scheme:
        return value
    if value.startswith("/"):
        # Composer prepends "scheme://host[:port]" as text, so "//other/x" stays on the repository host.
        parts = urlsplit(base_url)
        return f"{parts.scheme}://{parts.netloc}{value}"
    base = base_url if base_url.endswith("/") else base_url + "/"
    return urljoin(base, value)


def origin_of(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of a URL, with the default port filled in."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    port = parts.port or (443 if scheme == "https" else 80)
    return scheme, (parts.hostname or "").lower(), port
