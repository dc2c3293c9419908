"""Hand-picked edge cases of composer_mirror.versions; expected values are what composer/semver 3.x says."""

from __future__ import annotations

import dataclasses

import pytest

from composer_mirror.errors import InvalidVersion
from composer_mirror.versions import (
    cmp_versions,
    compare,
    is_stable,
    normalize,
    normalize_branch,
    parse_constraints,
    parse_stability,
    satisfies,
    sort_versions,
)

# --- normalize -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("version", "expected"),
    [
        ("1.0.0", "1.0.0.0"),
        ("1", "1.0.0.0"),
        ("1.2", "1.2.0.0"),
        ("1.2.3.4", "1.2.3.4"),
        ("00.01.03.04", "00.01.03.04"),
        ("v1.0.0", "1.0.0.0"),
        ("V2.1", "2.1.0.0"),
        (" 1.0.0\n", "1.0.0.0"),
        ("10.4.13-beta", "10.4.13.0-beta"),
        ("10.4.13beta.2", "10.4.13.0-beta2"),
        ("1.0.0-b2", "1.0.0.0-beta2"),
        ("1.0a1", "1.0.0.0-alpha1"),
        ("1.0.0-alpha.3", "1.0.0.0-alpha3"),
        ("1.0.0-rc1", "1.0.0.0-RC1"),
        ("1.0.0RC1dev", "1.0.0.0-RC1-dev"),
        ("1.0.0-rC15-dev", "1.0.0.0-RC15-dev"),
        ("1.0.0.RC.15-dev", "1.0.0.0-RC15-dev"),
        ("1.0.0-patch1", "1.0.0.0-patch1"),
        ("1.0.0-pl3", "1.0.0.0-patch3"),
        ("1.0.0p", "1.0.0.0-patch"),
        ("1.0.0-stable", "1.0.0.0"),
        ("1.0-dev", "1.0.0.0-dev"),
        ("1.0.0+build.5", "1.0.0.0"),
        ("1.0.0-beta.5+foo", "1.0.0.0-beta5"),
        ("20100102", "20100102"),
        ("2010-01-02", "2010.01.02"),
        ("2010-01-02.5", "2010.01.02.5"),
        ("20100102-203040", "20100102.203040"),
        ("2010.01.02", "2010.01.02.0"),
        ("dev-master", "dev-master"),
        ("master", "dev-master"),
        ("trunk", "dev-trunk"),
        ("default", "dev-default"),
        ("dev-feature/foo", "dev-feature/foo"),
        ("DEV-Foo", "dev-Foo"),
        ("1.x-dev", "1.9999999.9999999.9999999-dev"),
        ("2.1.x-dev", "2.1.9999999.9999999-dev"),
        ("v2.1.*-dev", "2.1.9999999.9999999-dev"),
        ("1.0.0 as 2.0.0", "1.0.0.0"),
        ("1.0.0@dev", "1.0.0.0"),
        ("dev-main@dev", "dev-main"),
    ],
)
def test_normalize_turns_any_spelling_into_composers_four_part_form(version, expected):
    assert normalize(version) == expected


@pytest.mark.parametrize(
    "version",
    [
        "",
        "a",
        "main",
        "1.0.0-meh",
        "1.0.0.0.0",
        "1.0.0+foo bar",
        "feature-foo",
        "1.0.1-SNAPSHOT",
        "123456.1.0",
    ],
)
def test_normalize_rejects_what_composer_cannot_parse(version):
    with pytest.raises(InvalidVersion, match="Invalid version string"):
        normalize(version)


@pytest.mark.parametrize(
    ("full_version", "hint"),
    [
        ("foo as 1.0.0", "the alias source must be an exact version"),
        ("1.0.0 as foo", "the alias must be an exact version"),
    ],
)
def test_normalize_explains_bad_aliases_using_the_full_version(full_version, hint):
    with pytest.raises(InvalidVersion, match=hint):
        normalize("foo", full_version)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("v1.x", "1.9999999.9999999.9999999-dev"),
        ("v1.*", "1.9999999.9999999.9999999-dev"),
        ("v1.0", "1.0.9999999.9999999-dev"),
        ("2.0", "2.0.9999999.9999999-dev"),
        ("v1.0.x", "1.0.9999999.9999999-dev"),
        ("v1.0.3.*", "1.0.3.9999999-dev"),
        ("2.4.4", "2.4.4.9999999-dev"),
        ("1.2.3.4", "1.2.3.4-dev"),
        ("master", "dev-master"),
        ("feature-a", "dev-feature-a"),
    ],
)
def test_normalize_branch_pads_numbered_branches_and_prefixes_the_others(name, expected):
    assert normalize_branch(name) == expected


