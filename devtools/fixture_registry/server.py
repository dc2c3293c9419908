"""The HTTP side: a packagist-like server for a ``Registry``, with auth, a request log and faults.

``http.server.ThreadingHTTPServer`` with HTTP/1.1 keep-alive, TCP_NODELAY (without it the delayed-ACK
interplay stalls every small response by ~40 ms) and one write per small response, so the fixture is
never what a benchmark measures. Bodies come pre-serialised from the registry.

An optional second listener on another port plays codeload's role: ``/zipball/...`` on the main server
redirects there, the port makes it a different origin for Composer's credential handling, and it never
asks for credentials, so the request log shows whether a client leaked them across hosts.
"""

from __future__ import annotations

import base64
import contextlib
import email.utils
import hashlib
import json
import re
import socket
import socketserver
import struct
import threading
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from devtools.fixture_registry.archives import Archive
from devtools.fixture_registry.data import FileBody, Registry
from devtools.fixture_registry.faults import FaultRule, FaultState

_P2_RE = re.compile(r"^/p2/(?P<name>[^/]+/[^/]+?)(?P<dev>~dev)?\.json$")
_ZIPBALL_RE = re.compile(r"^/zipball/(?P<name>[^/]+/[^/]+)/(?P<ref>[^/]+)$")
_CODELOAD_RE = re.compile(r"^/codeload/(?P<name>[^/]+/[^/]+)/(?P<ref>[^/]+)\.zip$")
_PROVIDERS_RE = re.compile(r"^/providers/(?P<name>.+)\.json$")
_JSON = "application/json"
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
class _Response:
    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    archive: Archive | None = None
    kind: str = "other"  # "p2", "archive", "json", "redirect", "error"
    package: str | None = None
    dev: bool = False

    @property
    def length(self) -> int:
        return self.archive.length if self.archive is not None else len(self.body)

    def pieces(self, limit: int | None) -> Iterator[bytes]:
        if self.archive is not None:
            yield from self.archive.chunks(limit)
        else:
            yield self.body if limit is None else self.body[:limit]


@dataclass
class _Plan:
    response: _Response
    rule: FaultRule | None
    declared: int  # the Content-Length header
    sent: int  # body bytes to write
    limit: int | None = None  # cut the body here (truncate, zip faults)
    reset: bool = False


