"""Summarise a py-spy speedscope profile (``--idle``) of an `airflow dags test` run.

``python bench/profile_summary.py bench/results/logs/2000-c.speedscope.json [--top 25]``

`airflow dags test` runs the tasks one after another on its main thread, so the main thread's samples
are the run's wall time. Printed:

1. main thread, wall seconds inclusive per frame, for the pipeline (``composer_mirror/``) and a few
   Airflow landmarks (imports, the in-process execution API, the scheduling loop's sleeps);
2. the main thread's timeline, one line per second: the innermost pipeline frame, else the landmark;
3. worker threads (the pipeline's thread pools), thread-seconds per innermost pipeline frame, and the
   innermost frames anywhere (where those threads wait or burn CPU).
"""

from __future__ import annotations

import argparse
import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

OURS = "composer_mirror/"
LANDMARKS = {
    "_find_and_load": "imports",
    "InProcessTestSupervisor.start": "in-process execution API (task start/finish)",
    "time_sleep": "dags test scheduling loop sleep",
    "gc_collect_main": "garbage collection (native)",
    "DAG.test": "dags test loop",
}
_THREAD = re.compile(r"Process (\d+) Thread (\d+)")


def short(frame: dict[str, Any]) -> str:
    path = frame.get("file") or ""
    for marker in ("site-packages/", "include/", "/work/main/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{path}:{frame['name']}"


def label(stack: list[str]) -> str:
    ours = [f for f in stack if OURS in f]
    if ours:
        return ours[-1]
    for frame in reversed(stack):
        for key, name in LANDMARKS.items():
            if frame.endswith(":" + key):
                return name
    return "other (outside the pipeline)" if len(stack) > 1 else "no Python frame (interpreter exit)"


def summarise(path: Path, top: int) -> str:
    document = json.loads(path.read_text())
    names = [short(frame) for frame in document["shared"]["frames"]]
    out = [f"{path.name}"]
    for profile in document["profiles"]:
        match = _THREAD.search(profile["name"])
        if not match or match[1] != match[2]:
            continue
        stacks = [[names[i] for i in sample] for sample in profile["samples"]]
        weights = profile["weights"]
        wall = sum(weights)
        inclusive: Counter = Counter()
        for stack, weight in zip(stacks, weights, strict=True):
            for frame in set(stack):
                if OURS in frame or any(frame.endswith(":" + key) for key in LANDMARKS):
                    inclusive[frame] += weight
        out.append(f"\nmain thread of process {match[1]}: {wall:.1f} s wall")
        for frame, seconds in inclusive.most_common(top):
            out.append(f"  {seconds:7.2f} s  {100 * seconds / wall:5.1f}%  {frame}")
        out.append("\n  timeline (per second: the innermost pipeline frame, else an Airflow landmark):")
        second, bucket = 0.0, Counter()
        elapsed = 0.0
        for stack, weight in zip(stacks, weights, strict=True):
            bucket[label(stack)] += weight
            elapsed += weight
            if elapsed - second >= 1.0:
                out.append(f"  {second:6.1f}s  {bucket.most_common(1)[0][0]}")
                second, bucket = elapsed, Counter()
    workers_ours: Counter = Counter()
    workers_leaf: Counter = Counter()
    for profile in document["profiles"]:
        match = _THREAD.search(profile["name"])
        if not match or match[1] == match[2]:
            continue
        for sample, weight in zip(profile["samples"], profile["weights"], strict=True):
            stack = [names[i] for i in sample]
            ours = [f for f in stack if OURS in f]
            if ours:
                workers_ours[ours[-1]] += weight
                workers_leaf[stack[-1]] += weight
    total = sum(workers_ours.values())
    out.append(f"\nworker threads inside the pipeline: {total:.1f} thread-seconds, by innermost pipeline frame:")
    for frame, seconds in workers_ours.most_common(top):
        out.append(f"  {seconds:7.2f} s  {100 * seconds / max(total, 1e-9):5.1f}%  {frame}")
    out.append("\n  ... and by innermost frame (what those threads were doing):")
    for frame, seconds in workers_leaf.most_common(top):
        out.append(f"  {seconds:7.2f} s  {100 * seconds / max(total, 1e-9):5.1f}%  {frame}")
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("profile", type=Path)
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    print(summarise(args.profile, args.top))


if __name__ == "__main__":
    main()
