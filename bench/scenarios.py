"""One measured DAG run: `airflow dags test composer_mirror_sync` plus everything counted around it.

Per run: wall time, peak RSS of the airflow process tree (psutil every 50 ms), the registry's and
moto's request logs, the run report the DAG wrote, and the task instances from the SQLite database.
"""

from __future__ import annotations

import contextlib
import json
import re
import resource
import sqlite3
import subprocess
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

from bench.services import CountingMoto, RegistryProcess, upstream_kinds
from composer_mirror.store.layout import CATALOG, STATUS_JSON
from devtools.harness import VENV_BIN, AirflowEnv, aws_connection

DAG_ID = "composer_mirror_sync"
AIRFLOW_FLOOR_DAG_ID = "bench_airflow_floor"
AIRFLOW_FLOOR_DAGS = Path(__file__).resolve().parent / "airflow_floor"
PREFIX = "repo"
WRITE_KINDS = ("PUT", "POST", "DELETE")
HANDOFF = "/mirror-state/handoff/"


class PeakRSS(threading.Thread):
    """Samples the RSS of a process and all its descendants every ``interval`` seconds.

    Besides the peaks it keeps a timeline (seconds since start, largest process MB) every
    ``timeline_every`` seconds, to be read beside the log's timestamps: where a run's memory grows.
    """

    def __init__(self, pid: int, interval: float = 0.05, timeline_every: float = 1.0) -> None:
        super().__init__(daemon=True)
        self.root = psutil.Process(pid)
        self.interval = interval
        self.peak_tree = 0  # sum over the tree at one instant (shared pages counted once per process)
        self.peak_process = 0  # the largest single process
        self.peak_process_name = ""
        self.samples = 0
        self.timeline: list[tuple[float, float]] = []
        self.timeline_every = timeline_every
        self._stop_event = threading.Event()

    def run(self) -> None:
        started = time.monotonic()
        window_peak = 0
        while not self._stop_event.is_set():
            try:
                processes = [self.root, *self.root.children(recursive=True)]
            except psutil.NoSuchProcess:
                return
            total = 0
            for process in processes:
                try:
                    rss = process.memory_info().rss
                except psutil.Error:
                    continue
                total += rss
                window_peak = max(window_peak, rss)
                if rss > self.peak_process:
                    self.peak_process = rss
                    self.peak_process_name = _describe(process)
            self.peak_tree = max(self.peak_tree, total)
            self.samples += 1
            elapsed = time.monotonic() - started
            if elapsed >= len(self.timeline) * self.timeline_every:
                self.timeline.append((round(elapsed, 1), round(window_peak / 2**20, 1)))
                window_peak = 0
            self._stop_event.wait(self.interval)

    def stop(self) -> None:
        self._stop_event.set()
        self.join(5)


class CpuAccount:
    """CPU seconds spent during a measurement: ours (airflow children, the servers, this process) and
    everybody else's, so a number taken while other work ran on the machine says so."""

    def __init__(self, server_pids: list[int]) -> None:
        self.servers = []
        for pid in server_pids:
            with contextlib.suppress(psutil.Error):
                self.servers.append(psutil.Process(pid))
        self.me = psutil.Process()
        self.started = time.monotonic()
        self.servers_before = {process: _cpu_seconds(process) for process in self.servers}
        self.before = self._read()

    def _read(self) -> tuple[float, ...]:
        times = psutil.cpu_times()
        process_time = times.user + times.nice + times.system  # guest time is already part of user
        interrupts = times.irq + times.softirq  # loopback networking lands here, for everybody
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        mine = sum(self.me.cpu_times()[:2])
        return process_time, interrupts, times.steal, children.ru_utime + children.ru_stime, mine

    def _servers(self) -> float:
        """CPU seconds of the servers since the start; one that ended since counts nothing (its last
        seconds fall into "other", never a negative share)."""
        total = 0.0
        for process, before in self.servers_before.items():
            now = _cpu_seconds(process)
            if now is not None and before is not None:
                total += now - before
        return total

    def stop(self) -> dict[str, float]:
        wall = max(time.monotonic() - self.started, 1e-9)
        deltas = [a - b for a, b in zip(self._read(), self.before, strict=True)]
        process_time, interrupts, steal, children, mine = deltas
        servers = self._servers()
        other = max(0.0, process_time - children - servers - mine)
        return {
            "airflow_cpu_s": round(children, 2),
            "servers_cpu_s": round(servers, 2),
            "bench_cpu_s": round(mine, 2),
            "other_cpu_s": round(other, 2),
            "other_cores": round(other / wall, 2),
            "irq_cores": round(interrupts / wall, 2),
            "steal_cores": round(steal / wall, 2),
        }


