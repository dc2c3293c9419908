"""`make stack` / `make stack-down`: the production topology of docker-compose.yaml as local processes.

    python scripts/stack.py up [--dir .stack] [--upstream URL --packages 'a/b vendor/*'] [--workers 2]
    python scripts/stack.py down [--dir .stack]

`up` starts PostgreSQL, Redis, an S3 endpoint (moto server) with the bucket policy, nginx serving the
bucket, Airflow's api-server, scheduler, dag-processor and triggerer, and Celery workers, all on
loopback, then returns and leaves them running; without --upstream it also serves the bundled sample
registry and mirrors the demo selection. `down` stops exactly the processes `up` recorded. See
devtools/stack/ for what is shared with docker-compose.yaml.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "include"), str(ROOT)]

from devtools.harness import DEMO_SELECTION  # noqa: E402
from devtools.stack import Ports, Stack, StackError, StackSettings, down, recorded  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=("up", "down"))
    parser.add_argument("--dir", type=Path, default=ROOT / ".stack", help="where the stack keeps data and logs")
    parser.add_argument("--upstream", default="", help="the Composer repository to mirror (default: the sample)")
    parser.add_argument("--packages", help="space- or comma-separated selection (names, vendor/*, name:constraint)")
    parser.add_argument("--workers", type=int, default=2, help="Celery workers (default 2)")
    args = parser.parse_args(argv)

    if args.command == "down":
        stopped = down(args.dir)
        print(f"stopped: {', '.join(stopped)}" if stopped else f"nothing of a stack is running from {args.dir}")
        return 0
    running = [service.name for service in recorded(args.dir) if service.alive()]
    if running:
        print(
            f"a stack started from {args.dir} is running ({', '.join(running)}): `make stack-down` first",
            file=sys.stderr,
        )
        return 1
    selection = args.packages.replace(",", " ").split() if args.packages else DEMO_SELECTION
    ports = Ports()
    ports.worker_logs = [8793 + 2 * index for index in range(args.workers)]
    settings = StackSettings(args.dir, selection, args.upstream, ports=ports, workers=args.workers)
    try:
        stack = Stack(settings).up(on_step=lambda step: print(f"starting {step}", flush=True))
    except StackError as error:
        print(f"make stack failed: {error}", file=sys.stderr)
        return 1
    print(json.dumps(stack.describe(), indent=2))
    print("The sync DAG is unpaused, so the scheduler starts a run now; `make stack-down` stops everything.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
