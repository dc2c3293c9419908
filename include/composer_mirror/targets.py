"""Targets: what to mirror. Selection entries become package names with version selectors.

A *selector* is a Composer constraint string that chooses versions of one package:
``*`` (every stable version), ``^3.0``, or an exact version pinned by an SBOM or PURL (``3.0.2``,
``dev-main``). A package's selectors accumulate in the catalog; a version is mirrored when any
selector chooses it.
"""

from __future__ import annotations

import fnmatch
import logging
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cmp_to_key
from typing import Any, TypeVar

from composer_mirror import versions
from composer_mirror.composer_format import (
    MAX_NAME_LENGTH,
    is_dev_version,
    is_valid_package_name,
    validate_package_name,
)
from composer_mirror.errors import InvalidVersion, TargetError

logger = logging.getLogger(__name__)

ALL_STABLE = "*"
PATTERN_RE = re.compile(r"^[a-z0-9_.*?-]+/[a-z0-9_.*?-]+$|^\*$")
STABILITY_RANK = {"stable": 0, "RC": 5, "beta": 10, "alpha": 15, "dev": 20}

Targets = dict[str, list[str]]
T = TypeVar("T")


@dataclass(frozen=True)
class SelectionEntry:
    """One parsed entry of composer_mirror_packages: a name or a glob, with a selector."""

    pattern: str
    selector: str = ALL_STABLE

    @property
    def is_pattern(self) -> bool:
        return "*" in self.pattern or "?" in self.pattern


@dataclass
class Selection:
    entries: list[SelectionEntry] = field(default_factory=list)
    skipped: dict[str, int] = field(default_factory=dict)


def parse_selection(items: Iterable[str]) -> Selection:
    """Parse names (``psr/log``), globs (``symfony/*``, ``*``), ``name:constraint`` and composer PURLs."""
    from composer_mirror.sbom import parse_purl

    selection = Selection()
    for index, raw in enumerate(items, start=1):
        item = raw.strip()
        if item.startswith("pkg:"):
            parsed = parse_purl(item, source=f"selection entry {index}")
            if isinstance(parsed, str):
                selection.skipped[parsed] = selection.skipped.get(parsed, 0) + 1
                continue
            selector = parsed.version or ALL_STABLE
            check_selector(selector, f"selection entry {index} {raw!r}")
            selection.entries.append(SelectionEntry(parsed.name, selector))
            continue
        name, _, constraint = item.partition(":")
        name, constraint = name.strip().lower(), constraint.strip() or ALL_STABLE
        if len(name) > MAX_NAME_LENGTH:
            # Checked before any pattern runs, like package names themselves.
            raise TargetError(
                f"selection entry {index}: {len(name)} characters, longer than a name or pattern can be "
                f"({MAX_NAME_LENGTH})"
            )
        if not (PATTERN_RE.match(name) if ("*" in name or "?" in name) else is_valid_package_name(name)):
            raise TargetError(f"selection entry {index} {raw!r}: not a package name, vendor/* pattern or PURL")
        check_selector(constraint, f"selection entry {index} {raw!r}")
        selection.entries.append(SelectionEntry(name, constraint))
    return selection


def check_selector(selector: str, where: str) -> None:
    try:
        versions.parse_constraints(selector)
    except InvalidVersion as exc:
        raise TargetError(f"{where}: invalid version constraint {selector!r}: {exc}") from exc


def expand_patterns(selection: Selection, list_names: Any) -> Targets:
    """Turn the selection into targets; ``list_names(pattern)`` returns upstream names for a glob."""
    targets: Targets = {}
    for entry in selection.entries:
        if entry.is_pattern:
            names = [n for n in list_names(entry.pattern) if is_valid_package_name(n)]
            matched = [n for n in names if fnmatch.fnmatchcase(n, entry.pattern)]
            logger.info("pattern %s matched %d upstream packages", entry.pattern, len(matched))
        else:
            matched = [validate_package_name(entry.pattern)]
        for name in matched:
            add_selector(targets, name, entry.selector)
    return targets


