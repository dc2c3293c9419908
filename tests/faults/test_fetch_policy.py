"""Where the mirror must never fetch, what it must never store, and where credentials must never go.

One DAG run against an authenticated upstream whose metadata is hostile: archive URLs on another
loopback origin, on the cloud metadata address, over plain http on an allowed host, on an allowed
host that resolves to loopback, and behind a redirect that leaves the upstream; an archive with a
``../`` entry, one over the size limit, a p2 file over the metadata limit, and a package list full
of names that are not names. A recorder plays every forbidden destination, and is also the run's
HTTP(S) proxy, so a request to any non-loopback host would reach it too.
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import pytest
import requests

from composer_mirror.upstream import FetchPolicy, UpstreamClient
from devtools.fixture_registry import Registry, RegistryServer, json_response, redirect
from devtools.harness import MotoServer
from tests.faults.helpers import (
    PREFIX,
    Recorder,
    airflow_env,
    mirror_variables,
    objects,
    output_of,
    run_pipeline,
    run_reports,
    serve_zip,
    tail,
    zip_with_entries,
)
from tests.mirror_checks import check_repository, root_document

integration = pytest.mark.integration  # fixture registry, moto or Airflow; the rest are unit tests

MALICIOUS_NAMES = ["../evil", "psr/../../evil", "psr/log/../../evil", "PSR/Evil", "psr/evil\n", "psr/", "/psr/evil"]
MAX_ARCHIVE_BYTES = 200_000
MAX_METADATA_BYTES = 100_000


@integration
def test_hostile_metadata_is_refused_without_a_single_forbidden_request_and_the_rest_is_published(
    registry: Registry, moto_server: MotoServer, bucket: str, home: Path
) -> None:
    token = "tok-" + secrets.token_hex(16)
    with Recorder() as recorder:
        server = RegistryServer(registry, auth=token)
        server.start()
        try:
            upstream = server.url
            psr = [n for n in registry.package_names() if n.startswith("psr/")]
            server.files = {
                "/packages/list.json": json_response(200, {"packageNames": psr + MALICIOUS_NAMES}),
                "/evil/leave": redirect(f"{recorder.url}/evil-redirected.zip"),
                "/evil/zip-slip.zip": serve_zip(zip_with_entries("pkg/composer.json", "pkg/../../../evil.php")),
            }
            hostile = {
                "99.0.1": f"{recorder.url}/evil-other-loopback-origin.zip",
                "99.0.2": "http://169.254.169.254/latest/meta-data/iam/evil",
                "99.0.3": "http://api.github.com/repos/evil/evil/zipball/0123abcd",
                "99.0.4": f"https://localhost:{recorder.port}/evil-allowed-host-resolving-to-loopback.zip",
                "99.0.5": f"{upstream}/evil/leave",
                # urlsplit sees the upstream's host after the "@", requests connects to the one before the "\\".
                "99.0.6": f"http://127.0.0.1:{recorder.port}\\@{upstream.removeprefix('http://')}/evil-differential.zip",
            }
            for version, url in hostile.items():
                registry.add_version("psr/log", version, dist={"type": "zip", "url": url, "reference": "f" * 40})
            registry.add_version(
                "psr/cache",
                "99.0.0",
                dist={"type": "zip", "url": f"{upstream}/evil/zip-slip.zip", "reference": "e" * 40},
            )
            registry.set_archive_size("psr/clock", "1.0.0", MAX_ARCHIVE_BYTES + 100_000)
            registry.add_version("psr/container", "99.0.0", description="x" * (MAX_METADATA_BYTES + 1))

            variables = mirror_variables(
                upstream,
                moto_server,
                bucket,
                ["psr/*", "monolog/monolog"],
                composer_mirror_dist_hosts=json.dumps(["localhost", "api.github.com"]),
                composer_mirror_max_archive_bytes=str(MAX_ARCHIVE_BYTES),
                composer_mirror_max_metadata_bytes=str(MAX_METADATA_BYTES),
            )
            airflow = airflow_env(
                home,
                variables,
                moto_server.endpoint,
                AIRFLOW_CONN_COMPOSER_UPSTREAM=json.dumps({"conn_type": "http", "password": token}),
                HTTP_PROXY=recorder.url,
                HTTPS_PROXY=recorder.url,
                NO_PROXY="127.0.0.1,localhost",
            )
            run = airflow.dags_test("composer_mirror_sync")
        finally:
            server.stop()
        log = output_of(run)
        assert run.returncode != 0, "refused URLs must fail the run"

        # No request reached a forbidden destination, directly or through the proxy.
        assert (recorder.connections, recorder.lines) == (0, []), tail(run)

    # Each refusal is a reported failure naming the version; nothing else failed.
    report = run_reports(moto_server, bucket)[-1]
    failures = {(f["package"], f.get("version"), f["stage"]): f["error"] for f in report["failures"]}
    assert set(failures) == {
        *(("psr/log", version, "archive") for version in hostile),
        ("psr/cache", "99.0.0", "archive"),
        ("psr/clock", "1.0.0", "archive"),
        ("psr/container", None, "metadata"),
    }, failures
    for version in ("99.0.1", "99.0.2", "99.0.3", "99.0.5", "99.0.6"):
        assert "refused" in failures[("psr/log", version, "archive")]
    assert "internal address" in failures[("psr/log", "99.0.4", "archive")]
    assert "unsafe entry path" in failures[("psr/cache", "99.0.0", "archive")]
    assert "limit" in failures[("psr/clock", "1.0.0", "archive")]
    assert "metadata limit" in failures[("psr/container", None, "metadata")]
    for failure in report["failures"]:
        assert f"failure: {{'package': '{failure['package']}'" in log

    # The healthy packages beside them are published, and only what was verified.
    repository = variables["composer_mirror_public_url"]
    published = check_repository(repository)
    assert published.problems == []
    assert set(published.packages) == {
        "monolog/monolog",
        "psr/cache",
        "psr/event-dispatcher",
        "psr/http-factory",
        "psr/http-message",
        "psr/log",
    }
    assert published.packages["psr/log"] == ["3.0.2"]
    assert published.packages["psr/cache"] == ["3.0.0"]

    # Names that are not names never became keys, and no key leaves the prefix.
    stored = objects(moto_server, bucket)
    assert set(root_document(repository)["available-packages"]).isdisjoint(MALICIOUS_NAMES)
    for key in stored:
        assert key.startswith(f"{PREFIX}/") and ".." not in key.split("/") and "evil" not in key, key

    # Credentials: sent to the upstream's own origin (archives included), never written, never logged.
    for record in server.requests:
        assert record.has_authorization, f"{record.path} was requested without the upstream's credentials"
    assert any(r.path.startswith("/codeload/") for r in server.requests)
    assert token not in log
    leaked = [key for key, body in stored.items() if token.encode() in body]
    assert leaked == []


@integration
def test_a_redirect_to_another_origin_never_carries_the_upstream_credentials(
    registry: Registry, tmp_path: Path
) -> None:
    """Even where the fetch policy allows the other origin, the Authorization header stays behind."""
    with Recorder() as elsewhere, RegistryServer(registry, auth=("user", "secret")) as server:
        server.files = {"/leave": redirect(f"{elsewhere.url}/landed.zip")}

        class AllowingPolicy(FetchPolicy):
            def check(self, url: str) -> None:
                """Allow the recorder's origin too (it is loopback: no real policy would)."""

        client = UpstreamClient(AllowingPolicy(server.url), auth=("user", "secret"))
        seen: list[dict[str, str]] = []
        original = client.session.get

        def spy(url: str, **kwargs: object) -> requests.Response:
            response = original(url, **kwargs)
            seen.append({"url": url, "authorization": response.request.headers.get("Authorization", "")})
            return response

        client.session.get = spy  # type: ignore[method-assign]
        with client, open(tmp_path / "archive.zip", "wb") as sink:
            client.download(f"{server.url}/leave", sink, max_bytes=1000)
    assert [bool(s["authorization"]) for s in seen] == [True, False], seen
    assert server.requests[-1].has_authorization
    assert elsewhere.lines == ["GET /landed.zip HTTP/1.1"]


