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

import pendulum
from airflow.sdk import Param, dag

from composer_mirror.airflow.alerts import alert_on_failure
from composer_mirror.airflow.defaults import DEFAULT_ARGS
from composer_mirror.airflow.tasks import sbom, sync


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
    upstream = sync.read_upstream()
    targets = sbom.resolve_targets(upstream)
    batches = sync.plan_batches(targets)
    targets >> sbom.unless_dry_run() >> batches
    manifests = sync.sync_metadata.partial(upstream=upstream).expand(batch=batches)
    results = sync.fetch_archives.partial(upstream=upstream).expand(manifest=manifests)
    sync.report(sync.publish_index(results, targets, upstream))


composer_mirror_sbom()
