"""The SBOM upload: the library (validate, store) against moto, and the plugin in a real API server.

The unit tests use moto's in-process S3. The integration tests start ``airflow api-server`` with
the plugins folder, the simple auth manager (an admin and a viewer with dev passwords, tests
only), the moto server for S3 and the DAGs serialized into a throw-away database; no scheduler
runs, so a triggered run stays queued. The tests of how much of an upload's body is read send
requests to the same app built in a process of its own (:mod:`tests.plugins.asgi_probe`), which
counts every body byte the app pulls. The browser test drives the page in headless Chromium over
the DevTools protocol.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import boto3
import pytest
import requests
from moto import mock_aws

from composer_mirror import sbom, sbom_upload
from composer_mirror.errors import TargetError
from composer_mirror.store import STATE_CACHE, S3Store
from devtools.harness import ROOT, VENV_BIN, AirflowEnv, MotoServer, aws_connection, free_port
from tests.browser import Browser, chromium_path

SBOMS = ROOT / "tests/fixtures/sboms"
CDX_JSON = SBOMS / "symfony-demo.cdx.json"
BUCKET = "mirror-bucket"
PREFIX = "repo/"
DAG_ID = "composer_mirror_sbom"
KEY_RE = re.compile(r"^repo/sboms/\d{8}T\d{6}Z-[0-9a-f]{12}-[A-Za-z0-9._-]+$")
HEADER = {"X-Composer-Mirror": "1"}
# Development credentials for the throw-away API server only.
ADMIN = ("admin", "admin-dev-password")
VIEWER = ("viewer", "viewer-dev-password")


def cyclonedx(*purls: str | None) -> bytes:
    components = [{"type": "library", "name": f"c{i}", **({"purl": p} if p else {})} for i, p in enumerate(purls)]
    return json.dumps({"bomFormat": "CycloneDX", "specVersion": "1.5", "components": components}).encode()


# --- validate ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "sbom_format", "skipped"),
    [
        ("symfony-demo.cdx.json", "CycloneDX 1.5 JSON", {"application itself (metadata.component)": 1}),
        ("symfony-demo.cdx.xml", "CycloneDX 1.6 XML", {"application itself (metadata.component)": 1}),
        ("symfony-demo.spdx.json", "SPDX 2.3 JSON", {"no purl": 1}),
        ("symfony-demo.spdx", "SPDX 2.3 tag-value", {"no purl": 1}),
    ],
)
def test_validate_summarises_every_supported_format(name: str, sbom_format: str, skipped: dict[str, int]) -> None:
    content = (SBOMS / name).read_bytes()
    summary = sbom_upload.validate(content)
    assert summary["valid"] is True
    assert summary["format"] == sbom_format
    assert (summary["components"], summary["composer_components"], summary["unversioned"]) == (154, 153, 0)
    assert summary["skipped"] == skipped
    assert summary["problems"] == summary["warnings"] == []
    assert summary["bytes"] == len(content)
    assert "composer/semver@3.4.4" in summary["sample"]
    assert len(summary["sample"]) == sbom_upload.SAMPLE_SIZE
    json.dumps(summary)  # the page gets it as JSON


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b'{"bomFormat": "CycloneDX", "specVersion": "1.5", "components": [', "malformed JSON at line 1 column"),
        (b"# just a README\n", "not a CycloneDX or SPDX document: it starts with '# just a README'"),
        (b"", "empty SBOM"),
        (b"\xff\xfe{}", "SBOM is not UTF-8 text"),
        (cyclonedx("pkg:composer/psr/log@3.0.2", "pkg:composer/Not A Name"), "cyclonedx component 2"),
    ],
    ids=["truncated-json", "not-an-sbom", "empty", "not-utf8", "invalid-purl"],
)
def test_validate_reports_a_malformed_file_as_a_problem(content: bytes, problem: str) -> None:
    summary = sbom_upload.validate(content)
    assert summary["valid"] is False
    assert summary["format"] is None
    assert summary["composer_components"] == 0
    assert len(summary["problems"]) == 1
    assert problem in summary["problems"][0]


def test_validate_without_composer_components_has_nothing_to_mirror() -> None:
    summary = sbom_upload.validate(cyclonedx("pkg:npm/left-pad@1.3.0", "pkg:pypi/requests@2.32.0", "pkg:composer/php"))
    assert summary["valid"] is False
    assert summary["format"] == "CycloneDX 1.5 JSON"
    assert summary["components"] == 3
    assert summary["skipped"] == {"not composer (npm)": 1, "not composer (pypi)": 1, "platform package": 1}
    assert summary["problems"] == ["no composer components among its 3 components: nothing to mirror"]


def test_validate_warns_about_unversioned_components_but_accepts_them() -> None:
    summary = sbom_upload.validate(cyclonedx("pkg:composer/psr/log", "pkg:composer/monolog/monolog@3.9.0", None))
    assert summary["valid"] is True
    assert (summary["composer_components"], summary["unversioned"]) == (2, 1)
    assert summary["skipped"] == {"no purl": 1}
    assert summary["sample"] == ["psr/log", "monolog/monolog@3.9.0"]
    assert len(summary["warnings"]) == 1
    assert "1 composer components have no version" in summary["warnings"][0]
    assert "psr/log" in summary["warnings"][0]


def test_validate_refuses_oversized_files_without_parsing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sbom, "MAX_SBOM_BYTES", 100)
    summary = sbom_upload.validate(CDX_JSON.read_bytes())
    assert summary["valid"] is False
    assert summary["format"] is None
    assert summary["problems"] == [f"the SBOM has {CDX_JSON.stat().st_size} bytes, over the limit of 100 bytes"]


# --- file names and keys -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("filename", "expected"),
    [
        ("symfony-demo.cdx.json", "symfony-demo.cdx.json"),
        ("../../etc/passwd", "passwd"),
        ("C:\\Users\\me\\my app sbom.json", "my-app-sbom.json"),
        ("..", "sbom"),
        ("", "sbom"),
        (None, "sbom"),
        (".hidden.json", "hidden.json"),
        ("sbom\x00;rm -rf $HOME.json", "sbom-rm-rf-HOME.json"),
        ("späť.spdx", "sp-.spdx"),
        ("x" * 200 + ".cdx.json", "x" * 71 + ".cdx.json"),
    ],
)
def test_safe_filename_keeps_one_harmless_segment(filename: str | None, expected: str) -> None:
    assert sbom_upload.safe_filename(filename) == expected
    assert len(sbom_upload.safe_filename(filename)) <= sbom_upload.MAX_FILENAME_CHARS


def test_sbom_path_has_timestamp_hash_and_name() -> None:
    now = datetime(2026, 11, 22, 1, 2, 3, tzinfo=UTC)
    path = sbom_upload.sbom_path("../app.cdx.json", b"{}", now)
    assert path == "sboms/20261122T010203Z-44136fa355b3-app.cdx.json"


# --- store ---------------------------------------------------------------------------------------


@pytest.fixture
def s3() -> Iterator[Any]:
    with mock_aws():
        client = boto3.client(
            "s3", region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing"
        )
        client.create_bucket(Bucket=BUCKET)
        yield client


def keys(client: Any, prefix: str = "") -> list[str]:
    return [item["Key"] for item in client.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", [])]


def test_store_writes_under_the_prefix_where_the_dag_reads_it(s3: Any) -> None:
    store = S3Store(s3, BUCKET, PREFIX)
    content = CDX_JSON.read_bytes()
    now = datetime(2026, 11, 22, 1, 2, 3, tzinfo=UTC)

    key = sbom_upload.store(store, "symfony-demo.cdx.json", content, uploaded_by="admin", now=now)

    digest = "533b91f2f733"
    assert key == f"repo/sboms/20261122T010203Z-{digest}-symfony-demo.cdx.json"
    assert KEY_RE.match(key)
    assert keys(s3) == [key]
    head = s3.head_object(Bucket=BUCKET, Key=key)
    assert head["ContentType"] == "application/json"
    assert head["CacheControl"] == STATE_CACHE
    assert head["Metadata"]["original-filename"] == "symfony-demo.cdx.json"
    assert head["Metadata"]["sha256"].startswith(digest)
    assert head["Metadata"]["sbom-format"] == "CycloneDX 1.5 JSON"
    assert head["Metadata"]["uploaded-by"] == "admin"
    # The DAG's own reader (sbom_s3_key) accepts the key and gets the same bytes back.
    assert sbom_upload.read_sbom_object(store, key) == content


@pytest.mark.parametrize(
    ("name", "content_type"),
    [("symfony-demo.cdx.xml", "application/xml"), ("symfony-demo.spdx", "text/plain; charset=utf-8")],
)
def test_store_labels_the_content_type_by_format(s3: Any, name: str, content_type: str) -> None:
    key = sbom_upload.store(S3Store(s3, BUCKET, PREFIX), name, (SBOMS / name).read_bytes())
    assert key.endswith(f"-{name}")
    assert s3.head_object(Bucket=BUCKET, Key=key)["ContentType"] == content_type


def test_store_without_a_prefix_and_with_an_unsafe_name(s3: Any) -> None:
    store = S3Store(s3, BUCKET, "")
    key = sbom_upload.store(store, "../../ünïcode name.json", CDX_JSON.read_bytes(), uploaded_by="Zoë")
    assert re.match(r"^sboms/\d{8}T\d{6}Z-[0-9a-f]{12}-n-code-name\.json$", key), key
    metadata = s3.head_object(Bucket=BUCKET, Key=key)["Metadata"]
    assert metadata["original-filename"] == "../../?n?code name.json"
    assert metadata["uploaded-by"] == "Zo?"


def test_store_refuses_an_invalid_sbom_and_writes_nothing(s3: Any) -> None:
    store = S3Store(s3, BUCKET, PREFIX)
    with pytest.raises(TargetError, match="malformed JSON at line 1"):
        sbom_upload.store(store, "broken.json", b'{"bomFormat": ')
    with pytest.raises(TargetError, match="nothing to mirror"):
        sbom_upload.store(store, "npm.json", cyclonedx("pkg:npm/left-pad@1.3.0"))
    assert keys(s3) == []


# --- the plugin, loaded by Airflow ------------------------------------------------------------------

PLUGIN_CHECK = """
import json, sys
from airflow.sdk.plugins_manager import _get_plugins

