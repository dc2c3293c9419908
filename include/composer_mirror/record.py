"""A package's record: everything needed to rebuild what the mirror publishes for it.

The record (``mirror-state/packages/<vendor>/<name>.json``) holds every version the mirror
publishes, each as its metadata (the upstream entry without its dist) plus the record of the archive
stored for it, and every version the mirror withdrew, with the reason. Both p2 files of the package
are derived from it alone (:func:`derive_files`), so they can always be rebuilt, and versions that
vanished upstream live on here rather than only in a published file.

Changes are merges: :func:`merge_offered` adds or refreshes versions and never drops one, so two
writers applying their changes in either order reach the same record. The only way out is a
:func:`withdraw` the mirror decides, kept with its reason, its time and its archive for forensics.
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from composer_mirror.archives import ArchiveRecord
from composer_mirror.composer_format import DEV_SUFFIX, dump_p2, is_dev_version, split_dev
from composer_mirror.errors import StoreError
from composer_mirror.state import PackageState, WithdrawnVersion
from composer_mirror.targets import newest_first, normalized_of

FORMAT = 1
# Version keys that would send clients back to the upstream (install statistics), and the dist,
# which the mirror derives from the archive record and its own public URL.
DROPPED_KEYS = ("notification-url", "dist")
# Why a version may leave the index; later features add theirs.
WITHDRAWAL_REASONS = frozenset({"malware", "policy", "operator"})


@dataclass(frozen=True)
class MirroredVersion:
    """One published version: its metadata as served (minus the dist) and its stored archive."""

    entry: dict[str, Any]
    archive: ArchiveRecord

    def to_json(self) -> dict[str, Any]:
        return {"entry": self.entry, "archive": self.archive.to_json()}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> MirroredVersion:
        return cls(dict(data["entry"]), ArchiveRecord.from_json(data["archive"]))


@dataclass(frozen=True)
class Withdrawal:
    """A version the mirror took out of its index on purpose, kept whole for forensics."""

    version: MirroredVersion
    reason: str
    detail: str
    by: str
    at: str

    def to_json(self) -> dict[str, Any]:
        return {**self.version.to_json(), "reason": self.reason, "detail": self.detail, "by": self.by, "at": self.at}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Withdrawal:
        return cls(MirroredVersion.from_json(data), data["reason"], data.get("detail", ""), data["by"], data["at"])


@dataclass
class PackageRecord:
    """The source of truth for one package; ``revision`` grows by one with every committed change."""

    name: str
    versions: dict[str, MirroredVersion] = field(default_factory=dict)
    withdrawn: dict[str, Withdrawal] = field(default_factory=dict)
    # Full security advisories for the stable file; None when the upstream has no advisories API.
    advisories: list[Any] | None = None
    revision: int = 0

    def content(self) -> dict[str, Any]:
        """What the record says, without its revision: equal contents mean nothing changed."""
        return {
            "format": FORMAT,
            "name": self.name,
            "versions": {n: v.to_json() for n, v in sorted(self.versions.items())},
            "withdrawn": {n: w.to_json() for n, w in sorted(self.withdrawn.items())},
            "advisories": self.advisories,
        }

    def to_bytes(self) -> bytes:
        return json.dumps({**self.content(), "revision": self.revision}, sort_keys=True, separators=(",", ":")).encode()

    @classmethod
    def from_bytes(cls, name: str, body: bytes) -> PackageRecord:
        try:
            data = json.loads(body)
            return cls(
                name,
                {n: MirroredVersion.from_json(v) for n, v in data.get("versions", {}).items()},
                {n: Withdrawal.from_json(w) for n, w in data.get("withdrawn", {}).items()},
                data.get("advisories"),
                int(data.get("revision", 0)),
            )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise StoreError(f"the record of {name} is corrupt: {exc}") from exc

    def copy(self) -> PackageRecord:
        return copy.deepcopy(self)


def stored_entry(entry: Mapping[str, Any]) -> dict[str, Any]:
    """An upstream (or published) entry as the record keeps it: without the keys the mirror replaces."""
    return {key: copy.deepcopy(value) for key, value in entry.items() if key not in DROPPED_KEYS}


def published_entry(version: MirroredVersion, repository_url: str) -> dict[str, Any]:
    """A version as clients see it: its metadata, with the dist on the mirror and the served bytes' sha1."""
    archive = version.archive
    return {
        **copy.deepcopy(version.entry),
        "dist": {
            "type": "zip",
            "url": f"{repository_url}/{archive.path}",
            "reference": archive.reference,
            "shasum": archive.sha1,
        },
    }


