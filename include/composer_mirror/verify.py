"""Verification: walk the published repository as a client does and check every byte against the state.

The walk reads ``packages.json``, then both p2 files of every package in ``available-packages``,
then every archive a p2 file points at, all through the S3 store (not the CDN), and compares
each with what ``mirror-state/shards`` recorded when it was mirrored: the p2 files' ETags, each
version's dist, each archive's size and its sha1 and sha256. Problems are plain records that add
up across mapped batches.

An archive's digests come from a HEAD: the sync stores each archive with the digests it computed
from the downloaded bytes as object metadata (:func:`~composer_mirror.archives.digest_metadata`),
so an unchanged archive costs one HEAD, not a GET of hundreds of MB. An archive stored before
that carries none: it is streamed and hashed (never held in memory) and, when it matches, given
its digests by a server-side copy onto itself, so it is hashed once. ``deep`` hashes every
archive, which also catches bytes changed behind S3's API with their metadata left in place.

``repair`` restores what can be restored without inventing anything: an archive is downloaded
again from the source URL recorded in the state and accepted only if its digests equal the
recorded ones; a p2 file is rebuilt from the cached upstream metadata and the state records
only if the result is byte for byte the file that was published.

Problem kinds:

- ``missing_root``, ``bad_root``: ``packages.json`` is absent or is not a usable v2 root.
- ``missing_p2``, ``bad_json``: a p2 file is absent, or is not a p2 file of its package.
- ``p2_mismatch``: a p2 file's ETag differs from the one the mirror recorded when publishing it.
- ``not_in_state``: a published package or version has no record in the mirror's state.
- ``dist_mismatch``: a version's dist (URL, reference, shasum) is not the recorded archive.
- ``missing_archive``, ``size_mismatch``, ``sha1_mismatch``, ``sha256_mismatch``: the archive a
  client would download is absent or differs from the recorded one.
- ``nothing_published``: the root lists a package whose every version was withdrawn (a writer
  adding it back raced the withdrawal); ``repair`` takes it out of the root, by the write rule.
"""

from __future__ import annotations

import hashlib
import logging
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from composer_mirror.archives import ArchiveRecord, digest_metadata, mirror_archive
from composer_mirror.batches import Batch, plan_batches
from composer_mirror.composer_format import dump_p2, parse_p2, split_dev
from composer_mirror.context import Context
from composer_mirror.errors import ArchiveError, ConflictError, MirrorError, StoreError
from composer_mirror.parallel import map_bounded
from composer_mirror.publisher import has_content, load_record, publish_files, publish_root
from composer_mirror.record import MirroredVersion, derive_files, published_entry
from composer_mirror.report_table import report_table
from composer_mirror.root import UnreadableRoot, metadata_url, parse_root
from composer_mirror.state import PackageState, dumps, load_shard, load_shards
from composer_mirror.store import ARCHIVE_CACHE, STATE_CACHE, ZIP, ObjectInfo, Store, md5_etag
from composer_mirror.store.layout import (
    FILE_SUFFIXES,
    ROOT,
    archive_path_of_url,
    p2_path,
    run_report_path,
    shard_of,
    upstream_cache_path,
)
from composer_mirror.targets import normalized_of, select_versions

logger = logging.getLogger(__name__)

CHUNK = 1024 * 1024
ARCHIVE_KINDS = frozenset({"missing_archive", "size_mismatch", "sha1_mismatch", "sha256_mismatch"})
P2_KINDS = frozenset({"missing_p2", "bad_json", "p2_mismatch"})
# Problems a sync running at the same time can cause for an instant (it writes p2 files before
# the state that records them): a package showing one is read a second time before it counts.
RACY_KINDS = frozenset({"p2_mismatch", "not_in_state", "dist_mismatch"})

COUNTS = ("packages", "p2_files", "versions", "archives", "archive_bytes", "archives_hashed")


@dataclass(frozen=True)
class Problem:
    """One thing a client would trip over, or that no longer matches the mirror's records.

    ``version`` is the version string, or for a problem with a whole p2 file the file ('' or '~dev').
    """

    package: str
    version: str
    kind: str
    detail: str

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


