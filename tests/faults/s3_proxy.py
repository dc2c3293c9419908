"""A reverse proxy in front of the moto S3 server that breaks chosen requests on purpose.

Point the Airflow ``aws_default`` connection (or a boto3 client) at ``proxy.endpoint`` and every
S3 request goes through it; rules decide which ones fail and how:

- ``slowdown``: answer 503 with S3's ``SlowDown`` XML error, as S3 does when throttling.
- ``internal_error``: answer 500 ``InternalError``.
- ``access_denied``: answer 403 ``AccessDenied``: a failure no retry can fix.
- ``stall``: hold the request, never answer (until the proxy stops): a worker stuck mid-upload,
  for a test to kill. ``proxy.stalled`` is set when one is held.
- ``barrier``: hold each matching request until ``parties`` of them have arrived (or ``timeout``),
  then forward them all at once: two writers that read the same version of an object are made to
  write it at the same moment, which is exactly the lost-update race compare-and-swap must survive.
- ``strip_etag``: forward the request and drop the ``ETag`` header from the answer, as some
  proxies and S3-compatible stores do: the object is read (or written) without learning its ETag,
  so no ``If-Match`` can be built from it. ETags inside XML bodies (listings) are left alone.

Rules match the HTTP method and the object key (path-style URLs: ``/<bucket>/<key>``); ``after``
lets that many matching requests through first, ``times`` bounds how many are broken (None: all).
``armed_by`` (a method and a key regex) keeps a rule from matching anything until a request like
that has been answered with success: "hold the next write after the first record is stored".
Conditional PUTs (``If-Match`` / ``If-None-Match``) are forwarded one key at a time, because moto
checks the condition and stores the object in two steps: real S3 does both atomically.
"""

from __future__ import annotations

import contextlib
import http.client
import re
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import unquote, urlsplit

from devtools.loopback import LoopbackServer

ERROR_XML = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    "<Error><Code>{code}</Code><Message>{message}</Message><Key>{key}</Key>"
    "<RequestId>FAULTPROXY</RequestId></Error>"
)
ERRORS = {
    "slowdown": (503, "SlowDown", "Please reduce your request rate."),
    "internal_error": (500, "InternalError", "We encountered an internal error. Please try again."),
    "access_denied": (403, "AccessDenied", "Access Denied"),
}
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-connection"}


@dataclass
class S3Rule:
    """Break ``method`` requests whose key matches ``key_regex``; see the module docstring for actions."""

    method: str
    key_regex: str
    action: str
    times: int | None = None
    after: int = 0
    parties: int = 2
    timeout: float = 60.0
    armed_by: tuple[str, str] | None = None
    seen: int = field(default=0, init=False)
    fired: int = field(default=0, init=False)
    armed: bool = field(default=False, init=False)

    def __post_init__(self) -> None:
        if self.action not in (*ERRORS, "stall", "barrier", "strip_etag"):
            raise ValueError(f"unknown S3 fault action {self.action!r}")
        self._pattern = re.compile(self.key_regex)
        self.armed = self.armed_by is None
        self._arming = (self.armed_by[0], re.compile(self.armed_by[1])) if self.armed_by is not None else None

    def take(self, method: str, key: str) -> bool:
        """Whether this request is broken by this rule (counts it; call under the proxy's lock)."""
        if not self.armed or method != self.method or not self._pattern.search(key):
            return False
        self.seen += 1
        if self.seen <= self.after or (self.times is not None and self.fired >= self.times):
            return False
        self.fired += 1
        return True

    def arm(self, method: str, key: str, status: int) -> None:
        """Arm the rule when this answered request is its ``armed_by`` (call under the proxy's lock)."""
        if self._arming is None or self.armed:
            return
        arming_method, arming_key = self._arming
        self.armed = method == arming_method and 200 <= status < 300 and arming_key.search(key) is not None


@dataclass(frozen=True)
class ProxiedRequest:
    method: str
    key: str
    status: int
    fault: str | None
    time: float


class _Barrier:
    def __init__(self, parties: int) -> None:
        self.parties = parties
        self.arrived = 0
        self.condition = threading.Condition()

    def wait(self, timeout: float) -> None:
        with self.condition:
            self.arrived += 1
            self.condition.notify_all()
            self.condition.wait_for(lambda: self.arrived >= self.parties, timeout=timeout)


