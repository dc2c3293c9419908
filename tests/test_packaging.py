"""The built wheel in a clean virtualenv of the runtime set runs the DAGs, as the image does.

The tests marked integration share one virtualenv for the module: the wheel is built from exactly
what deploy/Dockerfile copies for its ``pip install --no-deps`` step, then requirements.txt (pinned
by constraints-runtime.txt) and the wheel are installed into a fresh virtualenv with no PYTHONPATH,
from a folder outside the repository. Only ``dags/`` and ``plugins/`` are copied into its
AIRFLOW_HOME, the way a deployment puts them beside the installed package.
"""

from __future__ import annotations

import email.parser
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from devtools.harness import ROOT
from tests.test_docker_compose import dockerfile_project_sources

PROJECT = "composer-s3-mirror"
PLUGIN = "composer_mirror_sbom_upload"
# Runs in the clean virtualenv: parse the DAGs and load the plugins as Airflow does, then say where
# composer_mirror came from and what is installed.
PROBE = """
import json, sys, sysconfig
from importlib import metadata

from airflow.dag_processing.dagbag import DagBag
from airflow.plugins_manager import _get_plugins

bag = DagBag(dag_folder=sys.argv[1])
plugins, plugin_errors = _get_plugins()

import composer_mirror
from composer_mirror import listing_page

print(json.dumps({
    "dag_files": {dag_id: dag.fileloc for dag_id, dag in bag.dags.items()},
    "import_errors": {str(path): str(error) for path, error in bag.import_errors.items()},
    "plugins": [plugin.name for plugin in plugins],
    "plugin_apps": [len(plugin.fastapi_apps) for plugin in plugins if plugin.name == sys.argv[2]],
    "plugin_errors": plugin_errors,
    "composer_mirror": composer_mirror.__file__,
    "purelib": sysconfig.get_paths()["purelib"],
    "listing_page": listing_page.page().decode()[:200],
    "installed": sorted(dist.metadata["Name"] for dist in metadata.distributions()),
}))
"""


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without what would point Python at the repository or the dev venv."""
    env = {name: value for name, value in os.environ.items() if name not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return {**env, **extra}


def run(command: list[str], cwd: Path, **env: str) -> str:
    """Run a command, failing the test with the end of its output when it fails."""
    result = subprocess.run(command, cwd=cwd, env=clean_env(**env), capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"{command[:4]} failed:\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
    return result.stdout


def pins(lines: list[str]) -> dict[str, str]:
    """``name==version`` lines as canonical name -> version (comments and other lines left out)."""
    found = {}
    for line in lines:
        match = re.fullmatch(r"([A-Za-z0-9._-]+)==(\S+)", line.strip())
        if match:
            found[canonicalize_name(match.group(1))] = match.group(2)
    return found


def requirement_names(path: Path) -> set[str]:
    """The canonical names a requirements file lists itself (not through ``-r``)."""
    lines = (line.split("#", 1)[0].strip() for line in path.read_text().splitlines())
    return {canonicalize_name(Requirement(line).name) for line in lines if line and not line.startswith("-")}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("packaging")


@pytest.fixture(scope="module")
def wheel(workdir: Path) -> Path:
    """The wheel, built (isolated, setuptools from the index) from what the Dockerfile copies to build it."""
    source = workdir / "source"
    source.mkdir()
    for name in dockerfile_project_sources():
        copy = shutil.copytree if (ROOT / name).is_dir() else shutil.copy2
        copy(ROOT / name, source / name)
    run([sys.executable, "-m", "build", "--wheel", "--outdir", str(workdir / "dist"), str(source)], cwd=workdir)
    (built,) = (workdir / "dist").glob("*.whl")
    return built


@pytest.fixture(scope="module")
def checkout_wheel(workdir: Path) -> Path:
    """The wheel built from the whole working tree, as ``pip install .`` in a checkout builds it:
    devtools/, tests/, bench/ and scripts/ lie beside include/ (caches and the virtualenv left out)."""
    source = workdir / "checkout"
    leave_out = shutil.ignore_patterns(
        ".git", ".venv", ".stack", ".demo", "build", "dist", "*.egg-info", "__pycache__", ".*_cache", ".hypothesis"
    )
    shutil.copytree(ROOT, source, ignore=leave_out)
    assert (source / "devtools" / "__init__.py").is_file()
    run(
        [sys.executable, "-m", "build", "--wheel", "--outdir", str(workdir / "checkout-dist"), str(source)], cwd=workdir
    )
    (built,) = (workdir / "checkout-dist").glob("*.whl")
    return built


def top_level_entries(wheel: Path) -> set[str]:
    with zipfile.ZipFile(wheel) as archive:
        return {name.split("/", 1)[0] for name in archive.namelist()}


@pytest.fixture(scope="module")
def venv(workdir: Path, wheel: Path) -> Path:
    """A clean virtualenv with the runtime set, pinned by constraints-runtime.txt, and the wheel."""
    path = workdir / "venv"
    run([sys.executable, "-m", "venv", str(path)], cwd=workdir)
    python = str(path / "bin" / "python")
    requirements, constraints = str(ROOT / "requirements.txt"), str(ROOT / "constraints-runtime.txt")
    # --no-compile: byte-compiling every installed module takes longer than the install; imports compile what they use.
    install = [python, "-m", "pip", "install", "--quiet", "--no-compile", "-r", requirements, "-c", constraints]
    run([*install, str(wheel)], cwd=workdir)
    return path


@pytest.fixture(scope="module")
def probe(workdir: Path, venv: Path) -> dict[str, Any]:
    """What Airflow in the clean virtualenv finds in an AIRFLOW_HOME holding copies of dags/ and plugins/."""
    home = workdir / "airflow-home"
    for folder in ("dags", "plugins"):
        shutil.copytree(ROOT / folder, home / folder, ignore=shutil.ignore_patterns("__pycache__"))
    output = run(
        [str(venv / "bin" / "python"), "-c", PROBE, str(home / "dags"), PLUGIN],
        cwd=home,
        AIRFLOW_HOME=str(home),
        AIRFLOW__CORE__DAGS_FOLDER=str(home / "dags"),
        AIRFLOW__CORE__PLUGINS_FOLDER=str(home / "plugins"),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
    )
    return json.loads(output.strip().splitlines()[-1])


@pytest.mark.integration
def test_the_wheel_declares_exactly_the_requirements_of_requirements_txt(wheel: Path) -> None:
    """requirements.txt is the one list of runtime dependencies: the wheel's metadata cannot drift from it."""
    with zipfile.ZipFile(wheel) as archive:
        (name,) = [name for name in archive.namelist() if name.endswith(".dist-info/METADATA")]
        metadata = email.parser.BytesHeaderParser().parsebytes(archive.read(name))
    declared = {str(Requirement(value)) for value in metadata.get_all("Requires-Dist", [])}
    lines = (line.split("#", 1)[0].strip() for line in (ROOT / "requirements.txt").read_text().splitlines())
    assert declared == {str(Requirement(line)) for line in lines if line}


