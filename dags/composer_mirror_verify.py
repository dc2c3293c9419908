"""
### composer_mirror_verify

Checks that the bucket is still the repository the mirror published: walks it the way a Composer
client does (`packages.json`, both p2 files of every package in `available-packages`, every
archive they name) and compares each object with the mirror's state: the p2 files' ETags, every
version's dist, every archive's size, sha1 and sha256. Archives carry the digests the sync
computed as object metadata, so an unchanged archive is checked with a HEAD, not read; one
stored before archives carried them is read and hashed once, and given them when it matches.

Weekly, and on demand. The run fails while problems remain (at once: a retry would find the
same); the report task's log lists each one (package, version, kind) and the full report is kept
at `mirror-state/runs/verify-<run id>.json`.

- `repair` (default off): download broken or missing archives again from the source URL the
  state recorded, keeping them only when their digests equal the recorded ones (when the upstream
  now serves other bytes, the original cannot be restored and the problem stays reported), and
  rewrite p2 files that can be rebuilt byte for byte from the cached upstream metadata and the
  state. A repaired archive may still be cached broken on the CDN: invalidate it there.
- `deep` (default off): read and hash every archive instead of trusting the digests in its
  metadata, which also catches bytes changed behind S3's API with their metadata kept. Costs one
  GET of every archive; run it now and then, or when the bucket may have been tampered with.

Settings: the `composer_mirror_*` Variables (see the README).
"""

from __future__ import annotations

import pendulum
from airflow.sdk import Param, dag

from composer_mirror.airflow.alerts import alert_on_failure
from composer_mirror.airflow.defaults import DEFAULT_ARGS
from composer_mirror.airflow.tasks import verify


@dag(
    schedule="43 4 * * 0",  # weekly, Sunday 04:43 UTC, off the hour and away from the hourly sync at :17
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    on_failure_callback=alert_on_failure,
    tags=["composer", "mirror", "verify"],
    doc_md=__doc__,
    params={
        "repair": Param(
            False,
            type="boolean",
            title="Repair",
            description="Re-download broken archives from their recorded source (kept only if the digests match) "
            "and rebuild p2 files that can be rebuilt exactly; anything else stays reported.",
        ),
        "deep": Param(
            False,
            type="boolean",
            title="Deep",
            description="Read and hash every archive instead of comparing the digests in its metadata with the "
            "state (one GET per archive).",
        ),
    },
)
def composer_mirror_verify() -> None:
    listing = verify.list_packages()
    results = verify.verify_batch.expand(batch=verify.plan_batches(listing))
    verify.report(listing, results)


composer_mirror_verify()
