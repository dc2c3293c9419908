"""Walking a small mirror as verify's DAG does, and breaking it behind the library's back."""

from __future__ import annotations

from collections import Counter
from typing import Any

from composer_mirror import verify
from composer_mirror.archives import ArchiveRecord
from composer_mirror.state import dumps
from composer_mirror.store import ARCHIVE_CACHE, ZIP
from composer_mirror.store.layout import shard_of, shard_path
from composer_mirror.verify import VerifyResult
from tests.composer_mirror.mirror_builder import BUCKET, PUBLIC_URL, Mirror


def run(mirror: Mirror, *, repair: bool = False, deep: bool = False) -> VerifyResult:
    """Verify the whole mirror as the DAG does: the root, then every batch."""
    names, root = verify.read_root(mirror.store, PUBLIC_URL)
    batches = verify.plan_verify_batches(names, 4)
    results = [verify.verify_batch(mirror.ctx, batch, repair=repair, deep=deep) for batch in batches]
    return verify.merge_all([root, *results])


def archive_gets(mirror: Mirror) -> Counter[str]:
    """GetObject requests for archive keys from now on, by key: a hook on the mirror's boto3 client."""
    gets: Counter[str] = Counter()
    archives = mirror.store.prefix + "dists/"

    def count(params: dict[str, Any], **_: Any) -> None:
        if params["Key"].startswith(archives):
            gets[params["Key"]] += 1

    mirror.s3.meta.events.register("before-parameter-build.s3.GetObject", count)
    return gets


def all_archives(mirror: Mirror) -> list[ArchiveRecord]:
    return [r for records in mirror.records.values() for r in records.values()]


def set_raw_metadata(mirror: Mirror, path: str, metadata: dict[str, str]) -> None:
    """Replace an archive's metadata behind the library's back (``{}``: as stored before archives carried digests)."""
    key = mirror.key(path)
    mirror.s3.copy_object(
        Bucket=BUCKET,
        Key=key,
        CopySource={"Bucket": BUCKET, "Key": key},
        MetadataDirective="REPLACE",
        Metadata=metadata,
        ContentType=ZIP,
        CacheControl=ARCHIVE_CACHE,
    )


def kinds(result: VerifyResult) -> set[tuple[str, str, str]]:
    return {(p.package, p.version, p.kind) for p in result.problems}


def record(mirror: Mirror, name: str, normalized: str) -> ArchiveRecord:
    return mirror.records[name][normalized]


def edit_state(mirror: Mirror, name: str, change) -> None:  # type: ignore[no-untyped-def]
    """Change a package's shard entry, as stored (its JSON), behind the library's back."""
    path = shard_path(shard_of(name))
    entries = mirror.store.get_json(path)
    change(entries[name])
    mirror.put_raw(path, dumps(entries))
