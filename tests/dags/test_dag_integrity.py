"""Every DAG parses without import errors and without touching Variables, Connections or S3."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DAG_IDS = {
    "composer_mirror_sync",
    "composer_mirror_sbom",
    "composer_mirror_verify",
    "composer_mirror_prune",
    "composer_mirror_freshness",
}

PARSE_SCRIPT = """
import json, sys
from airflow.sdk import BaseHook, Variable

def forbidden(*args, **kwargs):
    raise RuntimeError("Variable or Connection read at DAG parse time")

Variable.get = forbidden
BaseHook.get_connection = forbidden
import boto3
boto3.client = boto3.Session.client = forbidden
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(dag_folder=sys.argv[1])
assert not bag.import_errors, bag.import_errors
for dag_id, dag in sorted(bag.dags.items()):
    tasks = {
        t.task_id: {
            "execution_timeout": t.execution_timeout.total_seconds() if t.execution_timeout else None,
            "retries": t.retries,
            "retry_exponential_backoff": t.retry_exponential_backoff,
            "retry_delay": t.retry_delay.total_seconds(),
            "max_retry_delay": t.max_retry_delay.total_seconds() if t.max_retry_delay else None,
        }
        for t in dag.tasks
    }
    callback = getattr(dag.on_failure_callback, "__qualname__", None)
    print(json.dumps([dag_id, bool(dag.doc_md), dag.max_active_runs, dag.catchup, callback, tasks]))
"""


@pytest.fixture(scope="module")
def parsed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list]:
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(tmp_path_factory.mktemp("af")),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "PYTHONPATH": os.pathsep.join([str(ROOT / "include"), str(ROOT)]),
    }
    result = subprocess.run(
        [sys.executable, "-c", PARSE_SCRIPT, str(ROOT / "dags")], env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-3000:]
    rows = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("[")]
    return {row[0]: row[1:] for row in rows}


def test_every_dag_parses_without_reading_variables_connections_or_s3(parsed: dict[str, list]) -> None:
    assert set(parsed) >= DAG_IDS


CHAIN = {"read_upstream", "plan_batches", "sync_metadata", "fetch_archives", "publish_index", "report"}
# Task ids are what run history, the pool policy (deploy/airflow_local_settings.py) and alerts name.
TASK_IDS = {
    "composer_mirror_sync": CHAIN | {"enumerate_targets"},
    "composer_mirror_sbom": CHAIN | {"resolve_targets", "unless_dry_run"},
    "composer_mirror_verify": {"list_packages", "plan_batches", "verify_batch", "report"},
    "composer_mirror_prune": {"prune_unreferenced"},
    "composer_mirror_freshness": {"check_freshness"},
}


def test_every_dag_keeps_its_task_ids(parsed: dict[str, list]) -> None:
    assert {dag_id: set(parsed[dag_id][-1]) for dag_id in DAG_IDS} == TASK_IDS


def test_every_dag_has_docs_runs_one_at_a_time_and_alerts_when_a_run_fails(parsed: dict[str, list]) -> None:
    """Every DAG in dags/, today's and any added later."""
    for dag_id, (has_doc, max_active_runs, catchup, callback, _tasks) in parsed.items():
        assert has_doc, dag_id
        assert max_active_runs == 1, dag_id
        assert catchup is False, dag_id
        assert callback == "alert_on_failure", f"{dag_id}: a failed run must reach the configured notifier"


def test_every_task_is_retried_with_backoff_and_killed_when_it_runs_longer_than_its_execution_timeout(
    parsed: dict[str, list],
) -> None:
    """A hung connection or a hostile input must not keep a worker slot for hours; a transient failure is retried."""
    for dag_id, (*_dag, tasks) in parsed.items():
        assert tasks, dag_id
        for task_id, task in tasks.items():
            where = f"{dag_id}.{task_id}"
            assert task["execution_timeout"] and 0 < task["execution_timeout"] <= 3 * 3600, where
            assert task["retries"] >= 1, where
            assert task["retry_exponential_backoff"] > 1, where
            assert 60 <= task["retry_delay"] <= task["max_retry_delay"] <= 3600, where


def test_sync_dag_maps_over_batches_with_a_labelled_map_index() -> None:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(ROOT / "dags"))
    dag = bag.dags["composer_mirror_sync"]
    assert dag.task_dict["sync_metadata"].map_index_template
    assert dag.task_dict["fetch_archives"].map_index_template
    order = [t.task_id for t in dag.topological_sort()]
    assert order.index("fetch_archives") < order.index("publish_index") < order.index("report")
    assert dag.task_dict["publish_index"].outlets
