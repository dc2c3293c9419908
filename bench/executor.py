"""Executor rows of `make bench`: the sync DAG as the scheduler runs it, on the production topology.

`airflow dags test` (bench/run.py's scenarios) runs every task in one process; a deployment runs each
task instance as its own process on an executor, with a scheduler, a metadata database and (Celery)
a broker between them. This module measures what that costs, per executor and registry size, on the
stack devtools/stack/ starts (PostgreSQL, Redis, moto S3, nginx, the Airflow services, N Celery
workers):

- empty: an empty selection into an empty bucket (scenario a's fixed cost), triggered through the
  REST API and polled until the run succeeds;
- seed: a cold mirror of every package (setup, not a row);
- unchanged: the revalidation re-run (no changes feed: one conditional request per p2 file);
- marginal = unchanged - empty, compared with a raw floor: the same upstream requests made by plain
  keep-alive ``http.client`` connections from a few threads (no requests, no S3, no Airflow).

The selection is an Airflow Variable in the metadata database (set through the REST API between
runs), not the stack's AIRFLOW_VAR_ environment variable, which would win over it for the whole life
of the stack.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from bench.raw_floor import Workload, workload_from
from bench.scenarios import DAG_ID, PeakRSS, wait_quiet
from bench.services import RegistryProcess, upstream_kinds
from devtools.stack import Ports, Stack, StackSettings, worker_name

SELECTION_VARIABLE = "composer_mirror_packages"
EVERYTHING = ["vendor*/*"]  # every synthetic package (bench/registry_server.py names them vendorNNN/pkgNNNN)
TERMINAL = {"success", "failed"}
EXECUTORS = {"local": "LocalExecutor", "celery": "CeleryExecutor"}


class BenchStackSettings(StackSettings):
    """StackSettings without the selection in the environment: an AIRFLOW_VAR_ variable is read before
    the metadata database, so leaving it out lets one stack run the empty and the full selection."""

    def airflow_settings(self) -> dict[str, str]:
        settings = super().airflow_settings()
        settings.pop(f"AIRFLOW_VAR_{SELECTION_VARIABLE.upper()}", None)
        return settings


def stack_settings(executor: str, directory: Path, upstream_url: str, workers: int, parallelism: int) -> StackSettings:
    """One executor's stack: CeleryExecutor with ``workers`` workers as deployed, or LocalExecutor
    (no worker: the scheduler runs the tasks) with the same parallelism, so both plan the same batches."""
    overrides = {
        "AIRFLOW__CORE__EXECUTOR": EXECUTORS[executor],
        "AIRFLOW__CORE__PARALLELISM": str(parallelism),
        # Runs come from the REST API only: no scheduled run races the measured one.
        "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
    }
    count = workers if executor == "celery" else 0
    return BenchStackSettings(
        directory, [], upstream_url, ports=Ports.free(workers=count), workers=count, overrides=overrides
    )


# ------------------------------------------------------------------------------------------- pure logic
def floor_requests(work: Workload) -> list[tuple[str, dict[str, str]]]:
    """The raw floor's requests for a revalidation: the run's root/list requests as they were, every p2
    file with the validators the mirror holds (so the registry answers 304), no archives (an unchanged
    run downloads none; a workload with archives is not a revalidation and is refused)."""
    if work.archives:
        raise ValueError(f"not a revalidation: the run downloaded {len(work.archives)} archives")
    requests_: list[tuple[str, dict[str, str]]] = [(path, {}) for path in work.other]
    for path, validators in work.p2:
        headers = {"If-None-Match": validators[0], "If-Modified-Since": validators[1]} if validators else {}
        requests_.append((path, headers))
    return requests_


def _parse(stamp: str | None) -> float | None:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp() if stamp else None


def ti_overhead(instances: list[dict[str, Any]], wall_s: float) -> dict[str, Any]:
    """Where a run's wall time goes between its task instances (from the task-instance API).

    run_s: sum of (end - start) over task instances, what the tasks themselves took (including their
    process start-up inside the worker), also per task (which of them the marginal goes to);
    queued_s: sum of (start - queued), the executor's hand-off (broker, worker pick-up, supervisor);
    idle_s: wall time in which no task instance was running at all (scheduling, queueing, the
    trigger and the poll); wall_per_ti_s: wall / task instances.
    """
    intervals, queued, run = [], 0.0, 0.0
    mapped: Counter = Counter()
    by_task: Counter = Counter()
    for ti in instances:
        start, end, queued_at = _parse(ti.get("start_date")), _parse(ti.get("end_date")), _parse(ti.get("queued_when"))
        if ti.get("map_index", -1) >= 0:
            mapped[ti["task_id"]] += 1
        if start is None or end is None:
            continue  # skipped or never ran
        intervals.append((start, end))
        run += end - start
        by_task[ti["task_id"]] += end - start
        if queued_at is not None:
            queued += max(0.0, start - queued_at)
    busy = union_length(intervals)
    count = len(intervals)
    return {
        "task_instances": len(instances),
        "ran": count,
        "mapped": dict(mapped),
        "mapped_total": sum(mapped.values()),
        "run_s": round(run, 2),
        "run_s_by_task": {task: round(seconds, 2) for task, seconds in by_task.items()},
        "queued_s": round(queued, 2),
        "queued_per_ti_s": round(queued / count, 2) if count else None,
        "run_per_ti_s": round(run / count, 2) if count else None,
        "busy_s": round(busy, 2),
        "idle_s": round(max(0.0, wall_s - busy), 2),
        "wall_per_ti_s": round(wall_s / count, 2) if count else None,
    }


def union_length(intervals: list[tuple[float, float]]) -> float:
    """Total length covered by at least one interval."""
    total, current_start, current_end = 0.0, None, None
    for start, end in sorted(intervals):
        if current_end is None or start > current_end:
            if current_end is not None:
                total += current_end - current_start
            current_start, current_end = start, end
        else:
            current_end = max(current_end, end)
    if current_end is not None:
        total += current_end - current_start
    return total


# ------------------------------------------------------------------------------------------- the floor
def http_client_floor(requests_: list[tuple[str, dict[str, str]]], upstream_url: str, threads: int = 8) -> dict:
    """Make ``requests_`` with one keep-alive ``http.client.HTTPConnection`` per thread: the least any
    client must spend on the same upstream traffic."""
    parts = urlsplit(upstream_url)
    statuses: Counter = Counter()
    lock = threading.Lock()
    position = iter(range(len(requests_)))
    errors: list[str] = []

    def work() -> None:
        connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
        seen: Counter = Counter()
        try:
            while True:
                with lock:
                    index = next(position, None)
                if index is None:
                    break
                path, headers = requests_[index]
                connection.request("GET", parts.path.rstrip("/") + path, headers=headers)
                response = connection.getresponse()
                response.read()
                seen[response.status] += 1
        except Exception as exc:  # reported, not raised: a thread's failure must show in the row
            errors.append(repr(exc))
        finally:
            connection.close()
            with lock:
                statuses.update(seen)

    started = time.monotonic()
    workers = [threading.Thread(target=work) for _ in range(threads)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join()
    return {
        "wall_s": round(time.monotonic() - started, 3),
        "requests": len(requests_),
        "threads": threads,
        "statuses": {str(status): count for status, count in sorted(statuses.items())},
        "errors": errors[:5],
    }


# ------------------------------------------------------------------------------------------- the runs
@dataclass
class ExecutorBench:
    """One stack (one executor) against one registry: sets the selection, triggers, polls, measures."""

    stack: Stack
    registry: RegistryProcess
    quiet_wait: float
    poll: float = 0.5

    def select(self, packages: list[str]) -> None:
        """The selection as a Variable in the metadata database, as an operator sets it in the UI."""
        self.stack.api("DELETE", f"/api/v2/variables/{SELECTION_VARIABLE}")
        body = {"key": SELECTION_VARIABLE, "value": json.dumps(packages)}
        response = self.stack.api("POST", "/api/v2/variables", json=body)
        response.raise_for_status()

    def service_pids(self) -> dict[str, int]:
        return {service.name: service.pid for service in self.stack.services if service.alive()}

    def task_pids(self) -> dict[str, int]:
        """The services whose process trees run the task instances: the Celery workers, or the
        scheduler (LocalExecutor forks its workers from it)."""
        pids = self.service_pids()
        workers = {worker_name(i): pids[worker_name(i)] for i in range(self.stack.settings.workers)}
        return workers or {"scheduler": pids["scheduler"]}

    def wait_quiet(self) -> dict[str, float]:
        return wait_quiet([self.registry.pid, *self.service_pids().values()], self.quiet_wait)

    def run(self, label: str, timeout: float = 3 * 3600) -> dict[str, Any]:
        """Trigger the sync DAG through the REST API, poll its state until it ends; wall time, peak RSS
        of each task-running service's process tree, the upstream requests, the task instances."""
        quiet = self.wait_quiet()
        self.registry.log(reset=True)
        samplers = {name: PeakRSS(pid, interval=0.2) for name, pid in self.task_pids().items()}
        for sampler in samplers.values():
            sampler.start()
        started = time.monotonic()
        response = self.stack.api("POST", f"/api/v2/dags/{DAG_ID}/dagRuns", json={"logical_date": None, "note": label})
        response.raise_for_status()
        run_id = response.json()["dag_run_id"]
        run_path = f"/api/v2/dags/{DAG_ID}/dagRuns/{quote(run_id, safe='')}"
        state = "queued"
        try:
            while state not in TERMINAL:
                if time.monotonic() - started > timeout:
                    raise TimeoutError(f"{label}: run {run_id} still {state} after {timeout:.0f} s")
                time.sleep(self.poll)
                state = self.stack.api("GET", run_path).json()["state"]
            wall = time.monotonic() - started
        finally:
            for sampler in samplers.values():
                sampler.stop()
        records = self.registry.log(reset=True)
        dag_run = self.stack.api("GET", run_path).json()
        instances = self.task_instances(run_path)
        server_wall = (_parse(dag_run.get("end_date")) or 0) - (_parse(dag_run.get("queued_at")) or 0)
        return {
            "label": label,
            "run_id": run_id,
            "state": state,
            "wall_s": round(wall, 2),
            "server_wall_s": round(server_wall, 2),  # queued_at -> end_date as the scheduler recorded it
            "quiet": quiet,
            "upstream": upstream_kinds(records),
            "overhead": ti_overhead(instances, wall),
            "ti_states": dict(Counter(ti.get("state") or "none" for ti in instances)),
            "peak_rss": {
                name: {
                    "largest_process_mb": round(sampler.peak_process / 2**20, 1),
                    "largest_process": sampler.peak_process_name,
                    "tree_mb": round(sampler.peak_tree / 2**20, 1),
                }
                for name, sampler in samplers.items()
            },
            "_records": records,
        }

    def task_instances(self, run_path: str) -> list[dict[str, Any]]:
        """Every task instance of the run (the API pages at 100)."""
        instances: list[dict[str, Any]] = []
        while True:
            page = self.stack.api("GET", f"{run_path}/taskInstances", params={"limit": 100, "offset": len(instances)})
            page.raise_for_status()
            body = page.json()
            instances += body["task_instances"]
            if not body["task_instances"] or len(instances) >= body["total_entries"]:
                return instances

    def floor(self, records: list[list[Any]], validators: dict[str, list[str]], threads: int) -> dict[str, Any]:
        """The unchanged run's upstream requests again, from plain http.client connections."""
        work = workload_from(records, [], validators)
        quiet = self.wait_quiet()
        result = http_client_floor(floor_requests(work), self.registry.url, threads)
        self.registry.log(reset=True)
        return {**result, "workload": work.describe(), "quiet": quiet}


