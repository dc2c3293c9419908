"""The repository's public web page: ``index.html`` (static), ``index.json`` and ``status.json``.

``index.html`` never changes; it reads ``index.json`` (packages, versions, licences) and
``status.json`` (last sync, counts, failures) next to it, so a run that changed nothing rewrites
neither the page nor its listing, only the status, which is the public face of its run report.

This module was ``catalogue``, a name too close to the catalog (``composer_mirror.state.Catalog``,
``mirror-state/catalog.json``: the private set of mirrored packages and their selectors), which
it never reads. The rename changed no S3 key: the page, its listing and the status are still
``index.html``, ``index.json`` and ``status.json``, so existing mirrors need no migration.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from importlib import resources
from typing import Any

from composer_mirror.parallel import bounded_pool
from composer_mirror.state import PackageState, dumps, load_shard
from composer_mirror.store import Store
from composer_mirror.store.layout import INDEX_HTML, INDEX_JSON, STATE_DIR, STATUS_JSON
from composer_mirror.targets import newest_first

logger = logging.getLogger(__name__)

HTML = "text/html; charset=utf-8"
SHORT_CACHE = "public, max-age=60"
# How status.json's generated_at (the run's finished_at) is written, in UTC; the freshness check parses it.
STATUS_TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def package_summary(state: PackageState) -> dict[str, Any]:
    """What the listing page shows of one package (``index.json``'s entry), from its state in the shard."""
    versions = newest_first((record.version for record in state.versions.values()), str)
    return {
        "description": state.description if state.description is not None else "",
        "license": state.license if state.license is not None else [],
        "versions": versions,
        "synced_at": state.synced_at if state.synced_at is not None else "",
    }


def build_index(store: Store, available: Iterable[str], *, workers: int = 16) -> bytes:
    """index.json: every available package with its versions and licences, from all shards.

    Shards are summarised as they are read, and each summary is kept already serialised: at
    10,000 packages the summaries as Python objects took 19 MB at the peak of a publish, as JSON
    fragments a few. The bytes are those of ``json.dumps(..., sort_keys=True)`` of the document.
    """
    wanted = set(available)
    shards = sorted(
        {info.path.rsplit("/", 1)[-1].removesuffix(".json") for info in store.list_objects(f"{STATE_DIR}/shards/")}
    )

    def summaries(shard: str) -> dict[str, bytes]:
        packages = load_shard(store, shard).packages
        return {name: dumps(package_summary(state)) for name, state in packages.items() if name in wanted}

    found: dict[str, bytes] = {}
    with bounded_pool(workers) as pool:
        for part in pool.imap(summaries, shards):
            found.update(part)
    empty = dumps(package_summary(PackageState()))
    entries = b",".join(dumps(name) + b":" + found.get(name, empty) for name in sorted(wanted))
    return b'{"packages":{' + entries + b"}}"


def page() -> bytes:
    return resources.files("composer_mirror").joinpath("static/index.html").read_bytes()


def publish_listing(store: Store, available: Iterable[str], *, changed: bool) -> None:
    """Rewrite index.json only when the repository changed (and only if its bytes differ)."""
    if not changed and store.head(INDEX_JSON) is not None:
        return
    store.put_if_changed(INDEX_JSON, build_index(store, available), cache_control=SHORT_CACHE)
    store.put_if_changed(INDEX_HTML, page(), content_type=HTML, cache_control=SHORT_CACHE)


def publish_status(store: Store, report: Mapping[str, Any]) -> None:
    """status.json: the last run's report, for monitoring (generated-at, counts, failures, anomalies).

    It is the one object every run writes; runs that changed something also keep a copy in
    ``mirror-state/runs/``.
    """
    failures = list(report.get("failures", []))
    status = {
        **report,
        "generated_at": report.get("finished_at"),
        "last_run_id": report.get("run_id"),
        "packages": report.get("packages_available", 0),
        "failures": failures[:200],
        "failure_count": len(failures),
    }
    store.put(STATUS_JSON, json.dumps(status, indent=1, sort_keys=True).encode(), cache_control=SHORT_CACHE)
