"""`make demo`: mirror a Composer repository into a local S3 endpoint with Airflow, then install from it.

With no arguments everything is local: a moto S3 server on loopback, and a sample upstream
registry built from the bundled fixture data (a real application's composer.lock), so the demo
works offline. `--upstream URL --packages 'a/b c/d'` mirrors a live registry instead.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from contextlib import ExitStack
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "include"), str(ROOT)]

from devtools.harness import (  # noqa: E402
    DEMO_SELECTION,
    SAMPLE_LOCK,
    AirflowEnv,
    MotoServer,
    aws_connection,
    composer_install,
    sample_replace,
)

BUCKET = "composer-mirror"
PREFIX = "repo"
DEMO_PROJECT = {"monolog/monolog": "^3.0", "symfony/console": "*"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--upstream", help="mirror this Composer repository instead of the bundled sample")
    parser.add_argument("--packages", help="space- or comma-separated selection (names, vendor/*, name:constraint)")
    parser.add_argument("--workdir", default=str(ROOT / ".demo"), help="where the demo keeps its files")
    args = parser.parse_args()

    workdir = Path(args.workdir)
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    selection = args.packages.replace(",", " ").split() if args.packages else DEMO_SELECTION

    with ExitStack() as stack:
        moto = MotoServer().start()
        stack.callback(moto.stop)
        moto.create_public_bucket(BUCKET)
        print(f"S3 endpoint (moto server): {moto.endpoint}")

        upstream_url = args.upstream
        registry = None
        if not upstream_url:
            from devtools.fixture_registry import Registry, RegistryServer

            registry = RegistryServer(Registry.from_lock(SAMPLE_LOCK))
            registry.start()
            stack.callback(registry.stop)
            upstream_url = registry.url
            print(f"sample upstream registry: {upstream_url}")

        public_url = f"{moto.endpoint}/{BUCKET}/{PREFIX}"
        airflow = AirflowEnv(
            workdir / "airflow",
            variables={
                "composer_mirror_upstream_url": upstream_url,
                "composer_mirror_bucket": BUCKET,
                "composer_mirror_prefix": PREFIX,
                "composer_mirror_public_url": public_url,
                "composer_mirror_packages": json.dumps(selection),
                # `airflow dags test` runs one task at a time: one batch does the work in the fewest task runs.
                "composer_mirror_max_batches": "1",
            },
            extra_env={"AIRFLOW_CONN_AWS_DEFAULT": aws_connection(moto.endpoint)},
        )
        print("preparing Airflow (SQLite in .demo/airflow) ...")
        airflow.migrate()
        print(f"running: airflow dags test composer_mirror_sync (selection: {' '.join(selection)})")
        result = airflow.dags_test("composer_mirror_sync")
        (workdir / "dags-test.log").write_text(result.stdout + result.stderr)
        print_report(result.stdout + result.stderr)
        if result.returncode != 0:
            print(f"the DAG run failed; see {workdir / 'dags-test.log'}")
            return 1

        if args.packages:
            # The selection names packages, not their dependencies: mirror those through the SBOM
            # DAG (PURLs with dependencies) so that the sample install below can resolve.
            purls = [f"pkg:composer/{name.partition(':')[0]}" for name in selection if "*" not in name]
            print(f"running: airflow dags test composer_mirror_sbom (PURLs {' '.join(purls)}, with dependencies)")
            deps = airflow.dags_test("composer_mirror_sbom", {"purls": purls, "with_dependencies": True})
            (workdir / "dags-test-sbom.log").write_text(deps.stdout + deps.stderr)
            print_report(deps.stdout + deps.stderr)
            if deps.returncode != 0:
                print(f"the SBOM run failed; see {workdir / 'dags-test-sbom.log'}")
                return 1

        if registry is not None:
            registry.stop()
            print("upstream stopped: installing from the mirror alone")
        return install_sample(workdir, public_url, selection if args.packages else None)


def print_report(output: str) -> None:
    lines = output.splitlines()
    for index, line in enumerate(lines):
        if "run report" in line:
            print("\n".join(lines[index : index + 13]))
            return


def install_sample(workdir: Path, public_url: str, selection: list[str] | None) -> int:
    if shutil.which("composer") is None:
        print("composer is not installed: skipping the install from the mirror")
        return 0
    require = {name.partition(":")[0]: "*" for name in selection if "*" not in name} if selection else DEMO_PROJECT
    print(f"composer update of a sample project requiring {', '.join(require)} (packagist disabled)")
    result = composer_install(workdir / "project", public_url, require, replace=sample_replace())
    print(result.stderr[-3000:])
    if result.returncode != 0:
        print("composer could not install from the mirror")
        return 1
    installed = json.loads((workdir / "project/vendor/composer/installed.json").read_text())["packages"]
    print(f"repository URL: {public_url}")
    print(f"composer installed {len(installed)} packages from the mirror:")
    for package in installed:
        print(f"  {package['name']} {package['version']}  <- {package['dist']['url']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
