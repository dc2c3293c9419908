"""A whole-registry mirror kept fresh through the upstream's changes feed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from devtools.fixture_registry import Registry, RegistryServer
from devtools.harness import MotoServer
from tests.mirror_checks import check_repository, root_document

pytestmark = pytest.mark.integration

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def catalog(moto_server: MotoServer, bucket: str) -> dict:
    body = moto_server.client().get_object(Bucket=bucket, Key="repo/mirror-state/catalog.json")["Body"].read()
    return json.loads(body)


def metadata_paths(server: RegistryServer) -> list[str]:
    return sorted(r.path for r in server.requests if r.path.startswith(("/p2/", "/packages/list.json")))


def test_whole_registry_runs_touch_only_what_the_changes_feed_names(
    mirror_airflow, moto_server: MotoServer, bucket: str
) -> None:
    registry = Registry.from_lock(FIXTURES / "symfony-demo/composer.lock", extra_versions=1)
    with RegistryServer(registry) as server:
        airflow = mirror_airflow(server.url, ["*"], composer_mirror_delete_grace_hours="0")
        repository = airflow.variables["composer_mirror_public_url"]

        full = airflow.dags_test("composer_mirror_sync")
        assert full.returncode == 0, full.stdout[-4000:] + full.stderr[-4000:]
        assert set(root_document(repository)["available-packages"]) == set(registry.package_names())
        assert catalog(moto_server, bucket)["changes_since"]

        server.reset_log()
        quiet = airflow.dags_test("composer_mirror_sync")
        assert quiet.returncode == 0, quiet.stdout[-4000:] + quiet.stderr[-4000:]
        assert metadata_paths(server) == [], "an unchanged incremental run asked for package files"
        assert server.count(path_regex=r"^/metadata/changes\.json") == 1

        registry.add_version("psr/log", "3.0.3")
        server.reset_log()
        changed = airflow.dags_test("composer_mirror_sync")
        assert changed.returncode == 0, changed.stdout[-4000:] + changed.stderr[-4000:]
        assert metadata_paths(server) == ["/p2/psr/log.json"]
        published = check_repository(repository)
        assert "3.0.3" in published.packages["psr/log"]
        assert published.problems == []

        registry.delete_package("psr/container")
        removed = airflow.dags_test("composer_mirror_sync")
        assert removed.returncode == 0, removed.stdout[-4000:] + removed.stderr[-4000:]
        available = root_document(repository)["available-packages"]
        assert "psr/container" not in available, "a package deleted upstream past the grace period stayed"
        assert "psr/log" in available
        assert check_repository(repository, download=False).problems == []
