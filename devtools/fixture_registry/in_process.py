"""The fixture registry answered in process, without sockets: for model-based tests that run thousands of syncs.

:class:`InProcessRegistry` routes a ``requests`` session's requests for one origin to the same
handler code the HTTP server runs (routing, conditional requests, redirects to archives), so the
mirror's real upstream client (retries, validation, redirect checks) is exercised at a fraction of
the cost of a loopback round trip. Faults and the request log of the HTTP server are not modelled.
"""

from __future__ import annotations

import io
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.adapters import BaseAdapter
from requests.structures import CaseInsensitiveDict

from devtools.fixture_registry.data import Registry
from devtools.fixture_registry.server import RegistryServer

# A closed loopback port: nothing ever connects there, the adapter answers first.
ORIGIN = "http://127.0.0.1:9"


class InProcessRegistry(RegistryServer):
    """A :class:`RegistryServer` whose ``url`` is :data:`ORIGIN` and that is never started."""

    @property
    def url(self) -> str:
        return ORIGIN

    def mount(self, session: requests.Session) -> None:
        """Answer every request the session makes to :data:`ORIGIN` from this registry."""
        session.mount(ORIGIN + "/", _Adapter(self))


class _Adapter(BaseAdapter):
    def __init__(self, server: InProcessRegistry) -> None:
        super().__init__()
        self.server = server

    def send(self, request: requests.PreparedRequest, **_kwargs: Any) -> requests.Response:
        parts = urlsplit(request.url or "")
        body = request.body if isinstance(request.body, bytes) else (request.body or "").encode()
        answer = self.server.respond("main", request.method or "GET", parts.path, parts.query, body, request.headers)
        response = requests.Response()
        response.status_code = answer.status
        response.headers = CaseInsensitiveDict(answer.headers)
        response.raw = io.BytesIO(b"".join(answer.pieces(None)))
        response.url = request.url or ""
        response.request = request
        response.reason = "OK" if answer.status < 400 else "Error"
        return response

    def close(self) -> None:
        """Nothing to release: no connection was ever opened."""


__all__ = ["ORIGIN", "InProcessRegistry", "Registry"]