def test_the_policy_refuses_before_any_connection_is_opened() -> None:
    policy = FetchPolicy("http://127.0.0.1:8080", ("localhost", "api.github.com"))
    refused = [
        "http://127.0.0.1:8081/x.zip",
        "http://169.254.169.254/latest/meta-data/",
        "https://169.254.169.254/latest/meta-data/",
        "http://api.github.com/repos/o/r/zipball/x",
        "https://localhost/x.zip",
        "https://localhost:8080/x.zip",
        "ftp://127.0.0.1:8080/x.zip",
        "file:///etc/passwd",
        "http://127.0.0.1:8080@169.254.169.254/",
        "https://api.github.com:99999/x",
        "//127.0.0.1:8080/x.zip",
        "https://127.0.0.1:8080/x.zip",
        # Parser differentials: urlsplit sees 127.0.0.1:8080, requests (urllib3) connects elsewhere.
        "http://169.254.169.254\\@127.0.0.1:8080/x",
        "http://127.0.0.1:9999\\@127.0.0.1:8080/x",
        "http://127.0.0.1:8080\t@169.254.169.254/",
    ]
    for url in refused:
        with pytest.raises(Exception, match="refused"):
            policy.check(url)
    policy.check("http://127.0.0.1:8080/zipball/a/b/c")


