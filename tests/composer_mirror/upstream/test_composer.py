"""Tests for the upstream's protocol: the endpoints its root names, package and list URLs."""

from __future__ import annotations

import json
from typing import Any

import pytest

from composer_mirror.errors import UpstreamError
from composer_mirror.upstream import Fetched, FetchPolicy
from composer_mirror.upstream.composer import Endpoints, list_names, list_url, package_url, read_endpoints

UPSTREAM = "https://repo.example.org"
WITH_LIST = Endpoints(
    metadata_url=f"{UPSTREAM}/p2/%package%.json", list_url="https://list.example.org/packages/list.json"
)


class RootOnly:
    """An upstream client answering the root only: read_endpoints makes no other request."""

    def __init__(self, root: dict[str, Any]) -> None:
        self.root = root

    def get_json(self, url: str) -> object:
        assert url == f"{UPSTREAM}/packages.json"
        return self.root

    def get_metadata(self, url: str) -> Fetched:
        raise AssertionError(f"unexpected request {url}")


PACKAGIST_LIKE = {
    "metadata-url": "/p2/%package%.json",
    "list": "https://list.example.org/packages/list.json",
    "metadata-changes-url": "/metadata/changes.json",
    "security-advisories": {"metadata": True, "api-url": "https://api.example.org/security-advisories/"},
}


def test_read_endpoints_resolves_every_url_the_root_names() -> None:
    endpoints = read_endpoints(RootOnly(PACKAGIST_LIKE), UPSTREAM)  # type: ignore[arg-type]
    assert endpoints == Endpoints(
        metadata_url=f"{UPSTREAM}/p2/%package%.json",
        list_url="https://list.example.org/packages/list.json",
        changes_url=f"{UPSTREAM}/metadata/changes.json",
        advisories_url="https://api.example.org/security-advisories/",
    )
    assert Endpoints.from_json(json.loads(json.dumps(endpoints.to_json()))) == endpoints


def test_a_root_naming_only_the_metadata_url_has_no_other_endpoints() -> None:
    endpoints = read_endpoints(RootOnly({"metadata-url": "p2/%package%.json"}), UPSTREAM)  # type: ignore[arg-type]
    assert endpoints.urls() == (f"{UPSTREAM}/p2/%package%.json",)


@pytest.mark.parametrize("root", [{}, {"metadata-url": "/p2/x.json"}, {"packages": {}}])
def test_a_root_without_a_v2_metadata_url_is_not_a_composer_2_repository(root: dict[str, Any]) -> None:
    with pytest.raises(UpstreamError, match="not a Composer 2 repository"):
        read_endpoints(RootOnly(root), UPSTREAM)  # type: ignore[arg-type]


def test_the_list_endpoint_reaches_the_fetch_policy() -> None:
    """The bug this module fixed: the list URL was kept under "list" and dropped by every task's policy."""
    endpoints = Endpoints.from_json(read_endpoints(RootOnly(PACKAGIST_LIKE), UPSTREAM).to_json())  # type: ignore[arg-type]
    policy = FetchPolicy(UPSTREAM, endpoints=endpoints.urls(), resolve=False)
    policy.check(list_url(endpoints, UPSTREAM, "psr/*"))  # another origin the root names: allowed
    assert "https://list.example.org/packages/list.json" in endpoints.urls()


def test_a_task_context_gives_the_list_endpoint_to_the_fetch_policy(monkeypatch: pytest.MonkeyPatch) -> None:
    from composer_mirror.airflow import handoffs
    from composer_mirror.settings import Settings

    monkeypatch.setattr(handoffs, "s3_client", lambda *_args: object())
    settings = Settings(bucket="mirror-bucket", public_url="https://mirror.example", upstream_url=UPSTREAM)
    ctx = handoffs.build_context(WITH_LIST.to_json(), settings=settings)
    assert ctx.upstream == WITH_LIST
    assert "https://list.example.org/packages/list.json" in ctx.client.policy.endpoints
    ctx.client.close()


@pytest.mark.parametrize(
    ("dev", "url"),
    [(False, "https://repo.example/p2/psr/log.json"), (True, "https://repo.example/p2/psr/log~dev.json")],
)
def test_package_url_fills_the_metadata_url_template(dev: bool, url: str) -> None:
    assert package_url(Endpoints("https://repo.example/p2/%package%.json"), "psr/log", dev) == url


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("*", "https://list.example.org/packages/list.json"),
        ("symfony/*", "https://list.example.org/packages/list.json?vendor=symfony"),
        ("symfony/polyfill-*", "https://list.example.org/packages/list.json?filter=symfony%2Fpolyfill-%2A"),
        ("*/log", "https://list.example.org/packages/list.json?filter=%2A%2Flog"),
        ("sym*/*", "https://list.example.org/packages/list.json?filter=sym%2A%2F%2A"),
        ("psr/lo?", "https://list.example.org/packages/list.json?filter=psr%2Flo%3F"),
    ],
)
def test_list_url_narrows_the_package_list_server_side(pattern: str, expected: str) -> None:
    assert list_url(WITH_LIST, UPSTREAM, pattern) == expected


@pytest.mark.parametrize("upstream", ["https://repo.example.org", "https://repo.example.org/"])
def test_without_a_list_endpoint_the_upstreams_packages_list_is_used(upstream: str) -> None:
    assert list_url(None, upstream, "*") == "https://repo.example.org/packages/list.json"
    bare = Endpoints(metadata_url=f"{UPSTREAM}/p2/%package%.json")
    assert list_url(bare, upstream, "psr/*") == "https://repo.example.org/packages/list.json?vendor=psr"


def test_a_list_url_that_already_has_a_query_gets_the_filter_appended() -> None:
    endpoints = Endpoints(f"{UPSTREAM}/p2/%package%.json", list_url="https://repo.example.org/list.json?type=library")
    assert list_url(endpoints, UPSTREAM, "psr/*") == "https://repo.example.org/list.json?type=library&vendor=psr"


class Lister:
    """An upstream client answering one list request with a hostile document."""

    def __init__(self, document: object) -> None:
        self.document = document
        self.asked: list[str] = []

    def get_json(self, url: str) -> object:
        self.asked.append(url)
        return self.document


@pytest.mark.parametrize(
    ("document", "names"),
    [
        ({"packageNames": ["psr/log", 7, None, {"x": 1}, "psr/cache"]}, ["psr/log", "psr/cache"]),
        ({"packageNames": "psr/log"}, []),
        (["psr/log"], []),
        (None, []),
    ],
)
def test_list_names_keeps_only_strings_of_whatever_the_list_answers(document: object, names: list[str]) -> None:
    client = Lister(document)
    assert list_names(client, WITH_LIST, UPSTREAM, "psr/*") == names  # type: ignore[arg-type]
    assert client.asked == ["https://list.example.org/packages/list.json?vendor=psr"]