@pytest.mark.integration
def test_the_wheel_holds_the_library_alone_and_never_the_development_tools(wheel: Path, checkout_wheel: Path) -> None:
    """devtools/ (the fixture registry, the harness, the local stack), tests/ and bench/ stay out of
    the shipped package, built from the image's sources or from a whole checkout."""
    for built in (wheel, checkout_wheel):
        entries = top_level_entries(built)
        assert {entry for entry in entries if not entry.endswith(".dist-info")} == {"composer_mirror"}, entries


@pytest.mark.integration
def test_every_dag_file_loads_from_the_installed_package_without_import_errors(probe: dict[str, Any]) -> None:
    assert probe["import_errors"] == {}
    loaded_files = {Path(fileloc).name for fileloc in probe["dag_files"].values()}
    assert loaded_files == {path.name for path in (ROOT / "dags").glob("*.py")}


@pytest.mark.integration
def test_composer_mirror_is_imported_from_the_virtualenv_not_the_repository(probe: dict[str, Any]) -> None:
    module = Path(probe["composer_mirror"])
    assert module.is_relative_to(probe["purelib"]), module
    assert not module.is_relative_to(ROOT), module
    # The package's data files are installed too: the listing page is read through importlib.resources.
    assert probe["listing_page"] == (ROOT / "include" / "composer_mirror" / "static" / "index.html").read_text()[:200]


@pytest.mark.integration
def test_the_ui_plugin_loads_once_from_the_plugins_folder(probe: dict[str, Any]) -> None:
    """plugins/ ships the plugin, the wheel no airflow.plugins entry point: Airflow flags a second copy as an error."""
    assert probe["plugin_errors"] == {}
    assert probe["plugins"].count(PLUGIN) == 1
    assert probe["plugin_apps"] == [1]


@pytest.mark.integration
def test_the_runtime_virtualenv_carries_no_development_tools(probe: dict[str, Any]) -> None:
    installed = {canonicalize_name(name) for name in probe["installed"]}
    development = requirement_names(ROOT / "requirements-dev.txt")
    assert {"pytest", "moto", "ruff", "hypothesis"} <= development
    assert not installed & development, sorted(installed & development)


@pytest.mark.integration
def test_constraints_runtime_is_the_freeze_of_a_clean_install_of_the_runtime_set(venv: Path, workdir: Path) -> None:
    """What `make freeze` writes: a stale file (a requirement added or removed without it) fails here."""
    frozen = run([str(venv / "bin" / "python"), "-m", "pip", "freeze", "--exclude-editable"], cwd=workdir)
    installed = pins(frozen.splitlines())
    expected = pins((ROOT / "constraints-runtime.txt").read_text().splitlines())
    assert installed == expected
    assert any(canonicalize_name(line.split(" @ ", 1)[0]) == PROJECT for line in frozen.splitlines()), frozen


def test_the_development_pins_keep_every_runtime_pin() -> None:
    """The tests run on the versions the image runs: constraints.txt agrees with constraints-runtime.txt."""
    development = pins((ROOT / "constraints.txt").read_text().splitlines())
    runtime = pins((ROOT / "constraints-runtime.txt").read_text().splitlines())
    assert runtime, "constraints-runtime.txt pins nothing"
    assert {name: development.get(name) for name in runtime} == runtime