@dataclass
class VerifyResult:
    """Counts and problems of one batch; results of many batches add up with :meth:`merge`."""

    packages: int = 0
    # Both files of a package are read; a package without branches may lack its ~dev file.
    p2_files: int = 0
    versions: int = 0
    # Distinct archives (versions may share one), checked by a HEAD each, and their stored bytes.
    archives: int = 0
    archive_bytes: int = 0
    # Archives read and hashed (their digests were not in their metadata, or ``deep``): one GET each.
    archives_hashed: int = 0
    problems: list[Problem] = field(default_factory=list)
    repaired: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def merge(self, other: VerifyResult) -> VerifyResult:
        return VerifyResult(
            **{key: getattr(self, key) + getattr(other, key) for key in COUNTS},
            problems=[*self.problems, *other.problems],
            repaired=[*self.repaired, *other.repaired],
        )

    def counts_by_kind(self) -> dict[str, int]:
        return dict(sorted(Counter(p.kind for p in self.problems).items()))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able form: what a mapped task returns through XCom."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> VerifyResult:
        counts = {key: int(data.get(key, 0)) for key in COUNTS}
        return cls(
            **counts,
            problems=[Problem(**p) for p in data.get("problems", [])],
            repaired=[Problem(**p) for p in data.get("repaired", [])],
        )


def merge_all(results: Iterable[VerifyResult]) -> VerifyResult:
    total = VerifyResult()
    for result in results:
        total = total.merge(result)
    return total


# --- the root ---------------------------------------------------------------------------------
def read_root(store: Store, repository_url: str) -> tuple[list[str], VerifyResult]:
    """The packages the root declares, and what is wrong with the root itself.

    Stricter than the publisher's reading, which forgives a corrupt root because the next publish
    replaces it: here a root a client cannot use is the first problem to report.
    """
    result = VerifyResult()
    stored = store.get(ROOT)
    if stored is None:
        result.problems.append(Problem("", "", "missing_root", f"{store.key(ROOT)} does not exist"))
        return [], result
    try:
        root = parse_root(stored.body)
    except UnreadableRoot as exc:
        result.problems.append(Problem("", "", "bad_root", f"{store.key(ROOT)} {exc.reason}"))
        return [], result
    if not root.is_object:
        result.problems.append(Problem("", "", "bad_root", f"{store.key(ROOT)} is not a JSON object"))
        return [], result
    expected = metadata_url(repository_url)
    if root.metadata_url != expected:
        detail = f"metadata-url is {root.metadata_url!r}, expected {expected!r}"
        result.problems.append(Problem("", "", "bad_root", detail))
    if not isinstance(root.listed, list):
        result.problems.append(Problem("", "", "bad_root", "available-packages is missing or not a list"))
        return [], result
    names, invalid = root.package_names()
    result.problems.extend(Problem(str(name), "", "bad_root", "not a valid package name") for name in invalid)
    return names, result


def plan_verify_batches(names: Iterable[str], max_batches: int) -> list[Batch]:
    """The sync's batching (whole state shards per batch), so each batch reads each shard once."""
    return plan_batches({name: [] for name in names}, max_batches)


def list_packages(ctx: Context) -> dict[str, Any]:
    """The first task: the packages the root declares, and the root's own problems (for XCom)."""
    names, root = read_root(ctx.store, ctx.settings.repository_url)
    logger.info("%d packages available; %d problems with the root", len(names), len(root.problems))
    return {"root": root.to_dict(), "packages": names}


# --- one batch --------------------------------------------------------------------------------
@dataclass(frozen=True)
class ArchiveRef:
    """A version's archive as a p2 file promises it, with the state's record when there is one."""

    package: str
    version: str
    normalized: str
    path: str
    sha1: str
    sha256: str
    size: int | None
    record: ArchiveRecord | None


@dataclass
class PackageCheck:
    name: str
    state: PackageState
    # The archive records of the versions it publishes (from its record, else its shard entry).
    versions: dict[str, Any] = field(default_factory=dict)
    p2_files: int = 0
    # The ETag each p2 file had when it was checked (None: absent): a repair writes only over that.
    seen: dict[str, str | None] = field(default_factory=dict)
    refs: list[ArchiveRef] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    repaired: list[Problem] = field(default_factory=list)


