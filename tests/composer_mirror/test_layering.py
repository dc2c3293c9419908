"""Only the Airflow layer (composer_mirror.airflow) imports Airflow; the DAG files import only that
layer, the task SDK and pendulum, so parsing them stays cheap."""

from __future__ import annotations

import ast
import os
import pkgutil
import subprocess
import sys
from pathlib import Path

import composer_mirror

AIRFLOW_LAYER = "composer_mirror.airflow"
INCLUDE = Path(composer_mirror.__file__).resolve().parents[1]
DAGS = INCLUDE.parent / "dags"

IMPORT_ALL = """
import importlib, sys
sys.modules["airflow"] = None  # any import of Airflow now raises ImportError
for name in sys.argv[1:]:
    importlib.import_module(name)
print(len(sys.argv) - 1)
"""

# What a dag processor pays for every parse of the DAG files: no boto3, botocore or amazon provider hooks.
PARSE_ALL = """
import importlib.util, sys
for path in sys.argv[1:]:
    spec = importlib.util.spec_from_file_location(f"dag_{len(sys.modules)}", path)
    spec.loader.exec_module(importlib.util.module_from_spec(spec))
heavy = ("boto3", "botocore", "airflow.providers.amazon.aws")
print(sorted(name for name in sys.modules if name.startswith(heavy)))
"""


def in_airflow_layer(module: str) -> bool:
    return module == AIRFLOW_LAYER or module.startswith(AIRFLOW_LAYER + ".")


def library_modules() -> list[str]:
    found = pkgutil.walk_packages(composer_mirror.__path__, prefix="composer_mirror.")
    return sorted(module.name for module in found if not in_airflow_layer(module.name))


def test_every_module_outside_the_airflow_layer_imports_without_airflow() -> None:
    modules = library_modules()
    assert "composer_mirror.sync.packages" in modules and "composer_mirror.store.base" in modules
    env = {**os.environ, "PYTHONPATH": str(INCLUDE)}
    result = subprocess.run(
        [sys.executable, "-c", IMPORT_ALL, *modules], env=env, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip() == str(len(modules))


def module_level_imports(path: Path) -> list[str]:
    """The modules a file imports outside any function or class (what parsing it executes)."""
    tree = ast.parse(path.read_text(), str(path))
    names: list[str] = []
    for node in tree.body:
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            names.append(node.module or "")
    return names


def allowed_in_a_dag_file(module: str) -> bool:
    return module in {"__future__", "pendulum", "airflow.sdk"} or in_airflow_layer(module)


def test_dag_files_import_only_the_airflow_layer_the_task_sdk_and_pendulum() -> None:
    files = sorted(DAGS.glob("*.py"))
    assert len(files) >= 5
    for path in files:
        imported = module_level_imports(path)
        assert any(in_airflow_layer(name) for name in imported), path.name
        assert [name for name in imported if not allowed_in_a_dag_file(name)] == [], path.name


def test_parsing_the_dag_files_loads_no_aws_sdk() -> None:
    env = {**os.environ, "PYTHONPATH": str(INCLUDE)}
    files = [str(path) for path in sorted(DAGS.glob("*.py"))]
    result = subprocess.run(
        [sys.executable, "-c", PARSE_ALL, *files], env=env, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().splitlines()[-1] == "[]"
