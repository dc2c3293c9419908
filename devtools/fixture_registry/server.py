"""The fixture registry's server: a ``Registry`` served on loopback, with auth, a request log and faults.

Routing lives here (root, p2 files with validators and 304s, list, changes feed, advisories API,
zipball redirects, archives); the HTTP side (keep-alive, faults, writing) in ``handler.py``, the
answers' builders in ``responses.py``.

An optional second listener on another port plays codeload's role: ``/zipball/...`` on the main server
redirects there, the port makes it a different origin for Composer's credential handling, and it never
asks for credentials, so the request log shows whether a client leaked them across hosts.
"""

from __future__ import annotations

import base64
import dataclasses
import functools
import hashlib
import json
import re
import socket
import threading
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qs

from devtools.fixture_registry.data import FileBody, Registry
from devtools.fixture_registry.faults import FaultRule, FaultState
from devtools.fixture_registry.handler import RegistryHandler, RegistryHTTPServer, RequestRecord
from devtools.fixture_registry.responses import Response, conditional, file_response, json_response, validators
from devtools.loopback import LoopbackServer

_P2_RE = re.compile(r"^/p2/(?P<name>[^/]+/[^/]+?)(?P<dev>~dev)?\.json$")
_ZIPBALL_RE = re.compile(r"^/zipball/(?P<name>[^/]+/[^/]+)/(?P<ref>[^/]+)$")
_CODELOAD_RE = re.compile(r"^/codeload/(?P<name>[^/]+/[^/]+)/(?P<ref>[^/]+)\.zip$")
_PROVIDERS_RE = re.compile(r"^/providers/(?P<name>.+)\.json$")


