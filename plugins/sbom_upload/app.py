"""The FastAPI app of the SBOM upload plugin, mounted by the API server at ``/composer-mirror``.

Only ``plugins/composer_mirror_sbom_upload.py`` imports this module, and only when the API server
asks the plugin for its ``fastapi_apps`` (``plugins/.airflowignore`` keeps Airflow from importing
it as a plugin module in every process). Routes:

* ``GET /composer-mirror/``: the page (``index.html``); ``GET /composer-mirror/static/<name>``:
  its ``app.js``, ``style.css`` and the navigation icon;
* ``POST /composer-mirror/api/validate`` (multipart ``file``): the summary of
  :func:`composer_mirror.sbom_upload.validate` (format, component counts, skip reasons, problems);
* ``POST /composer-mirror/api/sboms`` (multipart ``file``): stores a valid SBOM under
  ``<prefix>sboms/`` in the mirror bucket and answers its key, the DAG's ``sbom_s3_key``.

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
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, Any

from airflow.api_fastapi.app import get_auth_manager
from airflow.api_fastapi.auth.managers.models.base_user import BaseUser
from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity
from airflow.api_fastapi.core_api.security import get_user, requires_access_dag
from fastapi import Depends, FastAPI, File, Header, HTTPException, Request, UploadFile, status
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
def validate_sbom(file: Annotated[UploadFile, File()]) -> dict[str, Any]:
    """Parse an SBOM and summarise it; a malformed file is a summary with a problem, not an error."""
    from composer_mirror import sbom_upload

    return sbom_upload.validate(read_upload(file))


@app.post("/api/sboms", dependencies=[can_trigger_dag, Depends(require_plugin_header)])
def store_sbom(file: Annotated[UploadFile, File()], user: CurrentUser) -> dict[str, Any]:
    """Store a valid SBOM under ``<prefix>sboms/`` and answer the key to trigger the DAG with."""
    from composer_mirror import sbom_upload
    from composer_mirror.errors import MirrorError

    content = read_upload(file)
    summary = sbom_upload.validate(content)
    if not summary["valid"]:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "; ".join(summary["problems"]))
    try:
        store = mirror_store()
        key = sbom_upload.store(store, file.filename, content, uploaded_by=user.get_name())
    except MirrorError as exc:
        logger.warning("storing an uploaded SBOM failed: %s", exc)
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, str(exc)) from exc
    logger.info("%s uploaded SBOM %r as s3://%s/%s", user.get_name(), file.filename, store.bucket, key)
    return {"key": key, "bucket": store.bucket, "uri": f"s3://{store.bucket}/{key}", "dag_id": DAG_ID, **summary}


def read_upload(file: UploadFile) -> bytes:
    """The uploaded bytes, refusing anything over the size limit without reading all of it."""
    from composer_mirror.sbom import MAX_SBOM_BYTES

    content = file.file.read(MAX_SBOM_BYTES + 1)
    if len(content) > MAX_SBOM_BYTES:
        raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, f"SBOM uploads are limited to {MAX_SBOM_BYTES} bytes")
    return content


def mirror_store() -> Any:
    """The mirror's S3Store, from the same Variables and connection the DAGs use."""
    from composer_mirror.airflow_adapter import load_settings, s3_client
    from composer_mirror.store import S3Store

    settings = load_settings()
    return S3Store(s3_client(settings.aws_conn_id, settings.concurrency), settings.bucket, settings.key_prefix)
