"""Tests for the sync's planning: the targets of an incremental run, and the targets of an SBOM or PURL
request (resolve_request, which reads an uploaded SBOM through read_sbom_object) against the fixture registry."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest

from composer_mirror.errors import TargetError
from composer_mirror.sbom_upload import read_sbom_object
from composer_mirror.state import Catalog
from composer_mirror.sync.planning import incremental_targets, resolve_request
from composer_mirror.upstream.composer import read_endpoints
from tests.composer_mirror.mirror_builder import BUCKET, Mirror


# --- incremental_targets ------------------------------------------------------------------------
def test_incremental_targets_are_the_mirrored_packages_the_feed_names_with_their_selectors() -> None:
    catalog = Catalog(packages={"psr/log": ["*", "3.0.2"], "twig/twig": ["^3.0"], "idle/pkg": ["*"]})
    targets = incremental_targets(["psr/log", "twig/twig:^3.0"], catalog, {"psr/log": 1, "twig/twig": 2})
    assert targets == {"psr/log": ["*", "3.0.2"], "twig/twig": ["^3.0"]}


def test_new_upstream_packages_matching_a_pattern_become_targets_and_unrelated_ones_do_not() -> None:
    catalog = Catalog(packages={"symfony/console": ["*"]})
    updates = {"symfony/new-thing": 5, "symfony/console": 6, "other/vendor": 7}
    targets = incremental_targets(["symfony/*:^7.0"], catalog, updates)
    assert targets == {"symfony/console": ["*", "^7.0"], "symfony/new-thing": ["^7.0"]}


def test_pending_packages_are_retried_even_when_the_feed_is_quiet() -> None:
    catalog = Catalog(packages={"psr/log": ["*"], "twig/twig": ["*"]}, pending={"twig/twig": 0})
    assert incremental_targets(["psr/log", "twig/twig"], catalog, {}) == {"twig/twig": ["*"]}


def test_a_quiet_feed_gives_no_targets() -> None:
    assert incremental_targets(["*"], Catalog(packages={"a/a": ["*"]}), {}) == {}


# --- resolve_request, read_sbom_object ----------------------------------------------------------
def test_resolve_request_checks_versions_upstream_and_adds_dependencies(mirror: Mirror, caplog: Any) -> None:
    mirror.ctx.upstream = read_endpoints(mirror.ctx.client, mirror.ctx.settings.upstream_url)
    params = {"purls": ["pkg:composer/twig/twig@v3.27.1"], "with_dependencies": True, "dry_run": True}
    with caplog.at_level(logging.INFO, logger="composer_mirror.sync.planning"):
        targets = resolve_request(mirror.ctx, params)
    assert targets["twig/twig"] == ["v3.27.1"]
    assert targets["symfony/polyfill-mbstring"] == ["^1.3"]
    assert "[DRY RUN] plan: twig/twig [v3.27.1]: 1 versions, 1 archives to fetch (v3.27.1)" in caplog.text


def test_resolve_request_fails_before_writing_for_a_version_the_upstream_lacks(mirror: Mirror) -> None:
    mirror.ctx.upstream = read_endpoints(mirror.ctx.client, mirror.ctx.settings.upstream_url)
    with pytest.raises(TargetError, match=r"twig/twig 9\.9\.9: version not found upstream"):
        resolve_request(mirror.ctx, {"purls": ["pkg:composer/twig/twig@9.9.9"]})
    assert list(mirror.store.list_objects("")) == []


def test_resolve_request_reads_an_sbom_uploaded_under_the_prefix(mirror: Mirror) -> None:
    mirror.ctx.upstream = read_endpoints(mirror.ctx.client, mirror.ctx.settings.upstream_url)
    sbom = {"bomFormat": "CycloneDX", "specVersion": "1.5", "version": 1,
            "components": [{"type": "library", "name": "log", "purl": "pkg:composer/psr/log@3.0.2"}]}  # fmt: skip
    mirror.store.put("uploads/app.cdx.json", json.dumps(sbom).encode())
    targets = resolve_request(mirror.ctx, {"sbom_s3_key": "repo/uploads/app.cdx.json", "with_dependencies": False})
    assert targets == {"psr/log": ["3.0.2"]}


@pytest.mark.parametrize("key", ["other/app.json", "/repo/app.json", "repo/../secrets.json", "repoX/app.json"])
def test_read_sbom_object_refuses_keys_outside_the_prefix(mirror: Mirror, key: str) -> None:
    with pytest.raises(TargetError, match="must be a key under the mirror prefix 'repo/'"):
        read_sbom_object(mirror.store, key)


def test_read_sbom_object_names_a_missing_key(mirror: Mirror) -> None:
    with pytest.raises(TargetError, match=f"sbom_s3_key 'repo/missing.json' does not exist in bucket {BUCKET}"):
        read_sbom_object(mirror.store, "repo/missing.json")


def test_read_sbom_object_returns_the_stored_bytes(mirror: Mirror) -> None:
    mirror.store.put("uploads/sbom.json", b'{"x": 1}')
    assert read_sbom_object(mirror.store, "repo/uploads/sbom.json") == b'{"x": 1}'


def test_every_sbom_format_of_the_application_resolves_to_the_same_targets(mirror: Mirror) -> None:
    """CycloneDX JSON and XML, SPDX JSON and tag-value of one lock file plan the same mirror."""
    mirror.ctx.upstream = read_endpoints(mirror.ctx.client, mirror.ctx.settings.upstream_url)
    sboms = Path(__file__).resolve().parents[2] / "fixtures/sboms"
    plans = {
        name: resolve_request(mirror.ctx, {"sbom": (sboms / name).read_text(), "with_dependencies": True})
        for name in ("symfony-demo.cdx.json", "symfony-demo.cdx.xml", "symfony-demo.spdx.json", "symfony-demo.spdx")
    }
    reference = plans.pop("symfony-demo.cdx.json")
    assert len([name for name, selectors in reference.items() if any(s != "*" for s in selectors)]) >= 153
    for name, targets in plans.items():
        assert targets == reference, name
