"""End to end: an application's SBOM -> `composer_mirror_sbom` -> composer installs the application."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from devtools.fixture_registry import Registry, RegistryServer
from devtools.harness import MotoServer, composer_install
from tests.mirror_checks import check_repository, snapshot

pytestmark = pytest.mark.integration

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
SBOMS = FIXTURES / "sboms"
APP = FIXTURES / "symfony-demo"


@pytest.fixture(scope="module")
def registry() -> Registry:
    return Registry.from_lock(APP / "composer.lock")


def test_cyclonedx_sbom_mirrors_every_package_of_the_application_and_bad_input_changes_nothing(
    registry: Registry, mirror_airflow, moto_server: MotoServer, bucket: str, tmp_path: Path
) -> None:
    with RegistryServer(registry) as server:
        airflow = mirror_airflow(server.url, [])
        repository = airflow.variables["composer_mirror_public_url"]
        sbom = (SBOMS / "symfony-demo.cdx.json").read_text()

        dry = airflow.dags_test("composer_mirror_sbom", {"sbom": sbom, "dry_run": True})
        assert dry.returncode == 0, dry.stdout[-3000:] + dry.stderr[-3000:]
        assert "[DRY RUN] plan: total: " in dry.stdout + dry.stderr
        assert snapshot(moto_server.client(), bucket) == {}, "a dry run wrote to the bucket"

        run = airflow.dags_test("composer_mirror_sbom", {"sbom": sbom})
        assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
        published = check_repository(repository)
        assert published.problems == []
        locked = json.loads((APP / "composer.lock").read_text())
        for package in locked["packages"] + locked["packages-dev"]:
            assert package["name"] in published.packages
            assert package["version"] in published.packages[package["name"]], package["name"]

        before = snapshot(moto_server.client(), bucket)
        bad_inputs = [
            ({"sbom": '{"bomFormat": "CycloneDX", "specVersion": "1.5", "components": [}'}, "malformed JSON"),
            ({"purls": ["pkg:composer/Not A Name@1.0"]}, "pkg:composer/Not A Name@1.0"),
            ({"purls": ["pkg:composer/psr/log@9.9.9"]}, "psr/log 9.9.9: version not found upstream"),
            ({"sbom_s3_key": "repo/sboms/missing.json"}, "does not exist"),
        ]
        for conf, message in bad_inputs:
            failed = airflow.dags_test("composer_mirror_sbom", conf)
            output = failed.stdout + failed.stderr
            assert failed.returncode != 0, f"{conf} did not fail the run"
            assert message in output, f"{conf}: the log does not name the problem ({message})"
            assert snapshot(moto_server.client(), bucket) == before, f"{conf} changed the bucket"

    # The upstream is gone: composer resolves the application's own composer.json from the mirror.
    if shutil.which("composer") is None:
        pytest.fail("composer is not installed (make test installs the Debian package)")
    project = tmp_path / "app"
    project.mkdir()
    shutil.copy(APP / "composer.json", project / "composer.json")
    result = composer_install(project, repository, {})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    installed = json.loads((project / "vendor/composer/installed.json").read_text())["packages"]
    assert len(installed) == 153
