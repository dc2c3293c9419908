"""How devtools/stack/ stops the processes it started: whole process groups, and only its own.

Real processes, no servers: bash and sleep in process groups of their own, as ``Stack._spawn``
starts each service. This process is made the reaper of the orphans they leave, so a killed
orphan is reaped here; a container's PID 1 may never reap it, and an unreaped zombie still
counts as a member of its group for ``killpg``.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import suppress
from pathlib import Path

import pytest

from devtools.stack import Service, start_time, stop_services

pytestmark = [
    pytest.mark.stack,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the stack reads /proc"),
]

PR_SET_CHILD_SUBREAPER = 36  # prctl(2)
# The leader exits on SIGTERM; its child ignores SIGTERM and sleeps on after the leader is gone.
LEADER_EXITS_CHILD_STAYS = 'trap "exit 0" TERM; (trap "" TERM; exec sleep 300) & echo $! > "$1"; wait'
# Leader and child both end on SIGTERM, as most services do.
BOTH_END = 'sleep 300 & echo $! > "$1"; wait'


@pytest.fixture
def subreaper() -> Iterator[None]:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        pytest.skip(f"prctl(PR_SET_CHILD_SUBREAPER) failed: {os.strerror(ctypes.get_errno())}")
    try:
        yield
    finally:
        libc.prctl(PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)


def start_group(script: str, tmp_path: Path) -> tuple[subprocess.Popen[bytes], int, str]:
    """A leader running ``script`` in a new session, as ``Stack._spawn`` starts a service, and its
    child's PID and start time, once the child is ``sleep`` (so any trap it sets is in place)."""
    pid_file = tmp_path / "child.pid"
    leader = subprocess.Popen(["bash", "-c", script, "bash", str(pid_file)], start_new_session=True)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        text = pid_file.read_text().strip() if pid_file.exists() else ""
        if text and _cmdline(int(text)).startswith(b"sleep"):
            child = int(text)
            started = start_time(child)
            assert started is not None
            return leader, child, started
        time.sleep(0.01)
    leader.kill()
    leader.wait()
    raise AssertionError("the child did not start within 10 s")


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def reap(pid: int, timeout: float) -> bool:
    """Reap ``pid``, a child of this process (an orphan it inherited); False if it still runs after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            done, _status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:  # reaped already
            return True
        if done:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.01)


def kill_if_ours(pid: int, started: str) -> None:
    """Clean up after a failed test: kill ``pid`` only while it is still the process started."""
    if start_time(pid) == started:
        with suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    reap(pid, timeout=5)


def test_children_that_outlive_a_leader_exiting_on_sigterm_are_killed(tmp_path: Path, subreaper: None) -> None:
    leader, child, child_started = start_group(LEADER_EXITS_CHILD_STAYS, tmp_path)
    started = start_time(leader.pid)
    assert started is not None
    try:
        stop_services([Service("group", leader.pid, started)], timeout=1)
        assert leader.wait(timeout=5) == 0  # the leader ran its trap and exited on SIGTERM
        assert reap(child, timeout=2), "the child that ignores SIGTERM outlived stop_services"
        with pytest.raises(ProcessLookupError):
            os.killpg(leader.pid, 0)
    finally:
        kill_if_ours(child, child_started)
        leader.wait(timeout=5)


def test_a_group_that_ends_on_sigterm_is_not_waited_for_until_the_timeout(tmp_path: Path, subreaper: None) -> None:
    """The leader stays a zombie until this process reaps it, and so does its killed child until
    reaped: dead members that ``killpg`` still finds must not keep ``stop_services`` waiting."""
    leader, child, child_started = start_group(BOTH_END, tmp_path)
    started = start_time(leader.pid)
    assert started is not None
    try:
        begun = time.monotonic()
        stop_services([Service("group", leader.pid, started)], timeout=30)
        assert time.monotonic() - begun < 10
        assert leader.wait(timeout=5) == -signal.SIGTERM
        assert reap(child, timeout=2)
        with pytest.raises(ProcessLookupError):
            os.killpg(leader.pid, 0)
    finally:
        kill_if_ours(child, child_started)
        leader.wait(timeout=5)


def test_a_recorded_pid_with_anotherstart_time_is_left_alone(tmp_path: Path, subreaper: None) -> None:
    """A recorded PID the system has since given to another process: its group is not signalled."""
    leader, child, child_started = start_group(BOTH_END, tmp_path)
    try:
        stop_services([Service("recycled", leader.pid, "0")], timeout=1)
        assert leader.poll() is None
        assert start_time(child) == child_started
    finally:
        with suppress(ProcessLookupError):
            os.killpg(leader.pid, signal.SIGKILL)
        leader.wait(timeout=5)
        reap(child, timeout=5)