def verify_batch(ctx: Context, batch: Batch, *, repair: bool = False, deep: bool = False) -> VerifyResult:
    """Verify (and with ``repair``, restore) the packages of one batch: p2 files first, then archives.

    ``deep`` hashes every archive rather than trusting the digests in its metadata.
    """
    names = sorted(batch.packages)
    shards = load_shards(ctx.store, names)
    workers = ctx.settings.concurrency

    def check(name: str) -> PackageCheck:
        return _check_package_settled(ctx, name, shards[shard_of(name)].packages.get(name, {}), repair=repair)

    checks = map_bounded(check, names, workers)
    by_path: dict[str, list[ArchiveRef]] = {}
    for package in checks:
        for ref in package.refs:
            by_path.setdefault(ref.path, []).append(ref)
    archive_checks = map_bounded(
        lambda path: (path, _check_archive(ctx.store, by_path[path][0], deep=deep)), by_path, workers
    )

    result = VerifyResult(packages=len(names), p2_files=sum(c.p2_files for c in checks))
    result.versions = sum(len(c.refs) for c in checks)
    result.problems = [p for c in checks for p in c.problems]
    result.repaired = [p for c in checks for p in c.repaired]
    broken: dict[str, list[Problem]] = {}
    for path, checked in archive_checks:
        result.archives += 1
        result.archive_bytes += checked.size
        result.archives_hashed += checked.hashed
        if checked.problem is not None:
            broken[path] = [Problem(ref.package, ref.version, *checked.problem) for ref in by_path[path]]
    if repair and broken:
        restored = map_bounded(lambda path: (path, _restore_archive(ctx, by_path[path])), broken, workers)
        for path, failure in restored:
            if failure is None:
                result.repaired.extend(broken.pop(path))
            else:
                broken[path] = [_annotated(problem, failure) for problem in broken[path]]
    result.problems.extend(problem for problems in broken.values() for problem in problems)
    logger.info(
        "batch %s: %d packages, %d p2 files, %d versions, %d archives (%d bytes, %d hashed), %d problems, %d repaired",
        batch.index,
        result.packages,
        result.p2_files,
        result.versions,
        result.archives,
        result.archive_bytes,
        result.archives_hashed,
        len(result.problems),
        len(result.repaired),
    )
    return result


def _check_package_settled(ctx: Context, name: str, state: PackageState, *, repair: bool) -> PackageCheck:
    """Check a package; read it again once if it looks inconsistent; with ``repair``, rebuild its p2 files.

    A sync publishing meanwhile writes the p2 file before the shard: the second read sees both.
    After a rebuild the package is read again, so the walk reaches the archives the file names.
    """
    check = _check_package(ctx, name, state)
    if any(p.kind in RACY_KINDS for p in check.problems):
        check = _check_package(ctx, name, load_shard(ctx.store, shard_of(name)).packages.get(name, {}))
    if not repair:
        return check
    if any(p.kind in P2_KINDS for p in check.problems):
        files = sorted({p.version for p in check.problems if p.kind in P2_KINDS})
        failures = {suffix: rebuild_p2(ctx, name, suffix, check.state, check.seen.get(suffix)) for suffix in files}
        repaired = [p for p in check.problems if p.kind in P2_KINDS and failures[p.version] is None]
        if repaired:
            check = _check_package(ctx, name, check.state)
            check.repaired = repaired
        check.problems = [
            _annotated(p, failures[p.version]) if p.kind in P2_KINDS and failures.get(p.version) else p
            for p in check.problems
        ]
    emptied = [p for p in check.problems if p.kind == "nothing_published"]
    if emptied:
        # Out of the root only while the record still publishes nothing (read after the root).
        publish_root(ctx.store, ctx.settings.repository_url, [], emptied=[name], advisories=None)
        check.repaired = [*check.repaired, *emptied]
        check.problems = [p for p in check.problems if p.kind != "nothing_published"]
    return check


def _annotated(problem: Problem, failure: str) -> Problem:
    """The problem, with why repairing it failed."""
    return Problem(problem.package, problem.version, problem.kind, f"{problem.detail}; {failure}")


