"""The published index.html, loaded from the moto-served bucket in a real headless Chromium."""

from __future__ import annotations

import json

import pytest

from composer_mirror.archives import ArchiveRecord
from composer_mirror.listing_page import publish_listing, publish_status
from composer_mirror.state import PackageState, save_package_states
from composer_mirror.store import S3Store
from devtools.harness import MotoServer
from tests.browser import Browser

pytestmark = [pytest.mark.integration, pytest.mark.browser]

PACKAGES = {
    "psr/log": {"description": "Common interface for logging libraries", "license": ["MIT"], "versions": ["3.0.2"]},
    "monolog/monolog": {"description": "Sends your logs to files", "license": ["MIT"], "versions": ["3.10.0"]},
    "twig/twig": {
        "description": "Twig, the flexible template language",
        "license": ["BSD-3-Clause"],
        "versions": ["v3.27.1", "v3.27.0"],
    },
}


def state_of(info: dict) -> PackageState:
    versions = {f"{v.lstrip('v')}.0": ArchiveRecord(v, "r", "s", "0" * 64, 1, "u") for v in info["versions"]}
    return PackageState(versions=versions, description=info["description"], license=info["license"])


def test_the_page_lists_every_package_and_the_search_box_filters_them(moto_server: MotoServer, bucket: str) -> None:
    store = S3Store(moto_server.client(), bucket, "repo/")
    save_package_states(store, {name: state_of(info) for name, info in PACKAGES.items()})
    publish_listing(store, PACKAGES, changed=True)
    publish_status(store, {"finished_at": "2026-11-22T00:00:00Z", "run_id": "manual__1", "packages_available": 3})
    index = json.loads(store.get("index.json").body)
    assert index["packages"]["twig/twig"]["versions"] == ["v3.27.1", "v3.27.0"]

    with Browser() as browser:
        browser.goto(f"{moto_server.endpoint}/{bucket}/repo/index.html")
        assert browser.wait_for("document.querySelectorAll('#packages tr').length") == 3
        names = browser.evaluate("[...document.querySelectorAll('#packages tr')].map(r => r.dataset.package)")
        assert sorted(names) == sorted(PACKAGES)
        assert "MIT" in browser.evaluate("document.querySelector('tr[data-package=\"psr/log\"]').innerText")
        assert browser.wait_for("document.getElementById('status').textContent.includes('manual__1')")
        config = json.loads(browser.evaluate("document.getElementById('config').textContent"))
        assert config["repositories"][0]["url"] == f"{moto_server.endpoint}/{bucket}/repo"

        browser.type_into("#search", "log")
        visible = browser.wait_for(
            "document.getElementById('packages').dataset.shown === '2' && "
            "[...document.querySelectorAll('#packages tr')].filter(r => !r.hidden).map(r => r.dataset.package)"
        )
        assert sorted(visible) == ["monolog/monolog", "psr/log"]
        browser.type_into("#search", "zzz-no-such-package")
        assert browser.wait_for("document.getElementById('packages').dataset.shown === '0'")
