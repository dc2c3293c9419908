"""Verify's tasks: list the root's packages, plan batches, and verify (or repair) one batch.

A batch is checked in two passes, both parallel: every package's p2 files first (each read a
second time when it looks inconsistent, and rebuilt with ``repair``), then every distinct archive
the files name, so an archive shared by versions is checked once.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

from composer_mirror.batches import Batch, plan_batches
from composer_mirror.context import Context
from composer_mirror.json_record import JsonRecord
from composer_mirror.parallel import map_bounded
from composer_mirror.state import PackageState, load_shard, load_shards
from composer_mirror.store import Store
from composer_mirror.store.layout import shard_of
from composer_mirror.verify.checks import (
    ArchiveCheck,
    ArchiveRef,
    PackageCheck,
    check_archive,
    check_package,
    read_root,
)
from composer_mirror.verify.problems import RACY_KINDS, Problem, VerifyResult
from composer_mirror.verify.repair import record_digests, repair_package, restore_archive

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Listing(JsonRecord):
    """What the first task hands on: the packages the root declares, and the root's own problems."""

    root: VerifyResult
    packages: list[str]


def list_packages(ctx: Context) -> Listing:
    """The first task: the packages the root declares, and the root's own problems (for XCom)."""
    names, root = read_root(ctx.store, ctx.settings.repository_url)
    logger.info("%d packages available; %d problems with the root", len(names), len(root.problems))
    return Listing(root, names)


def plan_verify_batches(names: Iterable[str], max_batches: int) -> list[Batch]:
    """The sync's batching (whole state shards per batch), so each batch reads each shard once."""
    return plan_batches({name: [] for name in names}, max_batches)


def verify_batch(ctx: Context, batch: Batch, *, repair: bool = False, deep: bool = False) -> VerifyResult:
    """Verify (and with ``repair``, restore) the packages of one batch: p2 files first, then archives.

    ``deep`` hashes every archive rather than trusting the digests in its metadata.
    """
    names = sorted(batch.packages)
    shards = load_shards(ctx.store, names)
    workers = ctx.settings.concurrency

    def check(name: str) -> PackageCheck:
        return _check_package_settled(ctx, name, shards[shard_of(name)].packages.get(name), repair=repair)

    checks = map_bounded(check, names, workers)
    by_path: dict[str, list[ArchiveRef]] = {}
    for package in checks:
        for ref in package.refs:
            by_path.setdefault(ref.path, []).append(ref)
    archive_checks = map_bounded(
        lambda path: (path, _check_archive(ctx.store, by_path[path][0], deep=deep)), by_path, workers
    )

    problems = [p for c in checks for p in c.problems]
    repaired = [p for c in checks for p in c.repaired]
    broken: dict[str, list[Problem]] = {}
    for path, checked in archive_checks:
        if checked.problem is not None:
            broken[path] = [Problem(ref.package, ref.version, *checked.problem) for ref in by_path[path]]
    if repair and broken:
        restored = map_bounded(lambda path: (path, restore_archive(ctx, by_path[path])), broken, workers)
        for path, failure in restored:
            if failure is None:
                repaired.extend(broken.pop(path))
            else:
                broken[path] = [problem.annotated(failure) for problem in broken[path]]
    problems.extend(problem for found in broken.values() for problem in found)
    result = VerifyResult(
        packages=len(names),
        p2_files=sum(c.p2_files for c in checks),
        versions=sum(len(c.refs) for c in checks),
        archives=len(archive_checks),
        archive_bytes=sum(checked.size for _path, checked in archive_checks),
        archives_hashed=sum(checked.hashed for _path, checked in archive_checks),
        problems=problems,
        repaired=repaired,
    )
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


def _check_package_settled(ctx: Context, name: str, state: PackageState | None, *, repair: bool) -> PackageCheck:
    """Check a package (``state``: its shard entry, None without one); read it again once if it looks
    inconsistent; with ``repair``, repair it.

    A sync publishing meanwhile writes the p2 file before the shard: the second read sees both.
    """
    check = check_package(ctx, name, state)
    if any(p.kind in RACY_KINDS for p in check.problems):
        check = check_package(ctx, name, load_shard(ctx.store, shard_of(name)).packages.get(name))
    return repair_package(ctx, check) if repair else check


def _check_archive(store: Store, ref: ArchiveRef, *, deep: bool) -> ArchiveCheck:
    """Check an archive; one hashed and found to match is given its digests, so the next verify reads it no more."""
    checked = check_archive(store, ref, deep=deep)
    if checked.unrecorded is not None:
        record_digests(store, *checked.unrecorded)
    return checked
