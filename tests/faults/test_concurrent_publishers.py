"""Two publishers at once never lose each other's update of the root, the catalog or a state shard.

At the DAG level the race is forced, not hoped for: the S3 fault proxy holds each run's first write of
``catalog.json`` and of ``packages.json`` until the other run writes it too, so both have read the
same version before either writes. Without compare-and-swap one of the two updates would be lost.
The unit-level tests race threads on the same objects through the proxy (which makes moto's
conditional PUT atomic, as S3's is).
"""

from __future__ import annotations

import json
import subprocess
import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from composer_mirror.publisher import publish_root
from composer_mirror.root import read_available
from composer_mirror.state import Catalog, PackageState, load_catalog, load_shard, save_package_states, update_catalog
from composer_mirror.store import S3Store
from composer_mirror.store.layout import shard_of
from devtools.fixture_registry import Registry, RegistryServer
from devtools.harness import VENV_BIN, MotoServer
from tests.faults.helpers import PREFIX, airflow_env, mirror_variables, private_home, read_json
from tests.faults.s3_proxy import S3FaultProxy, S3Rule
from tests.mirror_checks import check_repository, root_document

pytestmark = pytest.mark.integration

WRITERS = 6  # below state.CAS_ATTEMPTS: each writer loses at most once to each other writer


@pytest.fixture
def proxy(moto_server: MotoServer) -> Iterator[S3FaultProxy]:
    with S3FaultProxy(moto_server.endpoint) as running:
        yield running


def race(count: int, work: Callable[[int], Any]) -> list[Any]:
    """Run ``work(i)`` in ``count`` threads released at the same instant; re-raise the first error."""
    start = threading.Barrier(count)
    results: list[Any] = [None] * count
    errors: list[BaseException] = []

    def run(index: int) -> None:
        try:
            start.wait()
            results[index] = work(index)
        except BaseException as exc:  # collected and re-raised in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    if errors:
        raise errors[0]
    return results


