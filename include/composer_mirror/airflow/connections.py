"""Airflow's Variables and Connections as plain objects: the Settings, the upstream's credentials
from the ``composer_upstream`` Connection, and a boto3 S3 client from the amazon provider's S3Hook.

Each is made at most once per DAG run in a process (:func:`once_per_run`). The amazon provider and
botocore are imported only when a client is made, inside a task: a DAG file that imports this module
stays cheap to parse.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from airflow.sdk import BaseHook, Variable, get_current_context
from airflow.sdk.exceptions import AirflowNotFoundException

from composer_mirror.errors import SettingsError
from composer_mirror.settings import VARIABLES, Settings

UPSTREAM_CONN_ID = "composer_upstream"
T = TypeVar("T")
_RUN_CACHE: dict[tuple[str, ...], Any] = {}


def once_per_run(name: str, make: Callable[[], T]) -> T:
    """``make()`` once per DAG run in this process; every call outside a task makes a new one.

    Under `airflow dags test` every task of a run executes in one process, and reading 14 Variables
    (each a round trip to the execution API) and building a boto3 client (its service model parsed
    again) in each task is most of what the mirror adds to an empty run. Under an executor each task
    is its own process, so nothing is shared between tasks there. Only the current run is kept.
    """
    try:
        context = get_current_context()
    except RuntimeError:  # not inside a task: the SBOM upload endpoint, scripts
        return make()
    key = (context["dag"].dag_id, str(context["run_id"]), name)
    if key not in _RUN_CACHE:
        for stale in [cached for cached in _RUN_CACHE if cached[:2] != key[:2]]:
            del _RUN_CACHE[stale]
        _RUN_CACHE[key] = make()
    return _RUN_CACHE[key]


def load_settings() -> Settings:
    """Every composer_mirror_* Variable (AIRFLOW_VAR_* environment variables work too), read once per run."""
    return once_per_run("settings", _read_settings)


def _read_settings() -> Settings:
    values = {name: Variable.get(name, default=None) for name in VARIABLES.values()}
    return Settings.from_strings(values, upstream_auth=upstream_auth())


def upstream_auth() -> tuple[str, str] | str | None:
    """Credentials for the upstream from the optional ``composer_upstream`` connection.

    A password without a login is a bearer token; login and password are HTTP basic auth.
    """
    try:
        conn = BaseHook.get_connection(UPSTREAM_CONN_ID)
    except AirflowNotFoundException:
        return None  # the connection is optional: a public upstream needs none
    if conn.login and conn.password:
        return (conn.login, conn.password)
    if conn.password:
        return conn.password
    raise SettingsError(f"connection {UPSTREAM_CONN_ID} needs a password (token) or a login and password")


def s3_client(aws_conn_id: str, threads: int) -> Any:
    """A boto3 S3 client (thread-safe) for this run, from the amazon provider's S3Hook."""
    return once_per_run(f"s3:{aws_conn_id}:{threads}", lambda: _new_s3_client(aws_conn_id, threads))


def _new_s3_client(aws_conn_id: str, threads: int) -> Any:
    """A boto3 S3 client from the amazon provider's S3Hook (credentials, endpoint_url, region).

    Tasks call S3 from ``threads`` threads at once; botocore's default pool of 10 connections would
    discard and reopen connections under that load, so the pool is raised to the thread count
    unless the connection's ``config_kwargs`` already allow more.
    """
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook
    from botocore.config import Config

    hook = S3Hook(aws_conn_id=aws_conn_id)
    config = hook.config
    if (config.max_pool_connections or 10) < threads:
        hook.conn_config.botocore_config = config.merge(Config(max_pool_connections=threads))
    return hook.get_conn()
