"""
### composer_mirror_sync

Keeps the S3 bucket a complete, current Composer repository.

Every run reads the upstream's `packages.json`, takes the selection in the Variable
`composer_mirror_packages` (names, `vendor/*` patterns, `name:constraint`, composer PURLs) plus
everything already mirrored, revalidates the metadata with conditional requests, fetches new
archives into `dists/`, writes the p2 files, and publishes `packages.json` last.

Batches, not packages, are mapped: the number of task instances stays bounded whatever the
selection size, and HTTP concurrency lives inside each task (`composer_mirror_concurrency` per
upstream host). A run whose packages or archives failed publishes everything else and then fails.

Settings: the `composer_mirror_*` Variables (see the README); S3 through the connection named by
`composer_mirror_aws_conn_id` (default `aws_default`).
"""

from __future__ import annotations

from typing import Any

import pendulum
from airflow.sdk import dag, task

from composer_mirror import mirror_tasks as chain
from composer_mirror.airflow_adapter import DEFAULT_ARGS, alert_on_failure, handed_off


@dag(
    schedule="17 * * * *",  # hourly, off the hour (as the upstream asks of mirrors)
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    on_failure_callback=alert_on_failure,
    tags=["composer", "mirror"],
    doc_md=__doc__,
)
def composer_mirror_sync() -> None:
    @task
    def enumerate_targets(upstream: dict[str, Any]) -> dict[str, Any]:
        """The selection plus everything already mirrored, or only what the changes feed names."""
        from composer_mirror.sync import planning

        return handed_off("plan", upstream, planning.plan_sync)

    upstream = chain.read_upstream()
    plan = enumerate_targets(upstream)
    manifests = chain.sync_metadata.partial(upstream=upstream).expand(batch=chain.plan_batches(plan))
    results = chain.fetch_archives.partial(upstream=upstream).expand(manifest=manifests)
    chain.report(chain.publish_index(results, plan, upstream))


composer_mirror_sync()
