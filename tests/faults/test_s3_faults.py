"""S3 faults: a throttling or failing S3 (a fault proxy in front of moto) never leaves a broken index.

The proxy answers chosen requests with S3's own error documents (503 SlowDown, 403 AccessDenied);
everything else reaches the moto server unchanged.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config

from composer_mirror.errors import ConflictError, StoreError
from composer_mirror.state import Catalog, load_catalog, update_catalog
from composer_mirror.store import ZIP, S3Store
from devtools.fixture_registry import Registry, RegistryServer
from devtools.harness import MotoServer
from tests.faults.helpers import (
    PREFIX,
    airflow_env,
    keys,
    mirror_variables,
    output_of,
    run_reports,
    tail,
)
from tests.faults.s3_proxy import S3FaultProxy, S3Rule
from tests.mirror_checks import check_repository

pytestmark = pytest.mark.integration


def s3_client(endpoint: str) -> Any:
    """A client that does not retry on its own: whatever is retried, the store retried it."""
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(retries={"total_max_attempts": 1}),
    )


@pytest.fixture
def proxy(moto_server: MotoServer):  # type: ignore[no-untyped-def]
    with S3FaultProxy(moto_server.endpoint) as running:
        yield running


def test_a_throttled_archive_upload_is_retried_by_the_store(proxy: S3FaultProxy, bucket: str, tmp_path: Path) -> None:
    """boto3's managed upload wraps S3's SlowDown in S3UploadFailedError: the store must still see a throttle."""
    proxy.set_rules([S3Rule("PUT", r"/dists/", "slowdown", times=3)])
    archive = tmp_path / "a.zip"
    archive.write_bytes(b"PK\x05\x06" + b"\0" * 18)
    store = S3Store(s3_client(proxy.endpoint), bucket, f"{PREFIX}/", backoff=0.01)
    store.upload_file("dists/aa/bb/a.zip", str(archive), content_type=ZIP, cache_control="immutable")
    assert len(proxy.faults("slowdown")) == 3
    assert store.head("dists/aa/bb/a.zip") is not None


def test_a_refused_archive_upload_fails_at_once_without_retrying(
    proxy: S3FaultProxy, bucket: str, tmp_path: Path
) -> None:
    proxy.set_rules([S3Rule("PUT", r"/dists/", "access_denied")])
    archive = tmp_path / "a.zip"
    archive.write_bytes(b"PK\x05\x06" + b"\0" * 18)
    store = S3Store(s3_client(proxy.endpoint), bucket, f"{PREFIX}/", backoff=0.01)
    with pytest.raises(StoreError, match="AccessDenied"):
        store.upload_file("dists/aa/bb/a.zip", str(archive), content_type=ZIP, cache_control="immutable")
    assert len(proxy.faults("access_denied")) == 1


def test_a_throttled_compare_and_swap_is_retried_not_taken_for_a_conflict(proxy: S3FaultProxy, bucket: str) -> None:
    store = S3Store(s3_client(proxy.endpoint), bucket, f"{PREFIX}/", backoff=0.01)
    update_catalog(store, lambda catalog: replace(catalog, packages={"psr/log": ["*"]}))
    proxy.set_rules([S3Rule("PUT", r"catalog\.json$", "slowdown", times=2)])

    def add(catalog: Catalog) -> Catalog:
        return replace(catalog, packages={**catalog.packages, "psr/cache": ["*"]})

    update_catalog(store, add)
    assert load_catalog(store).packages == {"psr/log": ["*"], "psr/cache": ["*"]}
    assert len(proxy.faults("slowdown")) == 2
    with pytest.raises(ConflictError):  # a real conflict is still one
        store.put("mirror-state/catalog.json", b"{}", if_none_match=True)


@pytest.mark.parametrize("registry_options", [{"extra_versions": 1}])
def test_a_throttling_s3_is_retried_and_refused_uploads_leave_out_only_what_they_concern(
    registry: Registry, moto_server: MotoServer, proxy: S3FaultProxy, bucket: str, home: Path
) -> None:
    refused = registry.versions("psr/log", dev=False)[0]
    digest = hashlib.sha256(registry.archive_bytes("psr/log", refused["dist"]["reference"])).hexdigest()
    proxy.set_rules(
        [
            S3Rule("PUT", rf"/dists/../../{digest}\.zip$", "access_denied"),
            S3Rule("PUT", r"/p2/psr/cache\.json$", "access_denied"),
            S3Rule("PUT", r"/dists/", "slowdown", times=3),
            S3Rule("PUT", r"/p2/", "slowdown", times=3),
            S3Rule("GET", r"/mirror-state/shards/", "slowdown", times=2),
            S3Rule("HEAD", r"/p2/", "slowdown", times=2),
            S3Rule("PUT", r"/mirror-state/catalog\.json$", "slowdown", times=1),
            S3Rule("PUT", rf"^{PREFIX}/packages\.json$", "slowdown", times=1),
        ]
    )
    with RegistryServer(registry) as server:
        variables = mirror_variables(server.url, moto_server, bucket, ["psr/*", "monolog/monolog"])
        # botocore does not retry: every throttle below is survived by the store's own retries.
        run = airflow_env(home, variables, proxy.endpoint, s3_retries=1).dags_test("composer_mirror_sync")
    assert run.returncode != 0, "a refused upload must fail the run"

    throttled = {(r.method, r.key.split("/")[1]) for r in proxy.faults("slowdown")}
    assert throttled >= {("PUT", "dists"), ("PUT", "p2"), ("GET", "mirror-state"), ("PUT", "packages.json")}, tail(run)
    report = run_reports(moto_server, bucket)[-1]
    failures = {(f["package"], f.get("version"), f["stage"]): f["error"] for f in report["failures"]}
    assert set(failures) == {("psr/log", refused["version"], "archive"), ("psr/cache", None, "publish")}
    assert all("AccessDenied" in error for error in failures.values())
    assert "failure: {'package': 'psr/log'" in output_of(run)
    assert "failure: {'package': 'psr/cache'" in output_of(run)
    throttles = output_of(run).count("S3 throttled a ")
    assert throttles == len(proxy.faults("slowdown")), "a throttle was not retried by the store itself"

    published = check_repository(variables["composer_mirror_public_url"])
    assert published.problems == []
    expected = {n for n in registry.package_names() if n.startswith("psr/")} | {"monolog/monolog"}
    assert set(published.packages) == expected - {"psr/cache"}, "a package whose p2 file could not be written"
    assert refused["version"] not in published.packages["psr/log"]
    assert len(published.packages["psr/log"]) == len(registry.versions("psr/log", dev=False)) - 1
    assert not [k for k in keys(moto_server, bucket) if k.endswith(f"{digest}.zip")]