def _check_package(ctx: Context, name: str, state: PackageState) -> PackageCheck:
    """Read both p2 files of a package and compare them, and every version's dist, with what it records.

    The package's record is the source of truth when it has one: the p2 files must be the bytes
    derived from it. A package mirrored before records existed is checked against its shard entry.
    """
    check = PackageCheck(name, state)
    if not state:
        check.problems.append(Problem(name, "", "not_in_state", "published but not recorded in mirror-state"))
    record = load_record(ctx.store, name)
    if record is not None and not record.versions and record.withdrawn:
        detail = f"the root lists it, but every version was withdrawn ({len(record.withdrawn)})"
        check.problems.append(Problem(name, "", "nothing_published", detail))
    if has_content(record):
        derived = derive_files(record, ctx.settings.repository_url)
        expected = {suffix: md5_etag(body) for suffix, body in derived.items()}
        check.versions = {n: v.archive.to_dict() for n, v in record.versions.items()}
    else:
        expected = dict(state.get("published", {}))
        check.versions = dict(state.get("versions", {}))
    for suffix in FILE_SUFFIXES:
        path = p2_path(name, dev=bool(suffix))
        stored = ctx.store.get(path)
        check.seen[suffix] = stored.etag if stored is not None else None
        if stored is None:
            if not suffix or suffix in expected:
                check.problems.append(Problem(name, suffix, "missing_p2", f"{ctx.store.key(path)} does not exist"))
            continue
        check.p2_files += 1
        if suffix in expected and stored.etag != expected[suffix]:
            detail = f"{ctx.store.key(path)} has ETag {stored.etag}, the mirror's record gives {expected[suffix]}"
            check.problems.append(Problem(name, suffix, "p2_mismatch", detail))
        try:
            entries = parse_p2(stored.body, name)
        except MirrorError as exc:
            check.problems.append(Problem(name, suffix, "bad_json", str(exc)))
            continue
        for entry in entries:
            _check_entry(ctx, check, entry)
    return check


def _check_entry(ctx: Context, check: PackageCheck, entry: Mapping[str, Any]) -> None:
    version = str(entry["version"])
    normalized = normalized_of(entry) or ""
    dist = entry.get("dist") if isinstance(entry.get("dist"), dict) else {}
    recorded = check.versions.get(normalized)
    if recorded is None:
        if check.state:
            check.problems.append(Problem(check.name, version, "not_in_state", "version not recorded in the state"))
        ref = _ref_from_dist(check.name, version, normalized, dist)
        if ref is None:
            check.problems.append(Problem(check.name, version, "dist_mismatch", f"dist is not on the mirror: {dist}"))
        else:
            check.refs.append(ref)
        return
    record = ArchiveRecord.from_dict(recorded)
    expected = published_entry(MirroredVersion({}, record), ctx.settings.repository_url)["dist"]
    if dist != expected:
        detail = f"dist is {dist}, the state records {expected}"
        check.problems.append(Problem(check.name, version, "dist_mismatch", detail))
    check.refs.append(
        ArchiveRef(check.name, version, normalized, record.path, record.sha1, record.sha256, record.size, record)
    )


def _ref_from_dist(name: str, version: str, normalized: str, dist: Mapping[str, Any]) -> ArchiveRef | None:
    """Without a state record, the dist itself says what to expect: the key names the sha256."""
    path = archive_path_of_url(str(dist.get("url") or ""))
    if path is None:
        return None
    sha256 = path.rsplit("/", 1)[-1].removesuffix(".zip")
    return ArchiveRef(name, version, normalized, path, str(dist.get("shasum") or ""), sha256, None, None)


@dataclass(frozen=True)
class ArchiveCheck:
    """What checking one archive found: its stored size, whether it was read and hashed, the problem."""

    size: int
    hashed: bool = False
    problem: tuple[str, str] | None = None


def _check_archive(store: Store, ref: ArchiveRef, *, deep: bool) -> ArchiveCheck:
    """HEAD for existence, size and the digests the archive carries; stream and hash it only without them.

    Digests in the metadata were computed from the bytes before they were stored (by the sync, or
    by an earlier verify that hashed them), so comparing them with the record needs no GET. An
    archive without them, or every archive with ``deep``, is hashed; when it matches and does not
    carry those digests yet, they are recorded on it, so the next verify reads it no more.
    """
    head = store.head(ref.path)
    if head is None:
        return ArchiveCheck(0, problem=("missing_archive", f"{store.key(ref.path)} does not exist"))
    size = head.size
    if ref.size is not None and size != ref.size:
        detail = f"{store.key(ref.path)} is {size} bytes, the state records {ref.size}"
        return ArchiveCheck(size, problem=("size_mismatch", detail))
    carried = head.metadata.get("sha256")
    if carried and not deep:
        return ArchiveCheck(
            size, problem=_digest_problem(store, ref, carried, head.metadata.get("sha1"), " in its metadata")
        )
    digests = hash_object(store, ref.path)
    if digests is None:
        return ArchiveCheck(0, problem=("missing_archive", f"{store.key(ref.path)} disappeared while it was read"))
    sha1, sha256, _read = digests
    problem = _digest_problem(store, ref, sha256, sha1, "")
    if problem is None and not digest_metadata(sha1, sha256).items() <= head.metadata.items():
        _record_digests(store, head, sha1, sha256)
    return ArchiveCheck(size, hashed=True, problem=problem)