def derive_files(record: PackageRecord, repository_url: str) -> dict[str, bytes]:
    """Both p2 files of the package (``""`` tags, ``"~dev"`` branches), byte for byte deterministic.

    Tags newest first by Composer's ordering, then branches by name, whatever order the versions
    were recorded in, so an unchanged record always gives unchanged bytes (and Last-Modified).
    """
    entries = newest_first(
        (published_entry(v, repository_url) for v in record.versions.values()), lambda e: str(e["version"])
    )
    tagged, dev = split_dev(entries)
    return {"": dump_p2(record.name, tagged, record.advisories), DEV_SUFFIX: dump_p2(record.name, dev)}


def merge_offered(
    record: PackageRecord,
    offered: Iterable[tuple[Mapping[str, Any], ArchiveRecord]],
    advisories: list[Any] | None,
) -> PackageRecord:
    """Add or refresh the versions a writer mirrored; never drop one, never undo a withdrawal.

    A tag already recorded with another reference keeps its first archive and metadata (the
    planner reports the rewrite); a branch follows its new reference.
    """
    for entry, archive in offered:
        normalized = normalized_of(entry) or ""
        if normalized in record.withdrawn:
            continue
        current = record.versions.get(normalized)
        if current and current.archive.reference != archive.reference and not is_dev_version(str(entry["version"])):
            continue
        record.versions[normalized] = MirroredVersion(stored_entry(entry), archive)
    record.advisories = advisories
    return record


def withdraw(record: PackageRecord, normalized: str, reason: str, *, detail: str = "", by: str) -> Withdrawal:
    """Take a version out of the published files on purpose; the record keeps it, with why and when."""
    if reason not in WITHDRAWAL_REASONS:
        raise ValueError(f"unknown withdrawal reason {reason!r}; expected one of {sorted(WITHDRAWAL_REASONS)}")
    version = record.versions.pop(normalized)
    withdrawal = Withdrawal(version, reason, detail, by, time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    record.withdrawn[normalized] = withdrawal
    return withdrawal


def bootstrap(
    name: str, published: Iterable[Mapping[str, Any]], archives: Mapping[str, ArchiveRecord]
) -> PackageRecord:
    """A record for a package mirrored before records existed: its published entries and archive records.

    Entries are keyed by Composer's normalisation (``version_normalized`` is optional upstream), the
    same key the shard's archive records use; an entry without an archive record is left out.
    """
    record = PackageRecord(name)
    for entry in published:
        normalized = normalized_of(entry) or ""
        if normalized in archives:
            record.versions[normalized] = MirroredVersion(stored_entry(entry), archives[normalized])
    return record


def indexed(state: PackageState, record: PackageRecord | None) -> PackageState:
    """The shard entry ``state`` with what the shard keeps of ``record``, for revalidation, prune, verify
    and the listing page.

    Archive records only (small), so a run revalidating 10,000 packages reads 256 shards, not
    10,000 records; ``revision`` tells which of two writers' shard entries is the newer.
    """
    if record is None:
        return replace(state, versions={}, withdrawn={}, revision=0)
    return replace(
        state,
        versions={n: v.archive for n, v in sorted(record.versions.items())},
        withdrawn={n: WithdrawnVersion(w.version.archive, w.reason, w.at) for n, w in sorted(record.withdrawn.items())},
        revision=record.revision,
    )