def fastest(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The fastest successful run (another process on the machine can only slow a run down)."""
    best = min(runs, key=lambda run: (run["state"] != "success", run.get("wall_s", float("inf"))))
    best["walls_s"] = [run["wall_s"] for run in runs]
    return best


def measure(
    executor: str,
    size: int,
    versions: int,
    directory: Path,
    *,
    workers: int = 2,
    parallelism: int = 32,
    repeat: int = 1,
    quiet_wait: float = 60.0,
    floor_threads: int = 8,
    log: Any = print,
) -> dict[str, Any]:
    """One executor row: stack up, empty runs, seed, unchanged runs, raw floor, stack down."""
    registry = RegistryProcess(size, versions).start()
    stack = None
    try:
        registry.feed(False)
        settings = stack_settings(executor, directory / f"{executor}-{size}", registry.url, workers, parallelism)
        log(f"[{time.strftime('%H:%M:%S')}] {executor} {size}: starting the stack in {settings.directory}")
        stack = Stack(settings).up(on_step=lambda step: None)
        bench = ExecutorBench(stack, registry, quiet_wait)
        bench.select([])
        # At least twice: the first run after the stack starts pays for warming up (13-23 s against 9-14 s).
        empties = max(repeat, 2)
        empty = fastest([_logged(log, bench.run(f"{executor}-{size}-empty-{i + 1}")) for i in range(empties)])
        empty.pop("_records")
        bench.select(EVERYTHING)
        seed = _logged(log, bench.run(f"{executor}-{size}-seed"))
        seed.pop("_records")
        candidates = [f"/p2/{name}{suffix}.json" for name in registry.names() for suffix in ("", "~dev")]
        validators = registry.validators(candidates)
        unchanged = fastest([_logged(log, bench.run(f"{executor}-{size}-unchanged-{i + 1}")) for i in range(repeat)])
        records = unchanged.pop("_records")
        floors = [bench.floor(records, validators, floor_threads) for _ in range(repeat)]
        floor = min(floors, key=lambda item: item["wall_s"])
        floor["walls_s"] = [item["wall_s"] for item in floors]
        log(f"    floor {floor['wall_s']} s, {floor['requests']} requests, {floor['statuses']}")
        return summarise(executor, size, versions, settings, empty, seed, unchanged, floor)
    finally:
        if stack is not None:
            stack.down()
        registry.stop()


def _logged(log: Any, run: dict[str, Any]) -> dict[str, Any]:
    ov = run["overhead"]
    log(
        f"    {run['label']}: {run['state']} in {run['wall_s']} s, {ov['ran']} TIs ({ov['mapped_total']} mapped), "
        f"upstream {run['upstream'].get('total', 0)} requests, RSS "
        + ", ".join(f"{name} {rss['largest_process_mb']}" for name, rss in run["peak_rss"].items())
    )
    return run


def summarise(
    executor: str,
    size: int,
    versions: int,
    settings: StackSettings,
    empty: dict[str, Any],
    seed: dict[str, Any],
    unchanged: dict[str, Any],
    floor: dict[str, Any],
) -> dict[str, Any]:
    """The row: fixed, marginal, floor and the targets (10,000 packages under Celery < 10 min; marginal
    <= 1.5x the floor)."""
    marginal = unchanged["wall_s"] - empty["wall_s"]
    # A marginal within the noise of the fixed cost (tiny sizes) has no meaningful ratio.
    ratio = marginal / floor["wall_s"] if floor["wall_s"] > 0 and marginal > 0 else None
    detail = f"{ratio:.2f}x" if ratio is not None else f"marginal {marginal:.1f} s: within the fixed cost's noise"
    checks = [("marginal <= 1.5x the http.client floor", ratio is not None and ratio <= 1.5, detail)]
    if executor == "celery" and size >= 10_000:
        checks.append(("unchanged < 10 min end to end", unchanged["wall_s"] < 600, f"{unchanged['wall_s']:.0f} s"))
    return {
        "executor": EXECUTORS[executor],
        "workers": settings.workers,
        "parallelism": settings.overrides["AIRFLOW__CORE__PARALLELISM"],
        "size": size,
        "versions": versions,
        "fixed_s": empty["wall_s"],
        "unchanged_s": unchanged["wall_s"],
        "marginal_s": round(marginal, 2),
        "floor_s": floor["wall_s"],
        "marginal_over_floor": round(ratio, 2) if ratio is not None else None,
        "checks": checks,
        "empty": empty,
        "seed": seed,
        "unchanged": unchanged,
        "floor": floor,
    }


def other_load(row: dict[str, Any]) -> str:
    """CPU used by processes outside the bench just before the empty, unchanged and floor runs: a row
    measured beside someone else's test suite says so."""
    return " / ".join(str(row[key]["quiet"].get("other_cores_before", "-")) for key in ("empty", "unchanged", "floor"))


def markdown(rows: list[dict[str, Any]]) -> str:
    """The "Under the executor" table."""
    lines = [
        "| executor | packages | empty (fixed) s | unchanged s | marginal s | http.client floor s | marginal / floor "
        "| TIs (mapped) | per TI: run / queued->start / wall s | idle s | peak RSS per worker process MB "
        "| other load, cores | targets |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        ov, unchanged = row["unchanged"]["overhead"], row["unchanged"]
        rss = "; ".join(
            f"{name} {item['largest_process_mb']} (tree {item['tree_mb']})"
            for name, item in unchanged["peak_rss"].items()
        )
        targets = "; ".join(f"{name}: {'met' if ok else '**missed**'} ({detail})" for name, ok, detail in row["checks"])
        name = row["executor"] + (f", {row['workers']} workers" if row["workers"] else "")
        lines.append(
            f"| {name} | {row['size']:,} | {row['fixed_s']} | {row['unchanged_s']} | {row['marginal_s']} "
            f"| {row['floor_s']} | {row['marginal_over_floor']} | {ov['ran']} ({ov['mapped_total']}) "
            f"| {ov['run_per_ti_s']} / {ov['queued_per_ti_s']} / {ov['wall_per_ti_s']} | {ov['idle_s']} | {rss} "
            f"| {other_load(row)} | {targets} |"
        )
    return "\n".join(lines)