class RegistryServer:
    """Serves a ``Registry`` on 127.0.0.1 (random port by default) from background threads.

    Use as a context manager or call ``start()``/``stop()``. ``auth`` is None, a ``(user, password)``
    tuple for HTTP Basic or a string for a Bearer token. ``changes_feed=False`` drops
    ``metadata-changes-url`` from the root, ``relative_metadata_url=True`` publishes
    ``/p2/%package%.json``, ``archive_server=True`` adds the codeload-like second origin.

    ``files`` maps a request target (path and query as sent, or the path alone) to an answer the main
    origin gives before the registry's own: bytes (a 200 as they are) or a :class:`Response` (a
    redirect, a JSON document). They sit behind the registry's authentication, so they are the
    upstream's origin: a redirect served there is the upstream sending the client elsewhere.

    Subclasses may extend :meth:`respond` (routing) and :meth:`record` (the request log).
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
        files: Mapping[str, bytes | Response] | None = None,
    ) -> None:
        self.registry = registry
        self.auth = auth
        self.files: dict[str, bytes | Response] = dict(files or {})
        self._changes_feed = changes_feed
        self.relative_metadata_url = relative_metadata_url
        self._host = host
        self._port = port
        self._want_archive_server = archive_server
        self._archive_port = archive_port
        self._faults = FaultState(faults)
        self._log: list[RequestRecord] = []
        self._log_lock = threading.Lock()
        self.errors: list[str] = []  # tracebacks of handler bugs (answered 500), for tests to assert on
        self._servers: dict[str, LoopbackServer] = {}
        self._root_cache: FileBody | None = None

    # ------------------------------------------------------------------------------------- lifecycle

    def start(self) -> RegistryServer:
        """Bind and serve in daemon threads; returns self so ``srv = RegistryServer(...).start()`` works."""
        if self._servers:
            raise RuntimeError("server already started")
        ports = {"main": self._port, **({"archive": self._archive_port} if self._want_archive_server else {})}
        for role, port in ports.items():
            server = LoopbackServer(
                RegistryHandler,
                host=self._host,
                port=port,
                server_class=functools.partial(RegistryHTTPServer, owner=self, role=role),
                name=f"fixture-registry-{role}",
            )
            self._servers[role] = server.start()
        return self

    def stop(self) -> None:
        """Stop accepting, drop open keep-alive connections and release the ports."""
        for server in self._servers.values():
            server.stop()
        self._servers.clear()
        self._root_cache = None

    def __enter__(self) -> RegistryServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # ---------------------------------------------------------------------------------------- access

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT`` of the main server."""
        if "main" not in self._servers:
            raise RuntimeError("server not started")
        return self._servers["main"].url

    def open_connections(self) -> list[dict[str, bool]]:
        """The main server's open client connections, each with whether TCP_NODELAY is set on it."""
        httpd = self._servers["main"].httpd if "main" in self._servers else None
        connections = httpd.connections() if httpd is not None else []
        return [{"nodelay": bool(c.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))} for c in connections]

    @property
    def archive_url(self) -> str | None:
        """Origin of the archive server, or None when archives are served by the main server."""
        return self._servers["archive"].url if "archive" in self._servers else None

    @property
    def changes_feed(self) -> bool:
        """Whether the root names the metadata changes feed (and the feed answers)."""
        return self._changes_feed

    @changes_feed.setter
    def changes_feed(self, on: bool) -> None:
        self._changes_feed = on
        self._root_cache = None

    @property
    def requests(self) -> list[RequestRecord]:
        """A snapshot of the request log, oldest first."""
        with self._log_lock:
            return list(self._log)

    def reset_log(self) -> None:
        """Forget logged requests (fault counters are kept; see ``set_faults``)."""
        self.take_requests()

    def take_requests(self) -> list[RequestRecord]:
        """The request log, oldest first, and forget it in the same step (no request falls in between)."""
        with self._log_lock:
            records = list(self._log)
            self._log.clear()
        return records

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

    # ------------------------------------------------------------------------- what the handler calls

    def record(self, record: RequestRecord) -> None:
        """Append one request to the log (called just before its answer is written)."""
        with self._log_lock:
            self._log.append(record)

    def fault_for(self, path: str, response_kind: str, has_body: bool) -> FaultRule | None:
        """The fault rule that breaks this answer, if any (counts it)."""
        return self._faults.pick(path, response_kind, has_body)

    def respond(self, role: str, method: str, path: str, query: str, body: bytes, headers: Any) -> Response:
        """Route one request to its response (before faults); ``role`` is the origin, "main" or "archive"."""
        if role == "archive":
            match = _CODELOAD_RE.match(path)
            if match is None or method not in ("GET", "HEAD"):
                return json_response(404, {"status": "error", "message": "Not Found"}, kind="error")
            return self._archive_response(match["name"], match["ref"])
        if self.auth is not None and not self._authorized(headers.get("Authorization")):
            return self._unauthorized()
        if method == "POST":
            return self._route_post(path, body, headers)
        if method not in ("GET", "HEAD"):
            return json_response(405, {"status": "error", "message": "Method Not Allowed"}, kind="error")
        extra = self._file(path, query)
        if extra is not None:
            return extra
        return self._route_get(path, query, headers)

    def _file(self, path: str, query: str) -> Response | None:
        """The answer ``files`` holds for this target (with its query first, then the path alone)."""
        answer = self.files.get(f"{path}?{query}") if query else None
        if answer is None:
            answer = self.files.get(path)
        if answer is None or isinstance(answer, Response):
            return dataclasses.replace(answer, headers=list(answer.headers)) if answer is not None else None
        return file_response(answer)

    def _route_get(self, path: str, query: str, headers: Any) -> Response:
        params = parse_qs(query, keep_blank_values=True)
        match = _P2_RE.match(path)
        if match:
            return self._p2_response(match["name"], bool(match["dev"]), headers)
        if path == "/packages.json":
            return conditional(self._root(), headers, "json")
        if path == "/packages/list.json":
            names = self.registry.list_names(_first(params, "vendor"), _first(params, "filter"), _first(params, "type"))
            return json_response(200, {"packageNames": names})
        if path == "/metadata/changes.json" and self.changes_feed:
            status, document = self.registry.changes(_first(params, "since"))
            return json_response(status, document)
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
            return json_response(200, {"providers": self.registry.providers(match["name"])})
        if path == "/search.json":
            results = self.registry.search(_first(params, "q") or "", _first(params, "type"))
            return json_response(200, {"results": results, "total": len(results)})
        return json_response(404, {"status": "error", "message": "Not Found"}, kind="error")

    def _route_post(self, path: str, body: bytes, headers: Any) -> Response:
        if path.rstrip("/") == "/api/security-advisories":
            content_type = headers.get("Content-Type", "")
            params = (
                parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True) if "json" not in content_type else {}
            )
            return self._advisories(params)
        if path == "/downloads/":
            return json_response(201, {"status": "success"})
        return json_response(405, {"status": "error", "message": "Method Not Allowed"}, kind="error")

    def _p2_response(self, name: str, dev: bool, headers: Any) -> Response:
        file_body = self.registry.p2_file(name, dev, self.url)
        if file_body is None:
            return json_response(404, {"status": "error", "message": "Package not found"}, kind="error")
        response = conditional(file_body, headers, "p2")
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

    def _advisories(self, params: dict[str, list[str]]) -> Response:
        names = [v for k, values in params.items() if k == "packages" or k.startswith("packages[") for v in values if v]
        since = _first(params, "updatedSince")
        if not names and since is None:
            return json_response(
                400,
                {"status": "error", "message": 'Missing array of package names as the "packages" parameter'},
            )
        found = self.registry.full_advisories(names, int(since or 0) if (since or "0").isdigit() else 0, self.url)
        # PHP serialises an empty array as [], and packagist answers {"advisories": []} when none match.
        return json_response(200, {"advisories": found or []})

    def _redirect_to_archive(self, name: str, reference: str) -> Response:
        if self.registry.archive(name, reference) is None:
            return json_response(404, {"message": "Not Found"}, kind="error")
        origin = self.archive_url or self.url
        return Response(302, [("Location", f"{origin}/codeload/{name}/{reference}.zip")], kind="redirect")

    def _archive_response(self, name: str, reference: str) -> Response:
        archive = self.registry.archive(name, reference)
        if archive is None:
            return json_response(404, {"message": "Not Found"}, kind="error")
        filename = f"{name.replace('/', '-')}-{reference[:7]}.zip"
        headers = [
            ("Content-Type", "application/zip"),
            ("Content-Disposition", f"attachment; filename={filename}"),
        ]
        return Response(200, headers, archive=archive, kind="archive", package=name)

    def _authorized(self, header: str | None) -> bool:
        if header is None:
            return False
        if isinstance(self.auth, tuple):
            expected = base64.b64encode(f"{self.auth[0]}:{self.auth[1]}".encode()).decode()
            return header.strip() == f"Basic {expected}"
        return header.strip() == f"Bearer {self.auth}"

    def _unauthorized(self) -> Response:
        scheme = "Basic" if isinstance(self.auth, tuple) else "Bearer"
        response = json_response(401, {"status": "error", "message": "Unauthorized"}, kind="error")
        response.headers.append(("WWW-Authenticate", f'{scheme} realm="fixture registry"'))
        return response

    def wrong_package(self, response: Response) -> Response:
        """Another package's p2 file served under this package's URL."""
        names = self.registry.package_names()
        others = [n for n in names if n != response.package]
        if not others:
            document = json.loads(response.body or b"{}")
            document["packages"] = {"fixture/wrong-package": next(iter(document.get("packages", {}).values()), [])}
            return json_response(200, document, kind="p2")
        index = names.index(response.package) if response.package in names else -1
        other = names[(index + 1) % len(names)] if index >= 0 else others[0]
        other_body = self.registry.p2_file(other, response.dev, self.url)
        assert other_body is not None
        return Response(200, validators(other_body), other_body.body, kind="p2", package=other)


def _first(params: dict[str, list[str]], key: str) -> str | None:
    values = params.get(key)
    return values[0] if values else None


__all__ = ["RegistryServer", "RequestRecord"]
