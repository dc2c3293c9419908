"""Tests for full security advisories: the fixture registry's API, chunking, and odd answers."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from composer_mirror.errors import UpstreamError
from composer_mirror.upstream import FetchPolicy, RetryPolicy, UpstreamClient
from composer_mirror.upstream.advisories import CHUNK, fetch_full_advisories, is_full
from devtools.fixture_registry import Registry, RegistryServer

FULL = {"advisoryId": "PKSA-1", "title": "XSS", "reportedAt": "2024-01-01 00:00:00", "sources": [], "cve": None}


@pytest.fixture
def client(registry_server: RegistryServer) -> Iterator[UpstreamClient]:
    registry_server.reset_log()
    with UpstreamClient(FetchPolicy(registry_server.url), retry=RetryPolicy(attempts=1)) as upstream:
        yield upstream


def api(registry_server: RegistryServer) -> str:
    return f"{registry_server.url}/api/security-advisories/"


def test_full_advisories_come_from_the_upstream_api_for_every_name_asked(
    client: UpstreamClient, registry_server: RegistryServer, registry: Registry
) -> None:
    found = fetch_full_advisories(client, api(registry_server), ["twig/twig", "psr/log"])
    assert set(found) == {"twig/twig", "psr/log"}
    assert found["psr/log"] == []
    assert len(found["twig/twig"]) == 1
    advisory = found["twig/twig"][0]
    assert is_full(advisory)
    assert advisory == registry.advisories("twig/twig", registry_server.url)[0]
    assert registry_server.count(r"^/api/security-advisories") == 1


def test_names_are_asked_once_each_in_sorted_order(client: UpstreamClient, registry_server: RegistryServer) -> None:
    found = fetch_full_advisories(client, api(registry_server), ["twig/twig", "psr/log", "twig/twig"])
    assert list(found) == ["psr/log", "twig/twig"]
    [request] = [r for r in registry_server.requests if r.path.startswith("/api/")]
    assert parse_qs(request.query)["packages[]"] == ["psr/log", "twig/twig"]


def test_no_names_make_no_request(client: UpstreamClient, registry_server: RegistryServer) -> None:
    assert fetch_full_advisories(client, api(registry_server), []) == {}
    assert registry_server.count(r"^/api/") == 0


def test_more_names_than_a_chunk_are_asked_in_several_requests(
    client: UpstreamClient, registry_server: RegistryServer
) -> None:
    names = [f"vendor/pkg{i:03d}" for i in range(2 * CHUNK + 5)] + ["twig/twig"]
    found = fetch_full_advisories(client, api(registry_server), names)
    requests = [r for r in registry_server.requests if r.path.startswith("/api/")]
    assert len(requests) == 3
    asked = [name for r in requests for name in parse_qs(r.query)["packages[]"]]
    assert sorted(asked) == sorted(names)
    assert max(len(parse_qs(r.query)["packages[]"]) for r in requests) == CHUNK
    assert len(found["twig/twig"]) == 1
    assert all(found[name] == [] for name in names if name != "twig/twig")


def test_an_empty_php_array_answer_means_no_advisories(client: UpstreamClient, registry_server: RegistryServer) -> None:
    # the fixture answers {"advisories": []} when nothing matches, as packagist does
    assert fetch_full_advisories(client, api(registry_server), ["psr/log", "psr/container"]) == {
        "psr/container": [],
        "psr/log": [],
    }


# --- scripted answers ---------------------------------------------------------------------------
class ScriptedClient:
    def __init__(self, document: Any) -> None:
        self.document = document
        self.urls: list[str] = []

    def get_json(self, url: str) -> Any:
        self.urls.append(url)
        return self.document


def test_partial_advisories_are_filtered_out() -> None:
    partial = {"advisoryId": "PKSA-2", "affectedVersions": "<1.0"}
    client = ScriptedClient({"advisories": {"a/a": [FULL, partial, "junk"], "b/b": [partial]}})
    found = fetch_full_advisories(client, "https://up.example/api", ["a/a", "b/b"])
    assert found == {"a/a": [FULL], "b/b": []}


@pytest.mark.parametrize(
    ("advisory", "full"),
    [
        (FULL, True),
        ({k: v for k, v in FULL.items() if k != "title"}, False),
        ({k: v for k, v in FULL.items() if k != "reportedAt"}, False),
        ({k: v for k, v in FULL.items() if k != "sources"}, False),
        ({"advisoryId": "x", "affectedVersions": "<1"}, False),
        ([], False),
        (None, False),
    ],
)
def test_an_advisory_is_full_only_with_title_reported_at_and_sources(advisory: Any, full: bool) -> None:
    assert is_full(advisory) is full


@pytest.mark.parametrize("document", [{"advisories": "nope"}, {"other": 1}, ["advisories"], {"advisories": None}])
def test_an_answer_without_an_advisories_object_is_an_upstream_error(document: Any) -> None:
    with pytest.raises(UpstreamError, match="answered without an advisories object"):
        fetch_full_advisories(ScriptedClient(document), "https://up.example/api?token=secret", ["a/a"])


def test_an_api_url_with_a_query_gets_the_names_appended() -> None:
    client = ScriptedClient({"advisories": []})
    fetch_full_advisories(client, "https://up.example/api?updatedSince=0", ["a/a"])
    parts = urlsplit(client.urls[0])
    assert parse_qs(parts.query) == {"updatedSince": ["0"], "packages[]": ["a/a"]}
