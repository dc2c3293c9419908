"""The API server's own ASGI app, called without a server, counting how much of each request body it reads.

``python -m tests.plugins.asgi_probe``, run with the environment of an Airflow home
(:meth:`devtools.harness.AirflowEnv.env`), builds the app as ``airflow api-server`` does
(:func:`airflow.api_fastapi.app.create_app`: the plugins' FastAPI apps mounted under their
prefixes, the configured auth manager, Airflow's middlewares) and answers one request per line of
JSON on stdin with one line of JSON on stdout. The app gets the request body from the ASGI
``receive`` callable in fixed-size chunks, and every byte handed to it is counted: that is how much
of a body the app read before it answered, which an HTTP client cannot tell through the socket
buffers between it and a server.

A request: ``method``, ``path`` (with its query string), ``headers``, a body of ``head`` + ``fill``
filler bytes + ``tail`` (``head`` and ``tail`` are text), ``content_length`` (the header's value, or
null for none, as with a chunked body), ``chunk`` (body bytes per ``http.request`` message) and
``limit`` (to shrink :data:`composer_mirror.sbom.MAX_SBOM_BYTES` for this request, or null). The
answer: ``status``, ``headers``, ``text`` (the response body), ``bytes_read`` and ``messages_read``.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from typing import Any, TextIO
from urllib.parse import unquote

FILLER = b"x"


def request_body(request: dict[str, Any]) -> bytes:
    return request["head"].encode() + FILLER * request["fill"] + request["tail"].encode()


def scope_for(request: dict[str, Any]) -> dict[str, Any]:
    """An HTTP scope like uvicorn's (ASGI spec 2.3), with Content-Length or chunked transfer."""
    path, _, query = request["path"].partition("?")
    headers = [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in request["headers"].items()]
    headers.append((b"host", b"127.0.0.1:8080"))
    if request["content_length"] is None:
        headers.append((b"transfer-encoding", b"chunked"))
    else:
        headers.append((b"content-length", str(request["content_length"]).encode()))
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": request["method"],
        "scheme": "http",
        "path": unquote(path),
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8080),
        "state": {},
    }


async def call(app: Any, request: dict[str, Any]) -> dict[str, Any]:
    """Send one request to the app and answer what it said and how much of the body it pulled."""
    body = request_body(request)
    chunk = request["chunk"]
    pieces = [body[start : start + chunk] for start in range(0, len(body), chunk)] or [b""]
    read = {"bytes": 0, "messages": 0}
    response: dict[str, Any] = {"status": None, "headers": {}, "body": b""}
    answered = asyncio.Event()

    async def receive() -> dict[str, Any]:
        await asyncio.sleep(0)  # a read from the network is a point where other tasks run
        if read["messages"] < len(pieces):
            piece = pieces[read["messages"]]
            read["messages"] += 1
            read["bytes"] += len(piece)
            return {"type": "http.request", "body": piece, "more_body": read["messages"] < len(pieces)}
        await answered.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            response["status"] = message["status"]
            headers = message["headers"]
            response["headers"] = {name.decode("latin-1"): value.decode("latin-1") for name, value in headers}
        elif message["type"] == "http.response.body":
            response["body"] += message.get("body", b"")
            if not message.get("more_body", False):
                answered.set()

    await app(scope_for(request), receive, send)
    return {
        "status": response["status"],
        "headers": response["headers"],
        "text": response["body"].decode("utf-8", "replace"),
        "bytes_read": read["bytes"],
        "messages_read": read["messages"],
    }


def answer(app: Any, request: dict[str, Any]) -> dict[str, Any]:
    """:func:`call`, with the SBOM size limit shrunk for the request when it asks for that."""
    from composer_mirror import sbom

    saved = sbom.MAX_SBOM_BYTES
    if request["limit"] is not None:
        sbom.MAX_SBOM_BYTES = request["limit"]
    try:
        return asyncio.run(call(app, request))
    finally:
        sbom.MAX_SBOM_BYTES = saved


def main() -> None:
    # Answers go to the original stdout; anything else that writes there (logging) goes to stderr.
    out: TextIO = os.fdopen(os.dup(sys.stdout.fileno()), "w")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())

    from airflow.api_fastapi.app import create_app

    app = create_app()
    print(json.dumps({"ready": True}), file=out, flush=True)
    for line in sys.stdin:
        print(json.dumps(answer(app, json.loads(line))), file=out, flush=True)


if __name__ == "__main__":
    main()
