"""The production topology on one machine without containers: `make stack`, its integration test, the bench.

The services docker-compose.yaml defines, as local processes on loopback: PostgreSQL (metadata database
and Celery result backend), Redis (Celery broker), the moto S3 server standing in for MinIO, nginx serving
the bucket as CloudFront would, and Airflow's api-server, scheduler, dag-processor, triggerer and Celery
workers. What both share comes from deploy/: ``airflow.env`` (every host-independent setting),
``pools.json``, ``nginx/default.conf.template``, ``airflow_local_settings.py`` (the pool policy) and the
bucket policy generated from the storage layout. Only host names, ports and paths differ, and
tests/test_stack_config.py checks the two agree.

Each service runs in its own process group, and ``<directory>/stack.json`` records its PID and start
time; ``down`` stops exactly those processes (a recycled PID is recognised by its start time and left
alone), nothing found by name.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import requests

from tests.harness import DUMMY_AWS, ROOT, VENV_BIN, free_port, s3_client

DEPLOY = ROOT / "deploy"
AIRFLOW_ENV = DEPLOY / "airflow.env"
POOLS = DEPLOY / "pools.json"
NGINX_TEMPLATE = DEPLOY / "nginx" / "default.conf.template"
LOCAL_SETTINGS = DEPLOY / "airflow_local_settings.py"
# What the nginx template takes from whoever renders it (docker-compose.yaml's nginx environment too).
NGINX_PARAMETERS = ("MIRROR_LISTEN", "MIRROR_S3_ORIGIN", "MIRROR_BUCKET")
ADMIN = ("admin", "admin")  # deploy/airflow.env's simple auth manager user; a development placeholder
STATE_FILE = "stack.json"
KILL_TIMEOUT = 5.0  # for SIGKILLed processes to be gone, so their ports are free when stop_services returns
_PLACEHOLDER = re.compile(r"\$\{(?P<name>[A-Z_][A-Z0-9_]*)\}")


class StackError(RuntimeError):
    """A service did not start; the message ends with the tail of its log."""


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
    # Empty: serve the bundled sample registry (tests/fixture_registry) as one more service, as `make demo` does.
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


@dataclass
class Service:
    """One started process: its PID and the start time that tells it apart from a later process with that PID."""

    name: str
    pid: int
    started: str

    def alive(self) -> bool:
        return _start_time(self.pid) == self.started


def _start_time(pid: int) -> str | None:
    """Field 22 of /proc/<pid>/stat (start time in clock ticks since boot), or None when no such process."""
    fields = _stat(pid)
    return None if fields is None else fields[19]


def _stat(pid: int) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name (state, ppid, pgrp, ...), or None when
    there is no such process or it is a zombie (dead, only not yet reaped)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return None if fields[0] == "Z" else fields


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
        started = _start_time(process.pid)
        assert started is not None, f"{name} exited at once: {self._tail(name)}"
        service = Service(name, process.pid, started)
        self.services.append(service)
        self._save()
        return service

    def _save(self) -> None:
        state = {
            "services": [asdict(service) for service in self.services],
            "scratch": self.scratch,
            "settings": self.describe(),
        }
        (self.settings.directory / STATE_FILE).write_text(json.dumps(state, indent=2))

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
        command = [str(VENV_BIN / "python"), "-m", "tests.fixture_registry", "--port", str(port)]
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
        stop_services(self.services)
        remove_scratch(self.scratch)
        (self.settings.directory / STATE_FILE).unlink(missing_ok=True)


def stop_services(services: list[Service], timeout: float = 30) -> None:
    """SIGTERM each live service's process group (last started first), then SIGKILL what is left.

    The group is what is waited for and killed, not its leader: a leader may exit on SIGTERM and
    leave children that ignore it or take longer. Only the groups of leaders recognised by PID and
    start time before the first signal are touched: a group's id is its leader's PID, and the
    recorded PID of a service that has ended may since have been given to another process.
    """
    groups = [service.pid for service in reversed(services) if service.alive()]
    for group in groups:
        _signal_group(group, signal.SIGTERM)
    _wait_for_groups(groups, timeout)
    left = [group for group in groups if _group_alive(group)]
    for group in left:
        _signal_group(group, signal.SIGKILL)
    _wait_for_groups(left, KILL_TIMEOUT)


def _wait_for_groups(groups: list[int], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(_group_alive(group) for group in groups):
        time.sleep(0.1)


def _group_alive(group: int) -> bool:
    """Whether process group ``group`` has a member still running.

    ``killpg(group, 0)`` finds zombies too: an exited leader stays one until this process reaps it
    (``_spawn`` keeps no Popen to wait on), and an orphan stays one under a PID 1 that never reaps,
    as some containers' does. So when it finds any member, /proc says whether one is not a zombie.
    """
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            fields = _stat(int(entry.name))
            if fields is not None and fields[2] == str(group):
                return True
    return False


def _signal_group(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):  # it ended between the check and the signal
        os.killpg(pid, signum)


def _state(directory: Path) -> dict[str, Any]:
    path = directory / STATE_FILE
    return json.loads(path.read_text()) if path.exists() else {"services": [], "scratch": []}


def recorded(directory: Path) -> list[Service]:
    """The services a previous ``up`` recorded in ``directory`` (running or not)."""
    return [Service(**item) for item in _state(directory)["services"]]


def down(directory: Path) -> list[str]:
    """Stop the services a previous ``up`` recorded in ``directory``; the names of those that were running."""
    services = recorded(directory)
    running = [service.name for service in services if service.alive()]
    stop_services(services)
    remove_scratch(_state(directory)["scratch"])
    (directory / STATE_FILE).unlink(missing_ok=True)
    return running


def remove_scratch(paths: list[str]) -> None:
    for path in paths:
        shutil.rmtree(path, ignore_errors=True)


def worker_name(index: int) -> str:
    return f"worker{index + 1}"


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
