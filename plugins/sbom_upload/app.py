"""The FastAPI app of the SBOM upload plugin, mounted by the API server at ``/composer-mirror``.

Only ``plugins/composer_mirror_sbom_upload.py`` imports this module, and only when the API server
asks the plugin for its ``fastapi_apps`` (``plugins/.airflowignore`` keeps Airflow from importing
it as a plugin module in every process). Routes:

* ``GET /composer-mirror/``: the page (``index.html``); ``GET /composer-mirror/static/<name>``:
  its ``app.js``, ``style.css`` and the navigation icon;
* ``POST /composer-mirror/api/validate`` (the SBOM as the request body): the summary of
  :func:`composer_mirror.sbom_upload.validate` (format, component counts, skip reasons, problems);
* ``POST /composer-mirror/api/sboms?filename=<name>`` (the SBOM as the request body): stores a
  valid SBOM under ``<prefix>sboms/`` in the mirror bucket and answers its key, the DAG's
  ``sbom_s3_key``.

The page then triggers the DAG itself, from the browser, through Airflow's public REST API
(``POST /api/v2/dags/composer_mirror_sbom/dagRuns`` with conf ``sbom_s3_key``, ``with_dependencies``,
``dry_run``) and polls ``GET .../dagRuns/{run_id}``. The browser sends the user's own Airflow
session (the ``_token`` JWT cookie the UI logs in with), so the run is created by the stable
public endpoint with its own permission check, audit log entry and triggering user; nothing in
this plugin creates runs, calls the API on the user's behalf or holds a token.

Authentication: Airflow does not authenticate plugin apps (a mounted app inherits none of the
core API's dependencies), so every route here declares Airflow's own dependencies from
``airflow.api_fastapi.core_api.security``: ``get_user`` (a valid JWT from the ``Authorization:
Bearer`` header or the UI's cookie, checked by the configured auth manager) for the page's
assets, ``requires_access_dag`` for the rest, with the same rules as the REST API: reading the
``composer_mirror_sbom`` DAG to open the page and validate, triggering it (``POST`` on its runs)
to store an SBOM. Without a token a request gets 401 (a browser asking for the page is sent to the
login page instead), with an invalid one 403, and without the permission 403. POSTs must also
carry the ``X-Composer-Mirror`` header, which a cross-site form cannot send, so the session
cookie cannot be used from another site to upload files.

Request bodies: the POST routes take no ``File()`` or other body parameter, because FastAPI reads
and parses a body parameter (spooling a multipart file to disk) before any dependency runs, that
is before the caller is authenticated. They take the raw ``Request``, so nothing of the body is
read until the dependencies above have let the request through; then :func:`read_sbom_body`
refuses a ``Content-Length`` over :data:`composer_mirror.sbom.MAX_SBOM_BYTES` before reading,
and reads any other body (a chunked one has no length) only up to the chunk that crosses the
limit, in memory. The SBOM is the body itself, not a form, so its size is the upload's size.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, Any

from airflow.api_fastapi.app import get_auth_manager
from airflow.api_fastapi.auth.managers.models.base_user import BaseUser
from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity
from airflow.api_fastapi.core_api.security import get_user, requires_access_dag
from fastapi import Depends, FastAPI, Header, HTTPException, Request, status
from fastapi.concurrency import run_in_threadpool
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import FileResponse, RedirectResponse, Response

logger = logging.getLogger(__name__)

DAG_ID = "composer_mirror_sbom"
CSRF_HEADER = "X-Composer-Mirror"
STATIC_DIR = Path(__file__).resolve().parent
ASSETS = {
    "app.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
    "icon.svg": "image/svg+xml",
}
NO_CACHE = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}

CurrentUser = Annotated[BaseUser, Depends(get_user)]
can_read_dag = Depends(requires_access_dag("GET", param_dag_id=DAG_ID))
can_trigger_dag = Depends(requires_access_dag("POST", DagAccessEntity.RUN, param_dag_id=DAG_ID))


def require_plugin_header(x_composer_mirror: Annotated[str | None, Header()] = None) -> None:
    """Refuse POSTs without the page's custom header: a cross-site form cannot add one."""
    if not x_composer_mirror:
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"missing the {CSRF_HEADER} request header")


app = FastAPI(title="Composer mirror SBOM upload", docs_url=None, redoc_url=None, openapi_url=None)


