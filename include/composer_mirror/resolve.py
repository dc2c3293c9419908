"""Resolve requested packages (from an SBOM or PURLs) into targets, with their dependencies.

Each requested version must exist upstream (matched on the normalized version, so ``v1.2.3``
equals ``1.2.3``). With dependencies, every ``require`` of a chosen version is followed: the
dependency gets the constraint as its selector, so every stable version satisfying it is
mirrored, and their own requirements are followed in turn.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from composer_mirror import versions
from composer_mirror.composer_format import is_platform_package, is_valid_package_name
from composer_mirror.errors import InvalidVersion, TargetError
from composer_mirror.parallel import map_bounded
from composer_mirror.sbom import Requested
from composer_mirror.targets import ALL_STABLE, Targets, add_selector, normalized_of, select_versions
from composer_mirror.upstream.composer import Endpoints, package_url

logger = logging.getLogger(__name__)

# A package's expanded upstream version entries (untrusted JSON objects).
Entries = list[dict[str, Any]]
# name, dev -> expanded upstream entries, or None when the upstream has no such package.
FetchVersions = Callable[[str, bool], Entries | None]


@dataclass
class Resolution:
    targets: Targets = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)
    # name -> [(normalized version, pretty version, archive size when the upstream states it)]
    chosen: dict[str, list[tuple[str, str, int | None]]] = field(default_factory=dict)

    def raise_for_missing(self) -> None:
        if self.missing:
            listed = "\n  ".join(self.missing[:50])
            more = f"\n  ... and {len(self.missing) - 50} more" if len(self.missing) > 50 else ""
            raise TargetError(f"{len(self.missing)} requested packages or versions are not upstream:\n  {listed}{more}")


def selector_for(requested: Requested) -> str:
    """An exact pin for a versioned request, every stable version otherwise."""
    return requested.version if requested.version else ALL_STABLE


def resolve(
    requested: Iterable[Requested],
    fetch_versions: FetchVersions,
    *,
    with_dependencies: bool,
    concurrency: int = 10,
) -> Resolution:
    """Check every requested version upstream and, if asked, add the dependency closure."""
    resolution = Resolution()
    requested = list(requested)
    for item in requested:
        add_selector(resolution.targets, item.name, selector_for(item))
    upstream = _Versions(fetch_versions, concurrency)
    upstream.load(resolution.targets)
    for item in requested:
        _check_requested(item, upstream.entries.get(item.name), resolution)
    if with_dependencies and not resolution.missing:
        _follow_dependencies(resolution, upstream, explicit=set(resolution.targets))
    _count_versions(resolution, upstream.entries)
    return resolution


@dataclass
class _Versions:
    """Upstream versions read so far: each package's tagged versions once, and its branches (the
    ``~dev`` file) once any selector wants them, even when that selector is discovered later."""

    fetch: FetchVersions
    concurrency: int
    entries: dict[str, Entries | None] = field(default_factory=dict)
    branches_loaded: set[str] = field(default_factory=set)

    def load(self, targets: Targets) -> None:
        self.entries.update(
            map_bounded(lambda name: (name, self._one(name, targets[name])), sorted(targets), self.concurrency)
        )

    def _one(self, name: str, selectors: list[str]) -> Entries | None:
        found = self.entries[name] if name in self.entries else self.fetch(name, False)
        if found is not None and name not in self.branches_loaded and any(_is_dev_selector(s) for s in selectors):
            found = found + (self.fetch(name, True) or [])
            self.branches_loaded.add(name)
        return found

    def absent(self, name: str) -> bool:
        return name in self.entries and self.entries[name] is None


def _is_dev_selector(selector: str) -> bool:
    return selector.startswith("dev-") or selector.endswith("-dev") or "@dev" in selector


def _check_requested(item: Requested, entries: Entries | None, resolution: Resolution) -> None:
    if entries is None:
        resolution.missing.append(f"{item.name}: no such package upstream ({item.source})")
        return
    if item.version is None:
        return
    try:
        wanted = versions.normalize(item.version)
    except InvalidVersion as exc:
        resolution.missing.append(f"{item.name} {item.version}: not a valid version ({item.source}): {exc}")
        return
    if not any(normalized_of(entry) == wanted for entry in entries):
        offered = ", ".join(str(e.get("version")) for e in entries[:8]) or "no versions"
        resolution.missing.append(
            f"{item.name} {item.version}: version not found upstream ({item.source}); upstream has {offered}"
        )


def _follow_dependencies(resolution: Resolution, upstream: _Versions, explicit: set[str]) -> None:
    """Breadth-first over ``require``: each round fetches the newly discovered packages at once."""
    provided: set[str] = set()
    frontier = set(resolution.targets)
    while frontier:
        discovered: Targets = {}
        for name in sorted(frontier):
            for entry in select_versions(upstream.entries.get(name) or [], resolution.targets[name]):
                provided.update(_names(entry.get("replace")) | _names(entry.get("provide")))
                for dependency, constraint in _requirements(entry, resolution):
                    if not upstream.absent(dependency) and constraint not in resolution.targets.get(dependency, []):
                        add_selector(discovered, dependency, constraint)
        for name, selectors in discovered.items():
            for selector in selectors:
                add_selector(resolution.targets, name, selector)
        new_names = {n for n in discovered if n not in upstream.entries}
        upstream.load({n: resolution.targets[n] for n in discovered})
        for name in sorted(new_names):
            if upstream.entries[name] is None:
                # Not an input error: the application may replace it (polyfills), so warn and go on.
                logger.warning("dependency %s is not upstream; skipped (%s)", name, resolution.targets[name])
                resolution.skipped["dependency not found upstream"] += 1
                del resolution.targets[name]
        frontier = set(discovered) & set(resolution.targets)
    for name in sorted(set(resolution.targets) & provided - explicit):
        del resolution.targets[name]
        resolution.skipped["replaced or provided by a mirrored package"] += 1


def _requirements(entry: Mapping[str, Any], resolution: Resolution) -> Iterable[tuple[str, str]]:
    require = entry.get("require")
    if not isinstance(require, dict):
        return
    for dependency, constraint in require.items():
        dependency = str(dependency).lower()
        if is_platform_package(dependency):
            resolution.skipped["platform requirement"] += 1
        elif not is_valid_package_name(dependency) or not isinstance(constraint, str):
            resolution.skipped["invalid requirement"] += 1
        else:
            yield dependency, constraint.strip() or ALL_STABLE


def _names(value: Any) -> set[str]:
    return {str(name).lower() for name in value} if isinstance(value, dict) else set()


def _count_versions(resolution: Resolution, entries: Mapping[str, Entries | None]) -> None:
    for name, selectors in resolution.targets.items():
        chosen = resolution.chosen.setdefault(name, [])
        for entry in select_versions(entries.get(name) or [], selectors):
            raw_dist = entry.get("dist")  # untrusted: any JSON value
            dist = raw_dist if isinstance(raw_dist, dict) else {}
            size = dist.get("size")
            chosen.append((normalized_of(entry) or "", str(entry["version"]), size if isinstance(size, int) else None))


def describe_plan(resolution: Resolution, mirrored: Mapping[str, Collection[str]]) -> list[str]:
    """Log lines for a plan: per package the versions chosen and which archives must be fetched.

    ``mirrored`` maps names to the (normalized) versions earlier runs recorded in the state.
    """
    lines = []
    to_fetch = known_bytes = versions_total = 0
    for name in sorted(resolution.targets):
        recorded = mirrored.get(name, ())
        chosen = resolution.chosen.get(name, [])
        new = [(v, size) for normalized, v, size in chosen if normalized not in recorded]
        versions_total += len(chosen)
        to_fetch += len(new)
        known_bytes += sum(size or 0 for _, size in new)
        lines.append(
            f"{name} [{', '.join(resolution.targets[name])}]: {len(chosen)} versions, {len(new)} archives to fetch"
            + (f" ({', '.join(v for v, _ in new[:6])}{', ...' if len(new) > 6 else ''})" if new else "")
        )
    lines.append(
        f"total: {len(resolution.targets)} packages, {versions_total} versions, {to_fetch} archives to fetch, "
        f"known archive size {known_bytes} bytes (most upstreams do not state sizes)"
    )
    for reason, count in sorted(resolution.skipped.items()):
        lines.append(f"skipped {count}: {reason}")
    return lines


def upstream_fetcher(client: Any, endpoints: Endpoints) -> FetchVersions:
    """Read a package's expanded versions from the upstream (None when it answers 404)."""
    from composer_mirror.composer_format import parse_p2

    def fetch(name: str, dev: bool) -> list[dict[str, Any]] | None:
        fetched = client.get_metadata(package_url(endpoints, name, dev))
        if fetched.status != 200:
            return None
        return parse_p2(fetched.body, name)

    return fetch


def load_request(
    sbom: str | bytes | None, purls: Iterable[str] | None
) -> tuple[list[Requested], Counter[str], list[str]]:
    """Parse the SBOM and/or PURLs of a run: (requested packages, skipped reasons, formats)."""
    from composer_mirror.sbom import parse_purls, parse_sbom

    requested: list[Requested] = []
    skipped: Counter[str] = Counter()
    formats: list[str] = []
    documents = []
    if sbom is not None and sbom.strip():
        documents.append(parse_sbom(sbom))
    purls = [p for p in (purls or []) if p and p.strip()]
    if purls:
        documents.append(parse_purls(purls))
    if not documents:
        raise TargetError("nothing to mirror: give an SBOM (sbom or sbom_s3_key) or a list of PURLs")
    for document in documents:
        requested.extend(document.requested)
        skipped.update(document.skipped)
        formats.append(f"{document.format} ({document.components} components)")
    return requested, skipped, formats
