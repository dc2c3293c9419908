"""The transfer deadline, enforced on the socket: no read of a response waits past it.

A read timeout bounds one wait for bytes, not a response. A server that sends a byte just inside
it keeps every read alive, and a read of a large chunk (or of a header line) only returns once the
whole chunk (or line) has arrived, so a deadline looked at between reads is looked at too late: the
request, and the per-host slot it holds, stay taken as long as the server likes. Here each read of
the socket gets, as its timeout, the smaller of the read timeout and the time left before the
deadline, and no read starts once the deadline has passed. That covers the status line and headers
as well as the body, whatever size the caller reads it in.

A deadline applies to the responses created inside :func:`transfer_deadline`: the connection
pools of :class:`DeadlineAdapter` (proxied ones included) make http.client build
:class:`DeadlineResponse`, which reads its socket through :class:`_DeadlineReader`. A response
created with no deadline set reads its socket as http.client always does.
"""

from __future__ import annotations

import functools
import http.client
import io
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, cast

from requests.adapters import DEFAULT_POOLBLOCK, HTTPAdapter
from urllib3 import HTTPConnectionPool, PoolManager

from composer_mirror.errors import UpstreamError


@dataclass(frozen=True)
class Deadline:
    """When a response must be complete (a time.monotonic() reading), and the redacted URL its error names."""

    url: str
    seconds: float
    at: float

    def timeout_for_read(self, read_timeout: float | None) -> float:
        """The socket timeout for the next read: the read timeout, or what is left when that is less."""
        left = self.at - time.monotonic()
        if left <= 0:
            raise TransferDeadlinePassed(self)
        return left if read_timeout is None else min(read_timeout, left)

    def passed(self) -> bool:
        return time.monotonic() >= self.at


class TransferDeadlinePassed(UpstreamError):
    """A response took longer than its transfer deadline.

    Not retried: a server this slow is unlikely to be faster at once, and another attempt would
    hold the host's slot as long again.
    """

    def __init__(self, deadline: Deadline) -> None:
        super().__init__(
            f"{deadline.url}: transfer too slow: its {deadline.seconds:g} s transfer deadline passed "
            "before the response was complete",
            url=deadline.url,
        )


_DEADLINE: ContextVar[Deadline | None] = ContextVar("composer_mirror_transfer_deadline", default=None)


@contextmanager
def transfer_deadline(url: str, seconds: float) -> Iterator[Deadline]:
    """Responses created inside must be complete ``seconds`` from now, headers and body; ``url`` is redacted.

    The deadline belongs to the response from its creation, so its body, read after the block, is
    still bound by it.
    """
    deadline = Deadline(url, seconds, time.monotonic() + seconds)
    token = _DEADLINE.set(deadline)
    try:
        yield deadline
    finally:
        _DEADLINE.reset(token)


class _DeadlineReader(io.RawIOBase):
    """A socket's reading side whose every read waits at most until the deadline.

    It reads through the socket's own unbuffered ``makefile``, which keeps the socket open while
    the response reads: http.client drops the connection's reference to the socket as soon as a
    response that ends the connection arrives, before its body is read.
    """

    def __init__(self, sock: socket.socket, deadline: Deadline) -> None:
        super().__init__()
        self._sock = sock
        self._raw = sock.makefile("rb", buffering=0)
        self._deadline = deadline
        # urllib3 sets the read timeout on the socket just before http.client builds the response.
        self._read_timeout = sock.gettimeout()

    def readable(self) -> bool:
        return True

    def fileno(self) -> int:
        return self._raw.fileno()

    def readinto(self, buffer: Any) -> int | None:
        self._sock.settimeout(self._deadline.timeout_for_read(self._read_timeout))
        try:
            return self._raw.readinto(buffer)
        except TimeoutError:
            if self._deadline.passed():
                raise TransferDeadlinePassed(self._deadline) from None
            raise

    def close(self) -> None:
        if not self.closed:
            self._raw.close()
        super().close()


class _DeadlineSocket:
    """What http.client's response is handed instead of the socket: it only calls ``makefile("rb")``."""

    def __init__(self, sock: socket.socket, deadline: Deadline) -> None:
        self._sock = sock
        self._deadline = deadline

    def makefile(self, mode: str) -> io.BufferedReader:
        if mode != "rb":
            raise ValueError(f"a response reads its socket in mode 'rb', not {mode!r}")
        return io.BufferedReader(_DeadlineReader(self._sock, self._deadline))


class DeadlineResponse(http.client.HTTPResponse):
    """http.client's response, reading its socket under the deadline set where it was created."""

    def __init__(
        self, sock: socket.socket, debuglevel: int = 0, method: str | None = None, url: str | None = None
    ) -> None:
        deadline = _DEADLINE.get()
        # http.client's response only calls makefile("rb") on what it is handed (see _DeadlineSocket).
        read_from = sock if deadline is None else cast(socket.socket, _DeadlineSocket(sock, deadline))
        super().__init__(read_from, debuglevel, method, url)


@functools.cache
def _enforcing(pool_cls: type[HTTPConnectionPool]) -> type[HTTPConnectionPool]:
    """``pool_cls`` with connections whose responses are :class:`DeadlineResponse`.

    Derived from whichever pool a manager uses (plain, TLS, through a proxy), so nothing else
    about its connections changes; a pool that already enforces the deadline is returned as is.
    """
    if issubclass(getattr(pool_cls.ConnectionCls, "response_class", object), DeadlineResponse):
        return pool_cls
    connection_cls = type(
        f"Deadline{pool_cls.ConnectionCls.__name__}", (pool_cls.ConnectionCls,), {"response_class": DeadlineResponse}
    )
    return type(f"Deadline{pool_cls.__name__}", (pool_cls,), {"ConnectionCls": connection_cls})


def enforce_deadlines(manager: PoolManager) -> PoolManager:
    """Make the pools ``manager`` creates from now on read their responses under the transfer deadline."""
    manager.pool_classes_by_scheme = {
        scheme: _enforcing(pool_cls) for scheme, pool_cls in manager.pool_classes_by_scheme.items()
    }
    return manager


class DeadlineAdapter(HTTPAdapter):
    """A requests adapter whose connections, direct or through a proxy, honour :func:`transfer_deadline`."""

    def init_poolmanager(
        self, connections: int, maxsize: int, block: bool = DEFAULT_POOLBLOCK, **pool_kwargs: Any
    ) -> None:
        super().init_poolmanager(connections, maxsize, block, **pool_kwargs)
        enforce_deadlines(self.poolmanager)

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> PoolManager:
        return enforce_deadlines(super().proxy_manager_for(proxy, **proxy_kwargs))