class RegistryServer:
    """Serves a ``Registry`` on 127.0.0.1 (random port by default) from background threads.

    Use as a context manager or call ``start()``/``stop()``. ``auth`` is None, a ``(user, password)``
    tuple for HTTP Basic or a string for a Bearer token. ``changes_feed=False`` drops
    ``metadata-changes-url`` from the root, ``relative_metadata_url=True`` publishes
    ``/p2/%package%.json``, ``archive_server=True`` adds the codeload-like second origin.
    """

    def __init__(
        self,
        registry: Registry,
        faults: list[FaultRule] | None = None,
        auth: tuple[str, str] | str | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        changes_feed: bool = True,
        relative_metadata_url: bool = False,
        archive_server: bool = False,
        archive_port: int = 0,
    ) -> None:
        self.registry = registry
        self.auth = auth
        self.changes_feed = changes_feed
        self.relative_metadata_url = relative_metadata_url
        self._host = host
        self._port = port
        self._want_archive_server = archive_server
        self._archive_port = archive_port
        self._faults = FaultState(faults)
        self._log: list[RequestRecord] = []
        self._log_lock = threading.Lock()
        self.errors: list[str] = []  # tracebacks of handler bugs (answered 500), for tests to assert on
        self._httpd: _HTTPServer | None = None
        self._archive_httpd: _HTTPServer | None = None
        self._threads: list[threading.Thread] = []
        self._root_cache: FileBody | None = None

    # ------------------------------------------------------------------------------------- lifecycle

    def start(self) -> RegistryServer:
        """Bind and serve in daemon threads; returns self so ``srv = RegistryServer(...).start()`` works."""
        if self._httpd is not None:
            raise RuntimeError("server already started")
        self._httpd = _HTTPServer((self._host, self._port), self, "main")
        if self._want_archive_server:
            self._archive_httpd = _HTTPServer((self._host, self._archive_port), self, "archive")
        for httpd in (self._httpd, self._archive_httpd):
            if httpd is not None:
                thread = threading.Thread(
                    target=httpd.serve_forever,
                    kwargs={"poll_interval": 0.05},
                    name=f"fixture-registry-{httpd.role}",
                    daemon=True,
                )
                thread.start()
                self._threads.append(thread)
        return self

    def stop(self) -> None:
        """Stop accepting, drop open keep-alive connections and release the ports."""
        for httpd in (self._httpd, self._archive_httpd):
            if httpd is not None:
                httpd.shutdown()
                httpd.close_connections()
                httpd.server_close()
        for thread in self._threads:
            thread.join(timeout=5)
        self._threads.clear()
        self._httpd = self._archive_httpd = None
        self._root_cache = None

    def __enter__(self) -> RegistryServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # ---------------------------------------------------------------------------------------- access

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT`` of the main server."""
        if self._httpd is None:
            raise RuntimeError("server not started")
        return f"http://{self._host}:{self._httpd.server_address[1]}"

    def open_connections(self) -> list[dict[str, bool]]:
        """The main server's open client connections, each with whether TCP_NODELAY is set on it."""
        if self._httpd is None:
            return []
        with self._httpd._connections_lock:
            connections = list(self._httpd._connections)
        return [{"nodelay": bool(c.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))} for c in connections]

    @property
    def archive_url(self) -> str | None:
        """Origin of the archive server, or None when archives are served by the main server."""
        if self._archive_httpd is None:
            return None
        return f"http://{self._host}:{self._archive_httpd.server_address[1]}"

    @property
    def requests(self) -> list[RequestRecord]:
        """A snapshot of the request log, oldest first."""
        with self._log_lock:
            return list(self._log)

    def reset_log(self) -> None:
        """Forget logged requests (fault counters are kept; see ``set_faults``)."""
        with self._log_lock:
            self._log.clear()

    def count(self, path_regex: str | None = None, status: int | None = None) -> int:
        """Logged requests whose path matches ``path_regex`` (re.search) and whose status is ``status``."""
        pattern = re.compile(path_regex) if path_regex is not None else None
        return sum(
            1
            for r in self.requests
            if (pattern is None or pattern.search(r.path)) and (status is None or r.status == status)
        )

    @property
    def faults(self) -> list[FaultRule]:
        """The active fault rules."""
        return self._faults.rules

    @faults.setter
    def faults(self, rules: list[FaultRule]) -> None:
        self.set_faults(rules)

    def set_faults(self, rules: list[FaultRule]) -> None:
        """Replace the fault rules at runtime; per-path counters start again from zero."""
        self._faults.replace(rules)

    def versions(self, name: str, *, dev: bool | None = None) -> list[dict[str, Any]]:
        """``registry.versions`` with this server's absolute URLs."""
        return self.registry.versions(name, self.url, dev=dev)

    # ------------------------------------------------------------------------------------- internals

    def _record(self, record: RequestRecord) -> None:
        with self._log_lock:
            self._log.append(record)

    def _respond(self, role: str, method: str, path: str, query: str, body: bytes, headers: Any) -> _Response:
        """Route one request to its response (before faults)."""
        if role == "archive":
            match = _CODELOAD_RE.match(path)
            if match is None or method not in ("GET", "HEAD"):
                return _json(404, {"status": "error", "message": "Not Found"}, kind="error")
            return self._archive_response(match["name"], match["ref"])
        if self.auth is not None and not self._authorized(headers.get("Authorization")):
            return self._unauthorized()
        if method == "POST":
            return self._route_post(path, body, headers)
        if method not in ("GET", "HEAD"):
            return _json(405, {"status": "error", "message": "Method Not Allowed"}, kind="error")
        return self._route_get(path, query, headers)

    def _route_get(self, path: str, query: str, headers: Any) -> _Response:
        params = parse_qs(query, keep_blank_values=True)
        match = _P2_RE.match(path)
        if match:
            return self._p2_response(match["name"], bool(match["dev"]), headers)
        if path == "/packages.json":
            return _conditional(self._root(), headers, "json")
        if path == "/packages/list.json":
            names = self.registry.list_names(_first(params, "vendor"), _first(params, "filter"), _first(params, "type"))
            return _json(200, {"packageNames": names})
        if path == "/metadata/changes.json" and self.changes_feed:
            status, document = self.registry.changes(_first(params, "since"))
            return _json(status, document)
        if path.rstrip("/") == "/api/security-advisories":
            return self._advisories(params)
        match = _ZIPBALL_RE.match(path)
        if match:
            return self._redirect_to_archive(match["name"], match["ref"])
        match = _CODELOAD_RE.match(path)
        if match:
            return self._archive_response(match["name"], match["ref"])
        match = _PROVIDERS_RE.match(path)
        if match:
            return _json(200, {"providers": self.registry.providers(match["name"])})
        if path == "/search.json":
            results = self.registry.search(_first(params, "q") or "", _first(params, "type"))
            return _json(200, {"results": results, "total": len(results)})
        return _json(404, {"status": "error", "message": "Not Found"}, kind="error")

    def _route_post(self, path: str, body: bytes, headers: Any) -> _Response:
        if path.rstrip("/") == "/api/security-advisories":
            content_type = headers.get("Content-Type", "")
            params = (
                parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True) if "json" not in content_type else {}
            )
            return self._advisories(params)
        if path == "/downloads/":
            return _json(201, {"status": "success"})
        return _json(405, {"status": "error", "message": "Method Not Allowed"}, kind="error")

    def _p2_response(self, name: str, dev: bool, headers: Any) -> _Response:
        file_body = self.registry.p2_file(name, dev, self.url)
        if file_body is None:
            return _json(404, {"status": "error", "message": "Package not found"}, kind="error")
        response = _conditional(file_body, headers, "p2")
        response.package, response.dev = name, dev
        return response

    def _root(self) -> FileBody:
        if self._root_cache is None:
            url = self.url
            root: dict[str, Any] = {
                "packages": [],
                "notify-batch": f"{url}/downloads/",
                "metadata-url": ("" if self.relative_metadata_url else url) + "/p2/%package%.json",
                "metadata-changes-url": f"{url}/metadata/changes.json",
                "search": f"{url}/search.json?q=%query%&type=%type%",
                "list": f"{url}/packages/list.json",
                "security-advisories": {"metadata": True, "api-url": f"{url}/api/security-advisories/"},
                "providers-api": f"{url}/providers/%package%.json",
            }
            if not self.changes_feed:
                del root["metadata-changes-url"]
            body = json.dumps(root, separators=(",", ":")).encode()
            self._root_cache = FileBody(body, '"' + hashlib.sha1(body).hexdigest() + '"', self.registry.created)
        return self._root_cache

    def _advisories(self, params: dict[str, list[str]]) -> _Response:
        names = [v for k, values in params.items() if k == "packages" or k.startswith("packages[") for v in values if v]
        since = _first(params, "updatedSince")
        if not names and since is None:
            return _json(
                400,
                {"status": "error", "message": 'Missing array of package names as the "packages" parameter'},
            )
        found = self.registry.full_advisories(names, int(since or 0) if (since or "0").isdigit() else 0, self.url)
        # PHP serialises an empty array as [], and packagist answers {"advisories": []} when none match.
        return _json(200, {"advisories": found or []})

    def _redirect_to_archive(self, name: str, reference: str) -> _Response:
        if self.registry.archive(name, reference) is None:
            return _json(404, {"message": "Not Found"}, kind="error")
        origin = self.archive_url or self.url
        return _Response(302, [("Location", f"{origin}/codeload/{name}/{reference}.zip")], kind="redirect")

    def _archive_response(self, name: str, reference: str) -> _Response:
        archive = self.registry.archive(name, reference)
        if archive is None:
            return _json(404, {"message": "Not Found"}, kind="error")
        filename = f"{name.replace('/', '-')}-{reference[:7]}.zip"
        headers = [
            ("Content-Type", "application/zip"),
            ("Content-Disposition", f"attachment; filename={filename}"),
        ]
        return _Response(200, headers, archive=archive, kind="archive", package=name)

    def _authorized(self, header: str | None) -> bool:
        if header is None:
            return False
        if isinstance(self.auth, tuple):
            expected = base64.b64encode(f"{self.auth[0]}:{self.auth[1]}".encode()).decode()
            return header.strip() == f"Basic {expected}"
        return header.strip() == f"Bearer {self.auth}"

    def _unauthorized(self) -> _Response:
        scheme = "Basic" if isinstance(self.auth, tuple) else "Bearer"
        response = _json(401, {"status": "error", "message": "Unauthorized"}, kind="error")
        response.headers.append(("WWW-Authenticate", f'{scheme} realm="fixture registry"'))
        return response

    def _wrong_package(self, response: _Response) -> _Response:
        """Another package's p2 file served under this package's URL."""
        names = self.registry.package_names()
        others = [n for n in names if n != response.package]
        if not others:
            document = json.loads(response.body or b"{}")
            document["packages"] = {"fixture/wrong-package": next(iter(document.get("packages", {}).values()), [])}
            return _json(200, document, kind="p2")
        index = names.index(response.package) if response.package in names else -1
        other = names[(index + 1) % len(names)] if index >= 0 else others[0]
        other_body = self.registry.p2_file(other, response.dev, self.url)
        assert other_body is not None
        return _Response(200, _validators(other_body), other_body.body, kind="p2", package=other)


