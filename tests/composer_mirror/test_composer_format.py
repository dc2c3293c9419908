"""Tests for the Composer 2 repository format: minified p2 files, names, paths and URLs."""

from __future__ import annotations

import copy
import json
import random
from typing import Any

import pytest

from composer_mirror.composer_format import (
    UNSET,
    dump_p2,
    expand,
    is_dev_version,
    is_platform_package,
    is_valid_package_name,
    minify,
    origin_of,
    parse_p2,
    resolve_url,
    split_dev,
    validate_package_name,
)
from composer_mirror.errors import InvalidPackageName, MirrorError
from composer_mirror.store.layout import p2_path


def strict(value: Any) -> str:
    """A canonical JSON text: unlike ``==`` it tells 1, 1.0 and true apart, as PHP's ``===`` does."""
    return json.dumps(value, sort_keys=True)


# --- a hand-written example, minified by hand with composer/metadata-minifier's rules ------------
DIST = {"type": "zip", "url": "https://codeload.github.com/acme/tool/legacy.zip/"}
VERSIONS = [
    {
        "name": "acme/tool",
        "version": "3.0.0",
        "license": ["MIT"],
        "require": {"php": ">=8.1"},
        "dist": {**DIST, "reference": "c3"},
        "extra": {"branch-alias": {"dev-main": "3.x-dev"}},
    },
    {
        # "extra" disappears
        "name": "acme/tool",
        "version": "2.0.0",
        "license": ["MIT"],
        "require": {"php": ">=8.1"},
        "dist": {**DIST, "reference": "c2"},
    },
    {
        # "extra" reappears with the value it had two entries ago, "require" changes
        "name": "acme/tool",
        "version": "1.0.0",
        "license": ["MIT"],
        "require": {"php": ">=7.4"},
        "dist": {**DIST, "reference": "c1"},
        "extra": {"branch-alias": {"dev-main": "3.x-dev"}},
    },
    {
        # a key is added; nested values are compared whole
        "name": "acme/tool",
        "version": "0.9.0",
        "license": ["MIT"],
        "require": {"php": ">=7.4"},
        "dist": {**DIST, "reference": "c0"},
        "extra": {"branch-alias": {"dev-main": "3.x-dev"}},
        "abandoned": True,
    },
]
MINIFIED = [
    VERSIONS[0],
    {"version": "2.0.0", "dist": {**DIST, "reference": "c2"}, "extra": UNSET},
    {
        "version": "1.0.0",
        "require": {"php": ">=7.4"},
        "dist": {**DIST, "reference": "c1"},
        "extra": {"branch-alias": {"dev-main": "3.x-dev"}},
    },
    {"version": "0.9.0", "dist": {**DIST, "reference": "c0"}, "abandoned": True},
]


def test_minify_matches_the_metadata_minifier_on_a_hand_written_example() -> None:
    assert strict(minify(VERSIONS)) == strict(MINIFIED)


def test_expand_undoes_the_hand_written_example() -> None:
    assert strict(expand(MINIFIED)) == strict(VERSIONS)


def test_minify_does_not_modify_its_input() -> None:
    before = copy.deepcopy(VERSIONS)
    minify(VERSIONS)
    assert strict(VERSIONS) == strict(before)


@pytest.mark.parametrize(
    ("old", "new"),
    [
        pytest.param(1, True, id="int-to-true"),
        pytest.param(0, False, id="int-to-false"),
        pytest.param(1, 1.0, id="int-to-float"),
        pytest.param({"a": 1}, {"a": True}, id="nested-int-to-true"),
        pytest.param([0], [False], id="list-int-to-false"),
    ],
)
def test_minify_keeps_a_change_of_json_type_that_python_equality_hides(old: Any, new: Any) -> None:
    versions = [{"version": "2.0.0", "extra": old}, {"version": "1.0.0", "extra": new}]
    assert strict(expand(minify(versions))) == strict(versions)


