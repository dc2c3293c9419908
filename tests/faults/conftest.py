"""Fixtures of the fault-injection suite; the session's moto server and migrated Airflow home come from tests/."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.faults.helpers import private_home


@pytest.fixture
def registry_options() -> dict[str, Any]:
    """The sample application's packages, one tagged version each: small and fast to mirror."""
    return {"extra_versions": 0}


@pytest.fixture
def home(airflow_home: Path, tmp_path: Path) -> Path:
    """A private copy of the migrated AIRFLOW_HOME (a killed or concurrent run cannot lock another's SQLite)."""
    return private_home(airflow_home, tmp_path / "airflow-home")