def store_for(proxy: S3FaultProxy, bucket: str) -> S3Store:
    import boto3

    client = boto3.client(
        "s3",
        endpoint_url=proxy.endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    return S3Store(client, bucket, f"{PREFIX}/", backoff=0.01)


def all_at_once(proxy: S3FaultProxy, key_regex: str) -> None:
    """Hold the writers' first PUTs of the key until every writer has sent one: they all read the same version."""
    proxy.set_rules([S3Rule("PUT", key_regex, "barrier", parties=WRITERS, times=WRITERS, timeout=30)])


def lost_swaps(proxy: S3FaultProxy) -> int:
    return sum(1 for r in proxy.requests if r.method == "PUT" and r.status == 412)


def test_concurrent_root_publications_keep_every_package(proxy: S3FaultProxy, bucket: str) -> None:
    store = store_for(proxy, bucket)
    publish_root(store, "http://mirror.test/repo", ["existing/package"])
    all_at_once(proxy, r"/packages\.json$")
    race(WRITERS, lambda i: publish_root(store, "http://mirror.test/repo", [f"writer{i}/package"]))
    available, _etag = read_available(store)
    assert available == sorted(["existing/package", *(f"writer{i}/package" for i in range(WRITERS))])
    assert lost_swaps(proxy) >= WRITERS - 1


def test_concurrent_catalog_updates_keep_every_package(proxy: S3FaultProxy, bucket: str) -> None:
    store = store_for(proxy, bucket)

    def add(index: int) -> None:
        def change(catalog: Catalog) -> Catalog:
            return replace(catalog, packages={**catalog.packages, f"writer{index}/package": ["*"]})

        update_catalog(store, change)

    all_at_once(proxy, r"/catalog\.json$")
    race(WRITERS, add)
    assert sorted(load_catalog(store).packages) == sorted(f"writer{i}/package" for i in range(WRITERS))
    assert lost_swaps(proxy) >= WRITERS - 1


def test_concurrent_state_saves_to_one_shard_keep_every_package(proxy: S3FaultProxy, bucket: str) -> None:
    store = store_for(proxy, bucket)
    shard = shard_of("psr/log")
    names = [n for n in (f"vendor/package{i}" for i in range(20_000)) if shard_of(n) == shard][:WRITERS]
    all_at_once(proxy, r"/shards/")
    race(WRITERS, lambda i: save_package_states(store, {names[i]: PackageState(complete=True, description=str(i))}))
    assert sorted(load_shard(store, shard).packages) == sorted(names)
    assert lost_swaps(proxy) >= WRITERS - 1


def test_a_sync_and_an_sbom_run_writing_the_same_package_at_the_same_moment_both_land(
    registry: Registry, moto_server: MotoServer, proxy: S3FaultProxy, bucket: str, airflow_home: Path, tmp_path: Path
) -> None:
    """Both runs write psr/log: the sync its stable versions, the SBOM a pinned release candidate.

    Each run's first write of psr/log's record, of its p2 file, of the catalog and of the root is
    held until the other run's arrives, so both read the same version of each before either writes.
    """
    candidate = "3.1.0-RC1"  # "psr/*" selects stable versions only: only the SBOM's pin brings it in
    registry.add_version("psr/log", candidate)
    shared = [
        r"/mirror-state/packages/psr/log\.json$",
        rf"^{PREFIX}/p2/psr/log\.json$",
        r"/mirror-state/catalog\.json$",
        rf"^{PREFIX}/packages\.json$",
    ]
    proxy.set_rules([S3Rule("PUT", key, "barrier", times=2, timeout=120) for key in shared])
    pinned = ["monolog/monolog", "symfony/deprecation-contracts"]
    purls = [f"pkg:composer/{name}@{registry.versions(name, dev=False)[0]['version']}" for name in pinned]
    purls.append(f"pkg:composer/psr/log@{candidate}")
    with RegistryServer(registry) as server:
        variables = mirror_variables(server.url, moto_server, bucket, ["psr/*"])
        commands = {
            "sync": ["composer_mirror_sync"],
            "sbom": ["composer_mirror_sbom", "--conf", json.dumps({"purls": purls, "with_dependencies": False})],
        }
        runs = {}
        for label, command in commands.items():
            airflow = airflow_env(private_home(airflow_home, tmp_path / label), variables, proxy.endpoint)
            log = open(tmp_path / f"{label}.log", "w")  # noqa: SIM115 - closed when the process ends
            runs[label] = (
                subprocess.Popen(
                    [str(VENV_BIN / "airflow"), "dags", "test", *command],
                    env=airflow.env(),
                    stdout=log,
                    stderr=subprocess.STDOUT,
                ),
                log,
            )
        for label, (process, log) in runs.items():
            assert process.wait(300) == 0, (tmp_path / f"{label}.log").read_text()[-4000:]
            log.close()

    # The race really happened: every first write was held with the other run's, and lost swaps followed.
    assert len(proxy.faults("barrier")) == 2 * len(shared)
    conflicts = {r.key for r in proxy.requests if r.status == 412}
    assert {f"{PREFIX}/mirror-state/packages/psr/log.json", f"{PREFIX}/mirror-state/catalog.json"} <= conflicts
    assert f"{PREFIX}/packages.json" in conflicts

    psr = {name for name in registry.package_names() if name.startswith("psr/")}
    repository = variables["composer_mirror_public_url"]
    assert set(root_document(repository)["available-packages"]) == psr | set(pinned)
    assert set(read_json(moto_server, bucket, f"{PREFIX}/mirror-state/catalog.json")["packages"]) == psr | set(pinned)
    stable = {e["version"] for e in registry.versions("psr/log", dev=False)} - {candidate}
    published = check_repository(repository).packages["psr/log"]
    assert set(published) >= stable | {candidate}
    record = read_json(moto_server, bucket, f"{PREFIX}/mirror-state/packages/psr/log.json")
    assert {v["entry"]["version"] for v in record["versions"].values()} >= stable | {candidate}
