"""The HTTP side of the fixture registry: each request routed by its ``RegistryServer``, faulted, logged, written.

Keep-alive HTTP/1.1 with TCP_NODELAY (without it the delayed-ACK interplay stalls every small
response by ~40 ms) and one write per small response, so the fixture is never what a benchmark
measures. A fault can reset the connection, truncate or drip the body, or cut an archive short.
"""

from __future__ import annotations

import contextlib
import email.utils
import socket
import struct
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from devtools.fixture_registry.faults import FaultRule
from devtools.fixture_registry.responses import Response, bad_json, fault_status, json_response
from devtools.loopback import LoopbackHTTPServer

if TYPE_CHECKING:
    from devtools.fixture_registry.server import RegistryServer

_SINGLE_WRITE_LIMIT = 1 << 16
_SLOW_BODY_DEFAULT_PAUSE = 0.05


@dataclass(frozen=True)
class RequestRecord:
    """One request as the server saw it. ``status`` is 0 when the connection was reset instead.

    ``headers_in`` keeps the header names as the client sent them; use ``header()`` to look one up
    case-insensitively. ``bytes_out`` counts body bytes (what a truncating fault sends, not what it
    declares). ``server`` is "main" or "archive"; ``fault`` the injected fault's kind. A record is
    appended just before the response is written, so it is in the log by the time a client has read
    its answer.
    """

    method: str
    path: str
    status: int
    headers_in: dict[str, str]
    bytes_out: int
    query: str = ""
    server: str = "main"
    fault: str | None = None
    time: float = 0.0

    def header(self, name: str) -> str | None:
        """A request header by case-insensitive name."""
        lowered = name.lower()
        return next((v for k, v in self.headers_in.items() if k.lower() == lowered), None)

    @property
    def has_authorization(self) -> bool:
        """Whether the client sent any Authorization header (to assert credentials did not leak)."""
        return self.header("Authorization") is not None


@dataclass
class _Plan:
    response: Response
    rule: FaultRule | None
    declared: int  # the Content-Length header
    sent: int  # body bytes to write
    limit: int | None = None  # cut the body here (truncate, zip faults)
    reset: bool = False


class RegistryHTTPServer(LoopbackHTTPServer):
    """A loopback server of one of the registry's origins (``role`` "main" or "archive").

    Handler bugs are kept in ``owner.errors`` (answered 500) for tests to assert on; clients hanging
    up mid-response are normal here (timeouts, fault tests) and stay quiet.
    """

    owner: RegistryServer

    def __init__(
        self,
        address: tuple[str, int],
        handler_class: type[BaseHTTPRequestHandler],
        owner: RegistryServer,
        role: str,
    ) -> None:
        self.role = role
        super().__init__(address, handler_class, owner)

    def report_error(self, error: str) -> None:
        self.owner.errors.append(error)
        super().report_error(error)


class RegistryHandler(BaseHTTPRequestHandler):
    """Turns one request into a routed response, applies a fault if one matches, logs it."""

    protocol_version = "HTTP/1.1"
    server_version = "fixture-registry/1.0"
    sys_version = ""
    timeout = 120
    disable_nagle_algorithm = True
    server: RegistryHTTPServer

    def do_GET(self) -> None:
        self._handle()

    def do_HEAD(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def do_PUT(self) -> None:
        self._handle()

    def do_DELETE(self) -> None:
        self._handle()

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: the request log is ``RegistryServer.requests``."""

    def _handle(self) -> None:
        owner = self.server.owner
        split = urlsplit(self.path)
        body = self._read_body()
        try:
            response = owner.respond(self.server.role, self.command, split.path, split.query, body, self.headers)
        except Exception:
            owner.errors.append(traceback.format_exc())
            response = json_response(500, {"status": "error", "message": "fixture registry bug"}, kind="error")
        has_body = response.length > 0 and self.command != "HEAD"
        rule = owner.fault_for(split.path, response.kind, has_body)
        if rule is not None and rule.kind == "delay":
            time.sleep(rule.delay)
        plan = self._plan(response, rule)
        # Logged before writing, so a client that has its answer always finds it in the log.
        owner.record(
            RequestRecord(
                self.command,
                split.path,
                0 if plan.reset else plan.response.status,
                dict(self.headers.items()),
                0 if plan.reset or self.command == "HEAD" else plan.sent,
                split.query,
                self.server.role,
                rule.kind if rule else None,
                time.time(),
            )
        )
        self._execute(plan)

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _plan(self, response: Response, rule: FaultRule | None) -> _Plan:
        """What to write for this response once the fault (if any) has had its say."""
        kind = rule.kind if rule else None
        if kind == "status" and rule is not None:
            response = fault_status(rule)
        elif kind == "bad_json":
            response = bad_json(response)
        elif kind == "wrong_package":
            response = self.server.owner.wrong_package(response)
        plan = _Plan(response, rule, declared=response.length, sent=response.length, reset=kind == "reset")
        if kind == "truncate":
            plan.limit = plan.sent = response.length // 2
            plan.declared = max(response.length, 1)
            self.close_connection = True
        elif kind == "zip_no_central_directory" and response.archive is not None:
            plan.limit = plan.declared = plan.sent = response.archive.central_directory_offset
        return plan

    def _execute(self, plan: _Plan) -> None:
        """Write the planned response; a client hanging up midway just ends the connection."""
        if plan.reset:
            self._reset()
            return
        head = self._head(plan.response, plan.declared)
        try:
            if self.command == "HEAD":
                self.wfile.write(head)
            elif plan.rule is not None and plan.rule.kind == "slow_body":
                self._write_slowly(head, plan.response, plan.rule)
            else:
                self._write(head, plan.response.pieces(plan.limit))
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _head(self, response: Response, declared: int) -> bytes:
        reason = HTTPStatus(response.status).phrase if response.status in HTTPStatus._value2member_map_ else ""
        lines = [
            f"HTTP/1.1 {response.status} {reason}",
            f"Date: {email.utils.formatdate(usegmt=True)}",
            f"Server: {self.server_version}",
        ]
        lines += [f"{name}: {value}" for name, value in response.headers]
        if response.status != 304:
            lines.append(f"Content-Length: {declared}")
        if self.close_connection:
            lines.append("Connection: close")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    def _write(self, head: bytes, pieces: Iterator[bytes]) -> None:
        """Head and first piece in one write when small, the rest as it comes."""
        pending = head
        for piece in pieces:
            if pending and len(piece) <= _SINGLE_WRITE_LIMIT:
                self.wfile.write(pending + piece)
            else:
                if pending:
                    self.wfile.write(pending)
                self.wfile.write(piece)
            pending = b""
        if pending:
            self.wfile.write(pending)

    def _write_slowly(self, head: bytes, response: Response, rule: FaultRule) -> None:
        pause = rule.delay or _SLOW_BODY_DEFAULT_PAUSE
        size = max(1, rule.chunk_size)
        self.wfile.write(head)
        for piece in response.pieces(None):
            for start in range(0, len(piece), size):
                time.sleep(pause)
                self.wfile.write(piece[start : start + size])

    def _reset(self) -> None:
        """Abort the connection with an RST (SO_LINGER 0) and no response at all."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()  # the fd really closes when finish() closes rfile: an RST, no FIN