def test_endpoints_a_hostile_upstream_root_names_get_no_more_trust_than_dist_hosts() -> None:
    """The root's list / changes-feed / metadata URLs may sit on another origin, but not on any origin."""
    root_named = ("http://169.254.169.254/p2/%package%.json", "https://localhost:8443/metadata/changes.json")
    policy = FetchPolicy("http://127.0.0.1:8080", (), endpoints=root_named)
    for url in ("http://169.254.169.254/p2/psr/log.json", "https://localhost:8443/metadata/changes.json?since=1"):
        with pytest.raises(Exception, match="refused"):
            policy.check(url)


def test_credentials_are_only_attached_to_the_upstream_origin() -> None:
    client = UpstreamClient(FetchPolicy("https://repo.example.com", ("codeload.github.com",)), auth="token")
    with client:
        assert client._auth_for("https://repo.example.com/p2/a/b.json") is not None
        for url in (
            "https://codeload.github.com/a/b/zip/c",
            "http://repo.example.com/p2/a/b.json",
            "https://repo.example.com:8443/p2/a/b.json",
            "https://repo.example.com.evil.test/p2/a/b.json",
        ):
            assert client._auth_for(url) is None, url


@integration
def test_archives_on_a_second_origin_are_never_fetched_with_a_loopback_redirect(
    registry: Registry, tmp_path: Path
) -> None:
    """packagist's zipball -> codeload redirect, but to an origin the policy does not allow: refused, unrequested."""
    with RegistryServer(registry, archive_server=True, auth=("u", "p")) as server:
        client = UpstreamClient(FetchPolicy(server.url, ()), auth=("u", "p"))
        version = server.versions("psr/log")[0]
        with client, open(tmp_path / "archive.zip", "wb") as sink, pytest.raises(Exception, match="refused"):
            client.download(version["dist"]["url"], sink, max_bytes=10_000_000)
    assert [r.server for r in server.requests] == ["main"]
    assert server.requests[0].has_authorization


@integration
def test_malformed_archive_urls_and_redirects_fail_only_their_own_version(
    registry: Registry, moto_server: MotoServer, bucket: str
) -> None:
    """URLs Python cannot even parse must not take the batch (and the healthy packages in it) down."""
    with RegistryServer(registry) as server:
        host = server.url.removeprefix("http://")
        server.files = {"/bad-redirect": redirect("http://[::1/evil.zip")}
        malformed = {
            "99.0.1": "http://[::1/evil.zip",
            "99.0.2": f"http://[{host}]/evil.zip",
            "99.0.3": f"{server.url}/bad-redirect",
        }
        for version, url in malformed.items():
            registry.add_version("psr/log", version, dist={"type": "zip", "url": url, "reference": "d" * 40})
        variables = mirror_variables(server.url, moto_server, bucket, ["psr/*"])
        report = run_pipeline(variables, moto_server.client())
    assert {(f["package"], f.get("version")) for f in report["failures"]} == {("psr/log", v) for v in malformed}
    published = check_repository(variables["composer_mirror_public_url"])
    assert published.problems == []
    assert set(published.packages) == {n for n in registry.package_names() if n.startswith("psr/")}
    assert published.packages["psr/log"] == ["3.0.2"]


@integration
def test_a_p2_file_with_hostile_entries_fails_at_most_its_own_package(
    registry: Registry, moto_server: MotoServer, bucket: str
) -> None:
    """Valid JSON of the wrong shapes, where the pipeline expects objects and strings."""
    hostile_entries = [
        {"version": "1.0.0", "dist": "not-an-object"},
        {"version": "1.0.1", "dist": {"type": "zip", "url": ["not", "a", "string"], "reference": {"a": 1}}},
        {"version": "1.0.2", "version_normalized": 5, "dist": None},
        {"version": "1.0.3", "dist": {"type": ["zip"], "url": "/zipball/psr/cache/x", "shasum": 1}},
        {"version": "1.0.4", "require": "not-an-object", "license": "MIT", "description": ["x"], "time": 1},
        {"version": "1.0.5", "extra": {"branch-alias": "x"}, "source": "y", "dist": {"url": 7}},
    ]
    document = {
        "minified": "composer/2.0",
        "packages": {"psr/cache": hostile_entries},
        "security-advisories": [{"advisoryId": 1, "affectedVersions": ["x"]}, "not-an-object"],
    }
    with RegistryServer(registry) as server:
        server.files = {"/p2/psr/cache.json": json_response(200, document)}
        variables = mirror_variables(server.url, moto_server, bucket, ["psr/*"])
        report = run_pipeline(variables, moto_server.client())
    assert {f["package"] for f in report["failures"]} == {"psr/cache"}
    assert ("psr/cache", "1.0.0", "archive") in {
        (f["package"], f.get("version"), f["stage"]) for f in report["failures"]
    }
    published = check_repository(variables["composer_mirror_public_url"])
    assert published.problems == []
    assert set(published.packages) >= {n for n in registry.package_names() if n.startswith("psr/")} - {"psr/cache"}
