"""Fixtures of the upstream client's tests: scripted servers on 127.0.0.1 and a client of the first."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from composer_mirror.upstream import FetchPolicy, UpstreamClient
from tests.composer_mirror.upstream.local_server import FAST, LocalServer


@pytest.fixture
def servers() -> Iterator[Callable[[], LocalServer]]:
    started: list[LocalServer] = []

    def start() -> LocalServer:
        server = LocalServer()
        server.thread.start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.httpd.shutdown()
        server.httpd.server_close()


@pytest.fixture
def upstream(servers: Callable[[], LocalServer]) -> LocalServer:
    return servers()


@pytest.fixture
def client(upstream: LocalServer) -> Iterator[UpstreamClient]:
    with UpstreamClient(FetchPolicy(upstream.url), retry=FAST, timeout=(2.0, 2.0)) as made:
        yield made