class S3FaultProxy:
    """See the module docstring. Use as a context manager; ``requests`` is the log of what it saw."""

    def __init__(self, upstream_endpoint: str, rules: list[S3Rule] | None = None) -> None:
        parts = urlsplit(upstream_endpoint)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.rules: list[S3Rule] = list(rules or [])
        self.requests: list[ProxiedRequest] = []
        self.stalled = threading.Event()
        self._release = threading.Event()
        self._lock = threading.Lock()
        self._barriers: dict[int, _Barrier] = {}
        self._key_locks: defaultdict[str, threading.Lock] = defaultdict(threading.Lock)
        self._server: LoopbackServer | None = None

    @property
    def endpoint(self) -> str:
        assert self._server is not None, "proxy not started"
        return self._server.url

    def start(self) -> S3FaultProxy:
        handler = type("Handler", (_Handler,), {"proxy": self})
        self._server = LoopbackServer(handler, name="s3-fault-proxy").start()
        return self

    def stop(self) -> None:
        self._release.set()  # held requests end first
        if self._server is not None:
            self._server.stop()
            self._server = None

    def __enter__(self) -> S3FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def set_rules(self, rules: list[S3Rule]) -> None:
        with self._lock:
            self.rules = list(rules)
            self._barriers.clear()
            self.stalled.clear()

    def faults(self, action: str | None = None) -> list[ProxiedRequest]:
        return [r for r in list(self.requests) if r.fault and (action is None or r.fault == action)]

    # --- called by the handler --------------------------------------------------------------
    def _pick(self, method: str, key: str) -> tuple[int, S3Rule] | None:
        with self._lock:
            for index, rule in enumerate(self.rules):
                if rule.take(method, key):
                    if rule.action == "barrier":
                        self._barriers.setdefault(index, _Barrier(rule.parties))
                    return index, rule
        return None

    def _log(self, method: str, key: str, status: int, fault: str | None) -> None:
        """Record a request once answered (or broken); a success may arm a rule waiting for it."""
        with self._lock:
            self.requests.append(ProxiedRequest(method, key, status, fault, time.time()))
            for rule in self.rules:
                rule.arm(method, key, status)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    proxy: S3FaultProxy

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the proxy keeps its own log."""

    def do_GET(self) -> None:
        self._handle()

    def do_HEAD(self) -> None:
        self._handle()

    def do_PUT(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def do_DELETE(self) -> None:
        self._handle()

    def _handle(self) -> None:
        body = self._read_body()
        path = urlsplit(self.path).path
        key = unquote(path.lstrip("/").partition("/")[2])
        picked = self.proxy._pick(self.command, key)
        rule = picked[1] if picked else None
        if rule is not None and rule.action in ERRORS:
            status, code, message = ERRORS[rule.action]
            self.proxy._log(self.command, key, status, rule.action)
            self._send(
                status,
                [("Content-Type", "application/xml")],
                ERROR_XML.format(code=code, message=message, key=key).encode(),
            )
            return
        if rule is not None and rule.action == "stall":
            self.proxy._log(self.command, key, 0, "stall")
            self.proxy.stalled.set()
            self.proxy._release.wait()
            self.close_connection = True
            return
        if rule is not None and picked is not None and rule.action == "barrier":
            self.proxy._barriers[picked[0]].wait(rule.timeout)
        conditional = self.command == "PUT" and ("If-Match" in self.headers or "If-None-Match" in self.headers)
        lock = self.proxy._key_locks[key] if conditional else contextlib.nullcontext()
        with lock:
            status, headers, payload = self._forward(body)
        if rule is not None and rule.action == "strip_etag":
            headers = [(name, value) for name, value in headers if name.lower() != "etag"]
        self.proxy._log(self.command, key, status, rule.action if rule else None)
        self._send(status, headers, payload)

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _forward(self, body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
        connection = http.client.HTTPConnection(*self.proxy.upstream, timeout=60)
        try:
            headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP | {"expect"}}
            headers["Content-Length"] = str(len(body))
            connection.request(self.command, self.path, body=body, headers=headers)
            response = connection.getresponse()
            payload = response.read()
            dropped = HOP_BY_HOP if self.command == "HEAD" else HOP_BY_HOP | {"content-length"}
            kept = [(k, v) for k, v in response.getheaders() if k.lower() not in dropped]
            return response.status, kept, payload
        finally:
            connection.close()

    def _send(self, status: int, headers: list[tuple[str, str]], payload: bytes) -> None:
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        if self.command != "HEAD" or not any(name.lower() == "content-length" for name, _ in headers):
            self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)
