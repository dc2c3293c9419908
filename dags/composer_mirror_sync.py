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

import pendulum
from airflow.sdk import dag

from composer_mirror.airflow.alerts import alert_on_failure
from composer_mirror.airflow.defaults import DEFAULT_ARGS
from composer_mirror.airflow.tasks import sync


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
    upstream = sync.read_upstream()
    plan = sync.enumerate_targets(upstream)
    manifests = sync.sync_metadata.partial(upstream=upstream).expand(batch=sync.plan_batches(plan))
    results = sync.fetch_archives.partial(upstream=upstream).expand(manifest=manifests)
    sync.report(sync.publish_index(results, plan, upstream))


composer_mirror_sync()
