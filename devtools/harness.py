"""Real components for tests, the demo and the benchmark: a moto S3 server, Airflow, composer, the sample app.

Nothing here is mocked: moto runs as an HTTP server on loopback, Airflow runs `airflow dags test`
against SQLite in a throw-away AIRFLOW_HOME, and composer is the real CLI.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
DUMMY_AWS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class MotoServer:
    """moto in server mode: a real S3 endpoint on loopback, started as a subprocess."""

    port: int = 0
    process: subprocess.Popen | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        return [str(VENV_BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(self.port)]

    def start(self) -> MotoServer:
        self.port = self.port or free_port()
        self.process = subprocess.Popen(
            self.command(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env={**os.environ, **DUMMY_AWS},
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                requests.get(self.endpoint + "/moto-api/", timeout=1)
                return self
            except requests.ConnectionError:
                time.sleep(0.1)
        raise RuntimeError("moto server did not start")

    def stop(self) -> None:
        if self.process:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:  # a request thread holds it up: the server has no state to keep
                self.process.kill()
                self.process.wait(10)

    def client(self):  # type: ignore[no-untyped-def]
        return s3_client(self.endpoint)

    def create_public_bucket(self, bucket: str) -> None:
        """A bucket readable anonymously, like a CDN origin (GetObject and ListBucket for 404s)."""
        s3 = self.client()
        s3.create_bucket(Bucket=bucket)
        policy = {
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{bucket}/*"},
                {"Effect": "Allow", "Principal": "*", "Action": "s3:ListBucket", "Resource": f"arn:aws:s3:::{bucket}"},
            ],
        }
        s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps(policy))

    def apply_public_read_policy(self, bucket: str, prefix: str) -> None:
        """Serve ``bucket`` as the deployment does: the generated policy (deploy/bucket-policy.json).

        moto evaluates a bucket policy for unsigned requests, so anonymous GETs of the published
        repository under ``prefix`` answer 200 and everything else (``sboms/``, ``mirror-state/``)
        403; the same holds through a proxy that forwards requests without credentials.
        """
        from composer_mirror.store.bucket_policy import public_read_policy

        self.client().put_bucket_policy(Bucket=bucket, Policy=json.dumps(public_read_policy(bucket, prefix)))

    def enforce_iam(self) -> None:
        """From now on, every request must be signed by an IAM user of this server and allowed by its policies.

        Until then moto lets everything through, so a test first creates the users, their
        policies and access keys, and its objects. Server-wide: only for a server of its own.
        """
        requests.post(f"{self.endpoint}/moto-api/reset-auth", data=b"0", timeout=10).raise_for_status()


@dataclass
class AirflowEnv:
    """An AIRFLOW_HOME with a migrated SQLite database, and the environment to run DAGs in it."""

    home: Path
    variables: dict[str, str] = field(default_factory=dict)
    extra_env: dict[str, str] = field(default_factory=dict)

    def env(self, **overrides: str) -> dict[str, str]:
        env = {
            **os.environ,
            **DUMMY_AWS,
            "AIRFLOW_HOME": str(self.home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
            "PYTHONPATH": os.pathsep.join([str(ROOT / "include"), str(ROOT)]),
            "NO_PROXY": "*",
            # Airflow's deprecations are shown in the runs' output, as pytest shows them in-process;
            # pathspec's, raised by Airflow's own .airflowignore parsing, is not ours to fix.
            "PYTHONWARNINGS": "default::DeprecationWarning,ignore:GitWildMatchPattern:DeprecationWarning",
        }
        env.update({f"AIRFLOW_VAR_{k.upper()}": v for k, v in self.variables.items()})
        env.update(self.extra_env)
        env.update(overrides)
        return env

    def migrate(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [str(VENV_BIN / "airflow"), "db", "migrate"], env=self.env(), check=True, capture_output=True, text=True
        )

    def dags_test(
        self, dag_id: str, conf: Mapping[str, object] | None = None, *, timeout: float = 900, **env: str
    ) -> subprocess.CompletedProcess[str]:
        """Run one DAG with `airflow dags test`; the caller checks returncode and output."""
        command = [str(VENV_BIN / "airflow"), "dags", "test", dag_id]
        if conf is not None:
            command += ["--conf", json.dumps(conf)]
        return subprocess.run(command, env=self.env(**env), capture_output=True, text=True, timeout=timeout)


def s3_client(endpoint: str):  # type: ignore[no-untyped-def]
    """A boto3 S3 client for a moto endpoint, with the dummy credentials every test server accepts."""
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name=DUMMY_AWS["AWS_DEFAULT_REGION"],
        aws_access_key_id=DUMMY_AWS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=DUMMY_AWS["AWS_SECRET_ACCESS_KEY"],
    )


def aws_connection(endpoint: str) -> str:
    """AIRFLOW_CONN_AWS_DEFAULT pointing the amazon provider at an S3-compatible endpoint."""
    return json.dumps({"conn_type": "aws", "extra": {"endpoint_url": endpoint, "region_name": "us-east-1"}})


@contextmanager
def temporary_home(prefix: str = "composer-mirror-") -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


# The sample application (a real application's composer.json and composer.lock): the fixture
# registry serves its packages, the demo installs it, the SBOM fixtures describe it.
SAMPLE_APP_DIR = ROOT / "tests/fixtures/symfony-demo"
SAMPLE_APP = SAMPLE_APP_DIR / "composer.json"
SAMPLE_LOCK = SAMPLE_APP_DIR / "composer.lock"
# A selection of inter-dependent packages from the sample application: a logger, a console
# component and what they require (used by the demo and the end-to-end test).
DEMO_SELECTION = [
    "monolog/monolog",
    "psr/*",
    "symfony/console",
    "symfony/string",
    "symfony/service-contracts",
    "symfony/deprecation-contracts",
    "symfony/polyfill-*",
]


def sample_replace() -> dict[str, str]:
    """The polyfills the sample application replaces (PHP 8.4 has them built in), as it does itself."""
    return dict(json.loads(SAMPLE_APP.read_text()).get("replace", {}))


def composer_project(
    project_dir: Path,
    repository_url: str,
    require: Mapping[str, str] | None = None,
    *,
    replace: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """A composer.json that knows only ``repository_url`` (packagist disabled), and the environment
    (its own COMPOSER_HOME and cache) to run ``composer`` in ``project_dir`` with."""
    project_dir.mkdir(parents=True, exist_ok=True)
    composer_json = project_dir / "composer.json"
    document = json.loads(composer_json.read_text()) if composer_json.exists() else {"name": "demo/app"}
    document["require"] = dict(require) if require else document.get("require", {})
    if replace is not None:
        document["replace"] = dict(replace)
    document["repositories"] = [{"type": "composer", "url": repository_url}, {"packagist.org": False}]
    config = document.setdefault("config", {})
    config.update({"secure-http": False, "platform": {"php": "8.4.99"}, "allow-plugins": False})
    composer_json.write_text(json.dumps(document, indent=2))
    return {
        **os.environ,
        "COMPOSER_HOME": str(project_dir / ".composer-home"),
        "COMPOSER_CACHE_DIR": str(project_dir / ".composer-cache"),
        "COMPOSER_NO_INTERACTION": "1",
        "COMPOSER_ALLOW_SUPERUSER": "1",
        "COMPOSER_DISABLE_NETWORK": "0",
    }


def composer_install(
    project_dir: Path,
    repository_url: str,
    require: Mapping[str, str],
    *,
    replace: Mapping[str, str] | None = None,
    update: bool = True,
    timeout: float = 600,
) -> subprocess.CompletedProcess[str]:
    """Install a project from the mirror alone: packagist disabled, plugins and scripts off."""
    env = composer_project(project_dir, repository_url, require, replace=replace)
    command = [
        "composer",
        "update" if update else "install",
        "--no-plugins",
        "--no-scripts",
        "--no-interaction",
        "--no-progress",
        "--ignore-platform-req=ext-*",
    ]
    return subprocess.run(command, cwd=project_dir, env=env, capture_output=True, text=True, timeout=timeout)
