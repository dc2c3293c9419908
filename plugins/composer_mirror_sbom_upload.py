"""Airflow plugin: upload an SBOM in the UI, check it, and mirror what it names with ``composer_mirror_sbom``.

It adds, with the Airflow 3.1+ plugin interface:

* ``fastapi_apps``: the app of ``sbom_upload/app.py``, mounted by the API server at
  ``/composer-mirror`` (the page, ``api/validate`` and ``api/sboms``; see that module for the routes
  and how they use Airflow's authentication);
* ``external_views``: an "SBOM upload" entry in the UI's navigation (destination ``nav``) that shows
  the page inside the UI, at ``/plugin/composer-mirror-sbom``.

Airflow imports every plugin module in every process, each task included (for macros and
listeners), so this module imports nothing but ``AirflowPlugin``: the FastAPI app, and with it the
API server's security and model modules, is loaded from ``sbom_upload/app.py`` the first time
``fastapi_apps`` is read, which only the API server (and ``airflow plugins``) does.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

from airflow.plugins_manager import AirflowPlugin

URL_PREFIX = "/composer-mirror"
# Relative, as the UI expects: it resolves hrefs against its base URL, so an [api] base_url with a path works.
PAGE_HREF = "composer-mirror/"
APP_FILE = Path(__file__).resolve().parent / "sbom_upload" / "app.py"
APP_MODULE = "composer_mirror_sbom_upload_app"


def load_app() -> Any:
    """The FastAPI app, imported once from ``sbom_upload/app.py`` (by path: it is not a plugin module)."""
    module = sys.modules.get(APP_MODULE)
    if module is None:
        spec = importlib.util.spec_from_file_location(APP_MODULE, APP_FILE)
        if spec is None or spec.loader is None:
            raise ImportError(f"cannot load {APP_FILE}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[APP_MODULE] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[APP_MODULE]
            raise
    return module.app


class ComposerMirrorSbomUploadPlugin(AirflowPlugin):
    """The SBOM upload page, its API and its navigation entry."""

    name = "composer_mirror_sbom_upload"
    external_views = [
        {
            "name": "SBOM upload",
            "href": PAGE_HREF,
            "destination": "nav",
            "url_route": "composer-mirror-sbom",
            "icon": f"{PAGE_HREF}static/icon.svg",
        }
    ]

    @property
    def fastapi_apps(self) -> list[dict[str, Any]]:  # type: ignore[override]
        """Read by the API server when it mounts plugin apps: the only place the app gets imported."""
        return [{"app": load_app(), "url_prefix": URL_PREFIX, "name": "Composer mirror SBOM upload"}]
