"""Fixtures of the fault-injection suite (the session's moto server and migrated Airflow home come from tests/)."""

from __future__ import annotations

from pathlib import Path

import pytest

from devtools.fixture_registry import Registry
from tests.faults.helpers import LOCK, private_home


@pytest.fixture
def registry() -> Registry:
    """The sample application's packages, one tagged version each: small and fast to mirror."""
    return Registry.from_lock(LOCK, extra_versions=0)


@pytest.fixture
def home(airflow_home: Path, tmp_path: Path) -> Path:
    """A private copy of the migrated AIRFLOW_HOME (a killed or concurrent run cannot lock another's SQLite)."""
    return private_home(airflow_home, tmp_path / "airflow-home")