class _HTTPServer(ThreadingHTTPServer):
    """ThreadingHTTPServer that tracks its connections so ``stop()`` can end keep-alive sessions."""

    daemon_threads = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], owner: RegistryServer, role: str) -> None:
        self.owner = owner
        self.role = role
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        """Skip HTTPServer's getfqdn() reverse lookup: it can take seconds on a sandboxed resolver."""
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)

    def get_request(self) -> tuple[socket.socket, Any]:
        connection, address = super().get_request()
        with self._connections_lock:
            self._connections.add(connection)
        return connection, address

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Clients hanging up mid-response are normal here (timeouts, fault tests): stay quiet."""
        error = traceback.format_exc()
        if not any(
            name in error
            for name in (
                "ConnectionResetError",
                "BrokenPipeError",
                "TimeoutError",
                "ConnectionAbortedError",
                "socket.timeout",
            )
        ):
            self.owner.errors.append(error)
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    """Turns one request into a routed response, applies a fault if one matches, logs it."""

    protocol_version = "HTTP/1.1"
    server_version = "fixture-registry/1.0"
    sys_version = ""
    timeout = 120
    disable_nagle_algorithm = True
    server: _HTTPServer

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
            response = owner._respond(self.server.role, self.command, split.path, split.query, body, self.headers)
        except Exception:
            owner.errors.append(traceback.format_exc())
            response = _json(500, {"status": "error", "message": "fixture registry bug"}, kind="error")
        has_body = response.length > 0 and self.command != "HEAD"
        rule = owner._faults.pick(split.path, response.kind, has_body)
        if rule is not None and rule.kind == "delay":
            time.sleep(rule.delay)
        plan = self._plan(response, rule)
        # Logged before writing, so a client that has its answer always finds it in the log.
        owner._record(
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

    def _plan(self, response: _Response, rule: FaultRule | None) -> _Plan:
        """What to write for this response once the fault (if any) has had its say."""
        kind = rule.kind if rule else None
        if kind == "status" and rule is not None:
            response = _fault_status(rule)
        elif kind == "bad_json":
            response = _bad_json(response)
        elif kind == "wrong_package":
            response = self.server.owner._wrong_package(response)
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

    def _head(self, response: _Response, declared: int) -> bytes:
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

    def _write_slowly(self, head: bytes, response: _Response, rule: FaultRule) -> None:
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


# --------------------------------------------------------------------------------------------- responses


def _json(status: int, document: Any, kind: str = "json") -> _Response:
    body = json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()
    return _Response(status, [("Content-Type", _JSON)], body, kind=kind)


def _validators(file_body: FileBody) -> list[tuple[str, str]]:
    return [
        ("Content-Type", _JSON),
        ("Last-Modified", file_body.last_modified_http),
        ("ETag", file_body.etag),
    ]


def _conditional(file_body: FileBody, headers: Any, kind: str) -> _Response:
    """200 with validators, or 304 when the client's If-None-Match / If-Modified-Since still holds."""
    if _not_modified(file_body, headers.get("If-None-Match"), headers.get("If-Modified-Since")):
        return _Response(304, _validators(file_body)[1:], kind=kind)
    return _Response(200, _validators(file_body), file_body.body, kind=kind)


