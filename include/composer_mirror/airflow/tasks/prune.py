"""The task of ``composer_mirror_prune``: mark what the repository no longer references, sweep what
stayed unreferenced for the grace period (see :mod:`composer_mirror.prune`)."""

from __future__ import annotations

from typing import Any

from airflow.sdk import task
from airflow.sdk.exceptions import AirflowException

from composer_mirror import prune
from composer_mirror.airflow.defaults import LONG_TASK
from composer_mirror.airflow.handoffs import in_context
from composer_mirror.airflow.runtime import current_run_id, run_type
from composer_mirror.context import Context


@task(execution_timeout=LONG_TASK)
def prune_unreferenced(params: dict[str, Any] | None = None) -> dict[str, Any]:
    """Mark unreferenced objects; delete those marked over a grace period ago unless this is a dry run."""
    dry_run_param = bool((params or {}).get("dry_run", True))
    run_id, kind = current_run_id(), run_type()

    def step(ctx: Context) -> prune.PruneResult:
        dry_run = prune.is_dry_run(kind, dry_run_param, ctx.settings.prune_scheduled_delete)
        return prune.run_prune(ctx.store, ctx.settings, dry_run=dry_run, run_id=run_id)

    result = in_context(step)
    if result.failed:
        # Retried: a delete that failed (throttling, a lost connection) may well succeed next time.
        raise AirflowException(f"{len(result.failed)} objects could not be deleted")
    return result.summary().to_json()