# What every task does (for macros): load the plugins. The app must stay unimported there.
plugins, errors = _get_plugins()
assert not errors, errors
(plugin,) = [p for p in plugins if p.name == "composer_mirror_sbom_upload"]
task_side = {name: name in sys.modules for name in ("composer_mirror_sbom_upload_app", "app", "fastapi")}

from fastapi.routing import APIRoute
from airflow.api_fastapi.core_api.datamodels.plugins import ExternalViewResponse, FastAPIAppResponse
from airflow.api_fastapi.core_api.security import get_user

views = [ExternalViewResponse(**view).model_dump() for view in plugin.external_views]
apps = [FastAPIAppResponse(**{**app, "app": "app"}).model_dump() for app in plugin.fastapi_apps]

def calls(dependant):
    for dependency in dependant.dependencies:
        yield dependency.call
        yield from calls(dependency)

routes = {}
for route in plugin.fastapi_apps[0]["app"].routes:
    if isinstance(route, APIRoute):
        routes[f"{sorted(route.methods)} {route.path}"] = get_user in set(calls(route.dependant))
print(json.dumps({"task_side": task_side, "views": views, "apps": apps, "routes": routes}))
"""


@pytest.mark.integration
def test_airflow_loads_the_plugin_cheaply_and_every_route_needs_an_airflow_user(tmp_path: Path) -> None:
    env = AirflowEnv(tmp_path).env()
    result = subprocess.run(
        [sys.executable, "-c", PLUGIN_CHECK], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr[-3000:]
    found = json.loads(result.stdout.strip().splitlines()[-1])
    # Loading plugins (every task does) imports neither the app nor FastAPI; .airflowignore hides app.py.
    assert found["task_side"] == {"composer_mirror_sbom_upload_app": False, "app": False, "fastapi": False}
    assert found["apps"] == [{"app": "app", "url_prefix": "/composer-mirror", "name": "Composer mirror SBOM upload"}]
    (view,) = found["views"]
    assert (view["destination"], view["href"], view["url_route"]) == ("nav", "composer-mirror/", "composer-mirror-sbom")
    assert found["routes"] == {
        "['GET'] /": True,
        "['GET'] /static/{name}": True,
        "['POST'] /api/validate": True,
        "['POST'] /api/sboms": True,
    }


# --- the plugin in a running API server ---------------------------------------------------------------


@dataclass
class ApiServer:
    url: str
    bucket: str
    s3: Any
    airflow: AirflowEnv

    def token(self, user: tuple[str, str]) -> str:
        response = requests.post(f"{self.url}/auth/token", json={"username": user[0], "password": user[1]}, timeout=10)
        response.raise_for_status()
        return response.json()["access_token"]

    def upload(self, path: str, content: bytes, token: str | None = None, **headers: str) -> requests.Response:
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return requests.post(
            f"{self.url}/composer-mirror/api/{path}",
            params={"filename": "symfony-demo.cdx.json"},
            data=content,
            headers={"Content-Type": "application/json", **headers},
            timeout=30,
        )

    def sbom_keys(self) -> list[str]:
        listed = self.s3.list_objects_v2(Bucket=self.bucket, Prefix=f"{PREFIX}sboms/")
        return sorted(item["Key"] for item in listed.get("Contents", []))


def wait_until_up(url: str, process: subprocess.Popen[bytes], log: Path, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"api-server exited with {process.returncode}:\n{log.read_text()[-4000:]}")
        try:
            if requests.get(f"{url}/api/v2/monitor/health", timeout=2).status_code == 200:
                return
        except requests.RequestException:  # not listening yet, or still starting up
            pass
        time.sleep(0.25)
    raise RuntimeError(f"api-server did not answer within {timeout} s:\n{log.read_text()[-4000:]}")


def stop(process: subprocess.Popen[bytes]) -> None:
    """End the api-server we started (its own process group: uvicorn may have a worker child)."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)


