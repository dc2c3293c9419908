"""The sync_metadata stage: revalidate each package's upstream p2 files with conditional requests.

It returns what changed (validators, not bodies: the bodies are cached in the bucket) for the
packages stage; unchanged packages cost one conditional request each and no write.
"""

from __future__ import annotations

import email.utils
import logging
from collections.abc import Callable, Iterator, Mapping

from composer_mirror.batches import Batch
from composer_mirror.composer_format import (
    parse_p2,
)
from composer_mirror.context import Context, endpoints_of
from composer_mirror.errors import MirrorError, UpstreamError
from composer_mirror.parallel import BoundedPool, bounded_pool
from composer_mirror.progress import track
from composer_mirror.state import (
    PackageState,
    UpstreamValidators,
    is_live,
    load_shards,
    shard_windows,
)
from composer_mirror.store import STATE_CACHE, md5_etag
from composer_mirror.store.layout import FILE_SUFFIXES, shard_of, upstream_cache_path
from composer_mirror.sync.records import Failure, Manifest, PackageWork, UpstreamFile
from composer_mirror.targets import (
    wants_dev,
)
from composer_mirror.upstream.composer import package_url

logger = logging.getLogger(__name__)


# Packages whose state shards sync_metadata holds at once (whole shards: 256 of them hold the mirror).
# 250 packages of state are about 2.5 MB of objects; 1,000 were too many for a task's 300 MB budget.
STATE_WINDOW = 250


def sync_metadata(ctx: Context, batch: Batch) -> Manifest:
    """Revalidate the batch's upstream p2 files; return what changed (validators, not bodies).

    A package is asked conditionally only when its last sync completed with the same selectors:
    otherwise its archives may still be missing and the full metadata is needed again.
    """
    packages = batch.packages
    min_times = batch.min_times
    changes: list[PackageWork] = []
    unchanged: list[str] = []
    failures: list[Failure] = []
    stale: dict[str, int] = {}

    Outcome = tuple[str, PackageState, PackageWork | None, str | None]  # name, state, work, error

    def one(name: str, state: PackageState) -> Outcome:
        try:
            return name, state, _revalidate(ctx, name, packages[name], state, min_times.get(name)), None
        except StaleMetadata as exc:
            logger.warning("%s", exc)
            stale[name] = max(min_times[name].values())
            return name, state, None, None
        except MirrorError as exc:
            return name, state, None, str(exc)

    def revalidated(pool: BoundedPool) -> Iterator[Outcome]:
        # One window of state shards in memory at a time, whatever the batch size.
        for names in shard_windows(packages, STATE_WINDOW):
            shards = load_shards(ctx.store, names)
            states = [shards[shard_of(name)].entry(name) for name in names]
            yield from pool.imap(lambda item: one(*item), zip(names, states, strict=True))

    with bounded_pool(ctx.settings.concurrency * 2) as pool:
        for name, state, work, error in track(revalidated(pool), "metadata", len(packages), _metadata_bytes(ctx)):
            if error:
                failures.append(Failure(name, stage="metadata", error=error))
                logger.error("%s: %s", name, error)
                if is_live(state):
                    unchanged.append(name)
            elif work is None:
                if is_live(state):
                    unchanged.append(name)
            else:
                changes.append(work)
    logger.info(
        "batch %s: %d packages, %d changed, %d unchanged, %d failed",
        batch.index,
        len(packages),
        len(changes),
        len(unchanged),
        len(failures),
    )
    stats, s3_requests = ctx.client.stats.as_dict(), ctx.store.request_counts()
    return Manifest(batch.index, batch.label, changes, unchanged, failures, stale, stats, s3_requests)


def _metadata_bytes(ctx: Context) -> Callable[[], int]:
    return lambda: ctx.client.stats.as_dict().get("metadata_bytes", 0)


class StaleMetadata(MirrorError):
    """The upstream served a copy older than the change the feed announced (a stale CDN copy)."""


def _revalidate(
    ctx: Context,
    name: str,
    selectors: list[str],
    state: PackageState,
    min_times: Mapping[str, int] | None = None,
) -> PackageWork | None:
    """Fetch a package's p2 files (conditionally when its last sync was complete).

    ``min_times`` (file suffix -> time) come from the changes feed: an announced file must be at
    least that new, or it is a stale CDN copy; the package is then retried on the next run instead of synced from it.
    """
    conditional = bool(state.complete) and state.selectors == selectors
    files: dict[str, UpstreamFile] = {}
    for suffix in FILE_SUFFIXES:
        dev = bool(suffix)
        if dev and not wants_dev(selectors):
            continue
        known = (state.upstream or {}).get(suffix, UpstreamValidators())
        url = package_url(endpoints_of(ctx), name, dev)
        fetched = ctx.client.get_metadata(
            url,
            known.get("etag") if conditional else None,
            known.get("last_modified") if conditional else None,
            validate=lambda body: _validate_p2(body, name),
        )
        if fetched.status == 304:
            files[suffix] = UpstreamFile(304, known)
        elif fetched.status == 404:
            files[suffix] = UpstreamFile(404)
        else:
            cache_etag = md5_etag(fetched.body)
            ctx.store.put_if_changed(
                upstream_cache_path(name, dev),
                fetched.body,
                known_etag=known.get("cache_etag"),
                cache_control=STATE_CACHE,
            )
            validators = UpstreamValidators(
                etag=fetched.etag, last_modified=fetched.last_modified, cache_etag=cache_etag
            )
            files[suffix] = UpstreamFile(200, validators)
    for suffix, when in (min_times or {}).items():
        if suffix in files and _older_than(files[suffix].validators.get("last_modified"), when):
            raise StaleMetadata(
                f"{name}{suffix}: upstream copy is older than the change announced at {when}; retry later"
            )
    if all(f.status == 304 for f in files.values()):
        return None
    if files[""].status == 404 and not state.versions:
        raise UpstreamError(f"{name} does not exist upstream (404)", status=404)
    return PackageWork(name, selectors, files)


def _older_than(last_modified: str | None, min_time: int) -> bool:
    if not last_modified:
        return False
    try:
        return email.utils.parsedate_to_datetime(last_modified).timestamp() < min_time
    except (TypeError, ValueError):
        return False


def _validate_p2(body: bytes, name: str) -> None:
    try:
        parse_p2(body, name)
    except MirrorError as exc:
        raise ValueError(str(exc)) from exc
