"""The tasks of ``composer_mirror_sync``, and the mirroring chain the SBOM DAG shares with it.

::

    read_upstream -> enumerate_targets (the SBOM DAG: resolve_targets) -> plan_batches
    -> sync_metadata[batch] -> fetch_archives[batch] -> publish_index -> report

Each body runs one stage of :mod:`composer_mirror.sync`. One chain, one mirrored set: whichever DAG
planned the targets, the same stages revalidate, fetch and publish them.
"""

from __future__ import annotations

import logging
from typing import Any

from airflow.sdk import Asset, task
from airflow.sdk.exceptions import AirflowFailException

from composer_mirror import batches
from composer_mirror.airflow.defaults import LONG_TASK
from composer_mirror.airflow.handoffs import (
    batch_step,
    clearing_handoffs,
    handed_off,
    handed_off_batches,
    in_context,
    received_all,
)
from composer_mirror.airflow.runtime import batch_slots, current_run_id
from composer_mirror.batches import Batch
from composer_mirror.context import Context
from composer_mirror.handoff import receive
from composer_mirror.sync import metadata, packages, planning, publish
from composer_mirror.sync.records import BatchResult, Manifest, Plan, RunReport
from composer_mirror.upstream.composer import read_endpoints

logger = logging.getLogger(__name__)

# The published root as an Asset: other DAGs can schedule on every publish. Named, without a URI:
# the bucket is a Variable, unknown at parse time, and a URI with a scheme makes every parse load
# the providers' URI normalisers (about 0.3 s).
REPOSITORY = Asset(name="composer_mirror_repository")


@task
def read_upstream() -> dict[str, Any]:
    """Read the settings and discover the upstream's endpoints from its packages.json."""
    return in_context(lambda ctx: read_endpoints(ctx.client, ctx.settings.upstream_url).to_json())


@task
def enumerate_targets(upstream: dict[str, Any]) -> dict[str, Any]:
    """The selection plus everything already mirrored, or only what the changes feed names."""
    return handed_off("plan", upstream, planning.plan_sync)


@task
def plan_batches(plan: dict[str, Any]) -> list[dict[str, Any]]:
    """Group the targets into batches (at most composer_mirror_max_batches)."""
    return handed_off_batches(plan, None, planned_batches)  # no upstream request: no endpoints to allow


def planned_batches(ctx: Context, value: dict[str, Any]) -> list[Batch]:
    """The plan's batches; one empty batch when there is nothing to do.

    A mapped task over nothing is skipped, and `airflow dags test` idles a second per pass of its
    loop on it; one empty batch costs a short run of each batch task instead. Planned in every run,
    whoever runs it, so a run with nothing to do takes the same path as any other everywhere.
    """
    planned = Plan.from_json(value)
    slots = batch_slots(ctx.settings.max_batches)
    shares = batches.plan_batches(planned.targets, slots, min_times=planned.min_times)
    logger.info("%d targets in %d batches", len(planned.targets), len(shares))
    return shares or [Batch(0, "(nothing to do)", {})]


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
    run_id, refs = current_run_id(), received_all(results)

    def step(ctx: Context) -> RunReport:
        batches = [BatchResult.from_json(receive(ctx.store, ref)) for ref in refs]
        return publish.publish_index(ctx, batches, Plan.from_json(receive(ctx.store, plan)), run_id)

    return handed_off("report", upstream, step)


@task
def report(summary: dict[str, Any]) -> None:
    """Log the run's counts; fail the run (after publishing) when any package or archive failed.

    The last task: it deletes the run's hand-offs (and any left by failed runs of this DAG).
    """
    received = clearing_handoffs(lambda ctx: receive(ctx.store, summary))
    publish.log_report(received)
    if received["failures"]:
        # A verdict, not a crash: fail without retries (a retry would find the hand-offs cleared).
        raise AirflowFailException(f"{len(received['failures'])} failures; the index was published without them")