# --- stability -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("version", "expected"),
    [
        ("1", "stable"),
        ("v3.2.1", "stable"),
        ("3.1.2-p1", "stable"),
        ("3.1.2-pl2", "stable"),
        ("3.1.2-patch", "stable"),
        ("3.0-RC2", "RC"),
        ("2.0.0rc1", "RC"),
        ("3.1.2-beta", "beta"),
        ("2.0B1", "beta"),
        ("3.1.2-alpha5", "alpha"),
        ("1.2_a1", "alpha"),
        ("1.0.0-alpha11+cs-1.1.0", "alpha"),
        ("3.1.2-dev", "dev"),
        ("1-2_dev", "dev"),
        ("dev-master", "dev"),
        ("v2.0.x-dev#trunk/@123", "dev"),
        ("dev-feature+issue-1", "dev"),
    ],
)
def test_parse_stability_classifies_like_composer(version, expected):
    assert parse_stability(version) == expected


@pytest.mark.parametrize(
    ("version", "expected"),
    [
        ("1.0.0", True),
        ("1.0.0-patch1", True),
        ("1.0.0-RC1", False),
        ("1.0.0-beta1", False),
        ("dev-main", False),
    ],
)
def test_is_stable_is_true_only_for_releases_without_pre_release_parts(version, expected):
    assert is_stable(version) is expected


# --- constraints: structure ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("constraint", "rendered"),
    [
        ("^1.2.3", "[>= 1.2.3.0-dev < 2.0.0.0-dev]"),
        ("^0.3", "[>= 0.3.0.0-dev < 0.4.0.0-dev]"),
        ("^0.0.3", "[>= 0.0.3.0-dev < 0.0.4.0-dev]"),
        ("^0.0", "[>= 0.0.0.0-dev < 0.1.0.0-dev]"),
        ("~1", "[>= 1.0.0.0-dev < 2.0.0.0-dev]"),
        ("~1.2", "[>= 1.2.0.0-dev < 2.0.0.0-dev]"),
        ("~1.2.3", "[>= 1.2.3.0-dev < 1.3.0.0-dev]"),
        ("~1.2-beta", "[>= 1.2.0.0-beta < 2.0.0.0-dev]"),
        ("1.2.*", "[>= 1.2.0.0-dev < 1.3.0.0-dev]"),
        ("v1.x", "[>= 1.0.0.0-dev < 2.0.0.0-dev]"),
        ("0.*", "< 1.0.0.0-dev"),
        ("*", "*"),
        ("*.*", ">= 0.0.0.0-dev"),
        ("1.0 - 2.0", "[>= 1.0.0.0-dev < 2.1.0.0-dev]"),
        ("1.0 - 2", "[>= 1.0.0.0-dev < 3.0.0.0-dev]"),
        ("1.0.0 - 2.0.0", "[>= 1.0.0.0-dev <= 2.0.0.0]"),
        ("^1.0 || ^2.0", "[>= 1.0.0.0-dev < 3.0.0.0-dev]"),
        (">=1.0 <1.1 || >=1.2", "[[>= 1.0.0.0-dev < 1.1.0.0-dev] || >= 1.2.0.0-dev]"),
        (">=1.0,<2.0", "[>= 1.0.0.0-dev < 2.0.0.0-dev]"),
        ("!=1.5", "!= 1.5.0.0"),
        ("<>1.5", "!= 1.5.0.0"),
        ("=1.0", "== 1.0.0.0"),
        ("dev-main", "== dev-main"),
        ("foo-dev", "== dev-foo"),
        (">=1.0-beta1", ">= 1.0.0.0-beta1"),
        (">=1.0-RC1", ">= 1.0.0.0-RC1-dev"),
        (">1.0@beta", "> 1.0.0.0-beta"),
        (
            "~99999999999999999999",
            "[>= 99999999999999999999.9999999.9999999.9999999-dev < 1.0E+20.0.0.0-dev]",
        ),
    ],
)
def test_parse_constraints_builds_the_same_tree_as_composer(constraint, rendered):
    assert str(parse_constraints(constraint)) == rendered