@app.exception_handler(HTTPException)
async def login_redirect(request: Request, exc: HTTPException) -> Response:
    """A browser opening the page without a session goes to Airflow's login page, API calls get 401."""
    wants_html = "text/html" in request.headers.get("accept", "")
    if exc.status_code == status.HTTP_401_UNAUTHORIZED and request.method == "GET" and wants_html:
        return RedirectResponse(get_auth_manager().get_url_login(next_url=str(request.url)))
    return await http_exception_handler(request, exc)


@app.get("/", dependencies=[can_read_dag], include_in_schema=False)
def page() -> FileResponse:
    """The upload page, at ``<airflow>/composer-mirror/`` (its URLs are relative to that)."""
    return FileResponse(STATIC_DIR / "index.html", media_type="text/html; charset=utf-8", headers=NO_CACHE)


@app.get("/static/{name}", include_in_schema=False)
def asset(name: str, _user: CurrentUser) -> FileResponse:
    """The page's script, style sheet and navigation icon (a fixed list: no path from the request)."""
    if name not in ASSETS:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "not found")
    return FileResponse(STATIC_DIR / name, media_type=ASSETS[name], headers=NO_CACHE)


@app.post("/api/validate", dependencies=[can_read_dag, Depends(require_plugin_header)])
async def validate_sbom(request: Request) -> dict[str, Any]:
    """Parse an SBOM and summarise it; a malformed file is a summary with a problem, not an error."""
    from composer_mirror import sbom_upload

    content = await read_sbom_body(request)
    return await run_in_threadpool(sbom_upload.validate, content)


@app.post("/api/sboms", dependencies=[can_trigger_dag, Depends(require_plugin_header)])
async def store_sbom(request: Request, user: CurrentUser, filename: str | None = None) -> dict[str, Any]:
    """Store a valid SBOM under ``<prefix>sboms/`` and answer the key to trigger the DAG with.

    ``filename`` (a query parameter: the body is the SBOM) only names the stored object, sanitised.
    """
    content = await read_sbom_body(request)
    return await run_in_threadpool(store_valid_sbom, content, filename, user)


def store_valid_sbom(content: bytes, filename: str | None, user: BaseUser) -> dict[str, Any]:
    """Validate and store an uploaded SBOM (blocking: parsing and an S3 request), answering its key and summary."""
    from composer_mirror import sbom_upload
    from composer_mirror.errors import MirrorError

    summary = sbom_upload.validate(content)
    if not summary["valid"]:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "; ".join(summary["problems"]))
    try:
        store = mirror_store()
        key = sbom_upload.store(store, filename, content, uploaded_by=user.get_name())
    except MirrorError as exc:
        logger.warning("storing an uploaded SBOM failed: %s", exc)
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, str(exc)) from exc
    logger.info("%s uploaded SBOM %r as s3://%s/%s", user.get_name(), filename, store.bucket, key)
    return {"key": key, "bucket": store.bucket, "uri": f"s3://{store.bucket}/{key}", "dag_id": DAG_ID, **summary}


async def read_sbom_body(request: Request) -> bytes:
    """The request body, which is the SBOM, read only as far as the size limit allows.

    Called once the route's dependencies have authenticated and authorised the caller. The
    limit is looked up on every call (tests shrink it). A declared ``Content-Length`` over it
    is refused before anything is read, and so is a multipart form, which is not how the page
    sends a file; a body without a length (chunked) is read until it ends or until the chunk
    that takes it over the limit, so no more than the limit plus one chunk is ever held.
    """
    from composer_mirror import sbom

    limit = sbom.MAX_SBOM_BYTES
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise HTTPException(status.HTTP_400_BAD_REQUEST, f"invalid Content-Length {declared!r}")
        if int(declared) > limit:
            raise too_large(limit, f"this one declares {int(declared)}")
    content_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if content_type == "multipart/form-data":
        raise HTTPException(
            status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
            "send the SBOM itself as the request body, not as a multipart form (the file name goes in ?filename=)",
        )
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise too_large(limit, "this one has more")
    return bytes(body)


def too_large(limit: int, why: str) -> HTTPException:
    """The 413 for an upload over the limit, saying what the limit is."""
    return HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, f"SBOM uploads are limited to {limit} bytes: {why}")


def mirror_store() -> Any:
    """The mirror's S3Store, from the same Variables and connection the DAGs use."""
    from composer_mirror.airflow.connections import load_settings, s3_client
    from composer_mirror.store import S3Store

    settings = load_settings()
    return S3Store(s3_client(settings.aws_conn_id, settings.concurrency), settings.bucket, settings.key_prefix)
