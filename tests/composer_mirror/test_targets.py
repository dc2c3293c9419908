"""Tests for targets: selection entries, list URLs, pattern expansion and version selectors."""

from __future__ import annotations

from typing import Any

import pytest

from composer_mirror import versions
from composer_mirror.errors import TargetError
from composer_mirror.targets import (
    ALL_STABLE,
    Selection,
    SelectionEntry,
    add_selector,
    expand_patterns,
    is_pin,
    normalized_of,
    parse_selection,
    select_versions,
    selector_allows,
    wants_dev,
)

UPSTREAM = "https://repo.example.org"


# --- parse_selection ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("item", "expected"),
    [
        ("psr/log", SelectionEntry("psr/log", ALL_STABLE)),
        ("  psr/log  ", SelectionEntry("psr/log", ALL_STABLE)),
        ("PSR/Log", SelectionEntry("psr/log", ALL_STABLE)),
        ("symfony/*", SelectionEntry("symfony/*", ALL_STABLE)),
        ("symfony/polyfill-*", SelectionEntry("symfony/polyfill-*", ALL_STABLE)),
        ("*", SelectionEntry("*", ALL_STABLE)),
        ("psr/lo?", SelectionEntry("psr/lo?", ALL_STABLE)),
        ("monolog/monolog:^3.0", SelectionEntry("monolog/monolog", "^3.0")),
        ("monolog/monolog : ^3.0 ", SelectionEntry("monolog/monolog", "^3.0")),
        ("monolog/monolog:", SelectionEntry("monolog/monolog", ALL_STABLE)),
        ("symfony/*:^6.4 || ^7.0", SelectionEntry("symfony/*", "^6.4 || ^7.0")),
        ("acme/tool:^1.0@beta", SelectionEntry("acme/tool", "^1.0@beta")),
        ("pkg:composer/psr/log", SelectionEntry("psr/log", ALL_STABLE)),
        ("pkg:composer/psr/log@3.0.2", SelectionEntry("psr/log", "3.0.2")),
        ("pkg:composer/twig/twig@v3.27.1", SelectionEntry("twig/twig", "v3.27.1")),
        ("pkg:composer/Psr/Log@1.0.0", SelectionEntry("psr/log", "1.0.0")),
        ("pkg:composer/acme/tool@dev-main", SelectionEntry("acme/tool", "dev-main")),
    ],
)
def test_a_selection_entry_becomes_a_name_or_pattern_with_its_selector(item: str, expected: SelectionEntry) -> None:
    selection = parse_selection([item])
    assert selection.entries == [expected]
    assert selection.skipped == {}


@pytest.mark.parametrize(
    ("pattern", "is_pattern"),
    [("psr/log", False), ("symfony/*", True), ("*", True), ("psr/lo?", True)],
)
def test_an_entry_is_a_pattern_only_when_it_has_a_glob_character(pattern: str, is_pattern: bool) -> None:
    assert SelectionEntry(pattern).is_pattern is is_pattern


def test_non_composer_and_platform_purls_are_skipped_and_counted_not_refused() -> None:
    selection = parse_selection(
        [
            "pkg:npm/left-pad@1.3.0",
            "pkg:pypi/requests@2.0",
            "pkg:npm/lodash",
            "pkg:composer/php@8.2",
            "pkg:composer/ext-json",
            "psr/log",
        ]
    )
    assert selection.entries == [SelectionEntry("psr/log")]
    assert selection.skipped == {"not composer (npm)": 2, "not composer (pypi)": 1, "platform package": 2}


def test_entries_keep_their_input_order() -> None:
    selection = parse_selection(["b/b", "a/*", "pkg:composer/c/c@1.0.0"])
    assert [entry.pattern for entry in selection.entries] == ["b/b", "a/*", "c/c"]


@pytest.mark.parametrize(
    "item",
    [
        "not-a-name",
        "psr",
        "psr/log/extra",
        "Vendor Name/x",
        "../etc/passwd",
        "psr/log:^^^",
        "psr/log:not a constraint",
        "sym fony/*",
        "symfony/[a-z]*",
        "",
    ],
)
def test_an_invalid_entry_raises_a_target_error_that_names_the_entry(item: str) -> None:
    with pytest.raises(TargetError) as raised:
        parse_selection(["psr/log", item])
    assert "selection entry 2" in str(raised.value)
    assert repr(item) in str(raised.value)


