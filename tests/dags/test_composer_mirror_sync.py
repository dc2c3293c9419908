"""End to end: fixture upstream -> `airflow dags test composer_mirror_sync` -> moto S3 -> real composer."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from composer_mirror.batches import MIN_BATCH_SIZE
from devtools.fixture_registry import Registry, RegistryServer
from devtools.harness import DEMO_SELECTION, MotoServer, composer_install, sample_replace
from tests.mirror_checks import check_repository, root_document, snapshot

pytestmark = pytest.mark.integration

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
SELECTION = [*DEMO_SELECTION, "twig/twig"]


def run_report(moto_server: MotoServer, bucket: str) -> dict:
    """The last run's report: status.json."""
    return json.loads(moto_server.client().get_object(Bucket=bucket, Key="repo/status.json")["Body"].read())


def list_keys(moto_server: MotoServer, bucket: str, prefix: str) -> list[str]:
    listed = moto_server.client().list_objects_v2(Bucket=bucket, Prefix=prefix)
    return [item["Key"] for item in listed.get("Contents", [])]


@pytest.fixture(scope="module")
def registry() -> Registry:
    return Registry.from_lock(FIXTURES / "symfony-demo/composer.lock")


def test_sync_mirrors_the_selection_and_composer_installs_from_the_mirror_alone(
    registry: Registry, mirror_airflow, moto_server: MotoServer, bucket: str, tmp_path: Path
) -> None:
    # No changes feed: the second run must revalidate every p2 file with a conditional request.
    server = RegistryServer(registry, changes_feed=False)
    server.start()
    try:
        airflow = mirror_airflow(server.url, SELECTION)
        repository = airflow.variables["composer_mirror_public_url"]

        # Every value between tasks goes through the bucket (as a large selection's do); the last task clears them.
        first = airflow.dags_test("composer_mirror_sync", AIRFLOW_VAR_COMPOSER_MIRROR_HANDOFF_INLINE_BYTES="0")
        assert first.returncode == 0, first.stdout[-4000:] + first.stderr[-4000:]
        assert "/handoff/composer_mirror_sync/" in first.stdout + first.stderr
        assert list_keys(moto_server, bucket, "repo/mirror-state/handoff/") == []

        published = check_repository(repository)
        assert published.problems == []
        expected = {n for n in registry.package_names() if n.startswith(("psr/", "symfony/polyfill-"))}
        expected |= {s for s in SELECTION if "*" not in s}
        assert set(published.packages) == expected
        assert published.archives > len(expected)
        root = root_document(repository)
        assert root["metadata-url"] == f"/{bucket}/repo/p2/%package%.json"
        assert root["security-advisories"] == {"metadata": True}

        before = snapshot(moto_server.client(), bucket)
        server.reset_log()
        second = airflow.dags_test("composer_mirror_sync")
        assert second.returncode == 0, second.stdout[-4000:] + second.stderr[-4000:]
        assert snapshot(moto_server.client(), bucket) == before, "an unchanged run rewrote objects"
        assert server.count(path_regex=r"^/(zipball|codeload)/") == 0, "an unchanged run downloaded archives"
        report = run_report(moto_server, bucket)
        assert report["s3_requests"].get("PUT", 0) == 0
        assert report["upstream"].get("metadata_304", 0) >= len(expected)
        assert report["upstream"].get("metadata_200", 0) == 0
    finally:
        server.stop()

    # The upstream is gone: composer resolves and installs inter-dependent packages from the mirror.
    if shutil.which("composer") is None:
        pytest.fail("composer is not installed (make test installs the Debian package)")
    result = composer_install(
        tmp_path / "app", repository, {"monolog/monolog": "^3.0", "symfony/console": "*"}, replace=sample_replace()
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    installed = {
        p["name"] for p in json.loads((tmp_path / "app/vendor/composer/installed.json").read_text())["packages"]
    }
    assert {"monolog/monolog", "psr/log", "symfony/console", "symfony/string"} <= installed

    # composer audit reads the full advisories embedded in the mirror's p2 files.
    audited = composer_install(tmp_path / "audit", repository, {"twig/twig": "3.27.0"}, replace=sample_replace())
    assert audited.returncode == 0, audited.stdout[-3000:] + audited.stderr[-3000:]
    audit = subprocess.run(
        ["composer", "audit", "--format=json", "--no-interaction"],
        cwd=tmp_path / "audit",
        env={**os.environ, "COMPOSER_HOME": str(tmp_path / "audit/.composer-home")},
        capture_output=True,
        text=True,
    )
    advisories = json.loads(audit.stdout)["advisories"]
    assert [a["advisoryId"] for a in advisories["twig/twig"]] == ["PKSA-ca83-15c3-30e3"], audit.stderr


def test_a_run_in_three_batches_mirrors_every_package_once(
    mirror_airflow, moto_server: MotoServer, bucket: str
) -> None:
    """Three mapped instances of each batch task, each on its own share of the state shards, make one whole index."""
    registry = Registry.synthetic(packages=2 * MIN_BATCH_SIZE + 50, versions=1, vendors=20, dev_every=0)
    with RegistryServer(registry) as server:
        airflow = mirror_airflow(server.url, ["*"], composer_mirror_max_batches="3")
        run = airflow.dags_test("composer_mirror_sync")
        assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
        report = run_report(moto_server, bucket)
        assert (report["batches"], report["failures"]) == (3, [])
        published = check_repository(airflow.variables["composer_mirror_public_url"])
        assert published.problems == []
        assert set(published.packages) == set(registry.package_names())
        downloads = [r.path for r in server.requests if r.path.startswith("/codeload/")]
        assert len(downloads) == len(set(downloads)) == len(registry.package_names()), "an archive fetched twice"
