"""Tests of the fixture registry server: the upstream every other test trusts must itself be right.

The p2 checks expand minified files with an independent implementation written here, and one
integration test runs the real ``composer`` CLI against the server, which is the final word on whether
the served format is what Composer expects.
"""

from __future__ import annotations

import base64
import email.utils
import hashlib
import io
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from devtools.fixture_registry import FaultRule, Registry, RegistryServer, crc32_combine
from devtools.harness import ROOT, SAMPLE_LOCK

MIN_SINCE = 15850612240000


# ------------------------------------------------------------------------------------------------ helpers


def expand_minified(versions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """composer/metadata-minifier's expand, written independently of the fixture's own port."""
    result: list[dict[str, Any]] = []
    for version in versions:
        current = dict(result[-1]) if result else {}
        for key, value in version.items():
            if value == "__unset":
                current.pop(key, None)
            else:
                current[key] = value
        result.append(current)
    return result


def p2(session: requests.Session, registry_server: RegistryServer, name: str, dev: bool = False) -> requests.Response:
    return session.get(f"{registry_server.url}/p2/{name}{'~dev' if dev else ''}.json", timeout=10)


def served_versions(
    session: requests.Session, registry_server: RegistryServer, name: str, dev: bool = False
) -> list[dict]:
    response = p2(session, registry_server, name, dev)
    assert response.status_code == 200
    document = response.json()
    assert document["minified"] == "composer/2.0"
    assert list(document["packages"]) == [name]
    return expand_minified(document["packages"][name])


def since_now(session: requests.Session, registry_server: RegistryServer) -> int:
    """The timestamp a mirror starts from: the one in the 400 answer without ``since``."""
    return session.get(f"{registry_server.url}/metadata/changes.json", timeout=10).json()["timestamp"]


def changes(session: requests.Session, registry_server: RegistryServer, since: int) -> dict[str, Any]:
    response = session.get(f"{registry_server.url}/metadata/changes.json", params={"since": since}, timeout=10)
    assert response.status_code == 200
    return response.json()


def newest_dist(registry_server: RegistryServer, name: str) -> dict[str, Any]:
    return registry_server.versions(name, dev=False)[0]["dist"]


@pytest.fixture
def registry_options() -> dict[str, Any]:
    """The registry as ``Registry.from_lock`` builds it by default: what these tests check."""
    return {}


@pytest.fixture
def session() -> Iterator[requests.Session]:
    with requests.Session() as http:
        yield http


# ------------------------------------------------------------------------------------------ the root file


def test_the_root_publishes_absolute_urls_like_packagist(
    registry_server: RegistryServer, session: requests.Session
) -> None:
    root = session.get(f"{registry_server.url}/packages.json").json()
    assert root["packages"] == []
    assert root["metadata-url"] == f"{registry_server.url}/p2/%package%.json"
    assert root["list"] == f"{registry_server.url}/packages/list.json"
    assert root["metadata-changes-url"] == f"{registry_server.url}/metadata/changes.json"
    assert root["providers-api"] == f"{registry_server.url}/providers/%package%.json"
    assert root["notify-batch"] == f"{registry_server.url}/downloads/"
    assert root["search"] == f"{registry_server.url}/search.json?q=%query%&type=%type%"
    assert root["security-advisories"] == {
        "metadata": True,
        "api-url": f"{registry_server.url}/api/security-advisories/",
    }


def test_the_root_can_omit_the_changes_feed_and_use_a_relative_metadata_url(registry: Registry) -> None:
    with RegistryServer(registry, changes_feed=False, relative_metadata_url=True) as server:
        root = requests.get(f"{server.url}/packages.json", timeout=10).json()
        assert "metadata-changes-url" not in root
        assert root["metadata-url"] == "/p2/%package%.json"
        assert requests.get(f"{server.url}/metadata/changes.json", timeout=10).status_code == 404


# ---------------------------------------------------------------------------------------------- p2 files


def test_every_p2_file_expands_to_exactly_the_registry_versions(registry: Registry) -> None:
    with RegistryServer(registry) as server, requests.Session() as http:
        assert len(registry.package_names()) == 153
        for name in registry.package_names():
            for dev in (False, True):
                assert served_versions(http, server, name, dev) == server.versions(name, dev=dev), name


def test_minified_entries_list_only_changed_keys_and_unset_removed_ones(
    registry: Registry, registry_server: RegistryServer
) -> None:
    registry.add_version("psr/log", "3.1.0", extra=None, description="A new description")
    minified = requests.get(f"{registry_server.url}/p2/psr/log.json", timeout=10).json()["packages"]["psr/log"]
    first, second = minified[0], minified[1]
    assert first["version"] == "3.1.0" and "extra" not in first
    assert second["extra"] == registry.version("psr/log", "3.0.2")["extra"]
    assert "license" not in second and "name" not in second  # unchanged keys are omitted
    assert second["description"] == registry.version("psr/log", "3.0.2")["description"]
    registry.add_version("psr/log", "3.0.3", autoload=None)
    minified = requests.get(f"{registry_server.url}/p2/psr/log.json", timeout=10).json()["packages"]["psr/log"]
    versions = [entry.get("version") for entry in expand_minified(minified)]
    assert versions == ["3.1.0", "3.0.3", "3.0.2", "3.0.1", "3.0.0"]
    assert minified[1]["autoload"] == "__unset"


def test_tags_are_newest_first_and_branches_live_in_the_dev_file(registry: Registry) -> None:
    with RegistryServer(registry) as server, requests.Session() as http:
        tags = served_versions(http, server, "twig/twig")
        assert [v["version"] for v in tags] == ["v3.27.1", "v3.27.0", "v3.26.9"]
        assert all(v["version_normalized"].count(".") == 3 for v in tags)
        with_branches = [n for n in registry.package_names() if registry.versions(n, dev=True)]
        assert len(with_branches) >= 40
        for name in with_branches[:10]:
            branches = served_versions(http, server, name, dev=True)
            assert all(v["version"].startswith("dev-") or v["version"].endswith("-dev") for v in branches)
        without = next(n for n in registry.package_names() if not registry.versions(n, dev=True))
        response = p2(http, server, without, dev=True)
        assert response.status_code == 200 and response.json()["packages"] == {without: []}


def test_entries_keep_every_lock_field_and_point_dists_at_the_server(registry: Registry) -> None:
    locked = {
        p["name"]: p for section in ("packages", "packages-dev") for p in json.loads(SAMPLE_LOCK.read_text())[section]
    }
    for name in ("symfony/cache", "monolog/monolog", "phpunit/phpunit"):
        served = registry.version(name, locked[name]["version"], "http://upstream.test")
        for key, value in locked[name].items():
            if key not in ("dist", "source", "notification-url"):
                assert served[key] == value, (name, key)
        assert served["dist"]["url"] == f"http://upstream.test/zipball/{name}/{locked[name]['dist']['reference']}"
        assert served["dist"]["type"] == "zip"
        assert re.fullmatch(r"[0-9a-f]{40}", served["dist"]["reference"])
        assert served["source"]["url"].startswith("http://upstream.test/")


def test_versions_are_copies_that_callers_may_edit(registry: Registry) -> None:
    registry.versions("psr/log")[0]["require"]["php"] = "edited"
    assert registry.versions("psr/log")[0]["require"]["php"] != "edited"


def test_p2_files_answer_304_to_if_modified_since_and_if_none_match(
    registry_server: RegistryServer, session: requests.Session
) -> None:
    first = p2(session, registry_server, "psr/log")
    last_modified, etag = first.headers["Last-Modified"], first.headers["ETag"]
    assert first.headers["Content-Type"] == "application/json"
    assert re.fullmatch(r'"[0-9a-f]{40}"', etag)
    for headers in ({"If-Modified-Since": last_modified}, {"If-None-Match": etag}):
        response = session.get(f"{registry_server.url}/p2/psr/log.json", headers=headers)
        assert response.status_code == 304 and response.content == b""
    older = email.utils.formatdate(email.utils.parsedate_to_datetime(last_modified).timestamp() - 1, usegmt=True)
    assert (
        session.get(f"{registry_server.url}/p2/psr/log.json", headers={"If-Modified-Since": older}).status_code == 200
    )
    assert (
        session.get(f"{registry_server.url}/p2/psr/log.json", headers={"If-None-Match": '"other"'}).status_code == 200
    )


def test_a_change_moves_last_modified_forward_even_within_the_same_second(
    registry: Registry, registry_server: RegistryServer, session: requests.Session
) -> None:
    before = p2(session, registry_server, "psr/log").headers["Last-Modified"]
    registry.touch("psr/log")
    middle = p2(session, registry_server, "psr/log")
    registry.touch("psr/log")
    after = p2(session, registry_server, "psr/log")
    stamps = [
        email.utils.parsedate_to_datetime(h).timestamp()
        for h in (before, middle.headers["Last-Modified"], after.headers["Last-Modified"])
    ]
    assert stamps[0] < stamps[1] < stamps[2]
    stale = session.get(
        f"{registry_server.url}/p2/psr/log.json", headers={"If-Modified-Since": middle.headers["Last-Modified"]}
    )
    assert stale.status_code == 200


def test_unknown_packages_and_archives_answer_404(registry_server: RegistryServer, session: requests.Session) -> None:
    assert p2(session, registry_server, "nobody/nothing").status_code == 404
    assert p2(session, registry_server, "nobody/nothing", dev=True).status_code == 404
    assert session.get(f"{registry_server.url}/zipball/psr/log/{'0' * 40}", allow_redirects=False).status_code == 404
    assert session.get(f"{registry_server.url}/no/such/path").status_code == 404


# --------------------------------------------------------------------------------------------- list.json


def test_list_json_lists_every_package_and_filters_by_vendor_and_glob(
    registry_server: RegistryServer, session: requests.Session
) -> None:
    names = session.get(f"{registry_server.url}/packages/list.json").json()["packageNames"]
    assert names == registry_server.registry.package_names() and len(names) == 153
    psr = session.get(f"{registry_server.url}/packages/list.json", params={"vendor": "psr"}).json()["packageNames"]
    assert psr and all(n.startswith("psr/") for n in psr)
    glob = session.get(f"{registry_server.url}/packages/list.json", params={"filter": "symfony/http-*"}).json()[
        "packageNames"
    ]
    assert "symfony/http-kernel" in glob and all(n.startswith("symfony/http-") for n in glob)


# -------------------------------------------------------------------------------------------- the feed


def test_the_changes_feed_answers_400_with_a_timestamp_without_a_valid_since(
    registry_server: RegistryServer, session: requests.Session
) -> None:
    for params in ({}, {"since": "yesterday"}, {"since": "12345"}):
        response = session.get(f"{registry_server.url}/metadata/changes.json", params=params)
        assert response.status_code == 400
        assert "error" in response.json() and abs(response.json()["timestamp"] / 10000 - time.time()) < 60


def test_the_changes_feed_reports_an_update_after_touch(
    registry: Registry, registry_server: RegistryServer, session: requests.Session
) -> None:
    since = since_now(session, registry_server)
    assert changes(session, registry_server, since)["actions"] == []
    registry.touch("psr/log")
    answer = changes(session, registry_server, since)
    updates = [a for a in answer["actions"] if a["type"] == "update"]
    assert {a["package"] for a in updates} == {"psr/log", "psr/log~dev"}
    for action in updates:
        response = p2(
            session, registry_server, action["package"].removesuffix("~dev"), action["package"].endswith("~dev")
        )
        assert email.utils.parsedate_to_datetime(response.headers["Last-Modified"]).timestamp() >= action["time"]
    assert changes(session, registry_server, answer["timestamp"])["actions"] == []


def test_the_changes_feed_reports_a_delete_and_the_package_is_gone(
    registry: Registry, registry_server: RegistryServer, session: requests.Session
) -> None:
    since = since_now(session, registry_server)
    reference = newest_dist(registry_server, "psr/log")["reference"]
    registry.delete_package("psr/log")
    actions = changes(session, registry_server, since)["actions"]
    assert [(a["type"], a["package"]) for a in actions] == [("delete", "psr/log")]
    assert p2(session, registry_server, "psr/log").status_code == 404
    assert session.get(f"{registry_server.url}/codeload/psr/log/{reference}.zip").status_code == 404
    assert "psr/log" not in session.get(f"{registry_server.url}/packages/list.json").json()["packageNames"]


def test_force_resync_adds_one_resync_action_to_the_next_answer(
    registry: Registry, registry_server: RegistryServer, session: requests.Session
) -> None:
    since = since_now(session, registry_server)
    registry.force_resync()
    first = changes(session, registry_server, since)["actions"]
    assert first[0]["type"] == "resync" and first[0]["package"] == "*" and isinstance(first[0]["time"], int)
    assert changes(session, registry_server, since)["actions"] == []


def test_a_since_older_than_the_log_is_refused_or_answered_with_resync(
    registry: Registry, registry_server: RegistryServer, session: requests.Session
) -> None:
    since = since_now(session, registry_server)
    registry.truncate_changes_log()
    assert session.get(f"{registry_server.url}/metadata/changes.json", params={"since": since}).status_code == 400
    registry.stale_since = "resync"
    assert [a["type"] for a in changes(session, registry_server, since)["actions"]] == ["resync"]
    assert since > MIN_SINCE


def test_adding_retagging_and_removing_versions_are_update_actions(
    registry: Registry, registry_server: RegistryServer, session: requests.Session
) -> None:
    since = since_now(session, registry_server)
    old = newest_dist(registry_server, "monolog/monolog")
    old_bytes = session.get(old["url"]).content
    new_reference = registry.retag("monolog/monolog", "3.10.0")
    new = newest_dist(registry_server, "monolog/monolog")
    assert new["reference"] == new_reference != old["reference"]
    assert session.get(new["url"]).content != old_bytes
    registry.add_version("monolog/monolog", "dev-feature", description="a branch")
    registry.remove_version("monolog/monolog", "3.9.9")
    actions = changes(session, registry_server, since)["actions"]
    assert {a["package"] for a in actions} == {"monolog/monolog", "monolog/monolog~dev"}
    assert "3.9.9" not in [v["version"] for v in served_versions(session, registry_server, "monolog/monolog")]
    assert "dev-feature" in [
        v["version"] for v in served_versions(session, registry_server, "monolog/monolog", dev=True)
    ]


# -------------------------------------------------------------------------------------------- advisories


def test_advisories_are_partial_in_p2_and_full_in_the_api(
    registry_server: RegistryServer, session: requests.Session
) -> None:
    partial = p2(session, registry_server, "twig/twig").json()["security-advisories"]
    assert partial and set(partial[0]) == {"advisoryId", "affectedVersions"}
    assert p2(session, registry_server, "psr/log").json()["security-advisories"] == []
    query = [("packages[]", "twig/twig"), ("packages[]", "psr/log")]
    by_get = session.get(f"{registry_server.url}/api/security-advisories/", params=query).json()["advisories"]
    by_post = session.post(
        f"{registry_server.url}/api/security-advisories/", data={"packages[0]": "twig/twig", "packages[1]": "psr/log"}
    ).json()["advisories"]
    assert by_get == by_post and list(by_get) == ["twig/twig"]
    advisory = by_get["twig/twig"][0]
    assert {
        "advisoryId",
        "packageName",
        "remoteId",
        "title",
        "link",
        "cve",
        "affectedVersions",
        "source",
        "reportedAt",
        "composerRepository",
        "severity",
        "sources",
    } <= set(advisory)
    assert advisory["advisoryId"] == partial[0]["advisoryId"]
    assert advisory["sources"] == [{"name": advisory["source"], "remoteId": advisory["remoteId"]}]
    none = session.get(f"{registry_server.url}/api/security-advisories/", params={"packages[]": "psr/log"}).json()
    assert none == {"advisories": []}  # PHP's empty array, as packagist answers
    assert session.get(f"{registry_server.url}/api/security-advisories/").status_code == 400


# ---------------------------------------------------------------------------------------------- archives


def test_zipballs_redirect_to_codeload_and_serve_an_installable_zip(
    registry_server: RegistryServer, session: requests.Session
) -> None:
    dist = newest_dist(registry_server, "symfony/cache")
    redirect = session.get(dist["url"], allow_redirects=False)
    assert redirect.status_code == 302
    assert redirect.headers["Location"] == f"{registry_server.url}/codeload/symfony/cache/{dist['reference']}.zip"
    response = session.get(redirect.headers["Location"])
    assert response.headers["Content-Type"] == "application/zip"
    assert int(response.headers["Content-Length"]) == len(response.content)
    archive = zipfile.ZipFile(io.BytesIO(response.content))
    assert archive.testzip() is None
    top = f"symfony-cache-{dist['reference'][:7]}/"
    assert {n.split("/")[0] + "/" for n in archive.namelist()} == {top}
    manifest = json.loads(archive.read(top + "composer.json"))
    version = registry_server.versions("symfony/cache")[0]
    assert manifest["name"] == "symfony/cache" and "version" not in manifest
    assert manifest["require"] == version["require"] and manifest["autoload"] == version["autoload"]
    assert top + "Traits/ValueWrapper.php" in archive.namelist()  # classmap file entry
    assert response.content == registry_server.registry.archive_bytes("symfony/cache", dist["reference"])


def test_every_autoload_files_and_bin_path_exists_in_its_archive(registry: Registry) -> None:
    for name in registry.package_names():
        entry = registry.versions(name)[0]
        reference = entry["dist"]["reference"]
        names = set(zipfile.ZipFile(io.BytesIO(registry.archive_bytes(name, reference))).namelist())
        top = f"{name.replace('/', '-')}-{reference[:7]}/"
        for path in [*entry.get("autoload", {}).get("files", []), *entry.get("bin", [])]:
            assert top + path in names, (name, path)


def test_archives_are_deterministic_and_real_shasums_match_the_bytes(registry: Registry) -> None:
    rebuilt = Registry.from_lock(SAMPLE_LOCK)
    with_shasum = [n for n in registry.package_names() if registry.versions(n)[0]["dist"]["shasum"]]
    assert "psr/log" in with_shasum and 5 <= len(with_shasum) < 100
    for name in registry.package_names()[:40]:
        dist = registry.versions(name)[0]["dist"]
        data = registry.archive_bytes(name, dist["reference"])
        assert data == rebuilt.archive_bytes(name, dist["reference"])
        assert dist["shasum"] in ("", hashlib.sha1(data).hexdigest())
    with RegistryServer(registry) as server:
        for name in with_shasum:
            dist = server.versions(name)[0]["dist"]
            assert hashlib.sha1(requests.get(dist["url"], timeout=10).content).hexdigest() == dist["shasum"]


def test_a_large_archive_is_streamed_with_its_exact_size(registry: Registry, registry_server: RegistryServer) -> None:
    size = 24 * 1024 * 1024 + 12345
    registry.set_archive_size("psr/log", "3.0.2", size)
    dist = newest_dist(registry_server, "psr/log")
    assert dist["shasum"] == ""  # no sha1 of a streamed payload
    digest, received = hashlib.sha1(), 0
    with requests.get(dist["url"], stream=True, timeout=30) as response:
        assert int(response.headers["Content-Length"]) == size
        for chunk in response.iter_content(1 << 20):
            digest.update(chunk)
            received += len(chunk)
    assert received == size
    data = registry.archive_bytes("psr/log", dist["reference"])
    assert hashlib.sha1(data).hexdigest() == digest.hexdigest()
    archive = zipfile.ZipFile(io.BytesIO(data))
    assert archive.testzip() is None and any(n.endswith("composer.json") for n in archive.namelist())


def test_crc32_combine_agrees_with_zlib() -> None:
    first, second = os.urandom(1000), os.urandom(777)
    assert crc32_combine(zlib.crc32(first), zlib.crc32(second), len(second)) == zlib.crc32(first + second)


# ------------------------------------------------------------------------------------ auth and origins


@pytest.mark.parametrize("auth", [("alice", "s3cret"), "token-123"])
def test_auth_rejects_requests_without_the_right_credentials(registry: Registry, auth: tuple[str, str] | str) -> None:
    if isinstance(auth, tuple):
        good = {"Authorization": "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()}
    else:
        good = {"Authorization": f"Bearer {auth}"}
    with RegistryServer(registry, auth=auth) as server:
        assert requests.get(f"{server.url}/packages.json", timeout=10).status_code == 401
        wrong = requests.get(f"{server.url}/packages.json", headers={"Authorization": "Bearer nope"}, timeout=10)
        assert wrong.status_code == 401 and "WWW-Authenticate" in wrong.headers
        assert requests.get(f"{server.url}/p2/psr/log.json", headers=good, timeout=10).status_code == 200


def test_the_archive_origin_needs_no_credentials_and_logs_whether_any_arrived(
    registry: Registry,
) -> None:
    with RegistryServer(registry, auth="token-123", archive_server=True) as server:
        assert server.archive_url and server.archive_url != server.url
        dist = server.versions("psr/log")[0]["dist"]
        redirect = requests.get(
            dist["url"], headers={"Authorization": "Bearer token-123"}, allow_redirects=False, timeout=10
        )
        assert redirect.headers["Location"].startswith(server.archive_url + "/codeload/psr/log/")
        response = requests.get(redirect.headers["Location"], timeout=10)
        assert response.status_code == 200 and zipfile.ZipFile(io.BytesIO(response.content)).testzip() is None
        # requests itself drops Authorization on a cross-origin redirect: the log shows it did not leak
        requests.get(dist["url"], headers={"Authorization": "Bearer token-123"}, timeout=10)
        archive_requests = [r for r in server.requests if r.server == "archive"]
        assert len(archive_requests) == 2 and not any(r.has_authorization for r in archive_requests)
        assert [r.has_authorization for r in server.requests if r.server == "main"] == [True, True]


# ------------------------------------------------------------------------------------------------ faults


def test_status_faults_fire_n_times_per_distinct_path_then_succeed(registry: Registry) -> None:
    rule = FaultRule(r"^/p2/", "status", times=2, status=503, retry_after=7)
    with RegistryServer(registry, faults=[rule]) as server, requests.Session() as http:
        for name in ("psr/log", "twig/twig"):
            first, second, third = (p2(http, server, name) for _ in range(3))
            assert [first.status_code, second.status_code, third.status_code] == [503, 503, 200]
            assert first.headers["Retry-After"] == "7"
        assert http.get(f"{server.url}/packages.json").status_code == 200
        assert server.count(r"^/p2/", status=503) == 4
        assert [r.fault for r in server.requests[:2]] == ["status", "status"]


def test_probability_selects_the_same_paths_for_the_same_seed(registry: Registry) -> None:
    paths = [f"/p2/{name}.json" for name in registry.package_names()]
    rule = FaultRule(r".*", "status", times=2, probability=0.3, seed=7)
    chosen = {p for p in paths if rule.selects(p)}
    assert chosen == {p for p in paths if FaultRule(r".*", "status", probability=0.3, seed=7).selects(p)}
    assert chosen != {p for p in paths if FaultRule(r".*", "status", probability=0.3, seed=8).selects(p)}
    assert 0.15 * len(paths) < len(chosen) < 0.45 * len(paths)
    with RegistryServer(registry, faults=[rule]) as server, requests.Session() as http:
        statuses = {p: [http.get(server.url + p).status_code for _ in range(3)] for p in paths[:30]}
        for path, seen in statuses.items():
            assert seen == ([503, 503, 200] if path in chosen else [200, 200, 200])


def test_the_first_matching_rule_with_fires_left_applies(registry: Registry) -> None:
    rules = [
        FaultRule(r"psr/log", "status", times=1, status=429),
        FaultRule(r"^/p2/", "status", times=1, status=500),
    ]
    with RegistryServer(registry, faults=rules) as server, requests.Session() as http:
        assert [p2(http, server, "psr/log").status_code for _ in range(3)] == [429, 500, 200]
        server.set_faults([FaultRule(r"psr/log", "status", times=1, status=502)])
        assert [p2(http, server, "psr/log").status_code for _ in range(2)] == [502, 200]
        assert len(server.faults) == 1


def test_a_reset_fault_aborts_the_connection_with_an_rst(registry: Registry) -> None:
    with RegistryServer(registry, faults=[FaultRule(r"^/p2/", "reset", times=1)]) as server:
        port = int(server.url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
            raw.sendall(b"GET /p2/psr/log.json HTTP/1.1\r\nHost: x\r\n\r\n")
            with pytest.raises(ConnectionResetError):
                raw.recv(1024)
        assert requests.get(f"{server.url}/p2/psr/log.json", timeout=10).status_code == 200
        assert server.requests[0].status == 0 and server.requests[0].fault == "reset"


def test_a_delay_fault_answers_normally_after_the_delay(registry: Registry) -> None:
    with RegistryServer(registry, faults=[FaultRule(r"^/p2/", "delay", delay=0.3)]) as server:
        started = time.monotonic()
        response = requests.get(f"{server.url}/p2/psr/log.json", timeout=10)
        assert response.status_code == 200 and time.monotonic() - started >= 0.3
        with pytest.raises(requests.exceptions.ReadTimeout):
            requests.get(f"{server.url}/p2/psr/log.json", timeout=0.1)


def test_a_truncate_fault_sends_less_than_its_content_length(registry: Registry) -> None:
    with RegistryServer(registry, faults=[FaultRule(r"^/(p2|codeload)/", "truncate", times=1)]) as server:
        with pytest.raises(requests.exceptions.ChunkedEncodingError):
            requests.get(f"{server.url}/p2/psr/log.json", timeout=10)
        with pytest.raises(requests.exceptions.ChunkedEncodingError):
            requests.get(server.versions("psr/log")[0]["dist"]["url"], timeout=10)
        assert requests.get(f"{server.url}/p2/psr/log.json", timeout=10).json()["packages"]


def test_a_bad_json_fault_answers_200_with_an_unparseable_body(registry: Registry) -> None:
    with RegistryServer(registry, faults=[FaultRule(r"^/(p2|metadata)/", "bad_json")]) as server:
        for path in ("/p2/psr/log.json", "/p2/nobody/nothing.json", "/metadata/changes.json"):
            response = requests.get(server.url + path, timeout=10)
            assert response.status_code == 200
            with pytest.raises(ValueError):
                json.loads(response.content)


def test_a_wrong_package_fault_serves_another_packages_file(registry: Registry) -> None:
    with RegistryServer(registry, faults=[FaultRule(r"^/", "wrong_package")]) as server:
        document = requests.get(f"{server.url}/p2/psr/log.json", timeout=10).json()
        assert "psr/log" not in document["packages"] and len(document["packages"]) == 1
        assert requests.get(f"{server.url}/packages.json", timeout=10).json()["packages"] == []
        assert server.count(r"packages\.json") == 1 and server.requests[-1].fault is None


def test_a_zip_fault_cuts_the_central_directory_with_a_consistent_length(registry: Registry) -> None:
    with RegistryServer(registry, faults=[FaultRule(r"^/codeload/", "zip_no_central_directory")]) as server:
        dist = server.versions("psr/log")[0]["dist"]
        response = requests.get(dist["url"], timeout=10)
        full = registry.archive_bytes("psr/log", dist["reference"])
        assert response.status_code == 200 and int(response.headers["Content-Length"]) == len(response.content)
        assert full.startswith(response.content) and len(response.content) < len(full)
        with pytest.raises(zipfile.BadZipFile):
            zipfile.ZipFile(io.BytesIO(response.content))
        assert server.count(r"^/zipball/", status=302) == 1


def test_a_slow_body_fault_delivers_the_whole_body_slowly(registry: Registry) -> None:
    rule = FaultRule(r"^/p2/", "slow_body", delay=0.02, chunk_size=256)
    with RegistryServer(registry, faults=[rule]) as server:
        started = time.monotonic()
        response = requests.get(f"{server.url}/p2/psr/log.json", timeout=10)
        chunks = -(-len(response.content) // 256)
        assert time.monotonic() - started >= 0.02 * chunks * 0.9
        assert response.json()["packages"]["psr/log"]


# ----------------------------------------------------------------------------------- speed, data, CLI


def test_a_keep_alive_session_reuses_one_connection_with_tcp_nodelay(registry: Registry) -> None:
    """The fixture is never the bottleneck: without TCP_NODELAY, delayed ACKs stall each keep-alive
    response ~40 ms (how fast it answers is `make bench`'s business, not a timed test's)."""
    names = registry.package_names()
    with RegistryServer(registry) as server, requests.Session() as http:
        for index in range(200):
            assert p2(http, server, names[index % len(names)]).status_code == 200
        assert server.open_connections() == [{"nodelay": True}]


def test_synthetic_registries_are_deterministic_sized_and_installable() -> None:
    registry = Registry.synthetic(packages=120, versions=9, vendors=10, seed=3, metadata_bytes=2500)
    again = Registry.synthetic(packages=120, versions=9, vendors=10, seed=3, metadata_bytes=2500)
    names = registry.package_names()
    assert len(names) == 120 and all(re.fullmatch(r"vendor\d{3}/pkg\d{3}", n) for n in names)
    assert registry.versions("vendor005/pkg005") == again.versions("vendor005/pkg005")
    for name in names:
        tags = registry.versions(name, dev=False)
        assert len(tags) == 9
        index = int(name.rsplit("pkg", 1)[1])
        for entry in tags:
            for dependency, constraint in entry["require"].items():
                assert dependency == "php" or (int(dependency.rsplit("pkg", 1)[1]) < index and constraint == "^1.0")
    sizes = [len(json.dumps(e)) for n in names for e in registry.versions(n, dev=False)]
    assert 2000 < sum(sizes) / len(sizes) < 3200
    assert any(registry.versions(n, dev=True) for n in names)
    data = registry.archive_bytes(names[0], registry.versions(names[0])[0]["dist"]["reference"])
    assert 1500 < len(data) < 16000


def test_the_command_line_server_prints_ready_and_serves(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "devtools.fixture_registry", "--synthetic", "30", "--port", "0"]
    with subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True) as process:
        try:
            assert process.stdout is not None
            line = process.stdout.readline().strip()
            assert line.startswith("READY http://127.0.0.1:")
            url = line.split(" ", 1)[1]
            names = requests.get(f"{url}/packages/list.json", timeout=10).json()["packageNames"]
            assert len(names) == 30
        finally:
            process.terminate()
            assert process.wait(timeout=10) == 0


# ----------------------------------------------------------------------------------------- integration


@pytest.mark.integration
@pytest.mark.skipif(shutil.which("composer") is None or shutil.which("php") is None, reason="needs composer")
def test_the_real_composer_cli_installs_from_the_fixture_registry(registry: Registry, tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    requires = {
        "psr/log": "*",
        "monolog/monolog": "*",
        "symfony/deprecation-contracts": "*",
        "nette/utils": "*",
    }
    with RegistryServer(registry, archive_server=True) as server:
        (project / "composer.json").write_text(
            json.dumps(
                {
                    "name": "fixture/consumer",
                    "require": requires,
                    "repositories": [{"type": "composer", "url": server.url}, {"packagist.org": False}],
                    "config": {"secure-http": False, "platform": {"php": "8.4.0"}},
                }
            )
        )
        env = {
            **os.environ,
            "COMPOSER_HOME": str(tmp_path / "home"),
            "COMPOSER_CACHE_DIR": str(tmp_path / "cache"),
        }
        result = subprocess.run(
            ["composer", "install", "--no-plugins", "--no-scripts", "--no-interaction", "--no-progress"],
            cwd=project,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        installed_json = json.loads((project / "vendor/composer/installed.json").read_text())
        installed = {p["name"]: p for p in installed_json["packages"]}
        assert set(requires) <= set(installed)
        assert installed["psr/log"]["version"] == "3.0.2" and installed["psr/log"]["dist"]["shasum"]
        loaded = subprocess.run(
            ["php", "-r", "require 'vendor/autoload.php'; echo 'ok';"],
            cwd=project,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert loaded.stdout == "ok", loaded.stderr
        assert server.count(r"^/codeload/") == len(installed) and server.errors == []
