"""Command line: serve a fixture registry until killed, for ``make demo`` and the benchmark.

Prints exactly one line ``READY <url>`` on stdout (flushed) once listening, so a parent process can
wait for it and read the port chosen with ``--port 0``.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from pathlib import Path

from devtools.fixture_registry.data import Registry
from devtools.fixture_registry.server import RegistryServer
from devtools.harness import SAMPLE_LOCK


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m devtools.fixture_registry", description=__doc__)
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--lock", type=Path, help="serve the packages of this composer.lock (default: symfony-demo)")
    source.add_argument("--synthetic", type=int, metavar="N", help="serve N synthetic packages instead")
    parser.add_argument("--versions", type=int, default=9, help="versions per synthetic package")
    parser.add_argument("--vendors", type=int, default=50, help="vendors of the synthetic packages")
    parser.add_argument("--seed", type=int, default=1, help="seed of the synthetic data")
    parser.add_argument("--extra-versions", type=int, default=2, help="older synthetic tags per locked package")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081, help="0 picks a free port")
    parser.add_argument("--archive-server", action="store_true", help="serve archives from a second origin")
    parser.add_argument("--no-changes-feed", action="store_true", help="publish no metadata-changes-url")
    parser.add_argument("--basic-auth", metavar="USER:PASS", help="require HTTP Basic credentials")
    parser.add_argument("--bearer", metavar="TOKEN", help="require this Bearer token")
    return parser.parse_args(argv)


def _registry(args: argparse.Namespace) -> Registry:
    if args.synthetic is not None:
        return Registry.synthetic(packages=args.synthetic, versions=args.versions, vendors=args.vendors, seed=args.seed)
    return Registry.from_lock(args.lock or SAMPLE_LOCK, extra_versions=args.extra_versions)


def main(argv: list[str] | None = None) -> int:
    """Build the registry, serve it, print READY, block until SIGINT/SIGTERM."""
    args = _parse(argv)
    auth: tuple[str, str] | str | None = None
    if args.basic_auth:
        user, _, password = args.basic_auth.partition(":")
        auth = (user, password)
    elif args.bearer:
        auth = args.bearer
    server = RegistryServer(
        _registry(args),
        auth=auth,
        host=args.host,
        port=args.port,
        changes_feed=not args.no_changes_feed,
        archive_server=args.archive_server,
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    with server:
        print(f"READY {server.url}", flush=True)
        if server.archive_url:
            print(f"archives served from {server.archive_url}", file=sys.stderr, flush=True)
        stop.wait()
    return 0


if __name__ == "__main__":
    status = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)  # skip freeing a big registry object by object, which takes seconds at exit
