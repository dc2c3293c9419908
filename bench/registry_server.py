"""The fixture registry as a subprocess of the benchmark, with a small control channel under ``/_bench/``.

Run as ``python bench/registry_server.py --synthetic N`` (prints ``READY <url>``). It serves
``devtools.fixture_registry`` unchanged and adds, on the same port:

- ``GET  /_bench/log?reset=1``           the request log since the last reset (control requests excluded)
- ``GET  /_bench/names``                 every package name
- ``POST /_bench/validators``            body ``["/p2/a/b.json", ...]`` -> ``{path: [etag, last_modified]}``
- ``POST /_bench/mutate``                body ``{"op": "touch"|"add_version"|"set_archive_size", ...}``
- ``POST /_bench/feed?on=0|1``           publish (or not) ``metadata-changes-url`` in the root

A subprocess keeps the registry's Python threads off the GIL of the benchmark process (which samples
RSS and runs the raw floor); both still share the machine's cores with Airflow and moto.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import sys
import threading
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

sys.path[:0] = [str(Path(__file__).resolve().parent.parent)]

from devtools.fixture_registry import Registry, RegistryServer, RequestRecord, Response, json_response  # noqa: E402

CONTROL = "/_bench/"
_P2 = re.compile(r"^/p2/(?P<name>[^/]+/[^/]+?)(?P<dev>~dev)?\.json$")


class BenchRegistryServer(RegistryServer):
    """RegistryServer plus the ``/_bench/`` control endpoints; control requests are not logged."""

    def record(self, record: RequestRecord) -> None:
        if not record.path.startswith(CONTROL):
            super().record(record)

    def respond(self, role: str, method: str, path: str, query: str, body: bytes, headers: Any) -> Response:
        if role != "main" or not path.startswith(CONTROL):
            return super().respond(role, method, path, query, body, headers)
        params = parse_qs(query)
        action = path[len(CONTROL) :]
        if action == "log":
            return json_response(200, self._log_records(reset=params.get("reset", ["0"])[0] == "1"))
        if action == "names":
            return json_response(200, self.registry.package_names())
        if action == "validators":
            return json_response(200, self._validators(json.loads(body or b"[]")))
        if action == "mutate":
            return json_response(200, self._mutate(json.loads(body)))
        if action == "feed":
            self.changes_feed = params.get("on", ["1"])[0] == "1"
            return json_response(200, {"changes_feed": self.changes_feed})
        return json_response(404, {"error": f"unknown control action {action}"})

    def _log_records(self, reset: bool) -> list[list[Any]]:
        records = self.take_requests() if reset else self.requests
        return [
            [
                r.method,
                r.path + ("?" + r.query if r.query else ""),
                r.status,
                r.bytes_out,
                r.server,
                r.header("If-None-Match") is not None or r.header("If-Modified-Since") is not None,
            ]
            for r in records
        ]

    def _validators(self, paths: list[str]) -> dict[str, list[str]]:
        found = {}
        for path in paths:
            match = _P2.match(path)
            body = match and self.registry.p2_file(match["name"], bool(match["dev"]), self.url)
            if body:
                found[path] = [body.etag, body.last_modified_http]
        return found

    def _mutate(self, command: dict[str, Any]) -> dict[str, Any]:
        op, name = command["op"], command["name"]
        if op == "touch":
            self.registry.touch(name)
            return {"ok": True}
        if op == "add_version":
            entry = self.registry.add_version(name, command["version"])
            return {"ok": True, "reference": entry["dist"]["reference"]}
        if op == "set_archive_size":
            self.registry.set_archive_size(name, command["version"], int(command["nbytes"]))
            return {"ok": True}
        raise ValueError(f"unknown op {op}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--synthetic", type=int, required=True, metavar="N")
    parser.add_argument("--versions", type=int, default=9)
    parser.add_argument("--vendors", type=int, default=50)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    registry = Registry.synthetic(args.synthetic, versions=args.versions, vendors=args.vendors, seed=args.seed)
    server = BenchRegistryServer(registry, port=args.port)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    with server:
        print(f"READY {server.url}", flush=True)
        stop.wait()
    return 0


if __name__ == "__main__":
    status = main()
    sys.stdout.flush()
    os._exit(status)  # skip tearing down a big registry object by object
