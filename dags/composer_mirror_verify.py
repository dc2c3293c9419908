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

from typing import Any

import pendulum
from airflow.sdk import Param, dag, task

from composer_mirror.airflow_adapter import (
    DEFAULT_ARGS,
    LONG_TASK,
    alert_on_failure,
    batch_step,
    build_context,
    handed_off,
    handed_off_batches,
    run_ids,
)
from composer_mirror.context import Context
from composer_mirror.handoff import receive


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
    @task
    def list_packages() -> dict[str, Any]:
        """Read packages.json: its packages, and what is wrong with the root itself."""
        from composer_mirror import verify

        return handed_off("listing", None, verify.list_packages)

    @task
    def plan_batches(listing: dict[str, Any]) -> list[dict[str, Any]]:
        """Group the packages into batches (at most composer_mirror_max_batches), whole state shards each."""
        from composer_mirror import verify

        return handed_off_batches(
            listing, None, lambda ctx, listed: verify.plan_verify_batches(listed["packages"], ctx.settings.max_batches)
        )

    @task(map_index_template="{{ batch_label }}", execution_timeout=LONG_TASK)
    def verify_batch(batch: dict[str, Any], params: dict[str, Any] | None = None) -> dict[str, Any]:
        """Check (and with `repair`, restore) the batch's p2 files and archives; with `deep`, hash every archive."""
        from composer_mirror import verify
        from composer_mirror.batches import Batch

        repair = bool((params or {}).get("repair"))
        deep = bool((params or {}).get("deep"))
        return batch_step(
            "result",
            batch,
            None,
            lambda ctx, b: verify.verify_batch(ctx, Batch.from_json(b), repair=repair, deep=deep).to_dict(),
        )

    @task(trigger_rule="none_failed")
    def report(listing: dict[str, Any], results: list[dict[str, Any]], params: dict[str, Any] | None = None) -> None:
        """Log the summary table and every problem; fail the run while problems remain.

        The last task: it deletes the run's hand-offs (and any left by failed runs of this DAG).
        """
        from composer_mirror import context, handoff, verify

        dag_id, run_id = run_ids()
        repair = bool((params or {}).get("repair"))
        # One slice request: iterating the lazy sequence probes offsets until one is missing (logged as an error).
        refs = list(results[:]) if results else []

        def step(ctx: Context) -> verify.VerifyResult:
            root = receive(ctx.store, listing)["root"]
            batches = [receive(ctx.store, ref) for ref in refs]
            total = verify.finish(ctx, root, batches, run_id=run_id, repair=repair)
            handoff.clear(ctx.store, dag_id)
            return total

        total = context.run_with_context(build_context, step)
        if total.problems:
            from airflow.sdk.exceptions import AirflowFailException  # a verdict: a retry finds the same

            raise AirflowFailException(f"{len(total.problems)} problems remain: {total.counts_by_kind()}")

    listing = list_packages()
    results = verify_batch.expand(batch=plan_batches(listing))
    report(listing, results)


composer_mirror_verify()
