"""`make bench`: run the real composer_mirror_sync DAG against the fixture registry and moto, and compare.

Per registry size (``--sizes``), each scenario is one `airflow dags test composer_mirror_sync`:

  a  fixed cost: an empty selection and an empty bucket; beside it Airflow's own cost for a no-op DAG
     of the same shape (bench/airflow_floor)
  b  cold mirror: selection ["*"] into an empty bucket (a scenario at --cold-sizes, setup elsewhere)
  c  unchanged re-run, revalidation (the registry publishes no changes feed: conditional requests)
  d  incremental: 1% of the packages get a new release, then a re-run (no changes feed either)
  e  unchanged re-run with the changes feed published (reported as "feed not consumed" until the
     pipeline keeps a cursor in its catalog; then a first run sets the cursor and a second is measured)
  f  one 1 GB archive (streamed by the registry) in a fresh bucket: peak RSS (first size only)

Each run is measured (wall, requests by kind at the registry and at moto, bytes, peak RSS of the
airflow process tree, mapped task instances from the SQLite DB, the DAG's own run report) and
compared with a raw floor: the same I/O done by a plain threaded client (bench/raw_floor.py).
Results go to --output (JSON) and the same path with .md (the table).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "include"), str(ROOT)]

import psutil  # noqa: E402

from bench import report  # noqa: E402
from bench.one_at_a_time import run_one_at_a_time  # noqa: E402
from bench.raw_floor import run_floor, workload_from  # noqa: E402
from bench.scenarios import Bench, CpuAccount, catalog_cursor  # noqa: E402
from bench.services import CountingMoto, RegistryProcess  # noqa: E402
from devtools.harness import VENV_BIN, AirflowEnv, free_port  # noqa: E402

ALL_SCENARIOS = "abcdef"
REPEATABLE = "ace"  # idempotent runs (nothing changes between them), cheap enough to repeat
SCRATCH_BUCKET = "bench-floor-scratch"
GIB = 1024**3


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="2000,10000", help="registry sizes (packages), comma-separated")
    parser.add_argument("--versions", type=int, default=9, help="versions per synthetic package")
    parser.add_argument("--scenarios", default=ALL_SCENARIOS, help="letters of the scenarios to run (default abcdef)")
    parser.add_argument(
        "--cold-sizes",
        default="2000",
        help="sizes at which the cold mirror is a scenario with a target; elsewhere it runs only as setup "
        "for c/d/e ('all' for every size)",
    )
    parser.add_argument(
        "--one-at-a-time-versions",
        type=int,
        default=30,
        help="versions re-archived one at a time (`composer archive` + one PUT each) for the cold row's baseline",
    )
    parser.add_argument("--changed-percent", type=float, default=1.0, help="packages changed in scenario d")
    parser.add_argument("--big-archive-mb", type=int, default=1024, help="archive size of scenario f")
    parser.add_argument(
        "--repeat", type=int, default=3, help="runs of the idempotent scenarios a, c, e; the fastest is kept"
    )
    parser.add_argument("--concurrency", type=int, default=10, help="per-host concurrency (DAG and raw floor)")
    parser.add_argument(
        "--use-executor",
        action="store_true",
        help="run tasks with LocalExecutor (`dags test --use-executor` plus an execution API server)",
    )
    parser.add_argument("--parallelism", type=int, default=4, help="LocalExecutor parallelism with --use-executor")
    parser.add_argument(
        "--executors",
        default="",
        help="executor rows instead of the scenarios: comma-separated local,celery (bench/executor.py); "
        "each runs the DAG through the REST API on devtools/stack/'s topology at every --sizes",
    )
    parser.add_argument("--workers", type=int, default=2, help="Celery workers of the executor rows")
    parser.add_argument(
        "--executor-parallelism",
        type=int,
        default=32,
        help="core.parallelism of the executor rows (Airflow's default, so both executors plan the same batches)",
    )
    parser.add_argument("--floor-threads", type=int, default=8, help="http.client threads of the executor rows' floor")
    parser.add_argument("--py-spy", help="path to a py-spy binary (install it in a throw-away venv, not .venv)")
    parser.add_argument(
        "--profile", default="", help="letters of the scenarios to record with --py-spy (their timings are marked)"
    )
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=60.0,
        help="before each measurement wait up to this many seconds for other processes to go below 0.3 cores",
    )
    parser.add_argument("--output", default=str(ROOT / "bench/results/latest.json"))
    parser.add_argument("--keep-home", action="store_true", help="keep the AIRFLOW_HOME (SQLite DB) afterwards")
    return parser.parse_args(argv)


def machine() -> dict[str, Any]:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if "model name" in line
        ),
        platform.processor(),
    )
    from importlib.metadata import version

    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "ram_gb": round(psutil.virtual_memory().total / GIB, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "airflow": version("apache-airflow"),
        "moto": version("moto"),
    }


def code_version() -> dict[str, Any]:
    """Which pipeline was measured: HEAD, files changed since, and a digest of include/ and dags/ as run."""
    import hashlib

    def git(*command: str) -> str:
        return subprocess.run(["git", *command], cwd=ROOT, capture_output=True, text=True).stdout.strip()

    digest = hashlib.sha1()
    for path in sorted([*ROOT.glob("include/composer_mirror/*.py"), *ROOT.glob("dags/*.py")]):
        digest.update(path.name.encode() + path.read_bytes())
    return {
        "head": git("rev-parse", "--short", "HEAD"),
        "dirty": git("status", "--porcelain", "--", "include", "dags").splitlines(),
        "code_sha1": digest.hexdigest()[:12],
    }


class Runner:
    """Runs the scenarios of one size and turns each measured DAG run into a row."""

    def __init__(self, bench: Bench, args: argparse.Namespace, floor_s3: Any) -> None:
        self.bench = bench
        self.args = args
        self.floor_s3 = floor_s3
        self.rows: list[dict[str, Any]] = []
        self.buckets = 0

    def bucket(self, name: str) -> str:
        self.buckets += 1
        bucket = f"bench-{self.buckets}-{name}"
        self.bench.moto.create_public_bucket(bucket)
        return bucket

    def measure(
        self,
        size: int,
        scenario: str,
        title: str,
        registry: RegistryProcess,
        bucket: str,
        packages: list[str],
        *,
        validators: dict[str, list[str]] | None = None,
        floor: bool = True,
        note: str = "",
        setup: bool = False,
        **variables: str,
    ) -> dict[str, Any]:
        label = f"{size}-{scenario}{'-setup' if setup else ''}"
        print(f"[{time.strftime('%H:%M:%S')}] {label}: {title} ...", flush=True)
        repeats = self.args.repeat if scenario in REPEATABLE and not setup else 1
        runs = []
        for attempt in range(repeats):
            suffix = f"-{attempt + 1}" if repeats > 1 else ""
            runs.append(self.bench.run_dag(label + suffix, registry, bucket, packages, **variables))
        run = fastest(runs)
        records, puts = run.pop("_records"), run.pop("_puts")
        floor_result = None
        # A setup run has no target, and at 10,000 packages its floor alone takes half an hour.
        if floor and not setup and run["returncode"] == 0:
            work = workload_from(records, puts, validators)
            floors = []
            for _attempt in range(repeats):
                quiet = self.bench.wait_quiet(registry)
                cpu = CpuAccount([registry.pid, self.bench.moto.process.pid])
                floors.append(run_floor(work, registry.url, self.floor_s3, SCRATCH_BUCKET, self.args.concurrency))
                floors[-1]["cpu"] = {**cpu.stop(), **quiet}
            floor_result = min(floors, key=lambda f: f["wall_s"])
            floor_result["walls_s"] = [f["wall_s"] for f in floors]
        row = {
            "size": size,
            "scenario": scenario,
            "title": title,
            "setup": setup,
            "note": note,
            "packages": size if packages == ["*"] else len(packages),
            "code_sha1": code_version()["code_sha1"],
            "dag": run,
            "floor": floor_result,
        }
        self.rows.append(row)
        print(report.one_line(row), flush=True)
        return row

    def run_size(self, size: int, first: bool) -> None:
        args, wanted = self.args, set(self.args.scenarios)
        cold_is_scenario = args.cold_sizes == "all" or str(size) in args.cold_sizes.split(",")
        registry = RegistryProcess(size, args.versions).start()
        try:
            registry.feed(False)
            names = registry.names()
            candidates = [f"/p2/{name}{suffix}.json" for name in names for suffix in ("", "~dev")]
            if "a" in wanted:
                empty = self.measure(
                    size, "a", "fixed cost: empty selection, empty bucket", registry, self.bucket("empty"), []
                )
                self.airflow_floor(empty, registry)
            if wanted & set("bcde"):
                bucket = self.bucket(f"mirror-{size}")
                cold = self.measure(
                    size,
                    "b",
                    "cold mirror, everything new",
                    registry,
                    bucket,
                    ["*"],
                    setup=not (cold_is_scenario and "b" in wanted),
                )
                if not cold["setup"] and args.one_at_a_time_versions:
                    self.one_at_a_time(cold, registry, names)
                if "c" in wanted:
                    validators = registry.validators(candidates)
                    self.measure(
                        size, "c", "unchanged re-run, revalidation", registry, bucket, ["*"], validators=validators
                    )
                if "d" in wanted:
                    validators = registry.validators(candidates)
                    changed = names[:: max(1, round(100 / args.changed_percent))]
                    for name in changed:
                        registry.mutate("add_version", name, version="50.0.0")
                    self.measure(
                        size,
                        "d",
                        f"incremental: {len(changed)} packages with a new release",
                        registry,
                        bucket,
                        ["*"],
                        validators=validators,
                        note=f"{len(changed)} new releases",
                    )
                if "e" in wanted:
                    self.changes_feed(size, registry, bucket, candidates)
            if "f" in wanted and first:
                self.big_archive(size, registry, names[1])
        finally:
            registry.stop()

    def airflow_floor(self, row: dict[str, Any], registry: RegistryProcess) -> None:
        """Scenario a's yardstick: Airflow's own cost for a no-op DAG of the same shape, as often as a runs."""
        print(f"[{time.strftime('%H:%M:%S')}] {row['size']}-a: Airflow alone (no-op DAG, same shape) ...", flush=True)
        runs = []
        for attempt in range(self.args.repeat):
            self.bench.wait_quiet(registry)
            runs.append(self.bench.airflow_floor(f"{row['size']}-a-airflow-floor-{attempt + 1}"))
        row["airflow_floor"] = best = fastest(runs)
        print(f"    wall {best['wall_s']} s, rc {best['returncode']}, RSS {best['peak_rss_process_mb']} MB", flush=True)

    def one_at_a_time(self, row: dict[str, Any], registry: RegistryProcess, names: list[str]) -> None:
        """The cold row's second baseline: a sample of versions re-archived one at a time."""
        print(f"[{time.strftime('%H:%M:%S')}] {row['size']}-b: re-archiving one version at a time ...", flush=True)
        self.bench.wait_quiet(registry)
        with tempfile.TemporaryDirectory(prefix="bench-one-at-a-time-") as workdir:
            row["one_at_a_time"] = run_one_at_a_time(
                registry.url, names, self.floor_s3, SCRATCH_BUCKET, Path(workdir), self.args.one_at_a_time_versions
            )
        print(f"    {row['one_at_a_time']}", flush=True)

    def changes_feed(self, size: int, registry: RegistryProcess, bucket: str, candidates: list[str]) -> None:
        registry.feed(True)
        try:
            validators = registry.validators(candidates)
            title = "unchanged re-run, changes feed published"
            row = self.measure(size, "e", title, registry, bucket, ["*"], validators=validators, setup=True)
            if catalog_cursor(self.bench.moto, bucket) is None:
                requests = row["dag"]["upstream"].get("changes_feed", 0)
                row["setup"] = False
                row["note"] = (
                    f"FEED NOT CONSUMED by the pipeline yet ({requests} changes-feed requests, no cursor in the "
                    "catalog): this is a full revalidation"
                )
                return
            # The pipeline keeps a cursor: that run was the setup, the next ones are the measurement.
            validators = registry.validators(candidates)
            self.measure(size, "e", title, registry, bucket, ["*"], validators=validators)
        finally:
            registry.feed(False)

    def big_archive(self, size: int, registry: RegistryProcess, name: str) -> None:
        nbytes = self.args.big_archive_mb * 1024**2
        registry.mutate("add_version", name, version="60.0.0")
        registry.mutate("set_archive_size", name, version="60.0.0", nbytes=nbytes)
        self.measure(
            size,
            "f",
            f"one {self.args.big_archive_mb} MB archive ({name}, fresh bucket)",
            registry,
            self.bucket("big"),
            [name],
            note=f"composer_mirror_max_archive_bytes raised to {2 * nbytes} (the default 500 MB refuses it)",
            composer_mirror_max_archive_bytes=str(2 * nbytes),
        )


