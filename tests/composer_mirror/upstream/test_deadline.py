"""The transfer deadline against servers that trickle a response just inside the read timeout.

Nothing sleeps. A loopback server sends its response one piece per socket read the client makes,
and time is a number the reads advance: each read waits, in simulated time, until the next piece
is due, one every ``STEP`` seconds, just inside the client's 60 s read timeout, so the read timeout
never fires; a read whose socket timeout ends first times out at that moment instead. The tests
then count the reads the client made and the bytes the server was let send, against the deadline.
"""

from __future__ import annotations

import hashlib
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from composer_mirror.errors import UpstreamError
from composer_mirror.upstream import FetchPolicy, RetryPolicy, UpstreamClient
from composer_mirror.upstream.client import CHUNK

STEP = 59.0  # seconds between two pieces: just inside the client's default 60 s read timeout
PIECE = 4096
_REAL_RECV_INTO = socket.socket.recv_into


class TrickleServer:
    """Serves one connection on 127.0.0.1: its response, one piece per read the client makes.

    ``reads`` holds the simulated time at which each of the client's reads began, ``sent`` the
    size of each piece the server was let send.
    """

    def __init__(self, pieces: list[bytes]) -> None:
        self.pieces = pieces
        self.started = self.now = 1000.0
        self.due = self.now + STEP
        self.reads: list[float] = []
        self.sent: list[int] = []
        self._gate = threading.Semaphore(0)
        self._stop = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.address = self._listener.getsockname()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.address[1]}"

    def monotonic(self) -> float:
        return self.now

    def client_read(self, sock: socket.socket, buffer: bytearray | memoryview, nbytes: int, flags: int) -> int:
        """One read of the client's connection: it waits for the next piece, or times out first."""
        self.reads.append(self.now)
        timeout = sock.gettimeout()
        if timeout is not None and self.now + timeout < self.due:
            self.now += timeout
            raise TimeoutError("timed out")
        self.now = max(self.now, self.due)
        self.due = self.now + STEP
        self._gate.release()
        return _REAL_RECV_INTO(sock, buffer, nbytes, flags)

    def is_client(self, sock: socket.socket) -> bool:
        try:
            return sock.family == socket.AF_INET and sock.getpeername() == self.address
        except OSError:
            return False

    def close(self) -> None:
        self._stop.set()
        self._gate.release()
        self._listener.close()
        self._thread.join(timeout=10)

    def _serve(self) -> None:
        try:
            connection, _ = self._listener.accept()
        except OSError:
            return
        with connection:
            request = b""
            while b"\r\n\r\n" not in request:
                data = connection.recv(65536)
                if not data:
                    return
                request += data
            for piece in self.pieces:
                self._gate.acquire()
                if self._stop.is_set():
                    return
                # Counted before it is sent, so the count already holds every piece the client has seen.
                self.sent.append(len(piece))
                try:
                    connection.sendall(piece)
                except OSError:
                    return


@pytest.fixture
def trickle(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[list[bytes]], TrickleServer]]:
    """Starts trickle servers; while the test runs, time.monotonic() is their simulated clock."""
    started: list[TrickleServer] = []

    def recv_into(sock: socket.socket, buffer: bytearray | memoryview, nbytes: int = 0, flags: int = 0) -> int:
        for server in started:
            if server.is_client(sock):
                return server.client_read(sock, buffer, nbytes, flags)
        return _REAL_RECV_INTO(sock, buffer, nbytes, flags)

    def start(pieces: list[bytes]) -> TrickleServer:
        server = TrickleServer(pieces)
        started.append(server)
        monkeypatch.setattr(time, "monotonic", server.monotonic)
        return server

    monkeypatch.setattr(socket.socket, "recv_into", recv_into)
    yield start
    for server in started:
        server.close()


def archive_response(size: int) -> list[bytes]:
    head = f"HTTP/1.1 200 OK\r\nContent-Type: application/zip\r\nContent-Length: {size}\r\n\r\n".encode()
    full, rest = divmod(size, PIECE)
    return [head] + [b"z" * PIECE] * full + ([b"z" * rest] if rest else [])


def test_an_archive_trickled_just_inside_the_read_timeout_is_abandoned_at_its_transfer_deadline(
    trickle: Callable[[list[bytes]], TrickleServer], tmp_path: Path
) -> None:
    body = 2 * CHUNK + 1  # more than one chunk: a client that only looks between chunks reads a whole one first
    response = archive_response(body)
    server = trickle(response)
    client = UpstreamClient(FetchPolicy(server.url), retry=RetryPolicy(attempts=1))  # 60 s read timeout, 1,800 s
    with client, open(tmp_path / "a.zip", "w+b") as out, pytest.raises(UpstreamError) as raised:
        client.download(server.url + "/dist/acme/slow.zip?token=secret", out, max_bytes=10 * CHUNK)

    deadline = server.started + client.transfer_seconds
    body_sent = sum(server.sent) - len(response[0])
    assert body_sent < CHUNK, (
        f"the server was let send {body_sent} body bytes over {server.now - server.started:.0f} simulated s"
    )
    assert [at for at in server.reads if at >= deadline] == [], "the client read on after the deadline passed"
    error = raised.value
    assert error.url == server.url + "/dist/acme/slow.zip"
    assert "/dist/acme/slow.zip" in str(error) and "transfer deadline" in str(error)
    assert "secret" not in str(error)


def test_headers_trickled_just_inside_the_read_timeout_are_abandoned_at_the_metadata_deadline(
    trickle: Callable[[list[bytes]], TrickleServer],
) -> None:
    # 80 header lines, one per piece: an hour and a half of headers, under http.client's 100-header limit.
    lines = [f"X-Trickle-{n}: {n}\r\n".encode() for n in range(80)]
    server = trickle([b"HTTP/1.1 200 OK\r\n", *lines, b"Content-Length: 2\r\nConnection: close\r\n\r\n{}"])
    client = UpstreamClient(FetchPolicy(server.url), retry=RetryPolicy(attempts=1))  # metadata: a tenth, 180 s
    with client, pytest.raises(UpstreamError) as raised:
        client.get_metadata(server.url + "/p2/acme/slow.json")

    deadline = server.started + client.transfer_seconds / 10
    assert [at for at in server.reads if at >= deadline] == [], "the client read on after the deadline passed"
    assert len(server.sent) <= client.transfer_seconds / 10 // STEP + 1
    assert "/p2/acme/slow.json" in str(raised.value) and "transfer deadline" in str(raised.value)


def test_an_archive_trickled_within_its_deadline_arrives_whole(
    trickle: Callable[[list[bytes]], TrickleServer], tmp_path: Path
) -> None:
    body = 2 * CHUNK + 1
    server = trickle(archive_response(body))
    client = UpstreamClient(FetchPolicy(server.url), retry=RetryPolicy(attempts=1), transfer_seconds=10**7)
    with client, open(tmp_path / "a.zip", "w+b") as out:
        downloaded = client.download(server.url + "/dist/acme/slow.zip", out, max_bytes=10 * CHUNK)
    assert downloaded.size == body
    assert downloaded.sha256 == hashlib.sha256(b"z" * body).hexdigest()
    assert server.now - server.started >= STEP * (body // PIECE)  # it really was slow, in simulated time