def test_expanded_entries_are_deep_copies() -> None:
    minified = copy.deepcopy(MINIFIED)
    expanded = expand(minified)
    expanded[1]["license"].append("GPL-2.0-only")
    expanded[1]["require"]["php"] = ">=5.3"
    expanded[0]["dist"]["url"] = "https://evil.example/"
    assert expanded[0]["license"] == ["MIT"]
    assert expanded[2]["license"] == ["MIT"]
    assert expanded[0]["require"] == {"php": ">=8.1"}
    assert expanded[2]["extra"] is not expanded[0]["extra"]
    assert strict(minified) == strict(MINIFIED)


def test_parsed_versions_are_deep_copies_of_each_other() -> None:
    raw = json.dumps({"minified": "composer/2.0", "packages": {"acme/tool": MINIFIED}})
    versions = parse_p2(raw, "acme/tool")
    versions[3]["require"]["php"] = "*"
    assert [v["require"]["php"] for v in versions] == [">=8.1", ">=8.1", ">=7.4", "*"]


# --- seeded random round trips (hypothesis is not available) -------------------------------------
KEYS = ["description", "require", "require-dev", "dist", "source", "extra", "license", "abandoned", "time", "bin"]


def random_value(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.choice(["int", "bool", "float", "null", "str", "list", "dict"] if depth < 3 else ["int", "bool", "str"])
    if kind == "int":
        return rng.choice([0, 1, 2, -1, 10**12])
    if kind == "bool":
        return rng.choice([True, False])
    if kind == "float":
        return rng.choice([0.0, 1.0, 2.5])
    if kind == "null":
        return None
    if kind == "str":
        return rng.choice(["", "a", "b", "MIT", "é", ">=8.1", "__unset_not"])
    if kind == "list":
        return [random_value(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    return {rng.choice("abcd"): random_value(rng, depth + 1) for _ in range(rng.randint(0, 3))}


def random_versions(rng: random.Random, count: int) -> list[dict[str, Any]]:
    current: dict[str, Any] = {key: random_value(rng) for key in rng.sample(KEYS, rng.randint(0, len(KEYS)))}
    versions = []
    for index in range(count):
        current = copy.deepcopy(current)
        for _ in range(rng.randint(0, 4)):
            operation, key = rng.choice(["add", "remove", "change", "keep"]), rng.choice(KEYS)
            if operation == "remove":
                current.pop(key, None)
            elif operation == "change" and key in current and isinstance(current[key], dict):
                current[key][rng.choice("abcd")] = random_value(rng, 1)  # a nested edit
            elif operation != "keep":
                current[key] = random_value(rng)
        current["name"] = "acme/tool"
        current["version"] = f"{count - index}.0.0"
        versions.append(current)
    return versions


@pytest.mark.parametrize("seed", range(40))
def test_expand_of_minify_returns_the_versions_for_random_lists(seed: int) -> None:
    versions = random_versions(random.Random(seed), count=random.Random(seed).randint(1, 30))
    assert strict(expand(minify(versions))) == strict(versions)


@pytest.mark.parametrize("seed", range(40))
def test_minify_writes_exactly_the_changed_and_removed_keys_for_random_lists(seed: int) -> None:
    versions = random_versions(random.Random(seed), count=25)
    minified = minify(versions)
    assert strict(minified[0]) == strict(versions[0])
    for previous, current, diff in zip(versions[:-1], versions[1:], minified[1:], strict=True):
        changed = {k for k in current if k not in previous or strict(previous[k]) != strict(current[k])}
        removed = set(previous) - set(current)
        assert set(diff) == changed | removed
        assert all(diff[k] == UNSET for k in removed)
        assert all(strict(diff[k]) == strict(current[k]) for k in changed)


@pytest.mark.parametrize("seed", range(10))
def test_a_random_list_survives_dump_and_parse(seed: int) -> None:
    versions = random_versions(random.Random(seed), count=20)
    assert strict(parse_p2(dump_p2("acme/tool", versions), "acme/tool")) == strict(versions)


# --- parse_p2 -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("raw", "message"),
    [
        pytest.param(b"{not json", "not valid JSON", id="invalid-json"),
        pytest.param(b"", "not valid JSON", id="empty"),
        pytest.param(b'["acme/tool"]', "no 'packages' object", id="top-level-list"),
        pytest.param(b'{"minified": "composer/2.0"}', "no 'packages' object", id="missing-packages"),
        pytest.param(b'{"packages": []}', "no 'packages' object", id="packages-is-a-list"),
        pytest.param(b'{"packages": {"evil/other": []}}', "holds evil/other instead", id="another-package"),
        pytest.param(b'{"packages": {}}', "holds nothing instead", id="no-package"),
        pytest.param(b'{"packages": {"acme/tool": {"1.0.0": {}}}}', "list of versions", id="versions-not-a-list"),
        pytest.param(b'{"packages": {"acme/tool": ["1.0.0"]}}', "list of versions", id="version-not-an-object"),
        pytest.param(b'{"packages": {"acme/tool": [{"name": "acme/tool"}]}}', "without a version", id="no-version"),
        pytest.param(b'{"packages": {"acme/tool": [{"version": ""}]}}', "without a version", id="empty-version"),
        pytest.param(b'{"packages": {"acme/tool": [{"version": 1}]}}', "without a version", id="numeric-version"),
        pytest.param(
            b'{"minified": "composer/2.0", "packages": {"acme/tool": [{"version": "2"}, {"version": "__unset"}]}}',
            "without a version",
            id="version-unset-by-minification",
        ),
    ],
)
def test_parse_p2_rejects_a_bad_file(raw: bytes, message: str) -> None:
    with pytest.raises(MirrorError, match=message):
        parse_p2(raw, "acme/tool")


def test_parse_p2_reads_only_the_requested_package() -> None:
    raw = json.dumps({"packages": {"acme/tool": [{"version": "1.0.0"}], "evil/other": [{"version": "6.6.6"}]}})
    assert parse_p2(raw, "acme/tool") == [{"version": "1.0.0"}]


def test_parse_p2_accepts_a_file_that_is_not_minified() -> None:
    raw = json.dumps({"packages": {"acme/tool": VERSIONS}})
    assert strict(parse_p2(raw, "acme/tool")) == strict(VERSIONS)


def test_parse_p2_does_not_expand_a_file_that_is_not_minified() -> None:
    entries = [{"version": "2.0.0", "license": ["MIT"]}, {"version": "1.0.0"}]
    raw = json.dumps({"packages": {"acme/tool": entries}})
    assert parse_p2(raw, "acme/tool") == entries


def test_parse_p2_expands_a_minified_file() -> None:
    raw = json.dumps({"minified": "composer/2.0", "packages": {"acme/tool": MINIFIED}}).encode()
    assert strict(parse_p2(raw, "acme/tool")) == strict(VERSIONS)


def test_parse_p2_accepts_an_empty_version_list() -> None:
    assert parse_p2(b'{"minified": "composer/2.0", "packages": {"acme/tool": []}}', "acme/tool") == []


# --- dump_p2 ------------------------------------------------------------------------------
def test_dump_p2_is_deterministic_byte_for_byte() -> None:
    reordered = [dict(reversed(list(v.items()))) for v in copy.deepcopy(VERSIONS)]
    assert dump_p2("acme/tool", VERSIONS) == dump_p2("acme/tool", VERSIONS) == dump_p2("acme/tool", reordered)


def test_dump_p2_writes_compact_sorted_minified_utf8() -> None:
    body = dump_p2("acme/tool", [{"version": "1.0.0", "description": "café", "authors": []}])
    assert (
        body
        == (
            '{"minified":"composer/2.0","packages":{"acme/tool":'
            '[{"authors":[],"description":"café","version":"1.0.0"}]}}'
        ).encode()
    )


def test_dump_p2_writes_the_minified_form() -> None:
    document = json.loads(dump_p2("acme/tool", VERSIONS))
    assert document["minified"] == "composer/2.0"
    assert strict(document["packages"]["acme/tool"]) == strict(MINIFIED)


# --- dev versions -------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("version", "dev"),
    [
        ("dev-main", True),
        ("dev-master", True),
        ("dev-feature/login", True),
        ("2.x-dev", True),
        ("1.0.x-dev", True),
        ("3.4-dev", True),
        ("1.0.0", False),
        ("v1.2.3", False),
        ("1.0.0-RC1", False),
        ("1.0.0-rc.2", False),
        ("2.0.0-beta3", False),
        ("1.0.0-alpha", False),
        ("1.0.0-p1", False),
        ("devel-1.0", False),
    ],
)
def test_is_dev_version(version: str, dev: bool) -> None:
    assert is_dev_version(version) is dev


def test_split_dev_puts_branches_in_the_dev_list_and_keeps_order() -> None:
    versions = [{"version": v} for v in ["dev-main", "2.0.0", "2.x-dev", "2.0.0-RC1", "1.0.0", "dev-1.x"]]
    tagged, dev = split_dev(versions)
    assert [v["version"] for v in tagged] == ["2.0.0", "2.0.0-RC1", "1.0.0"]
    assert [v["version"] for v in dev] == ["dev-main", "2.x-dev", "dev-1.x"]


def test_split_dev_returns_new_dicts() -> None:
    versions = [{"version": "1.0.0"}, {"version": "dev-main"}]
    tagged, dev = split_dev(versions)
    tagged[0]["version"] = "9.9.9"
    dev[0]["extra"] = {}
    assert versions == [{"version": "1.0.0"}, {"version": "dev-main"}]


# --- names and paths ----------------------------------------------------------------------
VALID_NAMES = [
    "psr/log",
    "a/b",
    "0/0",
    "monolog/monolog",
    "symfony/polyfill-php80",
    "vendor.name/package_name",
    "acme-corp/tool",
    "acme/tool--extra",  # a double dash is allowed in the package part
    "acme/tool.v2",
    "a" * 127 + "/" + "b" * 127,  # 255 characters
]
INVALID_NAMES = [
    "",
    "psr",
    "psr/",
    "/log",
    "Psr/Log",
    "psr/Log",
    "PSR/log",
    "psr/log/extra",
    "psr//log",
    "psr\\log",
    "psr/../log",
    "../psr/log",
    "psr/..",
    "../../etc/passwd",
    "psr/.log",
    "psr/log.",
    "psr/log-",
    "psr/log_",
    "-psr/log",
    "psr/-log",
    "_psr/log",
    "acme--corp/tool",  # but not in the vendor part
    "acme/tool---extra",
    "acme/tool__extra",
    "acme/tool-_extra",
    "psr/lög",
    "psr/\uff4cog",  # fullwidth l
    "psr/log ",
    " psr/log",
    "psr/log\n",
    "psr/log\x00",
    "psr/log~dev",
    "a" * 128 + "/" + "b" * 127,  # 256 characters
    "a" * 1000 + "/" + "b",
]


@pytest.mark.parametrize("name", VALID_NAMES)
def test_a_valid_package_name_is_accepted(name: str) -> None:
    assert is_valid_package_name(name)
    assert validate_package_name(name) == name


@pytest.mark.parametrize("name", INVALID_NAMES)
def test_an_invalid_package_name_is_refused(name: str) -> None:
    assert not is_valid_package_name(name)
    with pytest.raises(InvalidPackageName, match="invalid Composer package name"):
        validate_package_name(name)


@pytest.mark.parametrize("value", [None, 42, b"psr/log", ["psr/log"]])
def test_a_package_name_that_is_not_a_string_is_refused(value: Any) -> None:
    assert not is_valid_package_name(value)


@pytest.mark.parametrize(
    ("name", "platform"),
    [
        ("php", True),
        ("PHP", True),
        ("php-64bit", True),
        ("php-ipv6", True),
        ("php-zts", True),
        ("php-debug", True),
        ("hhvm", True),
        ("ext-json", True),
        ("ext-pdo_mysql", True),
        ("lib-icu", True),
        ("lib-libxml", True),
        ("composer", True),
        ("composer-plugin-api", True),
        ("composer-runtime-api", True),
        ("psr/log", False),
        ("php/php", False),
        ("phpunit/phpunit", False),
        ("composer/composer", False),
        ("php-http/client", False),
        ("phpx", False),
        ("php-32bit", False),
        ("ext-", False),
        ("php\n", False),
    ],
)
def test_is_platform_package(name: str, platform: bool) -> None:
    assert is_platform_package(name) is platform


@pytest.mark.parametrize(
    ("name", "dev", "path"),
    [
        ("psr/log", False, "p2/psr/log.json"),
        ("psr/log", True, "p2/psr/log~dev.json"),
        ("symfony/polyfill-php80", False, "p2/symfony/polyfill-php80.json"),
    ],
)
def test_p2_path(name: str, dev: bool, path: str) -> None:
    assert p2_path(name, dev) == path


@pytest.mark.parametrize("name", ["../etc/passwd", "psr/../../x", "Psr/Log", "psr/log\n", "/psr/log", "psr\\log", ""])
def test_p2_path_refuses_a_bad_name(name: str) -> None:
    with pytest.raises(InvalidPackageName):
        p2_path(name)


# --- URLs ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("base", "value", "resolved"),
    [
        pytest.param(
            "https://mirror.example/bucket/prefix",
            "https://repo.packagist.org/p2/%package%.json",
            "https://repo.packagist.org/p2/%package%.json",
            id="absolute-stays",
        ),
        pytest.param(
            "https://mirror.example/bucket/prefix",
            "http://other.example/x.json",
            "http://other.example/x.json",
            id="absolute-other-scheme-stays",
        ),
        pytest.param(
            "https://mirror.example/bucket/prefix/",
            "/p2/%package%.json",
            "https://mirror.example/p2/%package%.json",
            id="root-relative-joins-host-not-path",
        ),
        pytest.param(
            "http://127.0.0.1:9000/bucket/prefix",
            "/bucket/prefix/p2/%package%.json",
            "http://127.0.0.1:9000/bucket/prefix/p2/%package%.json",
            id="root-relative-keeps-port",
        ),
        pytest.param(
            "https://mirror.example/bucket",
            "/downloads/list.json?filter=a",
            "https://mirror.example/downloads/list.json?filter=a",
            id="root-relative-keeps-query",
        ),
        pytest.param(
            "https://mirror.example/repo",
            "//evil.example/p2/%package%.json",
            "https://mirror.example//evil.example/p2/%package%.json",
            id="double-slash-stays-on-the-repository-host",
        ),
        pytest.param(
            "https://mirror.example/bucket/prefix",
            "p2/%package%.json",
            "https://mirror.example/bucket/prefix/p2/%package%.json",
            id="relative-to-repository-without-slash",
        ),
        pytest.param(
            "https://mirror.example/bucket/prefix/",
            "p2/%package%.json",
            "https://mirror.example/bucket/prefix/p2/%package%.json",
            id="relative-to-repository-with-slash",
        ),
    ],
)
def test_resolve_url(base: str, value: str, resolved: str) -> None:
    assert resolve_url(base, value) == resolved


@pytest.mark.parametrize(
    ("url", "origin"),
    [
        ("https://repo.packagist.org/p2/x.json", ("https", "repo.packagist.org", 443)),
        ("http://repo.example", ("http", "repo.example", 80)),
        ("HTTPS://Repo.Example:8443/", ("https", "repo.example", 8443)),
        ("http://repo.example:443/", ("http", "repo.example", 443)),
        ("https://user:secret@repo.example/", ("https", "repo.example", 443)),
        ("http://127.0.0.1:9000/bucket", ("http", "127.0.0.1", 9000)),
    ],
)
def test_origin_of_fills_in_the_default_port(url: str, origin: tuple[str, str, int]) -> None:
    assert origin_of(url) == origin
