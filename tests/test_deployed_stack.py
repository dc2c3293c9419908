"""The mirror as deployed: `make stack`'s topology (Celery on PostgreSQL and Redis, two workers, nginx).

One stack, one scenario, in the order a platform team lives it:

1. ``composer_mirror_sync`` is triggered through the REST API as the UI does, over 400 packages in
   two mapped batches of 200; the workers' own logs show mapped batches on both workers.
2. In the middle of a ``fetch_archives`` batch, one worker's process group is SIGKILLed. With the
   task heartbeat timeout lowered, Airflow fails that task instance and its retry runs on the other
   worker: the run succeeds, every selected version is published, and no archive whose marker was
   already stored when the worker died is downloaded again. A reader polls ``packages.json``
   through nginx the whole time: it is never invalid and never shrinks.
3. The bucket is served only where the layout says: anonymous GETs of the root, a p2 file and an
   archive answer 200 on S3 and through nginx; an uploaded SBOM and the mirror's state do not.
4. An SBOM uploaded from the upload page (a real browser, signed in to the same api-server)
   triggers ``composer_mirror_sbom``, which runs to success on the remaining worker.
5. The upstream is stopped and ``composer`` installs through nginx.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import requests

from composer_mirror.store.layout import MARKER_DIR, archive_id
from devtools.fixture_registry import FaultRule, Registry, RegistryServer
from devtools.harness import composer_install, s3_client
from devtools.stack import ADMIN, Ports, Stack, StackSettings, worker_name
from tests.browser import Browser, chromium_path

pytestmark = [pytest.mark.integration, pytest.mark.browser, pytest.mark.stack]

PACKAGES = 400
SYNC, SBOM = "composer_mirror_sync", "composer_mirror_sbom"
# Each archive download takes this long, so a batch of 400 archives (5 at a time) lasts about 8 s:
# long enough to kill a worker in the middle of it.
ARCHIVE_DELAY = 0.1
WORKLOAD = re.compile(
    r"Executing workload in Celery: .*?task_id='(?P<task>\w+)'.*?try_number=(?P<try>\d+).*?map_index=(?P<map>-?\d+)"
)
CODELOAD = re.compile(r"^/codeload/(?P<name>[^/]+/[^/]+)/(?P<ref>[^/]+)\.zip$")


@pytest.fixture(scope="module")
def upstream() -> Iterator[RegistryServer]:
    """The stack's upstream for the module (the stack outlives a test): synthetic packages, slow archives."""
    data = Registry.synthetic(PACKAGES, versions=2, vendors=20, dev_every=0, metadata_bytes=800)
    server = RegistryServer(data)
    server.faults = [FaultRule(r"^/codeload/", "delay", delay=ARCHIVE_DELAY)]
    with server:
        yield server