def _digest_problem(
    store: Store, ref: ArchiveRef, sha256: str, sha1: str | None, source: str
) -> tuple[str, str] | None:
    """(kind, detail) when the digests found (hashed, or read from the ``source`` metadata) are not the ref's.

    A sha1 the metadata lacks, or the ref does not know (a dist without shasum), is not compared:
    the sha256 names the bytes.
    """
    if sha256 != ref.sha256:
        return "sha256_mismatch", f"{store.key(ref.path)} has sha256 {sha256} (sha1 {sha1}){source}"
    if ref.sha1 and sha1 and sha1 != ref.sha1:
        return "sha1_mismatch", f"{store.key(ref.path)} has sha1 {sha1}, expected {ref.sha1}{source}"
    return None


def _record_digests(store: Store, head: ObjectInfo, sha1: str, sha256: str) -> None:
    """Put the digests just hashed on the archive (conditional on the ETag its HEAD saw); failing is no problem.

    An archive that cannot be given them is only hashed again by the next verify, so a refusal
    (changed meanwhile, a role without write access) is logged, not raised.
    """
    try:
        store.set_metadata(
            head.path,
            {**head.metadata, **digest_metadata(sha1, sha256)},
            content_type=head.content_type or ZIP,
            cache_control=head.cache_control or ARCHIVE_CACHE,
            if_match=head.etag,
        )
    except ConflictError:
        logger.info("%s changed while it was verified; its digests are not recorded", store.key(head.path))
    except StoreError as exc:
        logger.warning(
            "could not record the digests of %s; the next verify hashes it again: %s", store.key(head.path), exc
        )


def hash_object(store: Store, path: str) -> tuple[str, str, int] | None:
    """(sha1, sha256, size) of a stored object, streamed in 1 MB chunks; None when it is absent.

    The store's ``get`` reads whole bodies (fine for metadata); archives can be hundreds of MB.
    """
    chunks = store.stream(path, CHUNK)
    if chunks is None:
        return None
    sha1, sha256, size = hashlib.sha1(), hashlib.sha256(), 0
    for chunk in chunks:
        sha1.update(chunk)
        sha256.update(chunk)
        size += len(chunk)
    return sha1.hexdigest(), sha256.hexdigest(), size


# --- repair -----------------------------------------------------------------------------------
def _restore_archive(ctx: Context, refs: list[ArchiveRef]) -> str | None:
    """Download the archive again from its recorded source; None when restored, else why not.

    The broken copy is deleted first: ``mirror_archive`` never overwrites a content-addressed key
    (their bytes are immutable by design), and a corrupt archive is no more use to a client than
    a missing one. The recorded sha1 is passed as the expected shasum, so bytes that differ from
    the original are refused before anything is uploaded.
    """
    ref = next((r for r in refs if r.record is not None and r.record.source_url), None)
    if ref is None or ref.record is None:
        return "not repaired: no source URL recorded in the state for this archive"
    record = ref.record
    try:
        ctx.client.policy.check(record.source_url)  # a URL the policy refuses now: keep what is stored
    except MirrorError as exc:
        return f"not repaired: {exc}"
    if ctx.store.head(record.path) is not None:
        ctx.store.delete(record.path)
    dist = {"type": "zip", "url": record.source_url, "reference": record.reference, "shasum": record.sha1}
    try:
        restored = mirror_archive(
            ctx.store,
            ctx.client,
            name=ref.package,
            version=ref.version,
            normalized=ref.normalized,
            dist=dist,
            max_bytes=ctx.settings.max_archive_bytes,
        )
    except ArchiveError as exc:
        return f"not repaired: the upstream bytes changed, the mirror cannot restore the original ({exc})"
    except MirrorError as exc:
        return f"not repaired: {exc}"
    if restored.sha256 != record.sha256:
        return f"not repaired: the upstream now serves sha256 {restored.sha256}, the mirror cannot restore the original"
    logger.warning(
        "restored %s from %s; invalidate it on the CDN, which may cache a broken copy as immutable",
        ctx.store.key(record.path),
        record.source_url,
    )
    return None


