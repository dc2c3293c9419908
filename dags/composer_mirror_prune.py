"""
### composer_mirror_prune

Deletes what the published repository no longer references: archives (`dists/...`) no published
p2 file names, their journal markers (`mirror-state/archives/...`), and p2 files of packages that
are neither in `available-packages` nor in the mirror's state.

Mark, then sweep: each run records when it first found each object unreferenced (in
`mirror-state/prune/marks.json`), and deletes an object only once that mark is older than the
grace period, the Variable `composer_mirror_prune_grace_hours` (default 48), and only if the
object is still unreferenced, checked again right before the delete. The grace period thus
counts from when an object stopped being referenced, not from its upload, and it **must exceed
the CDN TTL**: a client holding a cached p2 file may still ask for the archives it names. An
object referenced again, or written again, starts a new grace period when next found
unreferenced. Nothing a version recorded in the state refers to is ever deleted (withdrawn
versions included). The prune refuses to run when `packages.json` is missing or lists nothing.

- `dry_run` (default on): only log what would be deleted (`[DRY RUN] would delete ...`, with
  counts and bytes). Trigger with `{"dry_run": false}` to delete. A dry run still records its
  marks (a mark deletes nothing): the daily dry runs start the clocks, so a real run deletes
  what has been unreferenced for the whole grace period without waiting another one.

Scheduled runs cannot be given params: they are dry runs unless the Variable
`composer_mirror_prune_scheduled_delete` is `true`, in which case they delete. Manual runs follow
`dry_run` whatever the Variable says.

Daily, and on demand. The report is kept at `mirror-state/runs/prune-<run id>.json`.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import Param, dag

from composer_mirror.airflow.alerts import alert_on_failure
from composer_mirror.airflow.defaults import DEFAULT_ARGS
from composer_mirror.airflow.tasks import prune


@dag(
    schedule="29 3 * * *",  # daily at 03:29 UTC, off the hour and away from the hourly sync at :17
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    on_failure_callback=alert_on_failure,
    tags=["composer", "mirror", "prune"],
    doc_md=__doc__,
    params={
        "dry_run": Param(
            True,
            type="boolean",
            title="Dry run",
            description="Only log what would be deleted (the default, for safety); turn off to delete.",
        ),
    },
)
def composer_mirror_prune() -> None:
    prune.prune_unreferenced()


composer_mirror_prune()