@pytest.fixture(scope="module")
def api_server(moto_server: MotoServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    home = tmp_path_factory.mktemp("sbom-upload-airflow")
    bucket = "sbom-upload"
    s3 = moto_server.client()
    s3.create_bucket(Bucket=bucket)
    passwords = home / "passwords.json"
    passwords.write_text(json.dumps(dict([ADMIN, VIEWER])))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    airflow = AirflowEnv(
        home,
        variables={
            "composer_mirror_bucket": bucket,
            "composer_mirror_prefix": PREFIX.rstrip("/"),
            "composer_mirror_public_url": f"{moto_server.endpoint}/{bucket}/{PREFIX}",
            "composer_mirror_upstream_url": "http://127.0.0.1:9",
        },
        extra_env={
            "AIRFLOW_CONN_AWS_DEFAULT": aws_connection(moto_server.endpoint),
            "AIRFLOW__CORE__AUTH_MANAGER": (
                "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
            ),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{ADMIN[0]}:admin,{VIEWER[0]}:viewer",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
            "AIRFLOW__API_AUTH__JWT_SECRET": "sbom-upload-test-only-jwt-secret",
            "AIRFLOW__API__BASE_URL": url,
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
        },
    )
    airflow.migrate()
    subprocess.run(
        [str(VENV_BIN / "airflow"), "dags", "reserialize"], env=airflow.env(), check=True, capture_output=True
    )
    log = home / "api-server.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [str(VENV_BIN / "airflow"), "api-server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
            env=airflow.env(),
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_until_up(url, process, log)
        yield ApiServer(url, bucket, s3, airflow)
    finally:
        stop(process)


@pytest.mark.integration
def test_upload_api_refuses_anonymous_and_unauthorised_callers(api_server: ApiServer) -> None:
    content = CDX_JSON.read_bytes()
    before = api_server.sbom_keys()

    anonymous = api_server.upload("sboms", content, **HEADER)
    assert anonymous.status_code == 401, anonymous.text
    assert anonymous.json() == {"detail": "Not authenticated"}
    assert api_server.upload("validate", content, **HEADER).status_code == 401
    assert requests.get(f"{api_server.url}/composer-mirror/static/app.js", timeout=10).status_code == 401
    page = requests.get(
        f"{api_server.url}/composer-mirror/", headers={"Accept": "text/html"}, allow_redirects=False, timeout=10
    )
    assert page.status_code == 307
    assert page.headers["location"].startswith("/auth/login?next=")

    assert api_server.upload("sboms", content, token="not-a-jwt", **HEADER).status_code == 403
    forged = requests.post(
        f"{api_server.url}/composer-mirror/api/sboms",
        data=content,
        headers=HEADER,
        cookies={"_token": "forged"},
        timeout=10,
    )
    assert forged.status_code == 403

    viewer = api_server.token(VIEWER)
    assert api_server.upload("validate", content, token=viewer, **HEADER).json()["composer_components"] == 153
    refused = api_server.upload("sboms", content, token=viewer, **HEADER)
    assert refused.status_code == 403, refused.text

    admin = api_server.token(ADMIN)
    no_header = api_server.upload("sboms", content, token=admin)
    assert no_header.status_code == 403
    assert "X-Composer-Mirror" in no_header.json()["detail"]
    malformed = api_server.upload("sboms", b'{"bomFormat": "CycloneDX", "specVersion": "1.5", ', token=admin, **HEADER)
    assert malformed.status_code == 422
    assert "malformed JSON at line 1" in malformed.json()["detail"]

    assert api_server.sbom_keys() == before

    plugins = requests.get(f"{api_server.url}/api/v2/plugins", headers={"Authorization": f"Bearer {admin}"}, timeout=10)
    (plugin,) = [p for p in plugins.json()["plugins"] if p["name"] == "composer_mirror_sbom_upload"]
    assert [(v["name"], v["href"], v["destination"]) for v in plugin["external_views"]] == [
        ("SBOM upload", "composer-mirror/", "nav")
    ]


@pytest.mark.browser
@pytest.mark.integration
@pytest.mark.skipif(chromium_path() is None, reason="chromium is not installed (make tools)")
def test_page_validates_stores_and_triggers_a_dry_run(api_server: ApiServer, tmp_path: Path) -> None:
    admin = api_server.token(ADMIN)
    before = api_server.sbom_keys()
    broken = tmp_path / "broken.cdx.json"
    broken.write_text('{"bomFormat": "CycloneDX",\n "specVersion": "1.5", "components": [}\n')
    page_url = f"{api_server.url}/composer-mirror/"

    with Browser() as browser:
        # Without a session the page sends the browser to Airflow's login page, which comes back to it.
        browser.sign_in_to(page_url, ADMIN)
        assert browser.evaluate("document.title") == "Composer SBOM upload"

        browser.set_files("#sbom-file", broken)
        problem = browser.wait_for("document.querySelector('#problems li')?.textContent")
        assert problem.startswith("malformed JSON at line 2 column"), problem
        assert browser.evaluate("document.getElementById('mirror').hidden") is True
        assert browser.text("#summary-format") == "not recognised"

        browser.set_files("#sbom-file", CDX_JSON)
        assert browser.wait_for("!document.getElementById('mirror').hidden && 'shown'") == "shown"
        assert browser.text("#summary-composer") == "153"
        assert browser.text("#summary-components") == "154"
        assert browser.text("#summary-format") == "CycloneDX 1.5 JSON"
        assert "application itself (metadata.component)\t1" in browser.text("#skipped")
        assert browser.evaluate("document.getElementById('problems-block').hidden") is True

        browser.click("#dry-run")
        assert browser.evaluate("document.getElementById('dry-run').checked") is True
        assert browser.evaluate("document.getElementById('with-dependencies').checked") is True
        browser.click("#mirror-button")
        run_id = browser.wait_for("document.getElementById('run-link').textContent")
        state = browser.wait_for("document.getElementById('run-state').textContent")
        stored_uri = browser.text("#stored-key")
        link = browser.evaluate("document.getElementById('run-link').href")
        assert browser.text("#error") == ""
        # Dags are paused at creation and nothing unpaused this one: the page says why the run waits.
        status = browser.wait_for(
            "(t => t.startsWith('Triggered') && t)(document.getElementById('status').textContent)"
        )
        assert "is paused: the run stays queued" in status, status

    assert run_id.startswith("manual__")
    assert state in {"queued", "running", "success"}
    (key,) = sorted(set(api_server.sbom_keys()) - set(before))
    assert KEY_RE.match(key), key
    assert key.endswith("-symfony-demo.cdx.json")
    assert stored_uri == f"s3://{api_server.bucket}/{key}"
    assert api_server.s3.get_object(Bucket=api_server.bucket, Key=key)["Body"].read() == CDX_JSON.read_bytes()
    assert link == f"{api_server.url}/dags/{DAG_ID}/runs/{quote(run_id, safe='')}"

    response = requests.get(
        f"{api_server.url}/api/v2/dags/{DAG_ID}/dagRuns/{quote(run_id, safe='')}",
        headers={"Authorization": f"Bearer {admin}"},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    run = response.json()
    assert run["conf"] == {"sbom_s3_key": key, "with_dependencies": True, "dry_run": True}
    assert run["state"] == state
    assert run["triggering_user_name"] == ADMIN[0]
    assert run["note"] == "SBOM upload: symfony-demo.cdx.json (dry run)"


# --- how much of an upload's body is read, and when ------------------------------------------------

CHUNK = 64 * 1024
LARGE = 8 * 1024 * 1024
BOUNDARY = "composer-mirror-test-boundary"


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    text: str
    bytes_read: int
    messages_read: int

    def detail(self) -> Any:
        return json.loads(self.text)["detail"]


class Probe:
    """The API server's app in a process of its own (:mod:`tests.plugins.asgi_probe`), counting body bytes read."""

    def __init__(self, process: subprocess.Popen[str], log: Path) -> None:
        self.process = process
        self.log = log
        self.answer_line()

    def answer_line(self, timeout: float = 120) -> dict[str, Any]:
        assert self.process.stdout is not None
        readable, _, _ = select.select([self.process.stdout], [], [], timeout)
        line = self.process.stdout.readline() if readable else ""
        if not line:
            raise RuntimeError(f"the probe did not answer within {timeout} s:\n{self.log.read_text()[-4000:]}")
        return json.loads(line)

    def post(
        self,
        api: str,
        *,
        token: str | None = None,
        head: str = "",
        fill: int = 0,
        tail: str = "",
        content_type: str = "application/json",
        chunked: bool = False,
        chunk: int = CHUNK,
        limit: int | None = None,
        plugin_header: bool = True,
    ) -> Answer:
        """POST ``head`` + ``fill`` filler bytes + ``tail`` to ``/composer-mirror/api/<api>``."""
        headers = {"Content-Type": content_type, **(HEADER if plugin_header else {})}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        size = body_size(head, fill, tail)
        request = {
            "method": "POST",
            "path": f"/composer-mirror/api/{api}",
            "headers": headers,
            "head": head,
            "fill": fill,
            "tail": tail,
            "content_length": None if chunked else size,
            "chunk": chunk,
            "limit": limit,
        }
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        return Answer(**self.answer_line())


@pytest.fixture(scope="module")
def probe(api_server: ApiServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Probe]:
    log = tmp_path_factory.mktemp("asgi-probe") / "probe.log"
    with log.open("w") as errors:
        process = subprocess.Popen(
            [sys.executable, "-m", "tests.plugins.asgi_probe"],
            cwd=ROOT,
            env=api_server.airflow.env(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=errors,
            text=True,
        )
    try:
        yield Probe(process, log)
    finally:
        assert process.stdin is not None
        process.stdin.close()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def body_size(head: str = "", fill: int = 0, tail: str = "", **_options: Any) -> int:
    """The size of the body :meth:`Probe.post` sends for these arguments."""
    return len(head.encode()) + fill + len(tail.encode())


def form(fill: int, content: str = "") -> dict[str, Any]:
    """A multipart/form-data body with one ``file`` part of ``content`` and ``fill`` filler bytes."""
    return {
        "content_type": f"multipart/form-data; boundary={BOUNDARY}",
        "head": (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="big.cdx.json"\r\n'
            f"Content-Type: application/json\r\n\r\n{content}"
        ),
        "fill": fill,
        "tail": f"\r\n--{BOUNDARY}--\r\n",
    }


def padded_sbom(size: int) -> str:
    """A valid CycloneDX SBOM naming psr/log, padded with spaces to ``size`` bytes."""
    text = cyclonedx("pkg:composer/psr/log@3.0.2").decode()
    assert len(text) <= size
    return text + " " * (size - len(text))


@pytest.mark.integration
@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
@pytest.mark.parametrize("api", ["validate", "sboms"])
def test_a_refused_callers_body_is_not_read(probe: Probe, api_server: ApiServer, api: str, chunked: bool) -> None:
    admin = api_server.token(ADMIN)
    callers = {
        "anonymous": (None, True, 401),
        "invalid token": ("not-a-jwt", True, 403),
        "no X-Composer-Mirror header": (admin, False, 403),
    }
    if api == "sboms":
        callers["viewer"] = (api_server.token(VIEWER), True, 403)
    for caller, (token, plugin_header, status) in callers.items():
        answer = probe.post(api, token=token, plugin_header=plugin_header, chunked=chunked, **form(LARGE))
        assert (caller, answer.status) == (caller, status), answer.text
        assert (caller, answer.bytes_read) == (caller, 0)


@pytest.mark.integration
@pytest.mark.parametrize("body", ["sbom", "form"])
@pytest.mark.parametrize("api", ["validate", "sboms"])
def test_a_declared_length_over_the_limit_is_refused_unread(
    probe: Probe, api_server: ApiServer, api: str, body: str
) -> None:
    limit = sbom.MAX_SBOM_BYTES
    # A form is refused by its size too, before its type: the size is known first.
    sent = {"fill": limit + 1} if body == "sbom" else form(limit + 1)
    answer = probe.post(api, token=api_server.token(ADMIN), **sent)
    assert answer.status == 413, answer.text
    assert answer.bytes_read == 0
    assert answer.detail() == f"SBOM uploads are limited to {limit} bytes: this one declares {body_size(**sent)}"


@pytest.mark.integration
@pytest.mark.parametrize("api", ["validate", "sboms"])
def test_a_chunked_body_over_the_limit_is_read_no_further(probe: Probe, api_server: ApiServer, api: str) -> None:
    limit = sbom.MAX_SBOM_BYTES
    answer = probe.post(api, token=api_server.token(ADMIN), fill=limit + 4 * 1024 * 1024, chunked=True)
    assert answer.status == 413, answer.text
    # Reading stops at the chunk that crosses the limit.
    assert limit < answer.bytes_read <= limit + CHUNK
    assert answer.detail() == f"SBOM uploads are limited to {limit} bytes: this one has more"


@pytest.mark.integration
@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_a_body_of_the_limit_is_read_whole_and_one_byte_more_is_refused(
    probe: Probe, api_server: ApiServer, chunked: bool
) -> None:
    limit = 1000  # the app looks the limit up for every request, so a small one stands for 20 MB
    admin = api_server.token(ADMIN)
    fits = probe.post("validate", token=admin, head=padded_sbom(limit), chunked=chunked, chunk=100, limit=limit)
    assert fits.status == 200, fits.text
    summary = json.loads(fits.text)
    assert (summary["valid"], summary["bytes"], summary["composer_components"]) == (True, limit, 1)
    assert fits.bytes_read == limit

    over = probe.post("validate", token=admin, head=padded_sbom(limit + 1), chunked=chunked, chunk=100, limit=limit)
    assert over.status == 413, over.text
    if chunked:
        assert over.detail() == f"SBOM uploads are limited to {limit} bytes: this one has more"
        assert over.bytes_read == limit + 1
    else:
        assert over.detail() == f"SBOM uploads are limited to {limit} bytes: this one declares {limit + 1}"
        assert over.bytes_read == 0


@pytest.mark.integration
@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_a_form_upload_is_refused_unread_with_how_to_send_the_file(
    probe: Probe, api_server: ApiServer, chunked: bool
) -> None:
    answer = probe.post("validate", token=api_server.token(ADMIN), chunked=chunked, **form(0, CDX_JSON.read_text()))
    assert answer.status == 415, answer.text
    assert "the SBOM itself as the request body" in answer.detail()
    assert answer.bytes_read == 0


@pytest.mark.integration
@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_an_upload_is_validated_and_stored_from_its_body(probe: Probe, api_server: ApiServer, chunked: bool) -> None:
    content = CDX_JSON.read_text()
    admin = api_server.token(ADMIN)
    validated = probe.post("validate", token=admin, head=content, chunked=chunked)
    assert validated.status == 200, validated.text
    assert json.loads(validated.text)["composer_components"] == 153
    assert validated.bytes_read == len(content.encode())

    stored = probe.post("sboms?filename=symfony-demo.cdx.json", token=admin, head=content, chunked=chunked)
    assert stored.status == 200, stored.text
    key = json.loads(stored.text)["key"]
    assert KEY_RE.match(key), key
    assert key.endswith("-symfony-demo.cdx.json")
    assert api_server.s3.get_object(Bucket=api_server.bucket, Key=key)["Body"].read() == CDX_JSON.read_bytes()


def post_headers_only(api_server: ApiServer, api: str, headers: dict[str, str]) -> tuple[int, Any]:
    """Send a POST's headers and never its body: the status and detail that come back anyway."""
    address = urlsplit(api_server.url)
    connection = http.client.HTTPConnection(address.hostname or "127.0.0.1", address.port, timeout=15)
    try:
        connection.putrequest("POST", f"/composer-mirror/api/{api}")
        for name, value in headers.items():
            connection.putheader(name, value)
        connection.endheaders()
        response = connection.getresponse()
        return response.status, json.loads(response.read())["detail"]
    finally:
        connection.close()


@pytest.mark.integration
def test_the_api_server_answers_before_a_refused_body_is_sent(api_server: ApiServer) -> None:
    limit = sbom.MAX_SBOM_BYTES
    anonymous = {**HEADER, "Content-Type": form(0)["content_type"], "Content-Length": str(LARGE)}
    assert post_headers_only(api_server, "sboms", anonymous) == (401, "Not authenticated")
    admin = api_server.token(ADMIN)
    oversized = {**HEADER, "Authorization": f"Bearer {admin}", "Content-Length": str(limit + 1)}
    assert post_headers_only(api_server, "sboms", oversized) == (
        413,
        f"SBOM uploads are limited to {limit} bytes: this one declares {limit + 1}",
    )


@pytest.mark.integration
def test_the_api_server_stores_an_upload_sent_as_the_body(api_server: ApiServer) -> None:
    headers = {**HEADER, "Authorization": f"Bearer {api_server.token(ADMIN)}"}
    url = f"{api_server.url}/composer-mirror/api/sboms?filename=symfony-demo.cdx.json"
    # Two contents (JSON allows trailing white space), so that the two keys differ.
    content = CDX_JSON.read_bytes()
    chunked = content + b"\n"
    for sent, body in ((content, content), (chunked, iter([chunked[:1000], chunked[1000:]]))):
        response = requests.post(url, data=body, headers=headers, timeout=30)
        assert response.status_code == 200, response.text
        key = response.json()["key"]
        assert key in api_server.sbom_keys()
        assert api_server.s3.get_object(Bucket=api_server.bucket, Key=key)["Body"].read() == sent