def _not_modified(file_body: FileBody, if_none_match: str | None, if_modified_since: str | None) -> bool:
    if if_none_match is not None:  # RFC 9110: If-None-Match wins over If-Modified-Since
        tags = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
        return "*" in tags or file_body.etag in tags
    if if_modified_since:
        try:
            since = email.utils.parsedate_to_datetime(if_modified_since).timestamp()
        except (TypeError, ValueError):
            return False
        return since >= file_body.last_modified
    return False


def _fault_status(rule: FaultRule) -> _Response:
    response = _json(rule.status, {"status": "error", "message": f"injected fault: HTTP {rule.status}"}, kind="error")
    if rule.retry_after is not None:
        response.headers.append(("Retry-After", str(rule.retry_after)))
    return response


def _bad_json(response: _Response) -> _Response:
    """A 200 whose body is a strict prefix of a JSON document (never valid JSON itself)."""
    body = response.body[: len(response.body) // 2] if response.body.startswith(b"{") else b""
    if not body:
        body = b'{"packages":{"'
    headers = [(k, v) for k, v in response.headers if k not in ("ETag", "Content-Type")]
    return _Response(200, [("Content-Type", _JSON), *headers], body, kind=response.kind)


def _first(params: dict[str, list[str]], key: str) -> str | None:
    values = params.get(key)
    return values[0] if values else None