def wait_quiet(server_pids: list[int], quiet_wait: float, threshold: float = 0.3) -> dict[str, float]:
    """Wait (at most ``quiet_wait`` s) until processes other than the bench's own servers (``server_pids``
    and their descendants) use < ``threshold`` cores: another engineer's test suite must not be measured."""
    if quiet_wait <= 0:
        return {}
    started = time.monotonic()
    while True:
        cpu = CpuAccount(_with_descendants(server_pids))
        time.sleep(2)
        load = cpu.stop()["other_cores"]
        waited = time.monotonic() - started
        if load < threshold or waited >= quiet_wait:
            return {"waited_s": round(waited, 1), "other_cores_before": load}


def _with_descendants(pids: list[int]) -> list[int]:
    """The PIDs and their live descendants (a service's work may run in its children: Celery's pool)."""
    found = []
    for pid in pids:
        try:
            found += [pid, *(child.pid for child in psutil.Process(pid).children(recursive=True))]
        except psutil.Error:
            continue
    return found


def _cpu_seconds(process: psutil.Process) -> float | None:
    """User + system CPU seconds; None for a process that has ended."""
    try:
        return sum(process.cpu_times()[:2])
    except psutil.Error:
        return None


def _describe(process: psutil.Process) -> str:
    try:
        # Airflow's services set their process title: the whole title in the first argv entry, the
        # others left empty.
        command = [part for part in process.cmdline() if part.strip()]
        return " ".join(command[1:4] if len(command) > 1 else command)[:80] or process.name()
    except psutil.Error:
        return "?"


