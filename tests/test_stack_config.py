"""`make stack` (devtools/stack/) and docker-compose.yaml run one topology from one configuration.

Both read deploy/airflow.env, deploy/pools.json, deploy/nginx/default.conf.template,
deploy/airflow_local_settings.py and the bucket policy generated from the storage layout; they differ
only in host names, ports and paths. These tests fail when one of them drifts: a setting added to
the compose file's Airflow environment and not to the stack, a service without a local counterpart,
a template parameter one side does not give.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from composer_mirror.store.bucket_policy import public_read_policy
from devtools import stack
from devtools.harness import DUMMY_AWS, ROOT
from tests.test_docker_compose import AIRFLOW_SERVICES, COMPOSE, environment, mounts

# Compose service -> the local service `make stack` starts for it (one-shot jobs are steps of `up`).
LOCAL_SERVICE = {
    "postgres": "postgres",
    "redis": "redis",
    "minio": "s3",
    "nginx": "nginx",
    "airflow-apiserver": "api-server",
    "airflow-scheduler": "scheduler",
    "airflow-dag-processor": "dag-processor",
    "airflow-triggerer": "triggerer",
    "airflow-worker": "worker",
}
ONE_SHOT_STEPS = {"airflow-init": "_airflow_init", "minio-init": "_s3"}
# Set by the image (AIRFLOW_HOME=/opt/airflow and its dags/ and plugins/ folders), or by compose
# per container (ports are per container there), and by the stack per process on one machine.
IMAGE_DEFAULTS = {"AIRFLOW_HOME", "AIRFLOW__CORE__DAGS_FOLDER", "AIRFLOW__CORE__PLUGINS_FOLDER", "NO_PROXY"}
# dumb-init, the image's entrypoint, hands signals to the Celery worker itself with this.
CONTAINER_ONLY = {"DUMB_INIT_SETSID"}
ONE_MACHINE = {
    "AIRFLOW__API__BASE_URL",
    "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_PORT",
    "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT",
    *DUMMY_AWS,
}


@pytest.fixture(scope="module")
def services() -> dict[str, dict[str, Any]]:
    return yaml.safe_load(COMPOSE.read_text())["services"]


@pytest.fixture
def settings(tmp_path: Path) -> stack.StackSettings:
    return stack.StackSettings(tmp_path, ["psr/log"], "http://127.0.0.1:9", ports=stack.Ports.free())


def test_every_compose_service_has_a_local_counterpart(services: dict[str, dict[str, Any]]) -> None:
    assert set(services) == set(LOCAL_SERVICE) | set(ONE_SHOT_STEPS)
    for step in ONE_SHOT_STEPS.values():
        assert callable(getattr(stack.Stack, step))


def test_every_airflow_service_reads_the_shared_env_file(services: dict[str, dict[str, Any]]) -> None:
    for name in AIRFLOW_SERVICES:
        assert services[name].get("env_file") == "deploy/airflow.env", name


def test_the_stack_gives_every_airflow_process_the_shared_settings_unchanged(settings: stack.StackSettings) -> None:
    shared = stack.read_env_file()
    env = settings.airflow_env()
    assert {name: env[name] for name in shared} == shared
    assert shared["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"


def test_compose_and_the_stack_set_the_same_airflow_settings(
    services: dict[str, dict[str, Any]], settings: stack.StackSettings
) -> None:
    """Every key the compose file sets for Airflow, the stack sets too, and the stack adds only what one
    machine needs (per-process ports) or what the image sets in compose."""
    compose_keys = set(environment(services["airflow-worker"])) - CONTAINER_ONLY
    local_keys = set(settings.airflow_settings())
    assert compose_keys - local_keys == set(), "set for compose only"
    assert local_keys - compose_keys - IMAGE_DEFAULTS - ONE_MACHINE == set(), "set for the stack only"


def test_both_reach_the_same_kinds_of_servers(
    services: dict[str, dict[str, Any]], settings: stack.StackSettings
) -> None:
    compose_env, local_env = environment(services["airflow-worker"]), settings.airflow_env()
    for key in (
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN",
        "AIRFLOW__CELERY__RESULT_BACKEND",
        "AIRFLOW__CELERY__BROKER_URL",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL",
    ):
        compose_url, local_url = compose_env[key], local_env[key]
        assert compose_url.split("://")[0] == local_url.split("://")[0], key
        assert compose_url.rsplit("/", 1)[-1] == local_url.rsplit("/", 1)[-1], key
    compose_s3 = json.loads(compose_env["AIRFLOW_CONN_AWS_DEFAULT"])
    local_s3 = json.loads(local_env["AIRFLOW_CONN_AWS_DEFAULT"])
    assert set(compose_s3) == set(local_s3) and compose_s3["conn_type"] == local_s3["conn_type"] == "aws"
    assert set(compose_s3["extra"]) == set(local_s3["extra"])


def test_the_nginx_template_takes_exactly_the_parameters_both_give(
    services: dict[str, dict[str, Any]], settings: stack.StackSettings
) -> None:
    placeholders = set(re.findall(r"\$\{([A-Z_][A-Z0-9_]*)\}", stack.NGINX_TEMPLATE.read_text()))
    assert placeholders == set(stack.NGINX_PARAMETERS)
    compose_values = {name: environment(services["nginx"])[name] for name in stack.NGINX_PARAMETERS}
    assert compose_values["MIRROR_BUCKET"] == settings.bucket
    rendered = stack.render_nginx(compose_values)
    assert "${" not in rendered.replace("${MIRROR", "")
    with pytest.raises(ValueError, match="MIRROR_S3_ORIGIN"):
        stack.render_nginx({"MIRROR_LISTEN": "80", "MIRROR_BUCKET": "b"})


def test_both_import_the_same_pools_and_cluster_policy(services: dict[str, dict[str, Any]]) -> None:
    init = mounts(services["airflow-init"])
    assert "./" + str(stack.POOLS.relative_to(ROOT)) in init.values()
    for name in AIRFLOW_SERVICES:
        assert "./" + str(stack.LOCAL_SETTINGS.relative_to(ROOT)) in mounts(services[name]).values(), name


def test_both_apply_the_bucket_policy_generated_from_the_layout(services: dict[str, dict[str, Any]]) -> None:
    shared = stack.read_env_file()
    bucket, prefix = shared["AIRFLOW_VAR_COMPOSER_MIRROR_BUCKET"], shared["AIRFLOW_VAR_COMPOSER_MIRROR_PREFIX"]
    assert "./deploy/bucket-policy.json" in mounts(services["minio-init"]).values()
    committed = json.loads((stack.DEPLOY / "bucket-policy.json").read_text())
    assert committed == public_read_policy(bucket, prefix)


def test_the_stack_env_file_reader_reads_like_compose(tmp_path: Path) -> None:
    path = tmp_path / "x.env"
    path.write_text("# comment\n\nA=1\nB = two words\nEMPTY=\nURL=redis://h:1/0?x=y\n")
    assert stack.read_env_file(path) == {"A": "1", "B": "two words", "EMPTY": "", "URL": "redis://h:1/0?x=y"}
