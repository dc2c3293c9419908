"""The library imports without Airflow, but for the two modules that turn it into tasks."""

from __future__ import annotations

import os
import pkgutil
import subprocess
import sys
from pathlib import Path

import composer_mirror

AIRFLOW_MODULES = {"composer_mirror.airflow_adapter", "composer_mirror.mirror_tasks"}
INCLUDE = Path(composer_mirror.__file__).resolve().parents[1]

IMPORT_ALL = """
import importlib, sys
sys.modules["airflow"] = None  # any import of Airflow now raises ImportError
for name in sys.argv[1:]:
    importlib.import_module(name)
print(len(sys.argv) - 1)
"""


def library_modules() -> list[str]:
    found = pkgutil.walk_packages(composer_mirror.__path__, prefix="composer_mirror.")
    return sorted(module.name for module in found if module.name not in AIRFLOW_MODULES)


def test_every_module_but_the_adapter_and_the_tasks_imports_without_airflow() -> None:
    modules = library_modules()
    assert "composer_mirror.sync.packages" in modules and "composer_mirror.store.base" in modules
    env = {**os.environ, "PYTHONPATH": str(INCLUDE)}
    result = subprocess.run(
        [sys.executable, "-c", IMPORT_ALL, *modules], env=env, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip() == str(len(modules))
