"""The checks: the root, each package's p2 files and dists, and each archive, read and compared.

Everything here only reads. A package is compared with its record (the source of truth) or, for
one mirrored before records existed, with its shard entry; an archive with the digests recorded
for it. What a check finds out that verify should write (digests hashed from an archive that does
not carry them yet) it returns to its caller, which writes it (:mod:`.repair`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from composer_mirror.archives import ArchiveRecord, digest_metadata
from composer_mirror.composer_format import parse_p2
from composer_mirror.context import Context
from composer_mirror.errors import MirrorError
from composer_mirror.publisher import has_content, load_record
from composer_mirror.record import MirroredVersion, derive_files, published_entry
from composer_mirror.root import UnreadableRoot, metadata_url, parse_root
from composer_mirror.state import PackageState
from composer_mirror.store import ObjectInfo, Store, md5_etag
from composer_mirror.store.layout import FILE_SUFFIXES, ROOT, archive_path_of_url, p2_path
from composer_mirror.targets import normalized_of
from composer_mirror.verify.problems import Problem, VerifyResult

CHUNK = 1024 * 1024


# --- the root ---------------------------------------------------------------------------------
def read_root(store: Store, repository_url: str) -> tuple[list[str], VerifyResult]:
    """The packages the root declares, and what is wrong with the root itself.

    Stricter than the publisher's reading, which forgives a corrupt root because the next publish
    replaces it: here a root a client cannot use is the first problem to report.
    """
    stored = store.get(ROOT)
    if stored is None:
        return [], VerifyResult(problems=[Problem("", "", "missing_root", f"{store.key(ROOT)} does not exist")])
    try:
        root = parse_root(stored.body)
    except UnreadableRoot as exc:
        return [], VerifyResult(problems=[Problem("", "", "bad_root", f"{store.key(ROOT)} {exc.reason}")])
    if not root.is_object:
        return [], VerifyResult(problems=[Problem("", "", "bad_root", f"{store.key(ROOT)} is not a JSON object")])
    problems: list[Problem] = []
    expected = metadata_url(repository_url)
    if root.metadata_url != expected:
        detail = f"metadata-url is {root.metadata_url!r}, expected {expected!r}"
        problems.append(Problem("", "", "bad_root", detail))
    if not isinstance(root.listed, list):
        problems.append(Problem("", "", "bad_root", "available-packages is missing or not a list"))
        return [], VerifyResult(problems=problems)
    names, invalid = root.package_names()
    problems.extend(Problem(str(name), "", "bad_root", "not a valid package name") for name in invalid)
    return names, VerifyResult(problems=problems)


# --- packages ---------------------------------------------------------------------------------
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
    # Its shard entry; None when the shard has none.
    state: PackageState | None
    # The archive records of the versions it publishes (from its record, else its shard entry).
    versions: dict[str, ArchiveRecord] = field(default_factory=dict)
    p2_files: int = 0
    # The ETag each p2 file had when it was checked (None: absent): a repair writes only over that.
    seen: dict[str, str | None] = field(default_factory=dict)
    refs: list[ArchiveRef] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    repaired: list[Problem] = field(default_factory=list)


def check_package(ctx: Context, name: str, state: PackageState | None) -> PackageCheck:
    """Read both p2 files of a package and compare them, and every version's dist, with what it records.

    The package's record is the source of truth when it has one: the p2 files must be the bytes
    derived from it. A package mirrored before records existed is checked against its shard entry.
    """
    check = PackageCheck(name, state)
    if state is None:
        check.problems.append(Problem(name, "", "not_in_state", "published but not recorded in mirror-state"))
    record = load_record(ctx.store, name)
    if record is not None and not record.versions and record.withdrawn:
        detail = f"the root lists it, but every version was withdrawn ({len(record.withdrawn)})"
        check.problems.append(Problem(name, "", "nothing_published", detail))
    if has_content(record):
        derived = derive_files(record, ctx.settings.repository_url)
        expected = {suffix: md5_etag(body) for suffix, body in derived.items()}
        check.versions = {n: v.archive for n, v in record.versions.items()}
    elif state is not None:
        expected = dict(state.published)
        check.versions = dict(state.versions)
    else:
        expected = {}
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
    raw = entry.get("dist")
    dist: Mapping[str, Any] = raw if isinstance(raw, dict) else {}
    record = check.versions.get(normalized)
    if record is None:
        if check.state is not None:
            check.problems.append(Problem(check.name, version, "not_in_state", "version not recorded in the state"))
        ref = _ref_from_dist(check.name, version, normalized, dist)
        if ref is None:
            check.problems.append(Problem(check.name, version, "dist_mismatch", f"dist is not on the mirror: {dist}"))
        else:
            check.refs.append(ref)
        return
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


# --- archives ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class ArchiveCheck:
    """What checking one archive found: its stored size, whether it was read and hashed, the problem.

    ``unrecorded`` is the archive as its HEAD saw it, with the (sha1, sha256) hashed from it, when it
    matched and does not carry those digests yet: recording them spares the next verify the read.
    """

    size: int
    hashed: bool = False
    problem: tuple[str, str] | None = None
    unrecorded: tuple[ObjectInfo, str, str] | None = None


def check_archive(store: Store, ref: ArchiveRef, *, deep: bool) -> ArchiveCheck:
    """HEAD for existence, size and the digests the archive carries; stream and hash it only without them.

    Digests in the metadata were computed from the bytes before they were stored (by the sync, or
    by an earlier verify that hashed them), so comparing them with the record needs no GET. An
    archive without them, or every archive with ``deep``, is hashed.
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
    unrecorded = None
    if problem is None and not digest_metadata(sha1, sha256).items() <= head.metadata.items():
        unrecorded = (head, sha1, sha256)
    return ArchiveCheck(size, hashed=True, problem=problem, unrecorded=unrecorded)


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
