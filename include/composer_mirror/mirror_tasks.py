"""The tasks of the mirroring chain, shared by every DAG that mirrors something (sync and SBOM).

Each DAG file wires them itself, so its file shows its graph::

    read_upstream -> (its own planning task) -> plan_batches -> sync_metadata[batch]
    -> fetch_archives[batch] -> publish_index -> report

Every body is the adapter's glue around one plain stage of :mod:`composer_mirror.sync`: build the
context, receive the hand-off, run the stage, hand its result on. One chain, one mirrored set.
"""

from __future__ import annotations

import logging
from typing import Any

from airflow.sdk import Asset, task

from composer_mirror import batches, context, handoff
from composer_mirror.airflow_adapter import (
    LONG_TASK,
    batch_slots,
    batch_step,
    build_context,
    current_run_id,
    handed_off,
    handed_off_batches,
    load_settings,
    run_ids,
    runs_in_process,
)
from composer_mirror.batches import Batch
from composer_mirror.context import Context
from composer_mirror.handoff import receive
from composer_mirror.sync import metadata, packages, publish
from composer_mirror.sync.records import BatchResult, Manifest, Plan
from composer_mirror.upstream.composer import read_endpoints

logger = logging.getLogger(__name__)

# The published root as an Asset: other DAGs can schedule on every publish. Named, without a URI:
# the bucket is a Variable, unknown at parse time, and a URI with a scheme makes every parse load
# the providers' URI normalisers (about 0.3 s).
REPOSITORY = Asset(name="composer_mirror_repository")


@task
def read_upstream() -> dict[str, Any]:
    """Read the settings and discover the upstream's endpoints from its packages.json."""
    settings = load_settings()
    return context.run_with_context(
        lambda: build_context(settings=settings),
        lambda ctx: read_endpoints(ctx.client, settings.upstream_url).to_json(),
    )


@task
def plan_batches(plan: dict[str, Any]) -> list[dict[str, Any]]:
    """Group the targets into batches (at most composer_mirror_max_batches)."""

    def step(ctx: Context, value: dict[str, Any]) -> list[Batch]:
        planned = Plan.from_json(value)
        slots = batch_slots(ctx.settings.max_batches)
        shares = batches.plan_batches(planned.targets, slots, min_times=planned.min_times)
        if not shares and runs_in_process():
            # `dags test` idles a second per tick on a mapped task with nothing to map; an empty batch is cheaper.
            shares = [Batch(0, "(nothing to do)", {})]
        logger.info("%d targets in %d batches", len(planned.targets), len(shares))
        return shares

    return handed_off_batches(plan, None, step)  # no upstream request: no endpoints to allow


@task(map_index_template="{{ batch_label }}", execution_timeout=LONG_TASK)
def sync_metadata(batch: dict[str, Any], upstream: dict[str, Any]) -> dict[str, Any]:
    """Revalidate the batch's p2 files upstream (conditional requests)."""
    return batch_step(
        "manifest", batch, upstream, lambda ctx, value: metadata.sync_metadata(ctx, Batch.from_json(value))
    )


@task(map_index_template="{{ batch_label }}", execution_timeout=LONG_TASK)
def fetch_archives(manifest: dict[str, Any], upstream: dict[str, Any]) -> dict[str, Any]:
    """Fetch new archives into the bucket, then write the batch's p2 files."""
    return batch_step(
        "result", manifest, upstream, lambda ctx, value: packages.fetch_archives(ctx, Manifest.from_json(value))
    )


@task(trigger_rule="none_failed", outlets=[REPOSITORY], execution_timeout=LONG_TASK)
def publish_index(results: list[dict[str, Any]], plan: dict[str, Any], upstream: dict[str, Any]) -> dict[str, Any]:
    """Publish packages.json last, then the run report (and advance the changes-feed cursor)."""
    run_id = current_run_id()
    # One slice request: iterating the lazy sequence probes offsets until one is missing (logged as an error).
    refs = list(results[:]) if results else []

    def step(ctx: Context) -> dict[str, Any]:
        batches = [BatchResult.from_json(receive(ctx.store, ref)) for ref in refs]
        return publish.publish_index(ctx, batches, Plan.from_json(receive(ctx.store, plan)), run_id)

    return handed_off("report", upstream, step)


@task
def report(summary: dict[str, Any]) -> None:
    """Log the run's counts; fail the run (after publishing) when any package or archive failed.

    The last task: it deletes the run's hand-offs (and any left by failed runs of this DAG).
    """
    dag_id = run_ids()[0]

    def step(ctx: Context) -> dict[str, Any]:
        received = receive(ctx.store, summary)
        handoff.clear(ctx.store, dag_id)
        return received

    received = context.run_with_context(build_context, step)
    publish.log_report(received)
    if received["failures"]:
        # A verdict, not a crash: fail without retries (a retry would find the hand-offs cleared).
        from airflow.sdk.exceptions import AirflowFailException

        raise AirflowFailException(f"{len(received['failures'])} failures; the index was published without them")
