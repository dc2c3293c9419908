"""What verify writes: restored archives, rebuilt p2 files, the root without emptied packages, digests.

A repair restores only what can be restored without inventing anything: an archive is downloaded
again from the source URL recorded in the state and accepted only if its digests equal the
recorded ones; a p2 file is derived again from the package's record, or for a package mirrored
before records existed, rebuilt from the cached upstream metadata and the state records only if
the result is byte for byte the file that was published. Every write goes by the write rule
(:mod:`composer_mirror.publisher`) or is conditional on the object the check read, so a repair never
undoes what a sync is writing meanwhile.

Recording an archive's digests on it is not a repair: every verify does it for an archive it had
to hash, so the next one needs a HEAD only.
"""

from __future__ import annotations

import logging
from typing import Any

from composer_mirror.archives import digest_metadata, mirror_archive
from composer_mirror.composer_format import dump_p2, parse_p2, split_dev
from composer_mirror.context import Context
from composer_mirror.errors import ArchiveError, ConflictError, MirrorError, StoreError
from composer_mirror.publisher import has_content, load_record, publish_files, publish_root
from composer_mirror.record import MirroredVersion, published_entry
from composer_mirror.state import PackageState
from composer_mirror.store import ARCHIVE_CACHE, ZIP, ObjectInfo, Store, md5_etag
from composer_mirror.store.layout import FILE_SUFFIXES, p2_path, upstream_cache_path
from composer_mirror.targets import normalized_of, select_versions
from composer_mirror.verify.checks import ArchiveRef, PackageCheck, check_package
from composer_mirror.verify.problems import P2_KINDS

logger = logging.getLogger(__name__)


def repair_package(ctx: Context, check: PackageCheck) -> PackageCheck:
    """Rebuild the package's broken p2 files, and take it out of the root when it publishes nothing.

    After a rebuild the package is read again, so the walk reaches the archives the file names.
    """
    name = check.name
    if any(p.kind in P2_KINDS for p in check.problems):
        files = sorted({p.version for p in check.problems if p.kind in P2_KINDS})
        failures = {suffix: rebuild_p2(ctx, name, suffix, check.state, check.seen.get(suffix)) for suffix in files}
        repaired = [p for p in check.problems if p.kind in P2_KINDS and failures[p.version] is None]
        if repaired:
            check = check_package(ctx, name, check.state)
            check.repaired = repaired
        check.problems = [
            p.annotated(failure) if p.kind in P2_KINDS and (failure := failures.get(p.version)) else p
            for p in check.problems
        ]
    emptied = [p for p in check.problems if p.kind == "nothing_published"]
    if emptied:
        # Out of the root only while the record still publishes nothing (read after the root).
        publish_root(ctx.store, ctx.settings.repository_url, [], emptied=[name], advisories=None)
        check.repaired = [*check.repaired, *emptied]
        check.problems = [p for p in check.problems if p.kind != "nothing_published"]
    return check


def restore_archive(ctx: Context, refs: list[ArchiveRef]) -> str | None:
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


def rebuild_p2(ctx: Context, name: str, suffix: str, state: PackageState | None, seen_etag: str | None) -> str | None:
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
    published = state.published.get(suffix) if state is not None else None
    if state is None or published is None:
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
    records = state.versions
    mirrored = []
    for entry in select_versions(entries, state.selectors or []):
        record = records.get(normalized_of(entry) or "")
        reference = str((entry.get("dist") or {}).get("reference") or "")
        if record is not None and record.reference == reference:
            mirrored.append(published_entry(MirroredVersion(entry, record), ctx.settings.repository_url))
    tagged, dev = split_dev(mirrored)
    if suffix:
        return [dump_p2(name, dev)]
    variants: tuple[list[Any] | None, ...] = (None, [])
    return [dump_p2(name, tagged, advisories) for advisories in variants]


def record_digests(store: Store, head: ObjectInfo, sha1: str, sha256: str) -> None:
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
