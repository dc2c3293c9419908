"""The registry's content: packages, versions, advisories, archives and the metadata changes log.

A ``Registry`` is plain data plus the serialisation the server needs; it knows nothing about sockets so
tests can mutate it while a ``RegistryServer`` serves it. Stored entries carry server-relative URLs
(``/zipball/...``); the absolute form is filled per server when a p2 file is first requested, and the
serialised bodies are cached per package until the next mutation, so serving is a dictionary lookup.

Every mutation re-renders the package's two p2 files and bumps the Last-Modified of each file whose
content changed (strictly increasing per file, so two edits in one second still look different to an
``If-Modified-Since`` client) and logs an ``update`` action for it, as packagist's dumper does.
"""

from __future__ import annotations

import copy
import datetime as dt
import email.utils
import fnmatch
import hashlib
import json
import random
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from devtools.fixture_registry import minifier
from devtools.fixture_registry.archives import Archive, ArchiveCache, ArchiveSpec, make_spec
from devtools.fixture_registry.versions import is_dev, normalize, older_versions, sort_key

MINIFIED = "composer/2.0"
MIN_SINCE = 15850612240000  # packagist rejects anything older than its first changes log entry
_DEV_ONLY_KEYS = ("default-branch",)
_FIELD_ALIASES = {
    "require_dev": "require-dev",
    "autoload_dev": "autoload-dev",
    "default_branch": "default-branch",
    "notification_url": "notification-url",
}
_LOCK_DROPPED_KEYS = ("notification-url", "installation-source", "dist", "source")
_ADVISED_PACKAGES = ("twig/twig", "symfony/http-kernel")


@dataclass(frozen=True)
class FileBody:
    """A serialised p2 file with the validators the server sends and checks."""

    body: bytes
    etag: str
    last_modified: int

    @property
    def last_modified_http(self) -> str:
        """The HTTP-date form of ``last_modified`` (second resolution, GMT)."""
        return email.utils.formatdate(self.last_modified, usegmt=True)


@dataclass
class _Action:
    stamp: int  # unix time x 10000, strictly increasing
    type: str
    package: str
    time: int


@dataclass
class _Package:
    name: str
    tagged: list[dict[str, Any]] = field(default_factory=list)
    dev: list[dict[str, Any]] = field(default_factory=list)
    advisories: list[dict[str, Any]] = field(default_factory=list)
    mtime: dict[bool, int] = field(default_factory=dict)
    digest: dict[bool, str] = field(default_factory=dict)
    bodies: dict[tuple[bool, str], FileBody] = field(default_factory=dict)
    real_shasum: bool = False
    generation: int = 0

    def entries(self, dev: bool) -> list[dict[str, Any]]:
        return self.dev if dev else self.tagged

    def find(self, version: str) -> dict[str, Any]:
        for entry in (*self.tagged, *self.dev):
            if entry["version"] == version:
                return entry
        raise KeyError(f"{self.name} has no version {version!r}")


