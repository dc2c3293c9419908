"""What the fixture registry answers before faults: :class:`Response` and the builders its routes use.

Public for the servers that add routes of their own (``RegistryServer.files``, the benchmark's control
channel): a JSON document, a redirect, bytes as they are, a conditional answer from validators.
"""

from __future__ import annotations

import email.utils
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from devtools.fixture_registry.archives import Archive
from devtools.fixture_registry.data import FileBody
from devtools.fixture_registry.faults import FaultRule

JSON = "application/json"


@dataclass
class Response:
    """One answer before faults: status, headers and a body (bytes, or an archive streamed in chunks).

    ``kind`` ("p2", "archive", "json", "redirect", "error", "other") is what fault rules select on.
    """

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


def json_response(status: int, document: Any, kind: str = "json") -> Response:
    body = json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()
    return Response(status, [("Content-Type", JSON)], body, kind=kind)


def validators(file_body: FileBody) -> list[tuple[str, str]]:
    return [
        ("Content-Type", JSON),
        ("Last-Modified", file_body.last_modified_http),
        ("ETag", file_body.etag),
    ]


def conditional(file_body: FileBody, headers: Any, kind: str) -> Response:
    """200 with validators, or 304 when the client's If-None-Match / If-Modified-Since still holds."""
    if not_modified(file_body, headers.get("If-None-Match"), headers.get("If-Modified-Since")):
        return Response(304, validators(file_body)[1:], kind=kind)
    return Response(200, validators(file_body), file_body.body, kind=kind)


def not_modified(file_body: FileBody, if_none_match: str | None, if_modified_since: str | None) -> bool:
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


def fault_status(rule: FaultRule) -> Response:
    response = json_response(
        rule.status, {"status": "error", "message": f"injected fault: HTTP {rule.status}"}, kind="error"
    )
    if rule.retry_after is not None:
        response.headers.append(("Retry-After", str(rule.retry_after)))
    return response


def bad_json(response: Response) -> Response:
    """A 200 whose body is a strict prefix of a JSON document (never valid JSON itself)."""
    body = response.body[: len(response.body) // 2] if response.body.startswith(b"{") else b""
    if not body:
        body = b'{"packages":{"'
    headers = [(k, v) for k, v in response.headers if k not in ("ETag", "Content-Type")]
    return Response(200, [("Content-Type", JSON), *headers], body, kind=response.kind)


def redirect(location: str, status: int = 302) -> Response:
    """A redirect to ``location``."""
    return Response(status, [("Location", location)], kind="redirect")


def file_response(body: bytes, content_type: str = "application/octet-stream") -> Response:
    """A 200 with ``body`` as it is."""
    return Response(200, [("Content-Type", content_type)], body, kind="other")