@pytest.fixture(scope="module")
def deployed(upstream: RegistryServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    settings = StackSettings(
        tmp_path_factory.mktemp("stack"),
        ["vendor*/*"],
        upstream.url,
        ports=Ports.free(),
        overrides={
            # A dead worker's task instances are failed (and retried) after 20 s, not 300 s.
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "20",
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "3",
            "AIRFLOW__CORE__DEFAULT_TASK_RETRY_DELAY": "1",
            # Runs come from the REST API only: no scheduled run races the triggered one.
            "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
            # One task at a time per worker, so the two batches must go to two workers.
            "AIRFLOW__CELERY__WORKER_CONCURRENCY": "1",
            "AIRFLOW_VAR_COMPOSER_MIRROR_MAX_BATCHES": "2",
        },
    )
    stack = Stack(settings).up(on_step=lambda step: None)
    try:
        yield stack
    finally:
        stack.down()
        assert not [service.name for service in stack.services if service.alive()]


class RootWatcher(threading.Thread):
    """Reads packages.json through nginx until stopped; records every answer that is not a valid root
    or that lists fewer packages than an earlier one."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url, self.problems, self.reads, self.largest = url, [], 0, 0
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.is_set():
            response = requests.get(self.url, timeout=10)
            self.reads += 1
            if response.status_code == 404 and not self.largest:
                continue  # nothing published yet
            try:
                listed = len(response.json()["available-packages"])
                assert "metadata-url" in response.json()
            except (ValueError, KeyError, TypeError, AssertionError):
                self.problems.append(f"{response.status_code}: {response.text[:200]!r}")
                continue
            if listed < self.largest:
                self.problems.append(f"the root shrank from {self.largest} to {listed} packages")
            self.largest = max(self.largest, listed)
            time.sleep(0.1)


def workloads(stack: Stack, worker: str) -> list[dict[str, str]]:
    """The task instances a worker's own log says it executed."""
    return [match.groupdict() for match in WORKLOAD.finditer(stack.settings.log(worker).read_text(errors="replace"))]


def wait_until(what: str, predicate: Any, timeout: float, poll: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(poll)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def run_state(stack: Stack, dag_id: str, run_id: str) -> str:
    response = stack.api("GET", f"/api/v2/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}")
    response.raise_for_status()
    return str(response.json()["state"])


def finished(stack: Stack, dag_id: str, run_id: str) -> str | None:
    """The run's final state, or None while it is queued or running."""
    state = run_state(stack, dag_id, run_id)
    return state if state in {"success", "failed"} else None


def task_instances(stack: Stack, dag_id: str, run_id: str) -> list[dict[str, Any]]:
    path = f"/api/v2/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}/taskInstances"
    response = stack.api("GET", path, params={"limit": 100})
    response.raise_for_status()
    return list(response.json()["task_instances"])


def markers(stack: Stack) -> set[str]:
    """Archive markers in the bucket: one per archive the mirror has stored."""
    s3, settings = s3_client(stack.settings.s3_endpoint), stack.settings
    keys: set[str] = set()
    for page in s3.get_paginator("list_objects_v2").paginate(
        Bucket=settings.bucket, Prefix=f"{settings.prefix}/{MARKER_DIR}"
    ):
        keys.update(item["Key"] for item in page.get("Contents", []))
    return keys


def marker_key(stack: Stack, upstream: RegistryServer, name: str, reference: str) -> str:
    (entry,) = [e for e in upstream.versions(name) if e["dist"]["reference"] == reference]
    return f"{stack.settings.prefix}/{MARKER_DIR}{name}/{archive_id(entry['version_normalized'], reference)}.json"


@pytest.mark.skipif(shutil.which("composer") is None, reason="composer is not installed (make tools)")
@pytest.mark.skipif(chromium_path() is None, reason="chromium is not installed (make tools)")
def test_the_deployed_stack_survives_a_dead_worker_and_serves_composer(
    deployed: Stack, upstream: RegistryServer, tmp_path: Path
) -> None:
    stack, settings = deployed, deployed.settings
    watcher = RootWatcher(f"{settings.mirror_url}/packages.json")
    watcher.start()

    # 1. Trigger the sync as the UI does.
    response = stack.api("POST", f"/api/v2/dags/{SYNC}/dagRuns", json={"logical_date": None, "note": "stack test"})
    assert response.status_code == 200, response.text
    run_id = response.json()["dag_run_id"]

    # 2. Kill the worker that runs a fetch_archives batch, once that batch has stored some archives.
    def fetching() -> str | None:
        for index in range(settings.workers):
            name = worker_name(index)
            if any(w["task"] == "fetch_archives" and w["map"] != "-1" for w in workloads(stack, name)):
                return name
        return None

    victim = wait_until("a fetch_archives batch to start", fetching, timeout=150)
    started = len(markers(stack))
    wait_until("the batch to store some archives", lambda: len(markers(stack)) >= started + 20, timeout=60, poll=0.2)
    (service,) = [s for s in stack.services if s.name == victim]
    os.killpg(service.pid, signal.SIGKILL)
    killed_at = time.time()
    stored_at_kill = markers(stack)
    assert run_state(stack, SYNC, run_id) == "running"

    final = wait_until("the run to finish", lambda: finished(stack, SYNC, run_id), 240, 2)
    watcher.halt.set()
    watcher.join(15)
    instances = task_instances(stack, SYNC, run_id)
    assert final == "success", json.dumps(instances, indent=1)[:4000]

    # Mapped batches ran on both workers (their own logs), and the dead worker's batch was retried.
    (survivor,) = {worker_name(index) for index in range(settings.workers)} - {victim}
    seen = {name: workloads(stack, name) for name in (victim, survivor)}
    for name, executed in seen.items():
        assert any(w["map"] != "-1" for w in executed), f"{name} ran no mapped batch: {executed}"
    killed_batches = {w["map"] for w in seen[victim] if w["task"] == "fetch_archives"}
    retried = [w for w in seen[survivor] if w["task"] == "fetch_archives" and w["map"] in killed_batches]
    assert any(int(w["try"]) >= 2 for w in retried), f"no retry of {killed_batches} on {survivor}: {seen[survivor]}"

    # Nothing lost: every version of every package is published; nothing stored is downloaded again.
    root = requests.get(f"{settings.mirror_url}/packages.json", timeout=10).json()
    assert len(root["available-packages"]) == PACKAGES
    after_kill = [r for r in upstream.requests if r.time >= killed_at and CODELOAD.match(r.path)]
    again = [
        r.path for r in after_kill if marker_key(stack, upstream, *CODELOAD.match(r.path).groups()) in stored_at_kill
    ]
    assert not again, f"{len(again)} archives stored before the kill were downloaded again: {again[:5]}"
    assert len(markers(stack)) == PACKAGES * 2
    assert watcher.reads > 10 and not watcher.problems, watcher.problems[:5]

    # 3. Anonymous reads: the repository on every serving path; never an SBOM or the state.
    check_anonymous_reads(stack, root)

    # 4. An SBOM from the upload page, mirrored by composer_mirror_sbom on the remaining worker.
    names = sorted(root["available-packages"])[:3]
    sbom = tmp_path / "team-app.cdx.json"
    sbom.write_text(json.dumps(cyclonedx(upstream, names)))
    sbom_run = upload_from_the_page(stack, sbom)
    state = wait_until("the SBOM run to finish", lambda: finished(stack, SBOM, sbom_run), 180, 2)
    assert state == "success", json.dumps(task_instances(stack, SBOM, sbom_run), indent=1)[:4000]
    sboms = s3_client(settings.s3_endpoint).list_objects_v2(Bucket=settings.bucket, Prefix=f"{settings.prefix}/sboms/")
    (uploaded,) = [item["Key"] for item in sboms["Contents"]]
    for url in (
        f"{settings.s3_endpoint}/{settings.bucket}/{uploaded}",
        f"{settings.mirror_url}/{uploaded[len(settings.prefix) + 1 :]}",
    ):
        assert requests.get(url, timeout=10).status_code in {403, 404}, url

    # 5. The upstream gone, composer installs through nginx.
    upstream.stop()
    newest = names[-1]
    result = composer_install(tmp_path / "project", settings.mirror_url, {newest: "*"})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert (tmp_path / "project" / "vendor" / newest / "composer.json").is_file()


def check_anonymous_reads(stack: Stack, root: dict[str, Any]) -> None:
    """200 for the root, a p2 file and an archive; 403/404 for the state, on S3 and through nginx."""
    settings = stack.settings
    name = sorted(root["available-packages"])[0]
    p2 = requests.get(f"{settings.mirror_url}/p2/{name}.json", timeout=10)
    assert p2.status_code == 200
    dist_url = next(iter(p2.json()["packages"][name]))["dist"]["url"]
    assert dist_url.startswith(settings.mirror_url)
    public = ["packages.json", f"p2/{name}.json", dist_url[len(settings.mirror_url) + 1 :]]
    private = ["mirror-state/catalog.json", next(iter(markers(stack)))[len(settings.prefix) + 1 :]]
    for base in (f"{settings.s3_endpoint}/{settings.bucket}/{settings.prefix}", settings.mirror_url):
        for key in public:
            assert requests.get(f"{base}/{key}", timeout=10).status_code == 200, f"{base}/{key}"
        for key in private:
            assert requests.get(f"{base}/{key}", timeout=10).status_code in {403, 404}, f"{base}/{key}"


def cyclonedx(upstream: RegistryServer, names: list[str]) -> dict[str, Any]:
    """A CycloneDX 1.5 document listing the newest tagged version of each package."""
    components = []
    for name in names:
        version = upstream.versions(name)[-1]["version"]
        vendor, package = name.split("/")
        components.append(
            {
                "type": "library",
                "group": vendor,
                "name": package,
                "version": version,
                "purl": f"pkg:composer/{name}@{version}",
            }
        )
    return {"bomFormat": "CycloneDX", "specVersion": "1.5", "version": 1, "components": components}


def upload_from_the_page(stack: Stack, sbom: Path) -> str:
    """Sign in, choose the file, press Mirror; the run id the page links to."""
    page_url = f"{stack.settings.api_url}/composer-mirror/"
    with Browser() as browser:
        browser.sign_in_to(page_url, ADMIN)
        browser.set_files("#sbom-file", sbom)
        assert browser.wait_for("!document.getElementById('mirror').hidden && 'shown'") == "shown"
        browser.click("#mirror-button")
        run_id = browser.wait_for("document.getElementById('run-link').textContent")
        assert browser.text("#error") == ""
    return str(run_id)
