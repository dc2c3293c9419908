"""The benchmark's servers: moto with a request counter, and the fixture registry with a control channel.

Both run as subprocesses, so their Python threads never share a GIL with the benchmark process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from devtools.harness import ROOT, MotoServer

BENCH = Path(__file__).resolve().parent


@dataclass
class CountingMoto(MotoServer):
    """devtools.harness.MotoServer, started from bench/moto_counting.py so that S3 requests are counted."""

    def command(self) -> list[str]:
        return [sys.executable, str(BENCH / "moto_counting.py"), "-p", str(self.port)]

    def s3_log(self, reset: bool = True) -> dict[str, Any]:
        """Counters since the last reset: counts by kind, bytes in/out, PUT bytes by bucket/key."""
        return requests.get(f"{self.endpoint}/_bench/s3log", params={"reset": int(reset)}, timeout=30).json()


@dataclass
class RegistryProcess:
    """bench/registry_server.py in a subprocess: ``Registry.synthetic(packages, versions)`` on loopback."""

    packages: int
    versions: int = 9
    url: str = ""
    process: subprocess.Popen | None = None
    session: requests.Session = field(default_factory=requests.Session)

    def start(self) -> RegistryProcess:
        command = [
            sys.executable,
            str(BENCH / "registry_server.py"),
            "--synthetic",
            str(self.packages),
            "--versions",
            str(self.versions),
        ]
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env)
        assert self.process.stdout is not None
        line = self.process.stdout.readline().strip()
        if not line.startswith("READY "):
            self.stop()
            raise RuntimeError(f"registry did not start: {line!r}")
        self.url = line.split()[1]
        return self

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(30)

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def _call(self, action: str, body: Any = None, **params: Any) -> Any:
        url = f"{self.url}/_bench/{action}"
        if body is None and action in ("log", "names"):
            response = self.session.get(url, params=params, timeout=120)
        else:
            response = self.session.post(url, params=params, data=json.dumps(body), timeout=120)
        response.raise_for_status()
        return response.json()

    def log(self, reset: bool = True) -> list[list[Any]]:
        """[method, path?query, status, bytes_out, server, conditional] per request since the last reset."""
        return self._call("log", reset=int(reset))

    def names(self) -> list[str]:
        return self._call("names")

    def validators(self, paths: list[str]) -> dict[str, list[str]]:
        return self._call("validators", sorted(paths))

    def mutate(self, op: str, name: str, **fields: Any) -> dict[str, Any]:
        return self._call("mutate", {"op": op, "name": name, **fields})

    def feed(self, on: bool) -> None:
        self._call("feed", {}, on=int(on))


def upstream_kinds(records: list[list[Any]]) -> dict[str, int]:
    """Request counts by kind from the registry log: p2 200/304/404, archives, redirects, other."""
    kinds: Counter = Counter()
    for _method, path, status, nbytes, _server, conditional in records:
        kinds["bytes"] += nbytes
        if path.startswith("/p2/"):
            kinds[f"p2_{status}"] += 1
            kinds["p2_conditional"] += conditional
        elif path.startswith("/codeload/"):
            kinds["archive_downloads" if status == 200 else f"archive_{status}"] += 1
        elif path.startswith("/zipball/"):
            kinds["redirects"] += 1
        elif path.startswith("/metadata/changes.json"):
            kinds["changes_feed"] += 1
        else:
            kinds["other"] += 1
    kinds["total"] = len(records)
    return dict(kinds)
