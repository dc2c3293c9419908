"""The services of one local stack, started and stopped: ``Stack(settings).up()`` and ``down()``.

The services docker-compose.yaml defines, as local processes on loopback: PostgreSQL (metadata database
and Celery result backend), Redis (Celery broker), the moto S3 server standing in for MinIO, nginx serving
the bucket as CloudFront would, and Airflow's api-server, scheduler, dag-processor, triggerer and Celery
workers, configured from deploy/ (devtools/stack/config.py). Each runs in its own process group,
recorded for ``down`` (devtools/stack/processes.py).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import requests

from devtools.harness import DUMMY_AWS, ROOT, VENV_BIN, s3_client
from devtools.stack.config import ADMIN, LOCAL_SETTINGS, POOLS, StackSettings, render_nginx, worker_name
from devtools.stack.processes import Service, save_state, start_time, stop_recorded


class StackError(RuntimeError):
    """A service did not start; the message ends with the tail of its log."""


class Stack:
    """Start and stop one stack; ``up()`` returns once every service answers."""

    def __init__(self, settings: StackSettings) -> None:
        self.settings = settings
        self.services: list[Service] = []
        self.scratch: list[str] = []  # directories outside settings.directory that down() removes
        self._token: str | None = None  # the admin's JWT, reused by api() until it is refused

    # ----------------------------------------------------------------------------------- starting
    def up(self, *, on_step: Callable[[str], None] = print) -> Stack:
        settings = self.settings
        settings.directory.mkdir(parents=True, exist_ok=True)
        # A fresh stack, fresh logs: readiness is read from them (a worker's "ready."), so an old
        # run's lines must not count.
        shutil.rmtree(settings.directory / "logs", ignore_errors=True)
        (settings.directory / "logs").mkdir()
        try:
            if not settings.upstream_url:
                self._sample_upstream()
                on_step(f"sample upstream registry on {settings.upstream_url}")
            on_step(f"PostgreSQL on 127.0.0.1:{settings.ports.postgres}")
            self._postgres()
            on_step(f"Redis on 127.0.0.1:{settings.ports.redis}")
            self._redis()
            on_step(f"S3 (moto server) on {settings.s3_endpoint}, bucket {settings.bucket} with the public-read policy")
            self._s3()
            on_step(f"nginx serving the bucket on http://127.0.0.1:{settings.ports.nginx}")
            self._nginx()
            on_step("Airflow: migrating the metadata database, admin user, pools")
            self._airflow_init()
            on_step(f"Airflow api-server on {settings.api_url}, scheduler, dag-processor, triggerer")
            self._airflow_services()
            on_step(f"{settings.workers} Celery workers")
            self._workers()
            self._wait_for_dags()
        except BaseException:
            self.down()
            raise
        return self

    def _spawn(self, name: str, command: list[str], env: Mapping[str, str] | None = None, **popen: Any) -> Service:
        with self.settings.log(name).open("ab") as log:
            process = subprocess.Popen(
                command,
                env=dict(env or os.environ),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                **popen,
            )
        started = start_time(process.pid)
        assert started is not None, f"{name} exited at once: {self._tail(name)}"
        service = Service(name, process.pid, started)
        self.services.append(service)
        self._save()
        return service

    def _save(self) -> None:
        save_state(self.settings.directory, self.services, self.scratch, self.describe())

    def describe(self) -> dict[str, Any]:
        settings = self.settings
        return {
            "airflow": settings.api_url,
            "airflow_user": "/".join(ADMIN),
            "mirror": settings.mirror_url,
            "s3": settings.s3_endpoint,
            "bucket": settings.bucket,
            "upstream": settings.upstream_url,
            "logs": str(settings.directory / "logs"),
        }

    def _tail(self, name: str, size: int = 3000) -> str:
        path = self.settings.log(name)
        return path.read_text(errors="replace")[-size:] if path.exists() else "(no log)"

    def _wait(self, name: str, ready: Callable[[], bool], timeout: float = 120) -> None:
        service = next((s for s in self.services if s.name == name), None)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if ready():
                return
            if service is not None and not service.alive():
                raise StackError(f"{name} exited:\n{self._tail(name)}")
            time.sleep(0.2)
        raise StackError(f"{name} was not ready within {timeout:.0f} s:\n{self._tail(name)}")

    def _sample_upstream(self) -> None:
        settings = self.settings
        port = settings.ports.sample_upstream
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        command = [str(VENV_BIN / "python"), "-m", "devtools.fixture_registry", "--port", str(port)]
        self._spawn("upstream", command, env, cwd=ROOT)
        settings.upstream_url = f"http://127.0.0.1:{port}"
        self._wait("upstream", lambda: _answers(f"{settings.upstream_url}/packages.json"))

    def _postgres(self) -> None:
        """A fresh cluster for this stack (the stack, like its in-memory S3, starts empty every time).

        As root the server runs as the postgres user, which may not be able to enter the stack's
        directory (pytest's are private to root), so the cluster lives in a directory of its own
        that ``down`` removes.
        """
        ports = self.settings.ports
        bindir = postgres_bindir()
        as_postgres: dict[str, Any] = {"user": "postgres", "group": "postgres"} if os.geteuid() == 0 else {}
        data = Path(tempfile.mkdtemp(prefix="composer-mirror-postgres-"))
        self.scratch.append(str(data))
        self._save()
        if as_postgres:
            shutil.chown(data, "postgres", "postgres")
        initdb = [str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8"]
        result = subprocess.run(initdb, capture_output=True, text=True, **as_postgres)
        if result.returncode:
            raise StackError(f"initdb failed:\n{result.stdout[-2000:]}{result.stderr[-2000:]}")
        command = [str(bindir / "postgres"), "-D", str(data), "-p", str(ports.postgres), "-k", str(data)]
        command += ["-c", "listen_addresses=127.0.0.1", "-c", "max_connections=200", "-c", "fsync=off"]
        self._spawn("postgres", command, **as_postgres)
        address = ["-h", "127.0.0.1", "-p", str(ports.postgres), "-U", "postgres"]

        def ready() -> bool:
            return subprocess.run([str(bindir / "pg_isready"), *address], capture_output=True).returncode == 0

        self._wait("postgres", ready)
        subprocess.run(["psql", *address, "-c", "CREATE DATABASE airflow"], check=True, capture_output=True)

    def _redis(self) -> None:
        port, directory = self.settings.ports.redis, self.settings.directory
        command = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        self._spawn("redis", [*command, "--dir", str(directory)])

        def ready() -> bool:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                    sock.sendall(b"PING\r\n")
                    return sock.recv(16).startswith(b"+PONG")
            except OSError:
                return False

        self._wait("redis", ready)

    def _s3(self) -> None:
        from composer_mirror.store.bucket_policy import public_read_policy

        settings = self.settings
        command = [str(VENV_BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(settings.ports.s3)]
        self._spawn("s3", command, {**os.environ, **DUMMY_AWS})
        self._wait("s3", lambda: _answers(f"{settings.s3_endpoint}/moto-api/"))
        s3 = s3_client(settings.s3_endpoint)
        s3.create_bucket(Bucket=settings.bucket)
        policy = public_read_policy(settings.bucket, settings.prefix)
        s3.put_bucket_policy(Bucket=settings.bucket, Policy=json.dumps(policy))

    def _nginx(self) -> None:
        settings = self.settings
        directory = settings.directory / "nginx"
        directory.mkdir(exist_ok=True)
        server = render_nginx(
            {
                "MIRROR_LISTEN": f"127.0.0.1:{settings.ports.nginx}",
                "MIRROR_S3_ORIGIN": f"127.0.0.1:{settings.ports.s3}",
                "MIRROR_BUCKET": settings.bucket,
            }
        )
        (directory / "default.conf").write_text(server)
        # The main file the nginx image has, with this stack's paths: the template is a server-level include.
        (directory / "nginx.conf").write_text(
            "daemon off;\nworker_processes 2;\n"
            f"pid {directory}/nginx.pid;\nerror_log {settings.log('nginx')} warn;\n"
            "events { worker_connections 1024; }\n"
            "http {\n    include /etc/nginx/mime.types;\n    default_type application/octet-stream;\n"
            f"    access_log {settings.log('nginx-access')};\n"
            f"    client_body_temp_path {directory}/body;\n    proxy_temp_path {directory}/proxy;\n"
            f"    include {directory}/default.conf;\n}}\n"
        )
        self._spawn("nginx", [nginx_binary(), "-c", str(directory / "nginx.conf"), "-p", str(directory)])
        self._wait("nginx", lambda: _answers(f"http://127.0.0.1:{settings.ports.nginx}/__nginx_health"))

    def _airflow_init(self) -> None:
        """deploy/airflow-init.sh's steps: migrate, the admin user's password, the pools from deploy/pools.json."""
        settings = self.settings
        home = settings.airflow_home
        (home / "config").mkdir(parents=True, exist_ok=True)
        shutil.copyfile(LOCAL_SETTINGS, home / "config" / LOCAL_SETTINGS.name)
        (home / "passwords.json").write_text(json.dumps(dict([ADMIN])))
        env = settings.airflow_env()
        for command in (["db", "migrate"], ["pools", "import", str(POOLS)]):
            result = subprocess.run([str(VENV_BIN / "airflow"), *command], env=env, capture_output=True, text=True)
            if result.returncode:
                raise StackError(f"airflow {' '.join(command)} failed:\n{(result.stdout + result.stderr)[-3000:]}")

    def _airflow_services(self) -> None:
        settings = self.settings
        airflow = str(VENV_BIN / "airflow")
        env = settings.airflow_env()
        api = [airflow, "api-server", "--host", "127.0.0.1", "--port", str(settings.ports.api), "--workers", "1"]
        self._spawn("api-server", api, env)
        for component in ("scheduler", "dag-processor", "triggerer"):
            self._spawn(component, [airflow, component], env)
        self._wait("api-server", lambda: _answers(f"{settings.api_url}/api/v2/monitor/health"))
        health = f"http://127.0.0.1:{settings.ports.scheduler_health}/health"
        self._wait("scheduler", lambda: _answers(health))

    def _workers(self) -> None:
        settings = self.settings
        for index in range(settings.workers):
            name = worker_name(index)
            env = settings.airflow_env(AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT=str(settings.ports.worker_logs[index]))
            command = [str(VENV_BIN / "airflow"), "celery", "worker", "--celery-hostname", f"{name}@%h"]
            self._spawn(name, command, env)
        for index in range(settings.workers):
            name = worker_name(index)
            self._wait(name, lambda name=name: " ready." in self._tail(name, 100_000))

    def _wait_for_dags(self) -> None:
        """Until the dag-processor has serialised the mirror's DAGs, triggering them answers 404."""
        dag_ids = {path.stem for path in (ROOT / "dags").glob("composer_mirror_*.py")}

        def ready() -> bool:
            response = self.api("GET", "/api/v2/dags", params={"limit": 100})
            return response.ok and dag_ids <= {dag["dag_id"] for dag in response.json()["dags"]}

        self._wait("dag-processor", ready, timeout=180)

    # ----------------------------------------------------------------------------------- using
    def token(self, user: tuple[str, str] = ADMIN) -> str:
        """A JWT for the REST API, as the UI's login gets one."""
        response = requests.post(
            f"{self.settings.api_url}/auth/token", json={"username": user[0], "password": user[1]}, timeout=10
        )
        response.raise_for_status()
        return str(response.json()["access_token"])

    def api(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """A REST API call as the admin; one login per stack (callers poll), again only when refused."""
        extra = kwargs.pop("headers", {})
        for fresh in (False, True):
            if fresh or self._token is None:
                self._token = self.token()
            headers = {"Authorization": f"Bearer {self._token}", **extra}
            response = requests.request(method, f"{self.settings.api_url}{path}", headers=headers, timeout=30, **kwargs)
            if response.status_code != 401:
                break
        return response

    # ----------------------------------------------------------------------------------- stopping
    def down(self) -> None:
        stop_recorded(self.settings.directory, self.services, self.scratch)


def postgres_bindir() -> Path:
    """The server binaries (Debian keeps them under /usr/lib/postgresql/<major>/bin, off PATH)."""
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"), key=lambda p: int(p.parent.parent.name))
    if candidates:
        return candidates[-1].parent
    found = shutil.which("postgres")
    if found:
        return Path(found).parent
    raise StackError("PostgreSQL is not installed (make stack installs the Debian package postgresql)")


def nginx_binary() -> str:
    found = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
    if not found:
        raise StackError("nginx is not installed (make stack installs the Debian package nginx)")
    return found


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).status_code == 200
    except requests.RequestException:
        return False
