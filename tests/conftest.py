"""Shared fixtures: the fixture registry, a moto S3 server for the session, a fresh public bucket per test, Airflow."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devtools.fixture_registry import Registry, RegistryServer
from devtools.harness import SAMPLE_LOCK, AirflowEnv, MotoServer, aws_connection

FIXTURES = Path(__file__).parent / "fixtures"
_buckets = itertools.count()


@pytest.fixture
def registry_options() -> dict[str, Any]:
    """How ``registry`` builds its data: ``Registry.from_lock`` keywords for the sample application's lock
    file (``lock=`` names another), or ``synthetic=N`` and ``Registry.synthetic`` keywords.

    A conftest or a module overrides it for its tests; ``@pytest.mark.parametrize("registry_options",
    [{...}])`` sets it for one test.
    """
    return {"extra_versions": 1}


@pytest.fixture
def registry(registry_options: dict[str, Any]) -> Registry:
    """A fresh fixture registry for one test (tests mutate it): by default the sample application's
    packages, each with one older tag."""
    options = dict(registry_options)
    if "synthetic" in options:
        return Registry.synthetic(options.pop("synthetic"), **options)
    return Registry.from_lock(options.pop("lock", SAMPLE_LOCK), **options)


@pytest.fixture
def registry_server(registry: Registry) -> Iterator[RegistryServer]:
    """``registry`` served on loopback for one test; a bug in the server's handler fails the test."""
    with RegistryServer(registry) as server:
        yield server
    assert server.errors == []


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    server = MotoServer().start()
    yield server
    server.stop()


@pytest.fixture
def bucket(moto_server: MotoServer) -> str:
    name = f"mirror-{next(_buckets)}"
    moto_server.create_public_bucket(name)
    return name


@pytest.fixture(scope="session")
def airflow_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("airflow-home")
    AirflowEnv(home).migrate()
    return home


@pytest.fixture
def mirror_airflow(airflow_home: Path, moto_server: MotoServer, bucket: str):  # type: ignore[no-untyped-def]
    """Build an AirflowEnv whose Variables point the mirror at ``upstream`` and the test's bucket."""

    def make(upstream_url: str, packages: list[str], prefix: str = "repo", **variables: str) -> AirflowEnv:
        import json

        return AirflowEnv(
            airflow_home,
            variables={
                "composer_mirror_upstream_url": upstream_url,
                "composer_mirror_bucket": bucket,
                "composer_mirror_prefix": prefix,
                "composer_mirror_public_url": f"{moto_server.endpoint}/{bucket}/{prefix}",
                "composer_mirror_packages": json.dumps(packages),
                **variables,
            },
            extra_env={"AIRFLOW_CONN_AWS_DEFAULT": aws_connection(moto_server.endpoint)},
        )

    return make