@dataclass
class Bench:
    """The shared pieces: moto, one registry at a time, a migrated AIRFLOW_HOME, where logs go."""

    moto: CountingMoto
    home: Path
    logs: Path
    concurrency: int = 10
    use_executor: bool = False
    executor_env: dict[str, str] = field(default_factory=dict)
    py_spy: str | None = None  # record these scenarios' runs with py-spy (the numbers are then marked)
    profile: str = ""
    quiet_wait: float = 60.0  # wait up to this long for other processes to leave the CPUs alone

    def wait_quiet(self, registry: RegistryProcess, threshold: float = 0.3) -> dict[str, float]:
        """Wait (at most ``quiet_wait`` s) until processes outside the bench use < ``threshold`` cores."""
        assert self.moto.process is not None
        return wait_quiet([registry.pid, self.moto.process.pid], self.quiet_wait, threshold)

    def airflow(self, registry: RegistryProcess, bucket: str, packages: list[str], **variables: str) -> AirflowEnv:
        return AirflowEnv(
            self.home,
            variables={
                "composer_mirror_upstream_url": registry.url,
                "composer_mirror_bucket": bucket,
                "composer_mirror_prefix": PREFIX,
                "composer_mirror_public_url": f"{self.moto.endpoint}/{bucket}/{PREFIX}",
                "composer_mirror_packages": json.dumps(packages),
                "composer_mirror_concurrency": str(self.concurrency),
                # Plain `dags test` runs one task at a time, so a run is measured in one batch; with
                # --use-executor the mapped instances run side by side and the DAG plans its own.
                **({} if self.use_executor else {"composer_mirror_max_batches": "1"}),
                **variables,
            },
            extra_env={"AIRFLOW_CONN_AWS_DEFAULT": aws_connection(self.moto.endpoint), **self.executor_env},
        )

    def run_dag(
        self, label: str, registry: RegistryProcess, bucket: str, packages: list[str], **variables: str
    ) -> dict[str, Any]:
        """Run the DAG once and return everything measured about that run."""
        env = self.airflow(registry, bucket, packages, **variables)
        quiet = self.wait_quiet(registry)
        registry.log(reset=True)
        self.moto.s3_log(reset=True)
        assert self.moto.process is not None
        cpu = CpuAccount([registry.pid, self.moto.process.pid])
        run = self.dags_test(label, DAG_ID, env)
        cpu_used = cpu.stop()
        records = registry.log(reset=True)
        s3 = self.moto.s3_log(reset=True)
        tasks = task_instances(self.home)
        # status.json is every run's report (runs/ keeps a copy only of runs that changed something)
        report = read_json(self.moto, bucket, f"{PREFIX}/{STATUS_JSON}") if tasks else None
        p2_paths = Counter(path for _m, path, *_ in records if path.startswith("/p2/"))
        return {
            **run,
            "cpu": {**cpu_used, **quiet},
            "upstream": upstream_kinds(records),
            "p2_files": len(p2_paths),
            "p2_max_requests_per_file": max(p2_paths.values(), default=0),
            "s3": {**s3["counts"], "bytes_in": s3["bytes_in"], "bytes_out": s3["bytes_out"]},
            "s3_put_keys": len(s3["puts"]),
            "s3_writes": sum(s3["counts"].get(kind, 0) for kind in WRITE_KINDS),
            # Hand-offs are a run's values too large for XCom, deleted by its last task (a DeleteObjects: OTHER).
            "s3_handoff_puts": sum(1 for key, _size in s3["puts"] if HANDOFF in key),
            "s3_writes_other_than_report": [
                key
                for key, _size in s3["puts"]
                if "/mirror-state/runs/" not in key and HANDOFF not in key and not key.endswith(STATUS_JSON)
            ][:20],
            "report": {
                key: report.get(key)
                for key in ("upstream", "s3_requests", "batches", "packages_published", "packages_available")
            }
            if report
            else None,
            "report_failures": len(report.get("failures", [])) if report else None,
            "tasks": tasks,
            "_records": records,
            "_puts": s3["puts"],
        }

    def airflow_floor(self, label: str) -> dict[str, Any]:
        """Airflow's own fixed cost: the no-op DAG of bench/airflow_floor, run like scenario a."""
        env = AirflowEnv(self.home, extra_env=self.executor_env)
        overrides = {"AIRFLOW__CORE__DAGS_FOLDER": str(AIRFLOW_FLOOR_DAGS)}
        return self.dags_test(label, AIRFLOW_FLOOR_DAG_ID, env, **overrides)

    def dags_test(self, label: str, dag_id: str, env: AirflowEnv, **overrides: str) -> dict[str, Any]:
        """One `airflow dags test`: its wall time, peak RSS, log and phases (py-spy when asked)."""
        command = [str(VENV_BIN / "airflow"), "dags", "test", dag_id]
        if self.use_executor:
            command.append("--use-executor")
        log_path = self.logs / f"{label}.log"
        profile = None
        if self.py_spy and label.split("-")[1] in self.profile:
            profile = self.logs / f"{label}.speedscope.json"
            spy = [self.py_spy, "record", "-r", "100", "-f", "speedscope", "--idle", "-s", "-o", str(profile)]
            command = [*spy, "--", *command]
        with log_path.open("w") as log:
            started, started_at = time.monotonic(), time.time()
            process = subprocess.Popen(command, env=env.env(**overrides), stdout=log, stderr=subprocess.STDOUT)
            sampler = PeakRSS(process.pid)
            sampler.start()
            try:
                returncode = process.wait(timeout=6 * 3600)
            except BaseException:
                process.kill()  # stopped (Ctrl-C, SIGTERM) or timed out: do not leave airflow running
                raise
            wall = time.monotonic() - started
            sampler.stop()
        return {
            "label": label,
            "returncode": returncode,
            "log": str(log_path),
            "wall_s": round(wall, 3),
            "peak_rss_tree_mb": round(sampler.peak_tree / 2**20, 1),
            "peak_rss_process_mb": round(sampler.peak_process / 2**20, 1),
            "peak_rss_process": sampler.peak_process_name,
            "rss_samples": sampler.samples,
            "rss_timeline_mb": sampler.timeline,
            "phases_s": phases(log_path, started_at, wall),
            # `dags test` sleeps 1 s per pass of its loop that finds no task to run (mapped tasks that
            # expand to nothing): part of an empty run's wall time, absent from a run with work.
            "idle_sleep_s": float(log_path.read_text(errors="replace").count("No tasks to run")),
            "profile": str(profile) if profile else None,
        }


