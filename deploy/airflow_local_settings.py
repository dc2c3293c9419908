"""Airflow cluster policy for composer-s3-mirror deployments.

The mirror's DAGs do not name a pool. This policy puts every task that talks to the upstream
into the ``composer_upstream`` pool, so the pool's slot count caps how many of them run at
once across all Celery workers (or Kubernetes pods). Each such task opens at most
``composer_mirror_concurrency`` connections per upstream host, so the upstream sees at most
``slots x composer_mirror_concurrency`` concurrent requests per host from the whole deployment.

Airflow imports this module from ``$AIRFLOW_HOME/config`` (docker-compose.yaml mounts it at
/opt/airflow/config/airflow_local_settings.py; deploy/Dockerfile copies it there). The pool must
exist before the scheduler queues these tasks: airflow-init creates it (deploy/airflow-init.sh).
A pool set explicitly on a task is left alone.
"""

from __future__ import annotations

from typing import Any

UPSTREAM_POOL = "composer_upstream"
DEFAULT_POOL = "default_pool"
# Tasks of the mirror's DAGs (composer_mirror.airflow.tasks) that send requests to the upstream:
# sync_metadata and fetch_archives are mapped over batches; resolve_targets is the SBOM DAG's check
# of every requested version. Add a task here when a new one talks to the upstream.
UPSTREAM_TASKS = frozenset({"read_upstream", "enumerate_targets", "resolve_targets", "sync_metadata", "fetch_archives"})
MIRROR_DAG_PREFIX = "composer_mirror"


def task_policy(task: Any) -> None:
    """Run the mirror's upstream-facing tasks in the composer_upstream pool."""
    if not str(task.dag_id).startswith(MIRROR_DAG_PREFIX) or task.task_id not in UPSTREAM_TASKS:
        return
    if task.pool == DEFAULT_POOL:
        task.pool = UPSTREAM_POOL
