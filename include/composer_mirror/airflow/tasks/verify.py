"""The tasks of ``composer_mirror_verify``: list the published packages, verify them in batches, report.

::

    list_packages -> plan_batches -> verify_batch[batch] -> report
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import task
from airflow.sdk.exceptions import AirflowFailException

from composer_mirror import verify
from composer_mirror.airflow.defaults import LONG_TASK
from composer_mirror.airflow.handoffs import (
    batch_step,
    clearing_handoffs,
    handed_off,
    handed_off_batches,
    received_all,
)
from composer_mirror.airflow.runtime import current_run_id
from composer_mirror.batches import Batch
from composer_mirror.context import Context
from composer_mirror.handoff import receive


@task
def list_packages() -> dict[str, Any]:
    """Read packages.json: its packages, and what is wrong with the root itself."""
    return handed_off("listing", None, verify.list_packages)


@task
def plan_batches(listing: dict[str, Any]) -> list[dict[str, Any]]:
    """Group the packages into batches (at most composer_mirror_max_batches), whole state shards each."""
    return handed_off_batches(
        listing, None, lambda ctx, listed: verify.plan_verify_batches(listed["packages"], ctx.settings.max_batches)
    )


@task(map_index_template="{{ batch_label }}", execution_timeout=LONG_TASK)
def verify_batch(batch: dict[str, Any], params: dict[str, Any] | None = None) -> dict[str, Any]:
    """Check (and with `repair`, restore) the batch's p2 files and archives; with `deep`, hash every archive."""
    repair, deep = _flag(params, "repair"), _flag(params, "deep")
    return batch_step(
        "result",
        batch,
        None,
        lambda ctx, value: verify.verify_batch(ctx, Batch.from_json(value), repair=repair, deep=deep),
    )


@task(trigger_rule="none_failed")
def report(listing: dict[str, Any], results: list[dict[str, Any]], params: dict[str, Any] | None = None) -> None:
    """Log the summary table and every problem; fail the run while problems remain.

    The last task: it deletes the run's hand-offs (and any left by failed runs of this DAG).
    """
    run_id, refs, repair = current_run_id(), received_all(results), _flag(params, "repair")

    def step(ctx: Context) -> verify.VerifyResult:
        root = receive(ctx.store, listing)["root"]
        batches = [receive(ctx.store, ref) for ref in refs]
        return verify.finish(ctx, root, batches, run_id=run_id, repair=repair)

    total = clearing_handoffs(step)
    if total.problems:
        # A verdict: a retry would find the same problems (and the hand-offs cleared).
        raise AirflowFailException(f"{len(total.problems)} problems remain: {total.counts_by_kind()}")


def _flag(params: dict[str, Any] | None, name: str) -> bool:
    """A boolean Param of the run (off unless given)."""
    return bool((params or {}).get(name))