class Registry:
    """Packages served by a fixture ``RegistryServer``; see the package docstring for the API."""

    def __init__(self, *, archive_padding: int = 1024) -> None:
        self._lock = threading.RLock()
        self._packages: dict[str, _Package] = {}
        self._archives: dict[tuple[str, str], ArchiveSpec] = {}
        self._archive_cache = ArchiveCache()
        self._shasums: dict[ArchiveSpec, str] = {}
        self._archive_padding = archive_padding
        self._last_stamp = 0
        self.created = int(time.time())
        self._log_start = self._next_stamp()
        self._log: list[_Action] = []
        self._resync_pending = False
        # "error" answers 400 to a since older than the log (as specified for this project);
        # "resync" answers a resync action instead, as packagist itself does.
        self.stale_since = "error"
        # Optional fields left out of every served entry, as Satis output and hand-made repositories
        # do: "version_normalized", "time", "dist.shasum" (a dotted name is a key of a nested object).
        self.omit: frozenset[str] = frozenset()

    # ----------------------------------------------------------------------------------- construction

    @classmethod
    def from_lock(
        cls,
        path: str | Path,
        extra_versions: int = 2,
        *,
        archive_padding: int = 1024,
        shasum_every: int = 8,
        dev_every: int = 3,
    ) -> Registry:
        """Every locked package at its locked version plus ``extra_versions`` older synthetic tags.

        Every ``dev_every``-th package also gets a ``dev-main`` (or ``dev-master`` when the lock's
        branch alias says so) branch, every 7th a ``<major>.<minor>.x-dev`` maintenance branch, and
        every ``shasum_every``-th package (plus psr/log) publishes real sha1 shasums.
        """
        lock = json.loads(Path(path).read_text())
        registry = cls(archive_padding=archive_padding)
        entries = sorted(lock.get("packages", []) + lock.get("packages-dev", []), key=lambda e: e["name"])
        for index, locked in enumerate(entries):
            name = locked["name"]
            package = registry._new_package(name)
            package.real_shasum = name == "psr/log" or (shasum_every > 0 and index % shasum_every == 0)
            template = {k: v for k, v in locked.items() if k not in _LOCK_DROPPED_KEYS}
            locked_ref = (locked.get("dist") or {}).get("reference") or _reference("lock", name, locked["version"])
            registry._publish(package, _entry(template, name, locked["version"], locked_ref))
            for age, version in enumerate(older_versions(locked["version"], extra_versions), start=1):
                entry = _entry(template, name, version, _reference("lock", name, version))
                entry["time"] = _shift_time(locked.get("time"), days=-30 * age)
                registry._publish(package, entry)
            for version in _lock_branches(locked, index, dev_every):
                entry = _entry(template, name, version, _reference("lock-branch", name, version))
                if version.startswith("dev-"):
                    entry["default-branch"] = True
                registry._publish(package, entry)
        registry._add_lock_advisories()
        registry._settle()
        return registry

    @classmethod
    def synthetic(
        cls,
        packages: int = 2000,
        versions: int = 9,
        vendors: int = 50,
        seed: int = 1,
        metadata_bytes: int = 2500,
        *,
        archive_padding: int = 2048,
        shasum_every: int = 10,
        dev_every: int = 4,
    ) -> Registry:
        """``vendorNNN/pkgNNNN`` packages with acyclic, satisfiable requires and packagist-sized entries.

        Package ``i`` requires up to four lower-numbered packages with ``^1.0`` (every package has 1.x
        tags), so any package installs. Expanded entries are padded to about ``metadata_bytes`` of JSON.
        """
        rng = random.Random(seed)
        registry = cls(archive_padding=archive_padding)
        width = max(3, len(str(packages - 1)))
        vendor_width = max(3, len(str(vendors - 1)))
        names = [f"vendor{i % vendors:0{vendor_width}d}/pkg{i:0{width}d}" for i in range(packages)]
        for index, name in enumerate(names):
            package = registry._new_package(name)
            package.real_shasum = shasum_every > 0 and index % shasum_every == 0
            deps = [names[d] for d in rng.sample(range(index), min(index, rng.randint(0, 4)))]
            base = _synthetic_base(name, index, rng, metadata_bytes)
            prefix = "v" if (index % vendors) % 2 else ""
            for number in range(versions):
                version = f"{prefix}{1 + number // 4}.{number % 4}.0"
                entry = _synthetic_entry(base, name, version, number, deps, seed)
                registry._publish(package, entry)
            if dev_every > 0 and index % dev_every == 0:
                entry = _synthetic_entry(base, name, "dev-main", versions, deps, seed)
                entry["default-branch"] = True
                entry["extra"] = {"branch-alias": {"dev-main": f"{2 + (versions - 1) // 4}.x-dev"}}
                registry._publish(package, entry)
        registry._settle()
        return registry

    # ------------------------------------------------------------------------------------------ reads

    def package_names(self) -> list[str]:
        """Names of all packages currently served, sorted."""
        with self._lock:
            return sorted(self._packages)

    def versions(self, name: str, base_url: str | None = None, *, dev: bool | None = None) -> list[dict]:
        """Expanded entries as served: tags newest first, then branches (``dev`` selects one file).

        Without ``base_url`` the dist/source URLs are server-relative paths (``/zipball/v/p/<ref>``);
        with it they are absolute, exactly as a server at that URL publishes them.
        """
        with self._lock:
            package = self._get(name)
            selected = {None: [*package.tagged, *package.dev], False: package.tagged, True: package.dev}[dev]
            return [self._render(package, entry, base_url or "", deep=True) for entry in selected]

    def version(self, name: str, version: str, base_url: str | None = None) -> dict[str, Any]:
        """One expanded entry, as in ``versions``."""
        with self._lock:
            package = self._get(name)
            return self._render(package, package.find(version), base_url or "", deep=True)

    def archive_bytes(self, name: str, reference: str) -> bytes:
        """The exact bytes served for this archive (reads a streamed archive whole: keep it small)."""
        archive = self.archive(name, reference)
        if archive is None:
            raise KeyError(f"no archive {name}@{reference}")
        return archive.read_all()

    def archive(self, name: str, reference: str) -> Archive | None:
        """The archive object the server streams, or None for an unknown package or reference."""
        with self._lock:
            spec = self._archives.get((name, reference))
        return None if spec is None else self._archive_cache.get(spec)

    def advisories(self, name: str, base_url: str = "") -> list[dict[str, Any]]:
        """Full advisories of ``name`` (the ``/api/security-advisories/`` form)."""
        with self._lock:
            package = self._packages.get(name)
            return [] if package is None else [_full_advisory(a, base_url) for a in package.advisories]

    # ------------------------------------------------------------------------------------- mutations

    def add_version(self, name: str, version: str, **fields: Any) -> dict[str, Any]:
        """Publish a new version (creating the package when unknown); ``None`` field values remove keys.

        The new entry copies the newest existing entry's metadata, so it stays installable; keyword
        names use ``_`` for ``-`` where Composer keys need it (``require_dev``), or pass
        ``**{"require-dev": ...}``.
        """
        with self._lock:
            package = self._packages.get(name) or self._new_package(name, now=True)
            self._prepare(package)
            if any(e["version"] == version for e in (*package.tagged, *package.dev)):
                raise ValueError(f"{name} {version} already exists")
            template = _template_for(package, name)
            entry = _entry(template, name, version, _reference("added", name, version, package.generation))
            entry["time"] = _iso(time.time())
            for key, value in fields.items():
                key = _FIELD_ALIASES.get(key, key)
                if value is None:
                    entry.pop(key, None)
                else:
                    entry[key] = copy.deepcopy(value)
            if not is_dev(version):
                for key in _DEV_ONLY_KEYS:
                    entry.pop(key, None)
            self._publish(package, entry)
            self._commit(package)
            return self._render(package, entry, "", deep=True)

    def touch(self, name: str, description: str | None = None) -> None:
        """A metadata-only change (the description of every version), as after a README-less push."""
        with self._lock:
            package = self._prepare(self._get(name))
            package.generation += 1
            for entry in (*package.tagged, *package.dev):
                base = entry.get("description", "").split(" [rev ")[0]
                entry["description"] = description or f"{base} [rev {package.generation}]"
            self._commit(package)

    def retag(self, name: str, version: str) -> str:
        """Rewrite a tag: same version, new reference, different archive bytes. Returns the new reference."""
        with self._lock:
            package = self._prepare(self._get(name))
            package.generation += 1
            entry = package.find(version)
            reference = _reference("retag", name, version, package.generation)
            _set_reference(entry, name, reference)
            self._register_archive(package, entry, salt=package.generation)
            self._commit(package)
            return reference

    def remove_version(self, name: str, version: str) -> None:
        """Drop one version from its p2 file (its archive stays downloadable, like an old commit)."""
        with self._lock:
            package = self._prepare(self._get(name))
            entry = package.find(version)
            package.entries(is_dev(version)).remove(entry)
            self._commit(package)

    def delete_package(self, name: str) -> None:
        """Remove a package: 404 for its files and archives afterwards, a ``delete`` action in the feed."""
        with self._lock:
            self._get(name)
            del self._packages[name]
            for key in [k for k in self._archives if k[0] == name]:
                del self._archives[key]
            stamp = self._next_stamp()
            self._log.append(_Action(stamp, "delete", name, stamp // 10000))

    def add_advisory(
        self,
        name: str,
        affected_versions: str,
        *,
        title: str | None = None,
        cve: str | None = None,
        severity: str | None = "medium",
        advisory_id: str | None = None,
        remote_id: str | None = None,
        link: str | None = None,
        source: str = "GitHub",
        reported_at: str | None = None,
    ) -> dict[str, Any]:
        """Attach a security advisory: partial form in the stable p2 file, full form in the API."""
        with self._lock:
            package = self._prepare(self._get(name))
            number = sum(len(p.advisories) for p in self._packages.values()) + 1
            digest = hashlib.sha1(f"{name}|{affected_versions}|{number}".encode()).hexdigest()
            remote = remote_id or f"GHSA-{digest[:4]}-{digest[4:8]}-{digest[8:12]}"
            advisory = {
                "advisoryId": advisory_id or f"PKSA-{digest[:4]}-{digest[4:8]}-{digest[8:12]}",
                "packageName": name,
                "remoteId": remote,
                "title": title or f"Fixture vulnerability {number} in {name}",
                "link": link or f"/advisories/{remote}",
                "cve": cve,
                "affectedVersions": affected_versions,
                "source": source,
                "reportedAt": reported_at or _sql_time(time.time()),
                "composerRepository": None,
                "severity": severity,
                "sources": [{"name": source, "remoteId": remote}],
                "_updated": int(time.time()),
            }
            package.advisories.append(advisory)
            self._commit(package)
            return _full_advisory(advisory, "")

    def set_archive_size(self, name: str, version: str, nbytes: int) -> None:
        """Serve this version's archive as a streamed stored zip of exactly ``nbytes`` bytes.

        A real sha1 shasum would need a pass over the whole payload, so the version's shasum becomes
        empty (a metadata change when it was set).
        """
        with self._lock:
            package = self._prepare(self._get(name))
            reference = package.find(version)["dist"]["reference"]
            old = self._archives[(name, reference)]
            spec = ArchiveSpec(old.package, old.reference, old.manifest_json, old.salt, old.padding, nbytes)
            self._archive_cache.get(spec)  # validates the size now
            self._archives[(name, reference)] = spec
            self._commit(package)

    def force_resync(self) -> None:
        """Make the next successful changes-feed answer start with a ``resync`` action."""
        with self._lock:
            self._resync_pending = True

    def truncate_changes_log(self) -> None:
        """Forget the log, as packagist does after ~24 h: every older ``since`` becomes stale."""
        with self._lock:
            self._log.clear()
            self._log_start = self._next_stamp()

    # --------------------------------------------------------------------------------- serving helpers

    def p2_file(self, name: str, dev: bool, base_url: str) -> FileBody | None:
        """The cached ``p2/<name>.json`` (or ``~dev``) body for a server at ``base_url``; None if unknown."""
        with self._lock:
            package = self._packages.get(name)
            if package is None:
                return None
            cached = package.bodies.get((dev, base_url))
            if cached is None:
                body = _dumps(self._p2_document(package, dev, base_url))
                etag = '"' + hashlib.sha1(body).hexdigest() + '"'
                cached = FileBody(body, etag, package.mtime[dev])
                package.bodies[(dev, base_url)] = cached
            return cached

    def list_names(
        self, vendor: str | None = None, pattern: str | None = None, package_type: str | None = None
    ) -> list[str]:
        """``/packages/list.json`` filtering: vendor prefix, case-insensitive glob, package type."""
        with self._lock:
            names = sorted(self._packages)
            if vendor:
                names = [n for n in names if n.startswith(vendor.lower() + "/")]
            if pattern:
                names = [n for n in names if fnmatch.fnmatchcase(n, pattern.lower())]
            if package_type:
                names = [n for n in names if _latest(self._packages[n]).get("type", "library") == package_type]
            return names

    def changes(self, since: str | None) -> tuple[int, dict[str, Any]]:
        """Status and body of ``/metadata/changes.json?since=`` (see the module docstring)."""
        with self._lock:
            now = self._next_stamp()
            try:
                since_value = int(since) if since is not None else 0
            except ValueError:
                since_value = 0
            if since_value < MIN_SINCE or (since_value < self._log_start and self.stale_since != "resync"):
                error = (
                    'Invalid or missing "since" query parameter, store the timestamp of this answer '
                    "and send it as since to receive the changes that follow"
                )
                return 400, {"error": error, "timestamp": now}
            if since_value < self._log_start:
                return 200, {"actions": [_resync(now)], "timestamp": now}
            actions: dict[str, dict[str, Any]] = {}
            for action in self._log:
                if action.stamp < since_value:
                    continue
                if action.type == "delete":
                    actions.pop(action.package + "~dev", None)
                actions.pop(action.package, None)
                actions[action.package] = {
                    "type": action.type,
                    "package": action.package,
                    "time": action.time,
                }
            listed = list(actions.values())
            if self._resync_pending:
                listed.insert(0, _resync(now))
                self._resync_pending = False
            return 200, {"actions": listed, "timestamp": now}

    def full_advisories(self, names: Iterable[str], updated_since: int, base_url: str) -> dict[str, list]:
        """The advisories API: name -> full advisories, only packages having some (like packagist)."""
        with self._lock:
            wanted = set(names) if names else set(self._packages)
            result: dict[str, list] = {}
            for name in sorted(wanted):
                package = self._packages.get(name)
                for advisory in package.advisories if package else []:
                    if advisory["_updated"] >= updated_since:
                        result.setdefault(name, []).append(_full_advisory(advisory, base_url))
            return result

    def providers(self, name: str) -> list[dict[str, Any]]:
        """Packages whose newest version provides ``name`` (the ``providers-api`` answer)."""
        with self._lock:
            found = []
            for package_name in sorted(self._packages):
                latest = _latest(self._packages[package_name])
                if name in (latest.get("provide") or {}):
                    found.append(
                        {
                            "name": package_name,
                            "description": latest.get("description", ""),
                            "type": latest.get("type", "library"),
                        }
                    )
            return found

    def search(self, query: str, package_type: str | None = None) -> list[dict[str, Any]]:
        """A naive substring search on names and descriptions, enough to answer the search URL."""
        query = query.lower()
        with self._lock:
            results = []
            for name in sorted(self._packages):
                latest = _latest(self._packages[name])
                if package_type and latest.get("type") != package_type:
                    continue
                if query in name or query in latest.get("description", "").lower():
                    results.append(
                        {
                            "name": name,
                            "description": latest.get("description", ""),
                            "url": "",
                            "repository": "",
                            "downloads": 0,
                            "favers": 0,
                        }
                    )
            return results

    # --------------------------------------------------------------------------------------- internals

    def _get(self, name: str) -> _Package:
        package = self._packages.get(name)
        if package is None:
            raise KeyError(f"unknown package {name!r}")
        return package

    def _new_package(self, name: str, now: bool = False) -> _Package:
        stamp = int(time.time()) if now else self.created
        package = _Package(name, mtime={False: stamp, True: stamp})
        self._packages[name] = package
        return package

    def _prepare(self, package: _Package) -> _Package:
        """Record the current file digests before a mutation, so ``_commit`` can see what changed."""
        for dev in (False, True):
            if dev not in package.digest:
                package.digest[dev] = self._digest(package, dev)
        return package

    def _next_stamp(self) -> int:
        self._last_stamp = max(int(time.time() * 10000), self._last_stamp + 1)
        return self._last_stamp

    def _publish(self, package: _Package, entry: dict[str, Any]) -> None:
        """Insert an entry in the right file and order, and register its archive."""
        self._register_archive(package, entry, salt=package.generation)
        dev = is_dev(entry["version"])
        entries = package.entries(dev)
        entries.append(entry)
        if dev:
            entries.sort(key=lambda e: (not e.get("default-branch", False), e["version"]))
        else:
            entries.sort(key=lambda e: sort_key(e["version"]), reverse=True)

    def _register_archive(self, package: _Package, entry: dict[str, Any], salt: int) -> None:
        reference = entry["dist"]["reference"]
        spec = make_spec(package.name, reference, entry, salt=salt, padding=self._archive_padding)
        self._archives[(package.name, reference)] = spec

    def _render(self, package: _Package, entry: dict[str, Any], base_url: str, deep: bool = False) -> dict:
        """The entry as served: absolute URLs, and the sha1 shasum for packages that publish one.

        Shallow (sharing nested objects with the stored entry) when it is only serialised; ``deep``
        for anything handed to callers, who may edit it.
        """
        result = copy.deepcopy(entry) if deep else dict(entry)
        for key in ("dist", "source"):
            value = result.get(key)
            if isinstance(value, dict):
                value = dict(value)
                if str(value.get("url", "")).startswith("/"):
                    value["url"] = base_url + value["url"]
                result[key] = value
        if package.real_shasum and isinstance(result.get("dist"), dict):
            result["dist"]["shasum"] = self._shasum(package.name, result["dist"].get("reference", ""))
        for omitted in self.omit:
            parent, _, key = omitted.rpartition(".")
            holder = result.get(parent) if parent else result
            if isinstance(holder, dict):
                holder.pop(key, None)
        return result

    def _shasum(self, name: str, reference: str) -> str:
        """sha1 of a small archive, computed on first use (empty for streamed or unknown archives)."""
        spec = self._archives.get((name, reference))
        if spec is None or spec.size is not None:
            return ""
        digest = self._shasums.get(spec)
        if digest is None:
            digest = hashlib.sha1(self._archive_cache.get(spec).read_all()).hexdigest()
            self._shasums[spec] = digest
        return digest

    def _add_lock_advisories(self) -> None:
        for name in _ADVISED_PACKAGES:
            package = self._packages.get(name)
            if package is None or len(package.tagged) < 2:
                continue
            newest = package.tagged[0]["version"].lstrip("v")
            oldest = package.tagged[-1]["version"].lstrip("v")
            self.add_advisory(
                name,
                f">={oldest},<{newest}",
                severity="high",
                title=f"Fixture: versions of {name} before {newest} are vulnerable",
            )

    def _settle(self) -> None:
        """End of construction: the initial state is the log's baseline, with no actions."""
        for package in self._packages.values():
            package.mtime = {False: self.created, True: self.created}
            package.digest = {}  # computed lazily by the first mutation (_prepare)
            package.bodies.clear()
        self._log.clear()
        self._resync_pending = False

    def _commit(self, package: _Package) -> None:
        """Bump and log every file of ``package`` whose content changed."""
        package.bodies.clear()
        for dev in (False, True):
            digest = self._digest(package, dev)
            if package.digest.get(dev) == digest:
                continue
            package.digest[dev] = digest
            package.mtime[dev] = max(int(time.time()), package.mtime[dev] + 1)
            key = package.name + ("~dev" if dev else "")
            self._log.append(_Action(self._next_stamp(), "update", key, package.mtime[dev]))

    def _digest(self, package: _Package, dev: bool) -> str:
        return hashlib.sha1(_dumps(self._p2_document(package, dev, ""))).hexdigest()

    def _p2_document(self, package: _Package, dev: bool, base_url: str) -> dict[str, Any]:
        entries = [self._render(package, entry, base_url) for entry in package.entries(dev)]
        document: dict[str, Any] = {
            "packages": {package.name: minifier.minify(entries)},
            "minified": MINIFIED,
        }
        if not dev:
            document["security-advisories"] = [
                {"advisoryId": a["advisoryId"], "affectedVersions": a["affectedVersions"]} for a in package.advisories
            ]
        return document


# ------------------------------------------------------------------------------------------ entry helpers


def _entry(template: dict[str, Any], name: str, version: str, reference: str) -> dict[str, Any]:
    """A version entry from a template: lock order kept, ``version_normalized`` after ``version``."""
    entry: dict[str, Any] = {}
    for key, value in template.items():
        if key in ("version_normalized", "dist", "source"):
            continue
        entry[key] = value
        if key == "version":
            entry["version_normalized"] = ""
    entry["name"] = name
    entry["version"] = version
    entry["version_normalized"] = normalize(version)
    _set_reference(entry, name, reference)
    return entry


def _set_reference(entry: dict[str, Any], name: str, reference: str) -> None:
    """New dist and source dicts (never edited in place: entries share nested objects)."""
    entry["source"] = {"type": "git", "url": f"/git/{name}.git", "reference": reference}
    entry["dist"] = {
        "type": "zip",
        "url": f"/zipball/{name}/{reference}",
        "reference": reference,
        "shasum": "",
    }


def _template_for(package: _Package, name: str) -> dict[str, Any]:
    newest = package.tagged[0] if package.tagged else (package.dev[0] if package.dev else None)
    if newest is not None:
        return {k: v for k, v in newest.items() if k not in _DEV_ONLY_KEYS}
    namespace = "\\".join(part.replace("-", "").replace(".", "").capitalize() for part in name.split("/"))
    return {
        "name": name,
        "description": f"Fixture package {name}",
        "version": "",
        "type": "library",
        "license": ["MIT"],
        "require": {"php": ">=8.1"},
        "autoload": {"psr-4": {namespace + "\\": "src/"}},
    }


def _lock_branches(locked: dict[str, Any], index: int, dev_every: int) -> list[str]:
    branches = []
    if dev_every > 0 and index % dev_every == 0:
        aliases = (locked.get("extra") or {}).get("branch-alias") or {}
        branches.append("dev-master" if "dev-master" in aliases else "dev-main")
    if index % 7 == 1:
        parts = locked["version"].lstrip("v").split(".")
        if len(parts) >= 2 and parts[0].isdigit() and parts[1].isdigit():
            branches.append(f"{parts[0]}.{parts[1]}.x-dev")
    return branches


def _latest(package: _Package) -> dict[str, Any]:
    return package.tagged[0] if package.tagged else (package.dev[0] if package.dev else {})


def _full_advisory(advisory: dict[str, Any], base_url: str) -> dict[str, Any]:
    result = {k: copy.deepcopy(v) for k, v in advisory.items() if not k.startswith("_")}
    result["composerRepository"] = base_url or None
    if str(result.get("link", "")).startswith("/"):
        result["link"] = base_url + result["link"]
    return result


def _resync(stamp: int) -> dict[str, Any]:
    return {"type": "resync", "package": "*", "time": stamp // 10000}


def _reference(kind: str, *parts: object) -> str:
    return hashlib.sha1("|".join([kind, *map(str, parts)]).encode()).hexdigest()


def _dumps(document: Any) -> bytes:
    """PHP's JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE, compact, as packagist writes."""
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()


def _iso(timestamp: float) -> str:
    return dt.datetime.fromtimestamp(int(timestamp), dt.UTC).isoformat()


def _sql_time(timestamp: float) -> str:
    return dt.datetime.fromtimestamp(int(timestamp), dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def _shift_time(value: str | None, days: int) -> str:
    try:
        moment = dt.datetime.fromisoformat(value) if value else dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    except ValueError:
        moment = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    return (moment + dt.timedelta(days=days)).isoformat()


# ------------------------------------------------------------------------------------- synthetic helpers

_WORDS = (
    "cache",
    "http",
    "client",
    "queue",
    "stream",
    "parser",
    "event",
    "config",
    "router",
    "logger",
    "validator",
    "mailer",
    "console",
    "template",
    "serializer",
    "storage",
    "crypto",
    "image",
    "async",
    "test",
    "mock",
    "framework",
    "bridge",
    "bundle",
    "adapter",
    "driver",
    "schema",
    "query",
    "graph",
)


def _synthetic_base(name: str, index: int, rng: random.Random, metadata_bytes: int) -> dict[str, Any]:
    """Metadata shared by all versions of one synthetic package, padded toward ``metadata_bytes``."""
    vendor, short = name.split("/")
    words = rng.sample(_WORDS, 6)
    base: dict[str, Any] = {
        "name": name,
        "description": f"A {words[0]} {words[1]} library for {words[2]} and {words[3]} handling.",
        "keywords": words,
        "homepage": f"https://example.org/{name}",
        "version": "",
        "license": [rng.choice(["MIT", "BSD-3-Clause", "Apache-2.0", "LGPL-3.0-or-later"])],
        "authors": [
            {
                "name": f"Author {index}-{n}",
                "email": f"author{n}@{vendor}.example.org",
                "homepage": f"https://{vendor}.example.org/~{n}",
                "role": "Developer",
            }
            for n in range(rng.randint(1, 3))
        ],
        "type": "library",
        "funding": [{"url": f"https://example.org/sponsors/{vendor}", "type": "custom"}],
        "autoload": {"psr-4": {f"{vendor.capitalize()}\\{short.capitalize()}\\": "src/"}},
        "require-dev": {"phpunit/phpunit": "^10.5 || ^11.0", "phpstan/phpstan": "^1.10"},
    }
    size = len(_dumps(base)) + 450  # + the per-version fields (version, source, dist, support, time, ...)
    if metadata_bytes > size:
        base["suggest"] = _suggestions(rng, metadata_bytes - size)
    return base


def _suggestions(rng: random.Random, nbytes: int) -> dict[str, str]:
    suggestions: dict[str, str] = {}
    while nbytes > 40:
        key = f"ext-{rng.choice(_WORDS)}{len(suggestions)}"
        text = " ".join(rng.choice(_WORDS) for _ in range(max(1, min(nbytes - len(key) - 8, 160) // 7)))
        suggestions[key] = text
        nbytes -= len(key) + len(text) + 6
    return suggestions


def _synthetic_entry(
    base: dict[str, Any], name: str, version: str, number: int, deps: list[str], seed: int
) -> dict[str, Any]:
    """One version: shares ``base`` objects; changes what real releases change (time, refs, requires)."""
    entry = _entry(base, name, version, _reference("synthetic", seed, name, version))
    require = {"php": ">=8.1" if number < 4 else ">=8.2"}
    for dep in deps[: 1 + number // 2]:
        require[dep] = "^1.0"
    entry["require"] = require
    entry["support"] = {
        "issues": f"https://example.org/{name}/issues",
        "source": f"https://example.org/{name}/tree/{version}",
    }
    release = dt.datetime(2020, 1, 1, tzinfo=dt.UTC) + dt.timedelta(days=30 * number, minutes=sum(map(ord, name)))
    entry["time"] = release.isoformat()
    return entry