def test_an_invalid_purl_raises_a_target_error_naming_its_position() -> None:
    with pytest.raises(TargetError, match="selection entry 1"):
        parse_selection(["pkg:composer/not a valid purl@@"])


def test_a_purl_with_an_unparseable_version_is_refused_like_a_bad_constraint() -> None:
    with pytest.raises(TargetError, match="selection entry 1"):
        parse_selection(["pkg:composer/psr/log@not a version"])


# --- expand_patterns ----------------------------------------------------------------------------
class FakeList:
    """A list function that records the patterns it was asked for."""

    def __init__(self, names: list[str]) -> None:
        self.names = names
        self.asked: list[str] = []

    def __call__(self, pattern: str) -> list[str]:
        self.asked.append(pattern)
        return list(self.names)


def test_exact_names_are_taken_as_they_are_without_listing_the_upstream() -> None:
    lister = FakeList(["other/package"])
    targets = expand_patterns(parse_selection(["psr/log", "monolog/monolog:^3.0"]), lister)
    assert targets == {"psr/log": ["*"], "monolog/monolog": ["^3.0"]}
    assert lister.asked == []


def test_a_pattern_keeps_only_valid_upstream_names_that_really_match_it() -> None:
    lister = FakeList(["symfony/console", "symfony/yaml", "Symfony/Upper", "symfony/bad name", "other/thing", "x"])
    targets = expand_patterns(parse_selection(["symfony/*:^7.0"]), lister)
    assert targets == {"symfony/console": ["^7.0"], "symfony/yaml": ["^7.0"]}
    assert lister.asked == ["symfony/*"]


def test_selectors_of_overlapping_entries_accumulate_sorted_and_unique() -> None:
    lister = FakeList(["symfony/console", "symfony/yaml"])
    selection = parse_selection(["symfony/*", "symfony/console:^6.4", "symfony/console:^6.4", "symfony/console"])
    targets = expand_patterns(selection, lister)
    assert targets == {"symfony/console": ["*", "^6.4"], "symfony/yaml": ["*"]}


def test_an_empty_selection_expands_to_no_targets() -> None:
    assert expand_patterns(Selection(), FakeList(["a/b"])) == {}


def test_add_selector_keeps_the_list_sorted_and_free_of_duplicates() -> None:
    targets: dict[str, list[str]] = {}
    for selector in ("^2.0", "*", "^2.0", "1.0.0"):
        add_selector(targets, "a/b", selector)
    assert targets == {"a/b": ["*", "1.0.0", "^2.0"]}


# --- selector_allows ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("selector", "version", "allowed"),
    [
        # every stable version, nothing less stable
        ("*", "1.0.0", True),
        ("*", "v2.3.4", True),
        ("*", "1.0.0-beta1", False),
        ("*", "1.0.0-RC1", False),
        ("*", "1.0.0-alpha2", False),
        ("*", "dev-main", False),
        ("*", "1.x-dev", False),
        ("^1.0", "1.1.0-RC1", False),
        ("^2.0", "1.9.0", False),
        ("^2.0", "2.0.0", True),
        # stability flags admit that stability and more stable ones
        ("^1.0@beta", "1.1.0-beta2", True),
        ("^1.0@beta", "1.1.0-RC1", True),
        ("^1.0@beta", "1.1.0-alpha1", False),
        ("^1.0@beta", "1.1.0", True),
        ("^1.0@RC", "1.1.0-RC1", True),
        ("^1.0@rc", "1.1.0-RC1", True),
        ("^1.0@RC", "1.1.0-beta1", False),
        ("^1.0@alpha", "1.1.0-alpha1", True),
        ("^1.0@stable", "1.1.0-beta1", False),
        ("*@dev", "dev-main", True),
        ("^1.0@dev", "1.1.x-dev", True),
        (">=1.0@dev", "2.0.0-beta1", True),
        ("^1.0@dev", "2.0.0-beta1", False),
        # exact pins admit exactly that version, whatever its stability
        ("1.0.0-RC1", "1.0.0-RC1", True),
        ("1.0.0-RC1", "1.0.0-RC2", False),
        ("1.0.0-RC1", "1.0.0", False),
        ("=1.0.0-beta1", "1.0.0-beta1", True),
        ("dev-main", "dev-main", True),
        ("dev-main", "dev-feature", False),
        ("1.x-dev", "1.x-dev", True),
        ("3.0.2", "3.0.2", True),
        ("3.0.2", "3.0.1", False),
        # a v prefix does not matter on either side
        ("v1.2.3", "1.2.3", True),
        ("1.2.3", "v1.2.3", True),
        ("v1.0.0-RC1", "1.0.0-RC1", True),
        # garbage selects nothing instead of raising
        ("not a constraint", "1.0.0", False),
    ],
)
def test_selector_allows_stable_versions_by_default_and_less_stable_ones_only_when_asked(
    selector: str, version: str, allowed: bool
) -> None:
    assert selector_allows(selector, version, versions.normalize(version)) is allowed


