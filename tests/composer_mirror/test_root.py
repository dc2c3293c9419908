"""Tests for the root, packages.json: how it is built, and how its readers parse it (moto S3)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from composer_mirror.composer_format import resolve_url
from composer_mirror.errors import MirrorError
from composer_mirror.root import (
    StoredRoot,
    UnreadableRoot,
    announces_advisories,
    build_root,
    metadata_url,
    parse_available,
    parse_root,
    read_available,
)
from composer_mirror.store import S3Store
from composer_mirror.store.layout import ROOT

REPO = "https://mirror.example/repo"

UPSTREAM_ROOT_KEYS = (
    "notify-batch",
    "search",
    "list",
    "providers-api",
    "providers-url",
    "provider-includes",
    "includes",
    "metadata-changes-url",
    "filter",
    "warning",
    "mirrors",
)


# --- build_root ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("repository_url", "expected"),
    [
        ("http://127.0.0.1:5000/mirror/repo", "/mirror/repo/p2/%package%.json"),
        ("http://127.0.0.1:5000/mirror/repo/", "/mirror/repo/p2/%package%.json"),
        ("https://composer-mirror.example.com", "/p2/%package%.json"),
        ("https://composer-mirror.example.com/", "/p2/%package%.json"),
        ("https://d1234.cloudfront.net/composer", "/composer/p2/%package%.json"),
    ],
)
def test_the_root_metadata_url_is_path_absolute_and_resolves_under_the_repository(
    repository_url: str, expected: str
) -> None:
    assert metadata_url(repository_url) == expected
    root = json.loads(build_root(repository_url, ["psr/log"]))
    assert root["metadata-url"] == expected
    assert resolve_url(repository_url, root["metadata-url"]) == repository_url.rstrip("/") + "/p2/%package%.json"


def test_the_root_lists_available_packages_sorted_and_unique() -> None:
    root = json.loads(build_root(REPO, ["twig/twig", "psr/log", "twig/twig", "acme/tool"]))
    assert root["available-packages"] == ["acme/tool", "psr/log", "twig/twig"]
    assert root["packages"] == []


@pytest.mark.parametrize(("advisories", "expected"), [(False, None), (True, {"metadata": True})])
def test_the_root_announces_advisories_in_the_metadata_only_when_asked(advisories: bool, expected: Any) -> None:
    root = json.loads(build_root(REPO, ["psr/log"], advisories=advisories))
    assert root.get("security-advisories") == expected


@pytest.mark.parametrize("advisories", [False, True])
def test_the_root_has_no_key_that_points_back_upstream(advisories: bool) -> None:
    root = json.loads(build_root(REPO, ["psr/log"], advisories=advisories))
    assert set(root) <= {"packages", "metadata-url", "available-packages", "security-advisories"}
    assert not set(UPSTREAM_ROOT_KEYS) & set(root)
    assert "api-url" not in root.get("security-advisories", {})


def test_the_root_is_deterministic_bytes() -> None:
    assert build_root(REPO, ["b/b", "a/a"], True) == build_root(REPO, ["a/a", "b/b"], True)


# --- parse_root ---------------------------------------------------------------------------------
def test_a_built_root_parses_back_to_what_it_was_built_from() -> None:
    root = parse_root(build_root(REPO, ["twig/twig", "psr/log"], advisories=True))
    assert root == StoredRoot(True, metadata_url(REPO), ["psr/log", "twig/twig"], advisories=True)
    assert root.available() == ["psr/log", "twig/twig"]


def test_a_root_that_is_not_json_is_unreadable_and_says_why_without_its_key() -> None:
    with pytest.raises(UnreadableRoot) as raised:
        parse_root(b"{broken")
    assert raised.value.reason.startswith("is not valid JSON: ")
    assert str(raised.value) == f"{ROOT} {raised.value.reason}"


@pytest.mark.parametrize(
    "body",
    [b"[]", b'"packages"', b'{"available-packages": "psr/log"}', b'{"available-packages": ["psr/log", 1]}', b"{}"],
)
def test_a_writer_finds_no_list_in_a_root_without_a_list_of_names(body: bytes) -> None:
    with pytest.raises(MirrorError, match=f"^{ROOT} has no list of available-packages$"):
        parse_available(body)


def test_json_that_is_not_an_object_holds_none_of_the_roots_keys() -> None:
    assert parse_root(b"[1, 2]") == StoredRoot(is_object=False)


def test_package_names_keeps_valid_names_once_each_and_returns_the_rest() -> None:
    root = parse_root(b'{"available-packages": ["twig/twig", "psr/log", "twig/twig", "Not/Valid", 7, "../x"]}')
    assert root.package_names() == (["psr/log", "twig/twig"], ["Not/Valid", 7, "../x"])


@pytest.mark.parametrize(
    ("body", "announced"),
    [
        (None, False),
        (b"{broken", False),
        (b"[]", False),
        (b'{"security-advisories": {"metadata": false}}', False),
        (b'{"security-advisories": {"metadata": true}}', True),
    ],
)
def test_announces_advisories_only_for_a_root_that_says_so(body: bytes | None, announced: bool) -> None:
    assert announces_advisories(body) is announced


# --- read_available -----------------------------------------------------------------------------
def test_read_available_of_an_empty_bucket_is_nothing(store: S3Store) -> None:
    assert read_available(store) == ([], None)


def test_read_available_refuses_an_unusable_root(store: S3Store) -> None:
    store.put(ROOT, b'{"available-packages": "psr/log"}')
    with pytest.raises(MirrorError, match="no list of available-packages"):
        read_available(store)
