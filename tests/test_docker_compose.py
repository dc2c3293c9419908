"""docker-compose.yaml and deploy/ agree with what the code reads (parsed with PyYAML; no Docker needed)."""

from __future__ import annotations

import ast
import fnmatch
import importlib.util
import json
import re
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from composer_mirror.settings import VARIABLES, Settings
from composer_mirror.store.bucket_policy import public_read_policy, render
from devtools.stack import NGINX_TEMPLATE, read_env_file, render_nginx

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "docker-compose.yaml"
DEPLOY = ROOT / "deploy"
AIRFLOW_SERVICES = (
    "airflow-init",
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
    "airflow-worker",
)
SERVICES = (*AIRFLOW_SERVICES, "redis", "postgres", "minio", "minio-init", "nginx")
ONE_SHOT = ("airflow-init", "minio-init")
POLICY_TARGET = "/opt/airflow/config/airflow_local_settings.py"
INTERPOLATION = re.compile(r"\$\$|\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?-)(?P<default>[^}]*))?\}")


def interpolate(value: Any, env: dict[str, str] | None = None) -> Any:
    """Compose's variable substitution (${NAME}, ${NAME:-default}, ${NAME-default}, $$), as `docker compose` does."""
    if not isinstance(value, str):
        return value
    env = env or {}

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, op, default = match.group("name"), match.group("op"), match.group("default")
        if op == ":-":
            return env.get(name) or default
        if op == "-":
            return env.get(name, default)
        return env.get(name, "")

    return INTERPOLATION.sub(replace, value)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


def environment(service: dict[str, Any]) -> dict[str, str]:
    """A service's environment as its container sees it: its env_file, then its own ``environment``
    (which wins, as in docker compose), with the defaults of docker-compose.yaml substituted."""
    files = service.get("env_file") or []
    merged: dict[str, str] = {}
    for path in [files] if isinstance(files, str) else files:
        merged.update(read_env_file(ROOT / path))
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    merged.update({name: str(value) for name, value in env.items()})
    return {name: interpolate(value) for name, value in merged.items()}


def mounts(service: dict[str, Any]) -> dict[str, str]:
    """Short-syntax volumes as container path -> source."""
    result = {}
    for volume in service.get("volumes") or []:
        source, target, *_mode = interpolate(volume).split(":")
        result[target] = source
    return result


def published_ports(service: dict[str, Any]) -> dict[str, str]:
    """Short-syntax ports as container port -> host port."""
    result = {}
    for port in service.get("ports") or []:
        *_host_ip, host, container = interpolate(str(port)).split(":")
        result[container] = host
    return result


def airflow_variables(services: dict[str, dict[str, Any]], service: str = "airflow-worker") -> dict[str, str]:
    """The AIRFLOW_VAR_* values a service sees, keyed by Airflow Variable name."""
    env = environment(services[service])
    return {
        name[len("AIRFLOW_VAR_") :].lower(): value for name, value in env.items() if name.startswith("AIRFLOW_VAR_")
    }


def command_text(service: dict[str, Any], key: str = "command") -> str:
    value = service.get(key) or ""
    return " ".join(value) if isinstance(value, list) else str(value)


def dockerfile_instructions() -> list[tuple[str, str]]:
    """deploy/Dockerfile as (KEYWORD, arguments), continuation lines joined and comments dropped."""
    lines = [line for line in (DEPLOY / "Dockerfile").read_text().splitlines() if not line.lstrip().startswith("#")]
    joined = re.sub(r"\\\n\s*", " ", "\n".join(lines))
    return [
        (keyword.upper(), arguments.strip())
        for keyword, _space, arguments in (line.strip().partition(" ") for line in joined.splitlines() if line.strip())
    ]


def dockerfile_copies() -> dict[str, str]:
    """Each source the Dockerfile COPYs from the build context, with its destination."""
    copies = {}
    for keyword, arguments in dockerfile_instructions():
        if keyword == "COPY":
            *sources, target = [word for word in arguments.split() if not word.startswith("--")]
            copies.update(dict.fromkeys(sources, target))
    return copies