# --- wants_dev, is_pin ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("selectors", "expected"),
    [
        (["*"], False),
        (["^1.0"], False),
        (["^1.0@beta", "3.0.2"], False),
        ([], False),
        (["dev-main"], True),
        (["1.x-dev"], True),
        (["^1.0@dev"], True),
        (["*@dev"], True),
        (["*", "dev-main"], True),
    ],
)
def test_wants_dev_is_true_only_when_a_selector_can_choose_a_branch(selectors: list[str], expected: bool) -> None:
    assert wants_dev(selectors) is expected


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("3.0.2", True),
        ("v3.0.2", True),
        ("=3.0.2", True),
        ("1.0.0-RC1", True),
        ("dev-main", True),
        ("1.x-dev", True),
        ("*", False),
        ("^3.0", False),
        ("~1.0", False),
        (">=1.0", False),
        ("1.0.*", False),
        ("1.0 || 2.0", False),
        ("not a version", False),
    ],
)
def test_is_pin_is_true_for_exact_versions_and_false_for_ranges(selector: str, expected: bool) -> None:
    assert is_pin(selector) is expected


# --- normalized_of, select_versions -----------------------------------------------------------------
BRANCH_2X = "2.9999999.9999999.9999999-dev"


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ({"version": "1.2.3", "version_normalized": "1.2.3.0"}, "1.2.3.0"),
        ({"version": "1.2.3", "version_normalized": "1.2.3"}, "1.2.3.0"),  # a sloppy upstream value
        (
            {"version": "2.x-dev", "version_normalized": "2.9999999.9999999.9999999-dev"},
            "2.9999999.9999999.9999999-dev",
        ),
        ({"version": "not a version!!", "version_normalized": "9.9.9.9"}, "9.9.9.9"),
        ({"version": "v1.2.3"}, "1.2.3.0"),
        ({"version": "1.0.0-RC1"}, "1.0.0.0-RC1"),
        ({"version": "dev-main"}, "dev-main"),
        ({"version": "v2.0", "version_normalized": ""}, "2.0.0.0"),
        ({"version": "v2.0", "version_normalized": None}, "2.0.0.0"),
        ({"version": "not a version!!"}, None),
        ({}, None),
    ],
)
def test_normalized_of_is_composers_normalisation_of_the_version(entry: dict[str, Any], expected: str | None) -> None:
    assert normalized_of(entry) == expected


def entry(version: str, **extra: Any) -> dict[str, Any]:
    return {"name": "acme/tool", "version": version, **extra}


def test_select_versions_returns_the_entries_any_selector_chooses_in_upstream_order() -> None:
    entries = [
        entry("3.0.0"),
        entry("2.1.0", version_normalized="2.1.0.0"),
        entry("2.0.0-RC1"),
        entry("1.5.0"),
        entry("dev-main"),
        entry("garbage!!"),
    ]
    chosen = select_versions(entries, ["^2.0", "1.5.0", "dev-main"])
    assert [e["version"] for e in chosen] == ["2.1.0", "1.5.0", "dev-main"]
    assert [e["version"] for e in select_versions(entries, ["^2.0"])] == ["2.1.0"]
    assert [e["version"] for e in select_versions(entries, ["*"])] == ["3.0.0", "2.1.0", "1.5.0"]


def test_select_versions_with_no_selectors_chooses_nothing() -> None:
    assert select_versions([entry("1.0.0")], []) == []


def test_select_versions_returns_the_entries_themselves() -> None:
    entries = [entry("1.0.0")]
    assert select_versions(entries, ["*"])[0] is entries[0]
