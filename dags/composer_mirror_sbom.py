"""
### composer_mirror_sbom

Mirror exactly what an application needs: the packages an SBOM (or a list of PURLs) names, at
the versions it names, and by default everything those versions `require`.

**Trigger it** from the UI ("Trigger DAG" opens a form with the fields below) or the REST API:

```
curl -X POST "$AIRFLOW/api/v2/dags/composer_mirror_sbom/dagRuns" -H "Authorization: Bearer $TOKEN" \\
  -H 'Content-Type: application/json' \\
  -d '{"logical_date": null, "conf": {"purls": ["pkg:composer/psr/log@3.0.2"], "with_dependencies": true}}'
```

- `sbom`: CycloneDX JSON or XML (1.2 to 1.6), SPDX 2.x JSON or tag-value, pasted as text;
  the format is detected from the content.
- `sbom_s3_key`: an SBOM already in the mirror bucket (under the mirror's prefix), for SBOMs
  too large for a run's conf.
- `purls`: composer PURLs, with or without a version.
- `with_dependencies`: also mirror what the named versions `require` (not `require-dev`),
  transitively: every stable version satisfying each constraint.
- `dry_run`: log the plan (packages, versions, archives to fetch) and write nothing.

Non-composer components (npm, pypi, ...) and platform packages (`php`, `ext-*`, ...) are counted
and skipped. A versioned component mirrors that exact version; an unversioned one every stable
version. An unparseable SBOM, an invalid PURL, a missing SBOM key or a version the upstream does
not have fails the run before anything is written. What a run mirrors joins the one mirrored
set that `composer_mirror_sync` keeps fresh.
"""

from __future__ import annotations

from typing import Any

import pendulum
from airflow.sdk import Param, dag, task

from composer_mirror import mirror_tasks as chain
from composer_mirror.airflow_adapter import DEFAULT_ARGS, alert_on_failure, handed_off


@dag(
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    on_failure_callback=alert_on_failure,
    tags=["composer", "mirror", "sbom"],
    doc_md=__doc__,
    params={
        "sbom": Param(
            "",
            type="string",
            format="multiline",
            title="SBOM",
            description="CycloneDX (JSON or XML, 1.2-1.6) or SPDX 2.x (JSON or tag-value), detected from content.",
        ),
        "sbom_s3_key": Param(
            "",
            type="string",
            title="SBOM key in the mirror bucket",
            description="Full key of an SBOM stored under the mirror's prefix (for SBOMs too large for the form).",
        ),
        "purls": Param(
            [],
            type="array",
            items={"type": "string"},
            title="PURLs",
            description="Composer PURLs, one per line, e.g. pkg:composer/psr/log@3.0.2 (version optional).",
        ),
        "with_dependencies": Param(
            True,
            type="boolean",
            title="With dependencies",
            description="Also mirror every stable version satisfying what the named versions require, transitively.",
        ),
        "dry_run": Param(
            False,
            type="boolean",
            title="Dry run",
            description="Only log the plan (packages, versions, archives to fetch); write nothing.",
        ),
    },
)
def composer_mirror_sbom() -> None:
    @task
    def resolve_targets(upstream: dict[str, Any], params: dict[str, Any] | None = None) -> dict[str, Any]:
        """Parse the SBOM/PURLs, check every version upstream, add dependencies, log the plan."""
        from composer_mirror.sync import planning
        from composer_mirror.sync.records import Plan

        params = dict(params or {})

        def plan(ctx: Any) -> dict[str, Any]:
            targets = planning.resolve_request(ctx, params)
            # A dry run stops after this task: nothing downstream reads the plan, so nothing is written.
            return Plan({} if params.get("dry_run") else targets)

        return handed_off("plan", upstream, plan)

    @task.short_circuit
    def unless_dry_run(params: dict[str, Any] | None = None) -> bool:
        """Stop here on a dry run: the plan is in resolve_targets' log, nothing is written."""
        return not (params or {}).get("dry_run")

    upstream = chain.read_upstream()
    targets = resolve_targets(upstream)
    batches = chain.plan_batches(targets)
    targets >> unless_dry_run() >> batches
    manifests = chain.sync_metadata.partial(upstream=upstream).expand(batch=batches)
    results = chain.fetch_archives.partial(upstream=upstream).expand(manifest=manifests)
    chain.report(chain.publish_index(results, targets, upstream))


composer_mirror_sbom()
