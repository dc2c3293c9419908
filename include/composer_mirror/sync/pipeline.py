"""The chain's stages run one after another in this process: what a mapped DAG run does, in order.

The DAGs run each stage as its own task (mapped over batches); scripts, benchmarks and tests that
prepare or inspect a bucket call this instead of re-writing the order, so the order lives here
and in the DAG wiring only.
"""

from __future__ import annotations

from composer_mirror.batches import plan_batches
from composer_mirror.context import Context
from composer_mirror.sync.metadata import sync_metadata
from composer_mirror.sync.packages import fetch_archives
from composer_mirror.sync.planning import plan_sync
from composer_mirror.sync.publish import publish_index
from composer_mirror.sync.records import Plan, RunReport
from composer_mirror.upstream.composer import read_endpoints


def mirror_plan(ctx: Context, plan: Plan, run_id: str, *, max_batches: int | None = None) -> RunReport:
    """Batch the plan's targets, revalidate and fetch each batch, publish; return the run report.

    ``max_batches`` defaults to the setting, as the DAG's planning task does.
    """
    _read_endpoints(ctx)
    slots = ctx.settings.max_batches if max_batches is None else max_batches
    batches = plan_batches(plan.targets, slots, min_times=plan.min_times)
    results = [fetch_archives(ctx, sync_metadata(ctx, batch)) for batch in batches]
    return publish_index(ctx, results, plan, run_id)


def sync(ctx: Context, run_id: str, *, max_batches: int | None = None) -> RunReport:
    """One scheduled sync run: read the upstream, plan from the selection or the feed, mirror it."""
    _read_endpoints(ctx)
    return mirror_plan(ctx, plan_sync(ctx), run_id, max_batches=max_batches)


def _read_endpoints(ctx: Context) -> None:
    """The upstream's endpoints, read once: planning (the changes feed) and the stages both need them."""
    if ctx.upstream is None:
        ctx.upstream = read_endpoints(ctx.client, ctx.settings.upstream_url)