def fastest(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The fastest successful run, with every run's wall time: another process on the machine can
    only make a run slower, so the fastest is the estimate."""
    best = min(runs, key=lambda r: (r["returncode"] != 0, r["wall_s"]))
    best["walls_s"] = [r["wall_s"] for r in runs]
    return best


def start_execution_api(env: AirflowEnv, logs: Path) -> tuple[subprocess.Popen, dict[str, str]]:
    """An `airflow api-server --apps execution`: LocalExecutor's task supervisors talk to it."""
    import requests

    port = free_port()
    executor_env = {
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
        "AIRFLOW__API_AUTH__JWT_SECRET": "composer-mirror-bench",
    }
    command = [str(VENV_BIN / "airflow"), "api-server", "--apps", "execution", "-H", "127.0.0.1", "-p", str(port)]
    with (logs / "api-server.log").open("w") as log:
        process = subprocess.Popen(
            [*command, "-w", "1"], env=env.env(**executor_env), stdout=log, stderr=subprocess.STDOUT
        )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            requests.get(f"http://127.0.0.1:{port}/execution/health", timeout=10)
            return process, executor_env
        except requests.ConnectionError:
            time.sleep(0.5)
    process.terminate()
    raise RuntimeError("the execution API server did not start")


def run_executors(args: argparse.Namespace) -> int:
    """The executor rows (bench/executor.py): per executor and size, one stack; results as JSON and a table."""
    from bench import executor

    output = Path(args.output).resolve()
    output.parent.mkdir(parents=True, exist_ok=True)  # bench/results/ is not in git
    info = machine()
    info["code"] = code_version()
    print("machine:", json.dumps(info), flush=True)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="composer-mirror-bench-stacks-") as directory:
        for size in [int(size) for size in args.sizes.split(",") if size]:
            for name in args.executors.split(","):
                row = executor.measure(
                    name,
                    size,
                    args.versions,
                    Path(directory),
                    workers=args.workers,
                    parallelism=args.executor_parallelism,
                    repeat=args.repeat,
                    quiet_wait=args.quiet_wait,
                    floor_threads=args.floor_threads,
                )
                rows.append(row)
                # Written after every row, so a long run that is stopped still leaves its numbers.
                document = {"machine": info, "args": vars(args), "rows": rows}
                output.write_text(json.dumps(document, indent=1, default=str))
                output.with_suffix(".md").write_text(executor.markdown(rows) + "\n")
                print(executor.markdown(rows[-1:]), flush=True)
    print(executor.markdown(rows))
    print(f"written: {output} and {output.with_suffix('.md')}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # Stop cleanly (servers, registry, temp AIRFLOW_HOME, stacks) on SIGTERM, and on SIGINT even when
    # started in the background, where the shell makes SIGINT ignored.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    signal.signal(signal.SIGINT, signal.default_int_handler)
    if args.executors:
        return run_executors(args)
    if args.one_at_a_time_versions and "b" in args.scenarios and shutil.which("composer") is None:
        # Found out only after the cold mirror otherwise; `make bench` installs it (make tools).
        sys.exit("bench: the one-version-at-a-time baseline needs the composer CLI: run `make tools`")
    sizes = [int(size) for size in args.sizes.split(",") if size]
    output = Path(args.output)
    # Another --output keeps its own logs, so concurrent or earlier runs are not clobbered.
    logs = output.parent / ("logs" if output.stem == "latest" else f"{output.stem}-logs")
    shutil.rmtree(logs, ignore_errors=True)
    logs.mkdir(parents=True)
    info = machine()
    info["code"] = code_version()
    print("machine:", json.dumps(info), flush=True)
    started = time.monotonic()
    with ExitStack() as stack:
        moto = CountingMoto().start()
        stack.callback(moto.stop)
        home = Path(tempfile.mkdtemp(prefix="composer-mirror-bench-"))
        if not args.keep_home:
            stack.callback(shutil.rmtree, home, True)
        airflow = AirflowEnv(home)
        airflow.migrate()
        bench = Bench(moto, home, logs, args.concurrency, py_spy=args.py_spy, profile=args.profile)
        bench.quiet_wait = args.quiet_wait
        if args.use_executor:
            api, executor_env = start_execution_api(airflow, logs)
            stack.callback(lambda: (api.terminate(), api.wait(30)))
            bench.use_executor = True
            bench.executor_env = {**executor_env, "AIRFLOW__CORE__PARALLELISM": str(args.parallelism)}
        moto.create_public_bucket(SCRATCH_BUCKET)
        import boto3
        from botocore.config import Config

        floor_s3 = boto3.client(
            "s3",
            endpoint_url=moto.endpoint,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            config=Config(max_pool_connections=args.concurrency * 2),
        )
        runner = Runner(bench, args, floor_s3)
        for index, size in enumerate(sizes):
            runner.run_size(size, first=index == 0)
            # Written after every size, so a long run that is stopped still leaves its numbers.
            report.write(output, runner.rows, info, vars(args), time.monotonic() - started)
    table = report.write(output, runner.rows, info, vars(args), time.monotonic() - started)
    print()
    print(table)
    print(f"written: {output} and {output.with_suffix('.md')}; DAG logs in {logs}")
    if args.keep_home:
        print(f"AIRFLOW_HOME kept: {home}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