@pytest.mark.parametrize(
    ("constraint", "flag"),
    [
        ("1.0.0", None),
        ("^1.0@dev", "dev"),
        ("@beta", "beta"),
        (">=1.0@beta || 2.0@RC", "beta"),
        ("1.0@rc", "RC"),
        ("1.0@stable", "stable"),
    ],
)
def test_parse_constraints_exposes_the_least_stable_flag(constraint, flag):
    assert parse_constraints(constraint).stability_flag == flag


def test_parse_constraints_caches_and_returns_an_immutable_result():
    parsed = parse_constraints("^1.0 || ^2.0")
    assert parse_constraints("^1.0 || ^2.0") is parsed
    assert parsed.pretty == "^1.0 || ^2.0"
    with pytest.raises(dataclasses.FrozenInstanceError):
        parsed.stability_flag = "dev"  # type: ignore[misc]


@pytest.mark.parametrize(
    "constraint",
    ["", "foo", "~>1.0", ">=", "=>1.0", "1.0 ||", "^", ">= 1.0 <", "1.0 -", "V1.x", "1.0.0.0.0", "main"],
)
def test_parse_constraints_rejects_what_composer_cannot_parse(constraint):
    with pytest.raises(InvalidVersion):
        parse_constraints(constraint)


def test_matches_takes_an_already_normalised_version():
    parsed = parse_constraints("^1.2")
    assert parsed.matches("1.5.0.0")
    assert not parsed.matches("2.0.0.0")


# --- constraints: satisfies ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("version", "constraint", "expected"),
    [
        # caret: the left-most non-zero part may not change
        ("1.2.3", "^1.2", True),
        ("1.9.9", "^1.2", True),
        ("1.1.9", "^1.2", False),
        ("2.0.0", "^1.2", False),
        ("2.0.0-beta1", "^1.2", False),
        ("1.2.0-beta1", "^1.2", True),
        ("1.2.0-beta1", "^1.2.0-beta2", False),
        ("1.2.0-beta3", "^1.2.0-beta2", True),
        ("0.3.9", "^0.3", True),
        ("0.4.0", "^0.3", False),
        ("0.0.3", "^0.0.3", True),
        ("0.0.4", "^0.0.3", False),
        ("0.9", "^0", True),
        ("1.2.0", "^v1.2", True),
        # tilde: the last given part may grow
        ("1.9", "~1", True),
        ("2.0", "~1", False),
        ("1.9.0", "~1.2", True),
        ("1.1", "~1.2", False),
        ("1.2.9", "~1.2.3", True),
        ("1.3.0", "~1.2.3", False),
        ("1.2.3.9", "~1.2.3.4", True),
        ("1.2.4", "~1.2.3.4", False),
        # wildcards
        ("1.2.99", "1.2.*", True),
        ("1.3.0", "1.2.*", False),
        ("1.5", "1.x", True),
        ("2.0", "1.x", False),
        ("0.0.1", "0.*", True),
        ("1.0", "0.*", False),
        ("dev-main", "*", True),
        ("dev-main", "*.*", False),
        # hyphen ranges: inclusive, a partial upper bound covers its whole series
        ("1.0.0", "1.0 - 2.0", True),
        ("2.0.5", "1.0 - 2.0", True),
        ("2.1.0", "1.0 - 2.0", False),
        ("2.9", "1.0 - 2", True),
        ("3.0", "1.0 - 2", False),
        ("2.0.0", "1.0.0 - 2.0.0", True),
        ("2.0.1", "1.0.0 - 2.0.0", False),
        ("2.0.0-beta", "1 - 2.0.0-beta", True),
        ("2.0.0", "1 - 2.0.0-beta", False),
        # OR / AND
        ("1.0.5", ">=1.0 <1.1 || >=1.2", True),
        ("1.1.0", ">=1.0 <1.1 || >=1.2", False),
        ("1.3", ">=1.0 <1.1 || >=1.2", True),
        ("1.5", ">=1.0, <2.0", True),
        ("2.5", "^1.0 | ^2.0", True),
        ("2.0", "^1.0 || ^3.0", False),
        ("1.5.0", ">=1.0 !=1.5.0", False),
        ("1.5.1", ">=1.0 !=1.5.0", True),
        # comparisons, and their implicit -dev on < and >=
        ("1.0.0", "1.0", True),
        ("1.0.0", "==1.0.0.0", True),
        ("v1.0.0", "=1.0.0", True),
        ("1.0.0-beta1", "1.0.0", False),
        ("1.0.0", "<>1.0.0", False),
        ("2.0.0-beta1", "<2.0", False),
        ("2.0.0-alpha1", "<2.0-beta", True),
        ("1.0.0-beta1-dev", ">=1.0-beta1", False),
        ("1.0.0-RC1-dev", ">=1.0-RC1", True),
        # stability flags only lower stable bounds of non-equality comparisons
        ("1.0.0-RC1", ">1.0@beta", True),
        ("1.0.0-RC1", ">1.0", False),
        ("1.0.0", "1.0.0@dev", True),
        ("dev-foo", "@dev", True),
        # branches only equal themselves
        ("dev-main", "dev-main", True),
        ("dev-master", "dev-main", False),
        ("dev-main", "dev-main#abc123", True),
        ("dev-main", "dev-main as 1.0.x-dev", True),
        ("dev-main", ">=1.0", False),
        ("dev-main", "!=1.5", True),
        ("dev-master", "master", True),
        ("dev-foo", "foo-dev", True),
        ("1.x-dev", "1.x-dev", True),
        ("1.5.0", "1.x-dev", False),
    ],
)
def test_satisfies_matches_composer(version, constraint, expected):
    assert satisfies(version, constraint) is expected


