"""Upstream faults through the real DAG: transient ones are retried, permanent ones are isolated.

One mirror lives through three runs: a first sync against an upstream where 30 % of the paths fail
twice (503, 429 with Retry-After, connection resets, truncated bodies); a second where some files
and archives are broken for good, a package was deleted and a tag rewritten; a third, in process,
once the upstream has recovered.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import requests

from devtools.fixture_registry import FaultRule, Registry, RegistryServer
from devtools.harness import MotoServer
from tests.faults.helpers import (
    SELECTION,
    airflow_env,
    mirror_variables,
    output_of,
    run_pipeline,
    run_reports,
    tail,
)
from tests.mirror_checks import check_repository, expand, snapshot

pytestmark = pytest.mark.integration

ATTEMPTS = 5  # RetryPolicy's default: a fetch may fail 4 times and still succeed
TRANSIENT = [
    FaultRule(r"^/packages", "status", status=503, times=2, probability=0.3, seed=7),
    FaultRule(r"^/p2/", "status", status=503, times=2, probability=0.3, seed=1),
    FaultRule(r"^/p2/", "truncate", times=2, probability=0.3, seed=2),
    FaultRule(r"^/zipball/", "status", status=429, retry_after=1, times=2, probability=0.3, seed=3),
    FaultRule(r"^/codeload/", "reset", times=2, probability=0.3, seed=4),
    FaultRule(r"^/codeload/", "truncate", times=2, probability=0.3, seed=6),
]
NEW = "99.0.0"  # a release added upstream between the runs


def planned_failures(rules: list[FaultRule], *paths: str) -> int:
    """How many times one logical fetch (a p2 file, or a zipball redirect plus its archive) fails."""
    return sum(rule.times or ATTEMPTS for rule in rules for path in paths if rule.selects(path))


def fetches(registry: Registry, names: list[str]) -> list[tuple[str, ...]]:
    found: list[tuple[str, ...]] = [("/packages.json",), ("/packages/list.json",)]
    for name in names:
        found.append((f"/p2/{name}.json",))
        for version in registry.versions(name, dev=False):
            reference = version["dist"]["reference"]
            found.append((f"/zipball/{name}/{reference}", f"/codeload/{name}/{reference}.zip"))
    return found


def codeload(name: str, reference: str) -> str:
    return rf"^/codeload/{name}/{reference}\.zip$"


def served(url: str) -> bytes:
    response = requests.get(url, timeout=30)
    assert response.status_code == 200, url
    return response.content


def p2_versions(repository: str, name: str) -> dict[str, dict]:
    document = requests.get(f"{repository}/p2/{name}.json", timeout=30).json()
    return {entry["version"]: entry for entry in expand(document["packages"][name])}


def test_transient_faults_are_retried_and_permanent_ones_fail_the_run_after_everything_else_is_published(
    registry: Registry, moto_server: MotoServer, bucket: str, home: Path
) -> None:
    selected = [n for n in registry.package_names() if n.startswith("psr/")] + ["monolog/monolog"]
    for paths in fetches(registry, selected):
        assert planned_failures(TRANSIENT, *paths) < ATTEMPTS, f"the fault plan makes {paths} fail for good"

    with RegistryServer(registry, faults=TRANSIENT) as server:
        variables = mirror_variables(server.url, moto_server, bucket, SELECTION)
        airflow = airflow_env(home, variables, moto_server.endpoint)
        repository = variables["composer_mirror_public_url"]

        # 1. 30 % of the paths fail twice: the run retries its way through and publishes everything.
        first = airflow.dags_test("composer_mirror_sync")
        assert first.returncode == 0, tail(first)
        injected = {(r.fault, r.status) for r in server.requests if r.fault}
        assert {("status", 503), ("status", 429), ("truncate", 200), ("reset", 0)} <= injected, injected
        published = check_repository(repository)
        assert published.problems == []
        assert set(published.packages) == set(selected)
        retried = [r for r in server.requests if r.fault and r.path.startswith(("/p2/", "/zipball/", "/codeload/"))]
        assert run_reports(moto_server, bucket)[-1]["upstream"]["retries"] == len(retried)
        original_log = p2_versions(repository, "psr/log")["3.0.2"]
        original_log_bytes = served(original_log["dist"]["url"])

        # 2. The upstream breaks for good in places, deletes a package and rewrites a tag.
        added = {name: registry.add_version(name, NEW) for name in ("monolog/monolog", "psr/event-dispatcher")}
        added |= {name: registry.add_version(name, NEW) for name in ("psr/http-factory", "psr/http-message")}
        registry.touch("psr/cache")
        registry.touch("psr/container")
        registry.delete_package("psr/clock")
        new_reference = registry.retag("psr/log", "3.0.2")
        server.set_faults(
            [
                FaultRule(
                    codeload("monolog/monolog", added["monolog/monolog"]["dist"]["reference"]), "status", status=500
                ),
                FaultRule(
                    codeload("psr/event-dispatcher", added["psr/event-dispatcher"]["dist"]["reference"]),
                    "zip_no_central_directory",
                ),
                FaultRule(codeload("psr/http-factory", added["psr/http-factory"]["dist"]["reference"]), "truncate"),
                FaultRule(r"^/p2/psr/cache\.json$", "bad_json"),
                FaultRule(r"^/p2/psr/container\.json$", "wrong_package"),
            ]
        )
        before = snapshot(moto_server.client(), bucket)
        second = airflow.dags_test("composer_mirror_sync")
        log = output_of(second)
        assert second.returncode != 0, "permanent failures must fail the run"

        report = run_reports(moto_server, bucket)[-1]
        failed = {(f["package"], f.get("version"), f["stage"]) for f in report["failures"]}
        assert failed == {
            ("monolog/monolog", NEW, "archive"),
            ("psr/event-dispatcher", NEW, "archive"),
            ("psr/http-factory", NEW, "archive"),
            ("psr/cache", None, "metadata"),
            ("psr/container", None, "metadata"),
        }
        for name in ("monolog/monolog", "psr/event-dispatcher", "psr/http-factory", "psr/cache", "psr/container"):
            assert f"failure: {{'package': '{name}'" in log, f"the task log does not name {name}"

        # Everything else was published before the run failed; nothing mirrored earlier was lost.
        published = check_repository(repository)
        assert published.problems == []
        assert set(published.packages) == set(selected), "a package left the index (psr/clock was deleted upstream)"
        assert NEW in published.packages["psr/http-message"]
        for name in ("monolog/monolog", "psr/event-dispatcher", "psr/http-factory"):
            assert NEW not in published.packages[name], f"{name} {NEW} is published without its archive"
        after = snapshot(moto_server.client(), bucket)
        for key in ("p2/psr/cache.json", "p2/psr/container.json", "p2/psr/clock.json", "p2/psr/log.json"):
            assert after[f"repo/{key}"] == before[f"repo/{key}"], f"{key} was rewritten"
        assert all(after[key] == value for key, value in before.items() if "/dists/" in key), "an archive changed"

        # 3. The rewritten tag: the mirror keeps serving the original archive and reports the anomaly.
        kept = p2_versions(repository, "psr/log")["3.0.2"]
        assert kept["dist"] == original_log["dist"]
        assert served(kept["dist"]["url"]) == original_log_bytes
        assert hashlib.sha1(original_log_bytes).hexdigest() == kept["dist"]["shasum"]
        anomalies = [a for a in report["anomalies"] if a["package"] == "psr/log"]
        assert [(a["version"], a["mirrored_reference"], a["upstream_reference"]) for a in anomalies] == [
            ("3.0.2", original_log["dist"]["reference"], new_reference)
        ]
        assert "supply-chain anomaly" in log

        # 4. The upstream recovers: the next (incremental) run retries what failed, though the feed is quiet.
        server.set_faults([])
        recovered = run_pipeline(variables, moto_server.client(), run_id="recovered")
        assert recovered["failures"] == []
        published = check_repository(repository)
        assert published.problems == []
        for name in ("monolog/monolog", "psr/event-dispatcher", "psr/http-factory"):
            assert NEW in published.packages[name], f"{name} {NEW} was never retried after its failure"
        assert p2_versions(repository, "psr/log")["3.0.2"]["dist"] == original_log["dist"]


def test_a_package_that_disappears_upstream_without_a_feed_stays_published_byte_for_byte(
    registry: Registry, moto_server: MotoServer, bucket: str
) -> None:
    """No changes feed, so every run revalidates everything: the deleted package's p2 files answer 404."""
    with RegistryServer(registry, changes_feed=False) as server:
        variables = mirror_variables(server.url, moto_server, bucket, ["psr/*"])
        assert run_pipeline(variables, moto_server.client())["failures"] == []
        before = snapshot(moto_server.client(), bucket)
        registry.delete_package("psr/clock")
        server.set_faults([FaultRule(r"^/p2/psr/cache\.json$", "status", status=410)])  # "gone" is a 404 too
        report = run_pipeline(variables, moto_server.client(), run_id="after-delete")
        assert server.count(r"^/p2/psr/clock\.json$", status=404) == 1
    assert report["failures"] == []
    published = check_repository(variables["composer_mirror_public_url"])
    assert published.problems == []
    assert set(published.packages) == {n for n in registry.package_names() if n.startswith("psr/")} | {"psr/clock"}
    after = snapshot(moto_server.client(), bucket)
    served = [key for key in before if not key.startswith("repo/mirror-state/")]
    assert [key for key in served if after.get(key) != before[key]] == [], "published objects were rewritten"
