"""The DAG tests' Airflow: one batch per run unless a test asks for more.

`airflow dags test` runs one task at a time, so a second batch adds task runs and nothing runs side
by side; the DAGs plan min(composer_mirror_max_batches, [core] parallelism) batches whoever runs
them, so the tests choose one here (and more where a test is about batches).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from devtools.harness import AirflowEnv


@pytest.fixture
def mirror_airflow(mirror_airflow: Callable[..., AirflowEnv]) -> Callable[..., AirflowEnv]:
    def make(upstream_url: str, packages: list[str], prefix: str = "repo", **variables: str) -> AirflowEnv:
        return mirror_airflow(upstream_url, packages, prefix, **{"composer_mirror_max_batches": "1", **variables})

    return make