@pytest.mark.parametrize(("version", "constraint"), [("foo", "*"), ("1.0", "~>1.0"), ("main", "dev-main")])
def test_satisfies_raises_when_either_side_is_invalid(version, constraint):
    with pytest.raises(InvalidVersion):
        satisfies(version, constraint)


# --- ordering --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("version1", "operator", "version2", "expected"),
    [
        ("1.0.0.0", "<", "2.0.0.0", True),
        ("1.10.0.0", ">", "1.9.0.0", True),
        ("1.0.0.0", ">", "1.0", True),
        ("1.0.0.0-dev", "<", "1.0.0.0-alpha1", True),
        ("1.0.0.0-alpha2", "<", "1.0.0.0-beta1", True),
        ("1.0.0.0-beta2", "<", "1.0.0.0-RC1", True),
        ("1.0.0.0-RC1", "<", "1.0.0.0", True),
        ("1.0.0.0", "<", "1.0.0.0-patch1", True),
        ("1.0.0.0-beta1", "<", "1.0.0.0-beta.2", True),
        ("1.0.0.0", "==", "1.0.0.0", True),
        ("1.0.0.0", "=", "01.0.0.0", True),
        ("1.0.0.0", "<>", "1.0.0.1", True),
        ("dev-foo", "==", "dev-foo", True),
        ("dev-foo", "<=", "dev-foo", False),
        ("dev-foo", "!=", "dev-bar", True),
        ("dev-foo", "<", "1.0.0.0", True),
        ("1.9223372036854775807.0.0", "==", "1.99999999999999999999.0.0", True),
    ],
)
def test_compare_orders_like_composers_comparator(version1, operator, version2, expected):
    assert compare(version1, version2, operator) is expected


def test_compare_refuses_unknown_operators():
    with pytest.raises(ValueError, match="invalid operator"):
        compare("1.0.0.0", "1.0.0.0", "=>")


def test_cmp_versions_is_zero_only_for_identical_strings():
    assert cmp_versions("1.0.0.0", "1.0.0.0") == 0
    assert cmp_versions("1.0.0.0", "2.0.0.0") == -1
    assert cmp_versions("2.0.0.0", "1.0.0.0") == 1


def test_sort_versions_puts_pre_releases_before_releases_and_default_branches_last():
    shuffled = [
        "1.0.0",
        "dev-master",
        "1.0.0-beta1",
        "0.9",
        "1.0.x-dev",
        "1.0.0-RC1",
        "1.0.0-patch1",
        "1.0.0-alpha1",
    ]
    expected = [
        "0.9",
        "1.0.0-alpha1",
        "1.0.0-beta1",
        "1.0.0-RC1",
        "1.0.0",
        "1.0.0-patch1",
        "1.0.x-dev",
        "dev-master",
    ]
    assert sort_versions(shuffled) == expected
    assert sort_versions(shuffled, reverse=True) == expected[::-1]
