"""The processes a stack started: each recorded by PID and start time, stopped by process group.

``<directory>/stack.json`` records every service's PID and start time; ``down`` stops exactly those
processes (a recycled PID is recognised by its start time and left alone), nothing found by name.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

STATE_FILE = "stack.json"
KILL_TIMEOUT = 5.0  # for SIGKILLed processes to be gone, so their ports are free when stop_services returns


@dataclass
class Service:
    """One started process: its PID and the start time that tells it apart from a later process with that PID."""

    name: str
    pid: int
    started: str

    def alive(self) -> bool:
        return start_time(self.pid) == self.started


def start_time(pid: int) -> str | None:
    """Field 22 of /proc/<pid>/stat (start time in clock ticks since boot), or None when no such process."""
    fields = _stat(pid)
    return None if fields is None else fields[19]


def _stat(pid: int) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name (state, ppid, pgrp, ...), or None when
    there is no such process or it is a zombie (dead, only not yet reaped)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return None if fields[0] == "Z" else fields


def stop_services(services: list[Service], timeout: float = 30) -> None:
    """SIGTERM each live service's process group (last started first), then SIGKILL what is left.

    The group is what is waited for and killed, not its leader: a leader may exit on SIGTERM and
    leave children that ignore it or take longer. Only the groups of leaders recognised by PID and
    start time before the first signal are touched: a group's id is its leader's PID, and the
    recorded PID of a service that has ended may since have been given to another process.
    """
    groups = [service.pid for service in reversed(services) if service.alive()]
    for group in groups:
        _signal_group(group, signal.SIGTERM)
    _wait_for_groups(groups, timeout)
    left = [group for group in groups if _group_alive(group)]
    for group in left:
        _signal_group(group, signal.SIGKILL)
    _wait_for_groups(left, KILL_TIMEOUT)


def _wait_for_groups(groups: list[int], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(_group_alive(group) for group in groups):
        time.sleep(0.1)


def _group_alive(group: int) -> bool:
    """Whether process group ``group`` has a member still running.

    ``killpg(group, 0)`` finds zombies too: an exited leader stays one until this process reaps it
    (the stack keeps no Popen to wait on), and an orphan stays one under a PID 1 that never reaps,
    as some containers' does. So when it finds any member, /proc says whether one is not a zombie.
    """
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            fields = _stat(int(entry.name))
            if fields is not None and fields[2] == str(group):
                return True
    return False


def _signal_group(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):  # it ended between the check and the signal
        os.killpg(pid, signum)


def save_state(directory: Path, services: list[Service], scratch: list[str], description: dict[str, Any]) -> None:
    """Record the started services (and the directories to remove) in ``directory``, for ``down``."""
    state = {"services": [asdict(service) for service in services], "scratch": scratch, "settings": description}
    (directory / STATE_FILE).write_text(json.dumps(state, indent=2))


def _state(directory: Path) -> dict[str, Any]:
    path = directory / STATE_FILE
    return json.loads(path.read_text()) if path.exists() else {"services": [], "scratch": []}


def recorded(directory: Path) -> list[Service]:
    """The services a previous ``up`` recorded in ``directory`` (running or not)."""
    return [Service(**item) for item in _state(directory)["services"]]


def stop_recorded(directory: Path, services: list[Service], scratch: list[str]) -> None:
    """Stop ``services``, remove ``scratch`` and forget the record in ``directory``."""
    stop_services(services)
    remove_scratch(scratch)
    (directory / STATE_FILE).unlink(missing_ok=True)


def down(directory: Path) -> list[str]:
    """Stop the services a previous ``up`` recorded in ``directory``; the names of those that were running."""
    services = recorded(directory)
    running = [service.name for service in services if service.alive()]
    stop_recorded(directory, services, _state(directory)["scratch"])
    return running


def remove_scratch(paths: list[str]) -> None:
    for path in paths:
        shutil.rmtree(path, ignore_errors=True)
