"""A worker SIGKILLed at each step of the write order: the index stays whole, nothing published is lost,
and the next run finishes the job without downloading again what the killed run had stored.

Each case is a real run (``airflow dags test``) whose whole process group gets SIGKILL, as an OOM kill
or a lost node would do it, at one point of the publisher's write order (composer_mirror.publisher):
archives, package records, p2 files, state shards, then in publish_index the mirrored set, the root
and the changes-feed cursor. The point is made exact by the S3 fault proxy: it holds forever the first
write past that point (matched by method and key), and the kill comes only once the proxy reports the
request held, so the bucket is left exactly as the crash leaves it.

The run after the crash is the sync's steps called in this process (``run_pipeline``): the same code
on the same bucket, without the ~25 s Airflow spends starting a run, which kept six cases over budget.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from devtools.fixture_registry import Registry, RegistryServer
from devtools.harness import VENV_BIN, AirflowEnv, MotoServer
from tests.faults.helpers import (
    PREFIX,
    SELECTION,
    airflow_env,
    archive_markers,
    mirror_variables,
    private_home,
    run_pipeline,
)
from tests.faults.s3_proxy import S3FaultProxy, S3Rule
from tests.mirror_checks import RepositoryCheck, check_repository, snapshot

pytestmark = pytest.mark.integration

NEW = "99.0.0"

# The write each case leaves held, in the order a run reaches them. The killed run adds NEW to every
# psr/* package and mirrors monolog/monolog for the first time, so every one of these writes happens.
KILL_POINTS = [
    # Two archives stored, the third upload hangs: no record names the stored ones yet.
    pytest.param(S3Rule("PUT", rf"^{PREFIX}/dists/", "stall", after=2), id="between-archive-uploads"),
    # Every archive stored, one package record written; every write after it is held, so no p2 file is
    # derived from it.
    pytest.param(
        S3Rule("PUT", ".", "stall", armed_by=("PUT", rf"^{PREFIX}/mirror-state/packages/")),
        id="after-first-record",
    ),
    # One p2 file written from its record, every other p2 write held.
    pytest.param(S3Rule("PUT", rf"^{PREFIX}/p2/", "stall", after=1), id="after-first-p2-file"),
    # Every record and p2 file written, every state shard write held.
    pytest.param(S3Rule("PUT", rf"^{PREFIX}/mirror-state/shards/", "stall"), id="during-shard-writes"),
    # The mirrored set (first catalog write) names monolog/monolog and the new selection; the root does not.
    pytest.param(S3Rule("PUT", rf"^{PREFIX}/packages\.json$", "stall"), id="before-root"),
    # The root lists everything, the changes-feed cursor (second catalog write) is not saved.
    pytest.param(
        S3Rule("PUT", rf"^{PREFIX}/mirror-state/catalog\.json$", "stall", after=1), id="after-root-before-cursor"
    ),
]


def stored_archives(markers: dict[str, dict]) -> set[str]:
    """The registry paths of the archives the journal says are stored (``/codeload/<name>/<ref>.zip``)."""
    prefix = f"{PREFIX}/mirror-state/archives/"
    return {
        f"/codeload/{key[len(prefix) :].rsplit('/', 1)[0]}/{record['reference']}.zip" for key, record in markers.items()
    }


def lost_versions(before: RepositoryCheck, after: RepositoryCheck) -> dict[str, list[str]]:
    """Versions a client saw in ``before`` that ``after`` no longer serves (a mirrored version must stay)."""
    lost = {name: set(versions) - set(after.packages.get(name, [])) for name, versions in before.packages.items()}
    return {name: sorted(versions) for name, versions in lost.items() if versions}


def kill_when_held(airflow: AirflowEnv, proxy: S3FaultProxy, log: Path, settled: Callable[[], bool]) -> None:
    """Run the sync DAG until the proxy holds a request and ``settled`` holds, then SIGKILL its process group.

    ``settled`` covers writes other worker threads had in flight when the request was held, which the
    test's own checks count on.
    """
    with open(log, "w") as output:
        worker = subprocess.Popen(
            [str(VENV_BIN / "airflow"), "dags", "test", "composer_mirror_sync"],
            env=airflow.env(),
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            assert proxy.stalled.wait(240), f"the run never reached the held write\n{log.read_text()[-4000:]}"
            deadline = time.monotonic() + 5
            while not settled():
                assert time.monotonic() < deadline, f"writes in flight never landed; held: {proxy.faults('stall')}"
                time.sleep(0.1)
        finally:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait(30)


@pytest.mark.parametrize("hold", KILL_POINTS)
def test_a_worker_killed_anywhere_in_the_write_order_leaves_a_whole_index_and_the_next_run_completes_it(
    hold: S3Rule, registry: Registry, moto_server: MotoServer, bucket: str, airflow_home: Path, tmp_path: Path
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
        variables["composer_mirror_packages"] = json.dumps(SELECTION)

        # A fresh copy of the rule: the proxy counts requests on it. The run that dies has stored at
        # least two new archives, and the journal records them (each marker follows its archive).
        with S3FaultProxy(moto_server.endpoint, [dataclasses.replace(hold)]) as proxy:
            killed = airflow_env(private_home(airflow_home, tmp_path / "killed"), variables, proxy.endpoint)
            kill_when_held(
                killed,
                proxy,
                tmp_path / "killed.log",
                lambda: len(archive_markers(moto_server, bucket)) >= len(markers_before) + 2,
            )
            held = proxy.faults("stall")
        stored = stored_archives(archive_markers(moto_server, bucket))
        assert len(stored - stored_archives(markers_before)) >= 2

        # Right after the kill, a client sees a valid repository that still serves every version it served.
        after_kill = check_repository(repository)
        assert after_kill.problems == [], held
        assert lost_versions(before, after_kill) == {}, held
        objects_after_kill = snapshot(moto_server.client(), bucket)

        # The next run completes, publishes every new version and never downloads a stored archive again.
        server.reset_log()
        assert run_pipeline(variables, moto_server.client(), run_id="next")["failures"] == []
        downloaded = [r.path for r in server.requests if r.path.startswith("/codeload/")]
        assert sorted(set(downloaded) & stored) == [], "an archive stored before the kill was fetched again"
        assert len(downloaded) == len(set(downloaded)), "an archive was downloaded twice"

        published = check_repository(repository)
        assert published.problems == []
        assert lost_versions(before, published) == {}
        assert set(published.packages) == set(psr) | {"monolog/monolog"}
        assert [name for name in psr if NEW not in published.packages[name]] == []
        now = snapshot(moto_server.client(), bucket)
        assert all(now[key] == value for key, value in objects_after_kill.items() if "/dists/" in key), "rewritten"