def dockerfile_project_sources() -> list[str]:
    """What the Dockerfile copies into the folder it installs with ``pip install --no-deps`` (the project).

    tests/test_packaging.py builds the wheel from exactly these, so the image's install step is tested too.
    """
    installs = [
        arguments.split()[-1].rstrip("/")
        for keyword, arguments in dockerfile_instructions()
        if keyword == "RUN" and "pip install" in arguments and "--no-deps" in arguments
    ]
    assert len(installs) == 1, "the Dockerfile does not pip install --no-deps the project"
    project = installs[0]
    return [
        source.rstrip("/")
        for source, target in dockerfile_copies().items()
        if target.rstrip("/") in (project, f"{project}/{source.rstrip('/')}")
    ]


def excluded_from_context(path: str, patterns: list[str]) -> bool:
    """Whether a .dockerignore's patterns (without ! exceptions) leave ``path`` or a parent folder out."""
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    globs = [p.strip() for p in patterns if p.strip() and not p.startswith("#")]
    globs += [glob.removeprefix("**/") for glob in globs if glob.startswith("**/")]
    return any(fnmatch.fnmatchcase(prefix, glob) for prefix in prefixes for glob in globs)


def load_policy() -> ModuleType:
    spec = importlib.util.spec_from_file_location("deploy_airflow_local_settings", DEPLOY / "airflow_local_settings.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --- the interpolation helper itself -------------------------------------------------------------
def test_the_interpolation_helper_substitutes_like_docker_compose() -> None:
    assert interpolate("http://localhost:${PORT:-8081}/repo") == "http://localhost:8081/repo"
    assert interpolate("${PORT:-8081}", {"PORT": "9999"}) == "9999"
    assert interpolate("${PORT:-8081}", {"PORT": ""}) == "8081"
    assert interpolate("${PORT-8081}", {"PORT": ""}) == ""
    assert interpolate("$${HOSTNAME}") == "${HOSTNAME}"


# --- services ------------------------------------------------------------------------------------
def test_every_service_of_the_stack_is_defined(services: dict[str, dict[str, Any]]) -> None:
    missing = set(SERVICES) - set(services)
    assert not missing, f"docker-compose.yaml lacks {sorted(missing)}"


def test_every_airflow_service_is_built_from_the_project_dockerfile(services: dict[str, dict[str, Any]]) -> None:
    for name in AIRFLOW_SERVICES:
        build = services[name].get("build") or {}
        assert build.get("context") == ".", name
        assert build.get("dockerfile") == "deploy/Dockerfile", name


def test_every_airflow_component_runs_its_own_command(services: dict[str, dict[str, Any]]) -> None:
    expected = {
        "airflow-apiserver": "api-server",
        "airflow-scheduler": "scheduler",
        "airflow-dag-processor": "dag-processor",
        "airflow-triggerer": "triggerer",
        "airflow-worker": "celery worker",
    }
    for name, command in expected.items():
        assert command_text(services[name]) == command, name


def test_the_airflow_worker_can_be_scaled_with_docker_compose_scale(services: dict[str, dict[str, Any]]) -> None:
    worker = services["airflow-worker"]
    assert "container_name" not in worker, "a fixed container name prevents --scale airflow-worker=N"
    assert not worker.get("ports"), "a published host port prevents --scale airflow-worker=N"


def test_every_long_running_service_has_a_healthcheck(services: dict[str, dict[str, Any]]) -> None:
    for name in SERVICES:
        if name in ONE_SHOT:
            continue
        test = (services[name].get("healthcheck") or {}).get("test")
        assert test, f"{name} has no healthcheck"


def test_the_airflow_components_start_after_the_init_jobs_and_healthy_backends(
    services: dict[str, dict[str, Any]],
) -> None:
    for name in AIRFLOW_SERVICES:
        if name == "airflow-init":
            continue
        depends = services[name].get("depends_on") or {}
        assert depends.get("airflow-init", {}).get("condition") == "service_completed_successfully", name
        assert depends.get("minio-init", {}).get("condition") == "service_completed_successfully", name
        assert depends.get("postgres", {}).get("condition") == "service_healthy", name
        assert depends.get("redis", {}).get("condition") == "service_healthy", name
    init_depends = services["airflow-init"].get("depends_on") or {}
    assert init_depends.get("postgres", {}).get("condition") == "service_healthy"


# --- mounts and PYTHONPATH -----------------------------------------------------------------------
def test_every_airflow_service_mounts_dags_include_and_plugins_under_opt_airflow(
    services: dict[str, dict[str, Any]],
) -> None:
    for name in AIRFLOW_SERVICES:
        volumes = mounts(services[name])
        for folder in ("dags", "include", "plugins"):
            assert volumes.get(f"/opt/airflow/{folder}") == f"./{folder}", f"{name} does not mount ./{folder}"


def test_every_airflow_service_puts_the_mounted_include_folder_on_pythonpath(
    services: dict[str, dict[str, Any]],
) -> None:
    for name in AIRFLOW_SERVICES:
        pythonpath = environment(services[name]).get("PYTHONPATH", "").split(":")
        include_targets = [target for target, source in mounts(services[name]).items() if source == "./include"]
        assert include_targets, name
        assert include_targets[0] in pythonpath, f"{name}: PYTHONPATH={pythonpath} misses {include_targets[0]}"


def test_pythonpath_in_compose_only_puts_bind_mounted_source_first(services: dict[str, dict[str, Any]]) -> None:
    """The image installs composer_mirror; PYTHONPATH is there only so the mounted ./include wins over it."""
    for name in AIRFLOW_SERVICES:
        pythonpath = [entry for entry in environment(services[name]).get("PYTHONPATH", "").split(":") if entry]
        bind_mounted = {target for target, source in mounts(services[name]).items() if source.startswith("./")}
        assert set(pythonpath) <= bind_mounted, f"{name}: PYTHONPATH={pythonpath} names what the image does not mount"


# --- settings: Airflow Variables and the S3 connection -------------------------------------------
def test_every_airflow_var_set_is_a_variable_the_code_reads(services: dict[str, dict[str, Any]]) -> None:
    known = {f"AIRFLOW_VAR_{name.upper()}" for name in VARIABLES.values()}
    for name in AIRFLOW_SERVICES:
        set_here = {key for key in environment(services[name]) if key.startswith("AIRFLOW_VAR_")}
        assert set_here, f"{name} sets no AIRFLOW_VAR_*"
        unknown = set_here - known
        assert not unknown, f"{name} sets Variables composer_mirror.settings never reads: {sorted(unknown)}"


def test_the_required_settings_are_set_and_validate(services: dict[str, dict[str, Any]]) -> None:
    values = airflow_variables(services)
    for attr in ("bucket", "public_url", "upstream_url", "prefix", "packages"):
        assert values.get(VARIABLES[attr]), f"{VARIABLES[attr]} is not set"
    settings = Settings.from_strings(values)
    assert settings.packages, "the default package selection is empty"


def test_the_public_url_is_the_port_nginx_publishes_followed_by_the_prefix(
    services: dict[str, dict[str, Any]],
) -> None:
    values = airflow_variables(services)
    public = urlsplit(values[VARIABLES["public_url"]])
    nginx_host_port = published_ports(services["nginx"]).get("80")
    assert public.hostname == "localhost"
    assert str(public.port) == nginx_host_port, f"public_url port {public.port} != nginx's {nginx_host_port}"
    assert public.path.strip("/") == values[VARIABLES["prefix"]].strip("/")


def nginx_conf(services: dict[str, dict[str, Any]]) -> str:
    """deploy/nginx/default.conf.template as the nginx image renders it with the compose service's environment."""
    return render_nginx(environment(services["nginx"]))


def test_the_bucket_is_the_same_for_airflow_minio_init_and_nginx(services: dict[str, dict[str, Any]]) -> None:
    bucket = airflow_variables(services)[VARIABLES["bucket"]]
    assert environment(services["minio-init"]).get("COMPOSER_MIRROR_BUCKET") == bucket
    assert environment(services["nginx"])["MIRROR_BUCKET"] == bucket
    conf = nginx_conf(services)
    assert re.search(rf"rewrite \^\(\.\*\)\$ /{re.escape(bucket)}\$1\? break;", conf), "nginx proxies elsewhere"


def test_the_aws_default_connection_is_json_with_the_minio_endpoint_and_credentials(
    services: dict[str, dict[str, Any]],
) -> None:
    minio_env = environment(services["minio"])
    for name in AIRFLOW_SERVICES:
        conn = json.loads(environment(services[name])["AIRFLOW_CONN_AWS_DEFAULT"])
        assert conn["conn_type"] == "aws", name
        endpoint = urlsplit(conn["extra"]["endpoint_url"])
        assert endpoint.hostname == "minio" and endpoint.hostname in services, name
        assert endpoint.port == 9000, name
        assert "9000" in published_ports(services["minio"]), "MinIO's S3 port is not 9000"
        assert conn["login"] == minio_env["MINIO_ROOT_USER"], name
        assert conn["password"] == minio_env["MINIO_ROOT_PASSWORD"], name


def test_the_aws_conn_id_setting_names_the_connection_defined_in_the_environment(
    services: dict[str, dict[str, Any]],
) -> None:
    conn_id = airflow_variables(services).get(VARIABLES["aws_conn_id"]) or Settings.aws_conn_id
    assert f"AIRFLOW_CONN_{conn_id.upper()}" in environment(services["airflow-worker"])


# --- executor ------------------------------------------------------------------------------------
def test_the_executor_is_celery_with_the_redis_broker_and_postgres_behind_it(
    services: dict[str, dict[str, Any]],
) -> None:
    for name in AIRFLOW_SERVICES:
        env = environment(services[name])
        assert env.get("AIRFLOW__CORE__EXECUTOR") == "CeleryExecutor", name
        broker = urlsplit(env["AIRFLOW__CELERY__BROKER_URL"])
        assert broker.scheme == "redis" and broker.hostname == "redis", name
        backend = urlsplit(env["AIRFLOW__CELERY__RESULT_BACKEND"])
        # SQLAlchemy 2.1 reads a bare db+postgresql:// as psycopg 3, which requirements.txt does not install.
        assert backend.scheme == "db+postgresql+psycopg2" and backend.hostname == "postgres", name
        database = urlsplit(env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"])
        assert database.scheme.startswith("postgresql") and database.hostname == "postgres", name


def test_tasks_reach_the_execution_api_on_the_apiserver_service(services: dict[str, dict[str, Any]]) -> None:
    url = urlsplit(environment(services["airflow-worker"])["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"])
    assert url.hostname == "airflow-apiserver"
    assert url.port == 8080 and published_ports(services["airflow-apiserver"]).get("8080")
    assert url.path.rstrip("/") == "/execution"


def test_every_airflow_component_shares_one_jwt_secret(services: dict[str, dict[str, Any]]) -> None:
    secrets = {environment(services[name]).get("AIRFLOW__API_AUTH__JWT_SECRET") for name in AIRFLOW_SERVICES}
    assert len(secrets) == 1 and None not in secrets, secrets


# --- nginx and MinIO -----------------------------------------------------------------------------
def test_nginx_uses_the_deploy_template_and_proxies_to_minio(services: dict[str, dict[str, Any]]) -> None:
    # The image renders /etc/nginx/templates/X.template into conf.d/X, replacing its default server.
    target = "/etc/nginx/templates/default.conf.template"
    assert mounts(services["nginx"]).get(target) == "./" + str(NGINX_TEMPLATE.relative_to(ROOT))
    conf = nginx_conf(services)
    assert re.search(r"upstream mirror_s3 \{\s*server minio:9000;", conf), "the upstream is not the minio service"
    assert "proxy_pass http://mirror_s3;" in conf
    assert re.search(r"listen 80 default_server;", conf), "nginx does not listen on the port compose publishes"
    assert "80" in published_ports(services["nginx"])


def test_nginx_answers_404_for_missing_keys_even_when_minio_answers_403(services: dict[str, dict[str, Any]]) -> None:
    conf = nginx_conf(services)
    assert "proxy_intercept_errors on;" in conf
    assert re.search(r"error_page 403 404 = @missing;", conf)
    missing = re.search(r"location @missing \{(?P<body>[^}]*\}[^}]*)\}", conf)
    assert missing and "return 404" in missing.group("body")


def test_nginx_passes_cache_control_through_and_does_not_forward_client_credentials(
    services: dict[str, dict[str, Any]],
) -> None:
    conf = nginx_conf(services)
    proxied = conf.split("location / {", 1)[1].split("location @missing", 1)[0]
    assert "Cache-Control" not in proxied, "the proxied location must leave the objects' Cache-Control alone"
    assert not re.search(r"^\s*(expires|proxy_cache)\s", conf, re.MULTILINE)
    assert 'proxy_set_header Authorization "";' in proxied


def test_the_minio_init_job_creates_the_bucket_with_the_generated_policy(services: dict[str, dict[str, Any]]) -> None:
    init = services["minio-init"]
    script_target = next(t for t, s in mounts(init).items() if s == "./deploy/minio-init.sh")
    assert script_target in command_text(init, "entrypoint")
    policy_target = next(t for t, s in mounts(init).items() if s == "./deploy/bucket-policy.json")
    init_env = environment(init)
    assert init_env["BUCKET_POLICY"] == policy_target
    script = (DEPLOY / "minio-init.sh").read_text()
    assert 'mc mb --ignore-existing "local/$COMPOSER_MIRROR_BUCKET"' in script
    assert 'mc anonymous set-json "$BUCKET_POLICY" "local/$COMPOSER_MIRROR_BUCKET"' in script
    assert not re.search(r"mc anonymous set (download|public)", script), "anonymous reads of the whole bucket"
    minio_env = environment(services["minio"])
    assert init_env["MINIO_ROOT_USER"] == minio_env["MINIO_ROOT_USER"]
    assert init_env["MINIO_ROOT_PASSWORD"] == minio_env["MINIO_ROOT_PASSWORD"]


def test_the_committed_bucket_policy_is_the_one_generated_for_the_compose_bucket_and_prefix(
    services: dict[str, dict[str, Any]],
) -> None:
    """A key made public in the layout (or a change of bucket or prefix) means regenerating the file:

    python -m composer_mirror.store.bucket_policy --bucket <bucket> --prefix <prefix> > deploy/bucket-policy.json
    """
    values = airflow_variables(services)
    expected = render(public_read_policy(values[VARIABLES["bucket"]], values[VARIABLES["prefix"]]))
    assert (DEPLOY / "bucket-policy.json").read_text() == expected


# --- airflow-init: database, admin user, pool ----------------------------------------------------
def test_airflow_init_runs_the_init_script(services: dict[str, dict[str, Any]]) -> None:
    init = services["airflow-init"]
    script_target = next(t for t, s in mounts(init).items() if s == "./deploy/airflow-init.sh")
    assert script_target in command_text(init)
    script = (DEPLOY / "airflow-init.sh").read_text()
    assert "airflow db migrate" in script


def test_airflow_init_imports_the_pools_file_with_a_positive_slot_count(services: dict[str, dict[str, Any]]) -> None:
    script = (DEPLOY / "airflow-init.sh").read_text()
    (target,) = [t for t, s in mounts(services["airflow-init"]).items() if s == "./deploy/pools.json"]
    assert f"airflow pools import {target}" in script
    pools = json.loads((DEPLOY / "pools.json").read_text())
    assert pools[load_policy().UPSTREAM_POOL]["slots"] > 0


def test_the_default_batch_count_is_what_the_upstream_pool_runs_at_once() -> None:
    """More batches than the pool's slots never run side by side and only add task start-ups."""
    slots = json.loads((DEPLOY / "pools.json").read_text())[load_policy().UPSTREAM_POOL]["slots"]
    assert Settings.max_batches == slots


def test_airflow_init_creates_the_admin_user_the_apiserver_reads(services: dict[str, dict[str, Any]]) -> None:
    init_env = environment(services["airflow-init"])
    api_env = environment(services["airflow-apiserver"])
    users = dict(entry.split(":")[:2] for entry in api_env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"].split(","))
    assert users.get(init_env["_AIRFLOW_WWW_USER_USERNAME"]) == "admin"
    passwords_file = api_env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"]
    assert init_env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"] == passwords_file
    folder = str(Path(passwords_file).parent)
    volume = mounts(services["airflow-apiserver"]).get(folder)
    assert volume and not volume.startswith("."), "the passwords file must be on a named volume"
    assert mounts(services["airflow-init"]).get(folder) == volume
    assert "_AIRFLOW_WWW_USER_PASSWORD" in (DEPLOY / "airflow-init.sh").read_text()


# --- the cluster policy that puts upstream-facing tasks in the pool ------------------------------
def test_the_cluster_policy_puts_upstream_tasks_of_mirror_dags_in_the_composer_upstream_pool() -> None:
    policy = load_policy()
    mapped = SimpleNamespace(dag_id="composer_mirror_sync", task_id="fetch_archives", pool="default_pool")
    policy.task_policy(mapped)
    assert mapped.pool == "composer_upstream"
    other_task = SimpleNamespace(dag_id="composer_mirror_sync", task_id="publish_index", pool="default_pool")
    policy.task_policy(other_task)
    assert other_task.pool == "default_pool"
    other_dag = SimpleNamespace(dag_id="unrelated", task_id="fetch_archives", pool="default_pool")
    policy.task_policy(other_dag)
    assert other_dag.pool == "default_pool"
    explicit = SimpleNamespace(dag_id="composer_mirror_sync", task_id="sync_metadata", pool="my_pool")
    policy.task_policy(explicit)
    assert explicit.pool == "my_pool"


def test_the_cluster_policy_names_tasks_that_exist_in_the_mirror_dags() -> None:
    tasks = ROOT / "include" / "composer_mirror" / "airflow" / "tasks"
    sources = [*sorted(tasks.glob("*.py")), *sorted((ROOT / "dags").glob("*.py"))]
    task_names = set()
    for source in sources:
        for node in ast.walk(ast.parse(source.read_text())):
            if isinstance(node, ast.FunctionDef) and any(
                "task" in ast.unparse(decorator).split("(")[0] for decorator in node.decorator_list
            ):
                task_names.add(node.name)
    missing = load_policy().UPSTREAM_TASKS - task_names
    assert not missing, f"the policy names tasks no DAG defines: {sorted(missing)}"


def test_the_cluster_policy_is_where_airflow_imports_it(services: dict[str, dict[str, Any]]) -> None:
    for name in AIRFLOW_SERVICES:
        assert mounts(services[name]).get(POLICY_TARGET) == "./deploy/airflow_local_settings.py", name
    assert f"deploy/airflow_local_settings.py {POLICY_TARGET}" in (DEPLOY / "Dockerfile").read_text()


# --- files, image, secrets -----------------------------------------------------------------------
@pytest.mark.parametrize(
    "path",
    [
        "deploy/Dockerfile",
        "deploy/nginx/default.conf.template",
        "deploy/airflow.env",
        "deploy/pools.json",
        "deploy/airflow-init.sh",
        "deploy/minio-init.sh",
        "deploy/bucket-policy.json",
        "deploy/airflow_local_settings.py",
        "requirements.txt",
        "constraints-runtime.txt",
        "pyproject.toml",
    ],
)
def test_every_referenced_file_exists(path: str) -> None:
    assert (ROOT / path).is_file(), path


def test_every_file_bind_mounted_from_deploy_exists(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        for source in mounts(service).values():
            if source.startswith("./deploy/"):
                assert (ROOT / source).is_file(), f"{name} mounts the missing {source}"


def test_the_dockerfile_installs_the_runtime_set_with_its_constraints_and_never_the_dev_tools() -> None:
    installs = [args for keyword, args in dockerfile_instructions() if keyword == "RUN" and "pip install" in args]
    requirements = [args for args in installs if re.search(r"-r \S*requirements\.txt\b", args)]
    assert len(requirements) == 1, installs
    assert re.search(r"-c \S*/constraints-runtime\.txt\b", requirements[0]), requirements[0]
    text = " ".join(args for _keyword, args in dockerfile_instructions())
    for development_file in ("requirements-dev.txt", "constraints.txt"):
        assert not re.search(rf"(^|[\s/]){re.escape(development_file)}\b", text), f"the image uses {development_file}"


def test_the_dockerfile_installs_the_project_from_what_it_copies_without_pythonpath() -> None:
    assert {"pyproject.toml", "README.md", "requirements.txt", "include"} <= set(dockerfile_project_sources())
    assert not any(args.startswith("PYTHONPATH") for keyword, args in dockerfile_instructions() if keyword == "ENV")
    assert "include/" not in {
        source for source, target in dockerfile_copies().items() if target.startswith("/opt/airflow/")
    }


def test_every_file_the_dockerfile_copies_exists_and_is_in_the_build_context() -> None:
    patterns = [
        line.strip()
        for line in (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert not any(pattern.startswith("!") for pattern in patterns), "excluded_from_context knows no exceptions"
    for source in dockerfile_copies():
        assert (ROOT / source).exists(), f"the Dockerfile copies the missing {source}"
        assert not excluded_from_context(source.rstrip("/"), patterns), f"the .dockerignore leaves out {source}"


def test_the_dockerfile_starts_from_the_airflow_version_the_constraints_pin() -> None:
    base = re.search(
        r"^FROM apache/airflow:(?P<version>[0-9.]+)-python(?P<python>[0-9.]+)$",
        (DEPLOY / "Dockerfile").read_text(),
        re.MULTILINE,
    )
    assert base, "the Dockerfile is not FROM apache/airflow:<version>-python<version>"
    assert f"apache-airflow=={base.group('version')}" in (ROOT / "constraints-runtime.txt").read_text().splitlines()
    assert f"apache-airflow=={base.group('version')}" in (ROOT / "requirements.txt").read_text().splitlines()
    assert base.group("python") == "3.11"


def test_the_build_context_leaves_out_the_virtualenv_git_and_the_development_requirements() -> None:
    ignored = (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines()
    for name in (".venv", ".git", "requirements-dev.txt", "constraints.txt"):
        assert excluded_from_context(name, ignored), name


def test_no_file_contains_something_shaped_like_an_aws_access_key() -> None:
    files = [COMPOSE, *sorted(p for p in DEPLOY.iterdir() if p.is_file())]
    docs = ROOT / "docs" / "deployment.md"
    if docs.exists():
        files.append(docs)
    for path in files:
        assert not re.search(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b", path.read_text()), path


def test_the_secrets_in_the_compose_file_are_marked_as_development_placeholders(
    services: dict[str, dict[str, Any]],
) -> None:
    env = environment(services["airflow-apiserver"])
    for key in ("AIRFLOW__API_AUTH__JWT_SECRET", "AIRFLOW__API__SECRET_KEY"):
        assert "dev-only" in env[key], key
    assert "dev-only" in environment(services["minio"])["MINIO_ROOT_PASSWORD"]
    assert "DEVELOPMENT PLACEHOLDER" in COMPOSE.read_text()
