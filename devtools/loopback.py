"""A threaded HTTP server on 127.0.0.1, started and stopped by a context manager: how the development
tools and the tests run every server they script.

Give :class:`LoopbackServer` either a handler function (a :class:`Request` in, a :class:`Reply` out)
for a plain HTTP server, or a ``BaseHTTPRequestHandler`` subclass for a server whose point is what it
does on the socket (a reset, a slow drip, a body that never ends, a proxy that holds a request)::

    with LoopbackServer(lambda request: Reply(200, b"hello")) as server:
        requests.get(server.url + "/anything")

Each connection is served by a daemon thread. The server skips ``getfqdn()`` when binding (a
reverse lookup can take seconds on a sandboxed resolver), counts the connections it accepts and
tracks the open ones, so ``stop()`` ends keep-alive sessions too before it releases the port.
"""

from __future__ import annotations

import contextlib
import socket
import socketserver
import sys
import threading
import traceback
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from http.client import HTTPMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

HOST = "127.0.0.1"
# Tracebacks naming these are a client gone mid-answer, not a bug of the handler.
HANG_UPS = ("ConnectionResetError", "BrokenPipeError", "TimeoutError", "ConnectionAbortedError", "socket.timeout")


@dataclass(frozen=True)
class Request:
    """One request as a handler function sees it: ``target`` is the path and query as sent."""

    method: str
    target: str
    headers: HTTPMessage
    body: bytes = b""
    version: str = "HTTP/1.1"

    @property
    def path(self) -> str:
        return urlsplit(self.target).path

    @property
    def query(self) -> str:
        return urlsplit(self.target).query

    @property
    def line(self) -> str:
        """The request line, e.g. ``GET /landed.zip HTTP/1.1``."""
        return f"{self.method} {self.target} {self.version}"


@dataclass
class Reply:
    """What a handler function answers; ``Content-Length`` is added from the body."""

    status: int = 200
    body: bytes = b""
    headers: Mapping[str, str] | Iterable[tuple[str, str]] = field(default_factory=dict)

    def header_items(self) -> list[tuple[str, str]]:
        return list(self.headers.items()) if isinstance(self.headers, Mapping) else list(self.headers)


Handler = Callable[[Request], Reply]


class LoopbackHTTPServer(ThreadingHTTPServer):
    """``ThreadingHTTPServer`` with daemon threads, no reverse lookup and a record of its connections.

    ``owner`` is whatever the handlers need to reach (``self.server.owner`` in a handler class).
    A client hanging up mid-answer (a timeout, a size limit, a fault test) is normal here and stays
    quiet; any other error in a handler goes to :meth:`report_error`.
    """

    daemon_threads = True
    request_queue_size = 128

    def __init__(
        self, address: tuple[str, int], handler_class: type[BaseHTTPRequestHandler], owner: Any = None
    ) -> None:
        self.owner = owner
        self.accepted = 0
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, handler_class)

    def server_bind(self) -> None:
        """HTTPServer's bind without its getfqdn() reverse lookup."""
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)

    def get_request(self) -> tuple[socket.socket, Any]:
        connection, address = super().get_request()
        with self._connections_lock:
            self.accepted += 1
            self._connections.add(connection)
        return connection, address

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        error = traceback.format_exc()
        if not any(name in error for name in HANG_UPS):
            self.report_error(error)

    def report_error(self, error: str) -> None:
        """A handler failed (not a client hanging up): printed to stderr, as socketserver does."""
        print(f"error in a loopback server's handler:\n{error}", file=sys.stderr)

    def connections(self) -> list[socket.socket]:
        """The client connections open now."""
        with self._connections_lock:
            return list(self._connections)

    def close_connections(self) -> None:
        """Shut every open connection down (idle keep-alive sessions included)."""
        for connection in self.connections():
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)


ServerFactory = Callable[[tuple[str, int], type[BaseHTTPRequestHandler]], LoopbackHTTPServer]


class LoopbackServer:
    """Serve ``handler`` (a function or a handler class) on 127.0.0.1 from a background thread.

    The port is bound on construction (``url`` and ``port`` are known at once; ``port=0`` picks a free
    one) and served from ``start()`` until ``stop()``. ``server_class`` builds the server (a
    :class:`LoopbackHTTPServer` or a subclass), for servers that add to it; ``owner`` is given to the
    default one. ``protocol_version`` is a handler function's: ``HTTP/1.0`` closes every connection
    after its answer.
    """

    def __init__(
        self,
        handler: Handler | type[BaseHTTPRequestHandler],
        *,
        host: str = HOST,
        port: int = 0,
        owner: Any = None,
        server_class: ServerFactory | None = None,
        poll_interval: float = 0.05,
        name: str = "loopback-server",
        protocol_version: str = "HTTP/1.1",
    ) -> None:
        if isinstance(handler, type) and issubclass(handler, BaseHTTPRequestHandler):
            handler_class = handler
        else:
            attributes = {"function": staticmethod(handler), "protocol_version": protocol_version}
            handler_class = type("FunctionHandler", (FunctionHandler,), attributes)
        if server_class is not None:
            self.httpd = server_class((host, port), handler_class)
        else:
            self.httpd = LoopbackHTTPServer((host, port), handler_class, owner)
        self.host = host
        self.port = int(self.httpd.server_address[1])
        # The serving thread: start() starts it.
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": poll_interval}, name=name, daemon=True
        )
        self._stopped = False

    def start(self) -> LoopbackServer:
        if self.thread.is_alive() or self._stopped:
            raise RuntimeError("a loopback server starts once")
        self.thread.start()
        return self

    def stop(self) -> None:
        """Stop accepting, end the open connections, release the port (also when never started)."""
        if self._stopped:
            return
        self._stopped = True
        if self.thread.is_alive():
            self.httpd.shutdown()
        self.httpd.close_connections()
        self.httpd.server_close()
        if self.thread.is_alive():
            self.thread.join(timeout=5)

    def __enter__(self) -> LoopbackServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://{self.host}:{self.port}"

    @property
    def accepted(self) -> int:
        """Connections accepted so far (stopping keeps the count)."""
        return self.httpd.accepted


class FunctionHandler(BaseHTTPRequestHandler):
    """Answers every method with ``function(Request)``; quiet (a test keeps its own log)."""

    protocol_version = "HTTP/1.1"
    function: Handler

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        reply = self.function(Request(self.command, self.path, self.headers, body, self.request_version))
        self.send_response(reply.status)
        for name, value in reply.header_items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(reply.body)

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_CONNECT = _answer