_STAMP = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+)Z")


def phases(log_path: Path, started_at: float, wall: float) -> dict[str, float | None]:
    """Where the wall time of `airflow dags test` goes, from the timestamps of its log lines.

    cli_startup: process start to the first log line (imports, config); dag_setup: DagBag, DB, the
    run; first_task_api: the first task's start to "Task started" (the in-process execution API
    warming up); tasks: first "Task started" to the last task's end; exit: from there to the exit.
    """
    marks: dict[str, float] = {}
    for line in log_path.read_text(errors="replace").splitlines():
        match = _STAMP.match(line)
        if not match:
            continue
        stamp = datetime.fromisoformat(match[1]).replace(tzinfo=UTC).timestamp()
        marks.setdefault("first_log", stamp)
        if "[DAG TEST] starting task_id=" in line:
            marks.setdefault("first_task", stamp)
        elif "Task started" in line:
            marks.setdefault("first_task_started", stamp)
        elif "[DAG TEST] end task" in line:
            marks["last_task_end"] = stamp
    points = [started_at, *(marks.get(k) for k in ("first_log", "first_task", "first_task_started", "last_task_end"))]
    points.append(started_at + wall)
    names = ("cli_startup", "dag_setup", "first_task_api", "tasks", "exit")
    return {
        name: round(end - start, 2) if start is not None and end is not None else None
        for name, start, end in zip(names, points, points[1:], strict=False)
    }


def task_instances(home: Path) -> dict[str, Any]:
    """The newest run of the DAG: its id, state, mapped instances and summed duration per task."""
    with sqlite3.connect(home / "airflow.db") as db:
        row = db.execute(
            "SELECT run_id, state FROM dag_run WHERE dag_id = ? ORDER BY id DESC LIMIT 1", (DAG_ID,)
        ).fetchone()
        if row is None:
            return {}
        run_id, state = row
        rows = db.execute(
            "SELECT task_id, map_index, state, duration FROM task_instance WHERE dag_id = ? AND run_id = ?",
            (DAG_ID, run_id),
        ).fetchall()
    mapped: Counter = Counter()
    seconds: Counter = Counter()
    states: Counter = Counter()
    for task_id, map_index, task_state, duration in rows:
        if map_index is not None and map_index >= 0:
            mapped[task_id] += 1
        seconds[task_id] += duration or 0.0
        states[task_state or "none"] += 1
    return {
        "run_id": run_id,
        "state": state,
        "mapped": dict(mapped),
        "max_mapped": max(mapped.values(), default=0),
        "task_seconds": {task: round(value, 2) for task, value in seconds.items()},
        "states": dict(states),
    }


def read_json(moto: CountingMoto, bucket: str, key: str) -> dict[str, Any] | None:
    try:
        return json.loads(moto.client().get_object(Bucket=bucket, Key=key)["Body"].read())
    except Exception:  # absent when the run failed before publishing
        return None


def catalog_cursor(moto: CountingMoto, bucket: str) -> Any:
    """The changes-feed cursor the pipeline keeps in its catalog (None until it consumes the feed)."""
    catalog = read_json(moto, bucket, f"{PREFIX}/{CATALOG}")
    return catalog.get("changes_since") if catalog else None