def add_selector(targets: Targets, name: str, selector: str) -> None:
    current = targets.setdefault(name, [])
    if selector not in current:
        current.append(selector)
        current.sort()


def selector_allows(selector: str, version: str, normalized: str) -> bool:
    """Does this selector choose this version? Stable only, unless the selector says otherwise.

    A stability flag (``^2.0@beta``) admits that stability and above; an exact pin
    (``1.0.0-RC1``, ``dev-main``, from an SBOM) admits exactly that version whatever it is.
    """
    try:
        constraint = versions.parse_constraints(selector)
        if not constraint.matches(normalized):
            return False
        stability = versions.parse_stability(version)
    except InvalidVersion:
        return False
    if stability == "stable":
        return True
    flag = getattr(constraint, "stability_flag", None)
    if flag and STABILITY_RANK.get(stability, 20) <= STABILITY_RANK.get(flag.lower() if flag != "RC" else flag, 0):
        return True
    return _is_exact_pin(selector, normalized)


def is_pin(selector: str) -> bool:
    """An exact version (from an SBOM or PURL) rather than a range: pinned versions are never dropped."""
    try:
        versions.normalize(selector.lstrip("=").strip())
    except InvalidVersion:
        return False
    return True


def _is_exact_pin(selector: str, normalized: str) -> bool:
    try:
        return versions.normalize(selector.lstrip("=").strip()) == normalized
    except InvalidVersion:
        return False


def wants_dev(selectors: Iterable[str]) -> bool:
    """Whether any selector can choose a branch version, so the ``~dev`` file must be read."""
    for selector in selectors:
        flag = _flag_of(selector)
        if flag == "dev" or "dev" in selector.lower():
            return True
    return False


def _flag_of(selector: str) -> str | None:
    try:
        flag = getattr(versions.parse_constraints(selector), "stability_flag", None)
    except InvalidVersion:
        return None
    return flag.lower() if flag else None


def normalized_of(entry: Mapping[str, Any]) -> str | None:
    """The entry's version as Composer normalises it: the one key for a version everywhere.

    Computed from ``version``, whatever the upstream sends as ``version_normalized`` (optional, and
    possibly wrong or absent in one listing and present in the next), so the state, the published
    files and SBOM pins always agree. The upstream's value is used only for a version Composer's
    parser refuses; None when there is neither.
    """
    try:
        return versions.normalize(str(entry.get("version", "")))
    except InvalidVersion:
        value = entry.get("version_normalized")
        return value if isinstance(value, str) and value else None


def newest_first(items: Iterable[T], version_of: Callable[[T], str]) -> list[T]:
    """Tags newest first (Composer's own version order, not string order), then branches by name.

    One deterministic order for p2 files and the listing page, whatever order versions arrived in,
    so an unchanged set of versions always serialises to the same bytes.
    """
    tags: list[tuple[str, T]] = []
    branches: list[tuple[str, T]] = []
    for item in items:
        version = version_of(item)
        if is_dev_version(version):
            branches.append((version, item))
            continue
        try:
            tags.append((versions.normalize(version), item))
        except InvalidVersion:
            branches.append((version, item))

    def newer(a: tuple[str, T], b: tuple[str, T]) -> int:
        return versions.cmp_versions(a[0], b[0]) or _tie(a[1], b[1], version_of)

    tags.sort(key=cmp_to_key(newer), reverse=True)
    branches.sort(key=lambda pair: pair[0])
    return [item for _, item in tags] + [item for _, item in branches]


def _tie(a: T, b: T, version_of: Callable[[T], str]) -> int:
    return (version_of(a) > version_of(b)) - (version_of(a) < version_of(b))


def select_versions(entries: Iterable[dict[str, Any]], selectors: Iterable[str]) -> list[dict[str, Any]]:
    """The upstream entries chosen by any of the selectors."""
    selectors = list(selectors)
    chosen = []
    for entry in entries:
        normalized = normalized_of(entry)
        if normalized and any(selector_allows(s, str(entry["version"]), normalized) for s in selectors):
            chosen.append(entry)
    return chosen
