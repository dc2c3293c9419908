"""The tasks of ``composer_mirror_sbom`` before it joins the mirroring chain (:mod:`.sync`).

::

    read_upstream -> resolve_targets -> unless_dry_run -> plan_batches -> ... (the chain)
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import task

from composer_mirror.airflow.handoffs import handed_off
from composer_mirror.context import Context
from composer_mirror.sync import planning
from composer_mirror.sync.records import Plan


@task
def resolve_targets(upstream: dict[str, Any], params: dict[str, Any] | None = None) -> dict[str, Any]:
    """Parse the SBOM/PURLs, check every version upstream, add dependencies, log the plan."""
    request = dict(params or {})

    def plan(ctx: Context) -> Plan:
        targets = planning.resolve_request(ctx, request)
        # A dry run stops after this task: nothing downstream reads the plan, so nothing is written.
        return Plan({} if request.get("dry_run") else targets)

    return handed_off("plan", upstream, plan)


@task.short_circuit
def unless_dry_run(params: dict[str, Any] | None = None) -> bool:
    """Stop here on a dry run: the plan is in resolve_targets' log, nothing is written."""
    return not (params or {}).get("dry_run")