def rebuild_p2(ctx: Context, name: str, suffix: str, state: PackageState, seen_etag: str | None) -> str | None:
    """Rewrite a p2 file the mirror published; None when restored.

    A package with a record gets its files derived from it again, by the write rule (compare-and-
    swap, record read after the file), so a repair never undoes what a sync is writing. A package
    mirrored before records existed is rebuilt from the cached upstream metadata and the state, and
    only when the result hashes to the ETag recorded when it was published; it is written only over
    the object the check read (``seen_etag``, None when it found no file), never over what a writer
    put there since: a fresh HEAD here would take a sync's new file for the one found broken.
    """
    record = load_record(ctx.store, name)
    if has_content(record):
        publish_files(ctx.store, name, ctx.settings.repository_url)
        logger.warning("rebuilt the p2 files of %s from its record", name)
        return None
    published = state.get("published", {}).get(suffix)
    if published is None:
        return "not repaired: the state records no publication of this file to rebuild"
    try:
        candidates = _rebuilt_p2(ctx, name, suffix, state)
    except MirrorError as exc:
        return f"not repaired: {exc}"
    body = next((body for body in candidates if md5_etag(body) == published), None)
    if body is None:
        return "not repaired: a rebuild from the cached upstream metadata differs from the published file"
    path = p2_path(name, dev=bool(suffix))
    try:
        ctx.store.put(path, body, if_match=seen_etag, if_none_match=seen_etag is None)
    except ConflictError:
        return "not repaired: another writer changed the file meanwhile; verify again"
    logger.warning("rebuilt %s from the upstream cache and the state", ctx.store.key(path))
    return None


def _rebuilt_p2(ctx: Context, name: str, suffix: str, state: PackageState) -> list[bytes]:
    """The file's possible bytes: the sync's choice of versions, with each form of the advisories key.

    The state does not record whether the stable file carried ``security-advisories`` (absent
    without an upstream advisories API, an empty list with one), so both forms are tried; the
    caller only accepts the one that hashes to the published ETag.
    """
    entries: list[dict[str, Any]] = []
    for file_suffix in FILE_SUFFIXES:
        cached = ctx.store.get(upstream_cache_path(name, dev=bool(file_suffix)))
        if cached is not None:
            entries.extend(parse_p2(cached.body, name))
    records = {n: ArchiveRecord.from_dict(r) for n, r in state.get("versions", {}).items()}
    mirrored = []
    for entry in select_versions(entries, state.get("selectors", [])):
        record = records.get(normalized_of(entry) or "")
        reference = str((entry.get("dist") or {}).get("reference") or "")
        if record is not None and record.reference == reference:
            mirrored.append(published_entry(MirroredVersion(entry, record), ctx.settings.repository_url))
    tagged, dev = split_dev(mirrored)
    if suffix:
        return [dump_p2(name, dev)]
    return [dump_p2(name, tagged, advisories) for advisories in (None, [])]


# --- the report -------------------------------------------------------------------------------
def log_summary(result: VerifyResult, *, repair: bool) -> None:
    """A summary table in the task log, then one line per problem and per repair."""
    rows = [
        ("packages", result.packages),
        ("p2 files", result.p2_files),
        ("versions", result.versions),
        ("archives checked", result.archives),
        ("archive bytes", result.archive_bytes),
        ("archives hashed", result.archives_hashed),
        ("repair", "on" if repair else "off"),
        ("repaired", len(result.repaired)),
        ("problems", len(result.problems)),
        *((f"  {kind}", count) for kind, count in result.counts_by_kind().items()),
    ]
    logger.info("%s", report_table("verify report", rows))
    for problem in result.repaired:
        logger.warning("repaired: %s %s %s: %s", problem.kind, problem.package, problem.version, problem.detail)
    for problem in result.problems:
        logger.error("problem: %s %s %s: %s", problem.kind, problem.package, problem.version, problem.detail)


def finish(
    ctx: Context, root: Mapping[str, Any], results: Iterable[Mapping[str, Any]], *, run_id: str, repair: bool
) -> VerifyResult:
    """Add up the batches, log the summary and keep the report next to the sync's run reports."""
    total = merge_all(VerifyResult.from_dict(r) for r in [root, *results])
    log_summary(total, repair=repair)
    report = {**total.to_dict(), "counts_by_kind": total.counts_by_kind(), "repair": repair, "run_id": run_id}
    ctx.store.put(run_report_path(f"verify-{run_id}"), dumps(report), cache_control=STATE_CACHE)
    return total
