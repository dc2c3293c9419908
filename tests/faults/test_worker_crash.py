"""A worker killed between two archive uploads: the index stays whole, the next run redoes nothing stored.

The kill point is made exact by the S3 fault proxy: it lets two archive uploads through, then holds
every later one forever; once one is held, the whole `airflow dags test` process group gets SIGKILL,
as an OOM kill or a lost node would do it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.faults.helpers import (
    PREFIX,
    airflow_env,
    archive_markers,
    mirror_variables,
    private_home,
    run_pipeline,
    tail,
)
from tests.faults.s3_proxy import S3FaultProxy, S3Rule
from tests.fixture_registry import Registry, RegistryServer
from tests.harness import VENV_BIN, MotoServer
from tests.mirror_checks import check_repository, snapshot

pytestmark = pytest.mark.integration

NEW = "99.0.0"


def stored_archives(markers: dict[str, dict]) -> set[str]:
    """The registry paths of the archives the journal says are stored (``/codeload/<name>/<ref>.zip``)."""
    prefix = f"{PREFIX}/mirror-state/archives/"
    return {
        f"/codeload/{key[len(prefix) :].rsplit('/', 1)[0]}/{record['reference']}.zip" for key, record in markers.items()
    }


def test_a_worker_killed_between_uploads_leaves_a_whole_index_and_the_next_run_downloads_nothing_twice(
    registry: Registry, moto_server: MotoServer, bucket: str, airflow_home: Path, tmp_path: Path
) -> None:
    with RegistryServer(registry) as server:
        variables = mirror_variables(server.url, moto_server, bucket, ["psr/*"], composer_mirror_concurrency="1")
        repository = variables["composer_mirror_public_url"]
        assert run_pipeline(variables, moto_server.client())["failures"] == []  # the mirror as it was
        before = check_repository(repository)
        assert before.problems == []
        markers_before = archive_markers(moto_server, bucket)

        psr = [name for name in registry.package_names() if name.startswith("psr/")]
        for name in psr:
            registry.add_version(name, NEW)
        variables["composer_mirror_packages"] = json.dumps(["psr/*", "monolog/monolog"])

        # The run that dies: two archives reach the bucket, the third upload hangs, the process group is killed.
        with S3FaultProxy(moto_server.endpoint, [S3Rule("PUT", r"/dists/", "stall", after=2)]) as proxy:
            airflow = airflow_env(private_home(airflow_home, tmp_path / "killed"), variables, proxy.endpoint)
            with open(tmp_path / "killed.log", "w") as log:
                worker = subprocess.Popen(
                    [str(VENV_BIN / "airflow"), "dags", "test", "composer_mirror_sync"],
                    env=airflow.env(),
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
                try:
                    assert proxy.stalled.wait(240), (tmp_path / "killed.log").read_text()[-4000:]
                    deadline = time.monotonic() + 5
                    while len(archive_markers(moto_server, bucket)) < len(markers_before) + 2:
                        assert time.monotonic() < deadline, "the journal does not record the stored archives"
                        time.sleep(0.1)
                finally:
                    os.killpg(worker.pid, signal.SIGKILL)
                    worker.wait(30)
        killed_markers = archive_markers(moto_server, bucket)
        stored_by_the_killed_run = stored_archives(killed_markers) - stored_archives(markers_before)
        assert len(stored_by_the_killed_run) >= 2

        # Right after the kill, the published root still points only at what exists.
        after_kill = check_repository(repository)
        assert after_kill.problems == []
        assert after_kill.packages == before.packages
        objects_after_kill = snapshot(moto_server.client(), bucket)

        # The next run completes and never downloads again what the killed run had stored.
        server.reset_log()
        second = airflow_env(private_home(airflow_home, tmp_path / "next"), variables, moto_server.endpoint)
        rerun = second.dags_test("composer_mirror_sync")
        assert rerun.returncode == 0, tail(rerun)
        downloaded = [r.path for r in server.requests if r.path.startswith("/codeload/")]
        assert sorted(set(downloaded) & stored_by_the_killed_run) == [], (
            "an archive stored before the kill was fetched again"
        )
        assert len(downloaded) == len(set(downloaded)), "an archive was downloaded twice"

        published = check_repository(repository)
        assert published.problems == []
        assert set(published.packages) == set(psr) | {"monolog/monolog"}
        for name in psr:
            assert NEW in published.packages[name]
        now = snapshot(moto_server.client(), bucket)
        assert all(now[key] == value for key, value in objects_after_kill.items() if "/dists/" in key), "rewritten"
