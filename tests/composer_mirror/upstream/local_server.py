"""A scripted HTTP server on 127.0.0.1 for the upstream client's tests: each request gets the next reply."""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler

from composer_mirror.upstream import RetryPolicy
from devtools.loopback import LoopbackServer

FAST = RetryPolicy(attempts=4, backoff=0.01, max_backoff=0.02)
ARCHIVE = bytes(range(256)) * 800  # 200 KiB


@dataclass
class Reply:
    """What the server does for one request."""

    status: int = 200
    body: bytes = b"{}"
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    reset: bool = False  # close the connection with a TCP reset instead of answering
    content_length: int | None = None  # announce this instead of len(body); -1 announces nothing


@dataclass
class Seen:
    path: str
    headers: dict[str, str]


class LocalServer:
    """A loopback server (devtools.loopback) that plays a list of replies (the last one repeats).

    Bound when made; ``thread.start()`` serves, ``httpd.shutdown()`` stops serving.
    """

    def __init__(self) -> None:
        self.replies: list[Reply] = [Reply()]
        self.route: Callable[[str], Reply] | None = None
        self.seen: list[Seen] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        self._served = 0
        self.loopback = LoopbackServer(_Handler, owner=self, poll_interval=0.01, name="local-server")
        self.httpd = self.loopback.httpd
        self.thread = self.loopback.thread

    @property
    def url(self) -> str:
        return self.loopback.url

    @property
    def requests(self) -> int:
        return len(self.seen)

    def play(self, *replies: Reply) -> LocalServer:
        self.replies = list(replies)
        return self

    def next_reply(self, path: str) -> Reply:
        with self._lock:
            if self.route is not None:
                return self.route(path)
            reply = self.replies[min(self._served, len(self.replies) - 1)]
            self._served += 1
            return reply

    def enter(self) -> None:
        with self._lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def leave(self) -> None:
        with self._lock:
            self.in_flight -= 1


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        server: LocalServer = self.server.owner  # type: ignore[attr-defined]
        server.seen.append(Seen(self.path, dict(self.headers.items())))
        reply = server.next_reply(self.path)
        # Counted while the handler waits, before it answers: that window always lies inside the
        # client's request, so the count never includes a request the client has already finished.
        server.enter()
        try:
            time.sleep(reply.delay)
        finally:
            server.leave()
        if reply.reset:
            self.request.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.request.close()
            self.close_connection = True
            return
        self.send_response(reply.status)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        length = len(reply.body) if reply.content_length is None else reply.content_length
        if length >= 0:
            self.send_header("Content-Length", str(length))
        if length != len(reply.body):
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(reply.body)

    def log_message(self, format: str, *args: object) -> None:
        pass
