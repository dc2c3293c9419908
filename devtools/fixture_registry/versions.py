"""Just enough of Composer's version handling to publish believable metadata.

The fixture must order tags newest first, fill ``version_normalized`` the way packagist does, and invent
older versions of a locked package. It does not need constraint solving, so this is a small subset of
composer/semver's VersionParser, written independently so that the fixture can check the mirror's code
rather than share its bugs.
"""

from __future__ import annotations

import functools
import re

_TAG_RE = re.compile(
    r"^v?(?P<nums>\d+(?:\.\d+){0,3})"
    r"(?:[._-]?(?P<mod>stable|beta|b|rc|alpha|a|patch|pl|p)(?:[.-]?(?P<modnum>\d+(?:[.-]?\d+)*))?)?"
    r"(?:[.-]?(?P<dev>dev))?$",
    re.IGNORECASE,
)
_BRANCH_RE = re.compile(r"^v?(?P<nums>(?:\d+|[xX*])(?:\.(?:\d+|[xX*])){0,3})-dev$")
_MODIFIERS = {
    "a": "alpha",
    "alpha": "alpha",
    "b": "beta",
    "beta": "beta",
    "rc": "RC",
    "p": "patch",
    "pl": "patch",
    "patch": "patch",
    "stable": "stable",
}
_STABILITY_RANK = {"dev": 0, "alpha": 1, "beta": 2, "RC": 3, "stable": 4, "patch": 5}
_WILDCARD = "9999999"


def is_dev(version: str) -> bool:
    """Branches (``dev-main``, ``3.x-dev``) go to the ``~dev`` file, everything else is a tag."""
    return version.startswith("dev-") or version.endswith("-dev")


def normalize(version: str) -> str:
    """Composer's ``version_normalized``: four numeric parts, expanded modifiers, branch wildcards.

    ``v1.2`` -> ``1.2.0.0``, ``1.0.0-b2`` -> ``1.0.0.0-beta2``, ``3.x-dev`` ->
    ``3.9999999.9999999.9999999-dev``, ``dev-main`` -> ``dev-main``.
    """
    if version.startswith("dev-"):
        return version
    branch = _BRANCH_RE.match(version)
    if branch and re.search(r"[xX*]", branch.group("nums")):
        parts = [_WILDCARD if p in "xX*" else p for p in branch.group("nums").split(".")]
        parts += [_WILDCARD] * (4 - len(parts))
        return ".".join(parts) + "-dev"
    match = _TAG_RE.match(version)
    if not match:
        raise ValueError(f"unsupported version string: {version!r}")
    parts = match.group("nums").split(".")
    parts += ["0"] * (4 - len(parts))
    result = ".".join(str(int(p)) for p in parts)
    if match.group("mod"):
        modifier = _MODIFIERS[match.group("mod").lower()]
        if modifier != "stable":
            result += "-" + modifier + re.sub(r"[.-]", "", match.group("modnum") or "")
    if match.group("dev"):
        result += "-dev"
    return result


@functools.lru_cache(maxsize=65536)
def sort_key(version: str) -> tuple[int, ...]:
    """A key ordering tags as Composer does (1.0.0-alpha < 1.0.0-beta < 1.0.0-RC < 1.0.0 < 1.0.0-patch1)."""
    normalized = normalize(version)
    if normalized.startswith("dev-"):
        return (-1,)
    base, _, suffix = normalized.partition("-")
    numbers = tuple(int(p) for p in base.split("."))
    stability = "stable"
    suffix_number = 0
    if suffix:
        modifier = re.match(r"(alpha|beta|RC|patch|dev)(\d*)", suffix)
        if modifier:
            stability = modifier.group(1)
            suffix_number = int(modifier.group(2) or 0)
    return (*numbers, _STABILITY_RANK[stability], suffix_number)


def older_versions(version: str, count: int) -> list[str]:
    """Up to ``count`` plausible earlier stable tags, newest first, keeping the ``v`` prefix and part count.

    ``v3.4.4`` -> ``v3.4.3``, ``v3.4.2``; ``8.1.0`` -> ``8.0.9``, ``8.0.8``; ``2.0`` -> ``1.9``, ``1.8``.
    Stops early at zero, so ``0.0.1`` yields only ``0.0.0``.
    """
    match = re.match(r"^(v?)(\d+(?:\.\d+)*)", version)
    if not match:
        return []
    prefix, numbers = match.group(1), [int(p) for p in match.group(2).split(".")]
    result: list[str] = []
    for _ in range(count):
        numbers = _predecessor(numbers)
        if numbers is None:
            break
        result.append(prefix + ".".join(str(n) for n in numbers))
    return result


def _predecessor(numbers: list[int]) -> list[int] | None:
    """The previous version with the same number of parts; lower parts wrap to 9 like a long-lived series."""
    numbers = list(numbers)
    for index in reversed(range(len(numbers))):
        if numbers[index] > 0:
            numbers[index] -= 1
            for lower in range(index + 1, len(numbers)):
                numbers[lower] = 9
            return numbers
    return None
