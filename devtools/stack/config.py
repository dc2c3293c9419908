"""What one local stack is: its ports, paths and settings, and the configuration it shares with docker-compose.yaml.

deploy/ holds what both read: ``airflow.env`` (every host-independent setting), ``pools.json``,
``nginx/default.conf.template``, ``airflow_local_settings.py`` (the pool policy). Only host names,
ports and paths differ, and tests/test_stack_config.py checks the two agree.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from devtools.harness import DUMMY_AWS, ROOT, free_port

DEPLOY = ROOT / "deploy"
AIRFLOW_ENV = DEPLOY / "airflow.env"
POOLS = DEPLOY / "pools.json"
NGINX_TEMPLATE = DEPLOY / "nginx" / "default.conf.template"
LOCAL_SETTINGS = DEPLOY / "airflow_local_settings.py"
# What the nginx template takes from whoever renders it (docker-compose.yaml's nginx environment too).
NGINX_PARAMETERS = ("MIRROR_LISTEN", "MIRROR_S3_ORIGIN", "MIRROR_BUCKET")
ADMIN = ("admin", "admin")  # deploy/airflow.env's simple auth manager user; a development placeholder

_PLACEHOLDER = re.compile(r"\$\{(?P<name>[A-Z_][A-Z0-9_]*)\}")


def read_env_file(path: Path = AIRFLOW_ENV) -> dict[str, str]:
    """``KEY=VALUE`` lines as docker compose's ``env_file`` reads them (comments and blank lines skipped)."""
    env = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, _, value = line.partition("=")
            env[name.strip()] = value.strip()
    return env


def render_nginx(values: Mapping[str, str], template: Path = NGINX_TEMPLATE) -> str:
    """The template with ``${NAME}`` replaced for the names in ``values`` only, as the nginx image's
    envsubst step does (nginx's own ``$variables`` stay); every parameter must be given."""
    missing = set(NGINX_PARAMETERS) - set(values)
    if missing:
        raise ValueError(f"the nginx template needs {sorted(missing)}")

    def replace(match: re.Match[str]) -> str:
        return values.get(match.group("name"), match.group(0))

    return _PLACEHOLDER.sub(replace, template.read_text())


@dataclass
class Ports:
    """Loopback ports of one stack; ``Ports.free()`` for a test stack beside a user's."""

    api: int = 8080
    nginx: int = 8081
    s3: int = 9000
    postgres: int = 15432
    redis: int = 16379
    scheduler_health: int = 8974
    triggerer_logs: int = 8794
    sample_upstream: int = 8082
    worker_logs: list[int] = field(default_factory=lambda: [8793, 8795])

    @classmethod
    def free(cls, workers: int = 2) -> Ports:
        names = [name for name in cls.__dataclass_fields__ if name != "worker_logs"]
        return cls(**{name: free_port() for name in names}, worker_logs=[free_port() for _ in range(workers)])


@dataclass
class StackSettings:
    """What one stack is: where it keeps its files, its ports, its upstream and selection, and test knobs."""

    directory: Path
    packages: list[str]
    # Empty: serve the bundled sample registry (devtools/fixture_registry) as one more service, as `make demo` does.
    upstream_url: str = ""
    ports: Ports = field(default_factory=Ports)
    workers: int = 2
    # Settings on top of deploy/airflow.env for this stack only (a test lowers timeouts, for example).
    overrides: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.directory = self.directory.resolve()  # the servers run in other working directories

    @property
    def bucket(self) -> str:
        return read_env_file()["AIRFLOW_VAR_COMPOSER_MIRROR_BUCKET"]

    @property
    def prefix(self) -> str:
        return read_env_file()["AIRFLOW_VAR_COMPOSER_MIRROR_PREFIX"]

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.api}"

    @property
    def mirror_url(self) -> str:
        """Where Composer reads the repository: nginx, whose root is the bucket."""
        return f"http://127.0.0.1:{self.ports.nginx}/{self.prefix}"

    @property
    def s3_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.ports.s3}"

    @property
    def airflow_home(self) -> Path:
        return self.directory / "airflow"

    def log(self, service: str) -> Path:
        return self.directory / "logs" / f"{service}.log"

    def airflow_env(self, **extra: str) -> dict[str, str]:
        """The environment of every Airflow process: this shell's, then :meth:`airflow_settings`."""
        env = {name: value for name, value in os.environ.items() if name != "AIRFLOW__CORE__UNIT_TEST_MODE"}
        return {**env, **self.airflow_settings(), **extra}

    def airflow_settings(self) -> dict[str, str]:
        """deploy/airflow.env, then what is local to this machine (hosts, ports, paths), then the overrides."""
        database = f"postgresql+psycopg2://postgres@127.0.0.1:{self.ports.postgres}/airflow"
        settings = {
            **DUMMY_AWS,
            **read_env_file(),
            "AIRFLOW_HOME": str(self.airflow_home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": database,
            "AIRFLOW__CELERY__BROKER_URL": f"redis://127.0.0.1:{self.ports.redis}/0",
            "AIRFLOW__CELERY__RESULT_BACKEND": f"db+{database}",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.api_url}/execution/",
            "AIRFLOW__API__BASE_URL": self.api_url,
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(self.airflow_home / "passwords.json"),
            "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_PORT": str(self.ports.scheduler_health),
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(self.ports.triggerer_logs),
            "AIRFLOW_VAR_COMPOSER_MIRROR_PUBLIC_URL": self.mirror_url,
            "AIRFLOW_VAR_COMPOSER_MIRROR_UPSTREAM_URL": self.upstream_url,
            "AIRFLOW_VAR_COMPOSER_MIRROR_PACKAGES": json.dumps(self.packages),
            "AIRFLOW_CONN_AWS_DEFAULT": json.dumps(
                {
                    "conn_type": "aws",
                    "login": DUMMY_AWS["AWS_ACCESS_KEY_ID"],
                    "password": DUMMY_AWS["AWS_SECRET_ACCESS_KEY"],
                    "extra": {"endpoint_url": self.s3_endpoint, "region_name": DUMMY_AWS["AWS_DEFAULT_REGION"]},
                }
            ),
            "PYTHONPATH": str(ROOT / "include"),
            "NO_PROXY": "*",
        }
        return {**settings, **self.overrides}


def worker_name(index: int) -> str:
    return f"worker{index + 1}"
