"""
### bench_airflow_floor

The benchmark's yardstick for the fixed cost: a DAG with the shape of `composer_mirror_sync` (seven
tasks, two of them mapped over one batch) whose tasks do nothing and import nothing of the mirror.
What `airflow dags test` spends on it is Airflow's own cost (CLI start-up, DAG setup, the in-process
execution API, task bookkeeping, interpreter exit) on this machine, measured in the same run as
scenario a. It lives outside `dags/` so it is never deployed.
"""

from __future__ import annotations

from typing import Any

import pendulum
from airflow.sdk import dag, task


@dag(schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False, doc_md=__doc__)
def bench_airflow_floor() -> None:
    @task
    def read_upstream() -> dict[str, Any]:
        return {"metadata_url": "/p2/%package%.json"}

    @task
    def enumerate_targets(upstream: dict[str, Any]) -> dict[str, Any]:
        return {"selection": [], "targets": {}, "upstream": upstream}

    @task
    def plan_batches(plan: dict[str, Any]) -> list[dict[str, Any]]:
        return [{"index": 0, "label": "(nothing to do)", "packages": plan["targets"]}]

    @task(map_index_template="{{ task.task_id }}")
    def sync_metadata(batch: dict[str, Any], upstream: dict[str, Any]) -> dict[str, Any]:
        return {"index": batch["index"], "work": []}

    @task(map_index_template="{{ task.task_id }}")
    def fetch_archives(manifest: dict[str, Any], upstream: dict[str, Any]) -> dict[str, Any]:
        return {"index": manifest["index"], "archives": 0}

    @task(trigger_rule="none_failed")
    def publish_index(results: list[dict[str, Any]], plan: dict[str, Any]) -> dict[str, Any]:
        return {"batches": len(list(results[:])), "targets": len(plan["targets"])}

    @task
    def report(summary: dict[str, Any]) -> None:
        print(summary)

    upstream = read_upstream()
    plan = enumerate_targets(upstream)
    synced = sync_metadata.partial(upstream=upstream).expand(batch=plan_batches(plan))
    fetched = fetch_archives.partial(upstream=upstream).expand(manifest=synced)
    report(publish_index(fetched, plan))


bench_airflow_floor()
