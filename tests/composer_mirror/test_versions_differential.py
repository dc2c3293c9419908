"""Differential test: composer_mirror.versions against the real composer/semver, running under PHP.

A seeded random corpus covers the whole syntax (pre-releases, 4-part and date versions, dev branches,
wildcards, tilde/caret/hyphen ranges, OR/AND mixtures, stability flags, aliases, plus garbage). All
questions go to tests/composer_mirror/semver_oracle.php in one PHP process; Python must give the same
answer for every one, and must raise InvalidVersion exactly where PHP throws.
"""

from __future__ import annotations

import functools
import json
import os
import random
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from composer_mirror import versions
from composer_mirror.errors import InvalidVersion

pytestmark = pytest.mark.integration

SEED = 20240611
PAIR_COUNT = 12_500
CONSTRAINT_COUNT = 3_000
VERSION_COUNT = 2_500
EXTRA_NORMALIZE_COUNT = 3_000
COMPARE_COUNT = 5_000
SORT_COUNT = 300

ORACLE = Path(__file__).with_name("semver_oracle.php")
AUTOLOAD = Path("/usr/share/php/Composer/Semver/autoload.php")

STABILITY_WORDS = ["alpha", "a", "beta", "b", "RC", "rc", "patch", "pl", "p", "stable", "ALPHA", "Beta"]
ODD_STABILITY_WORDS = ["pre", "dev", "preview", "rc.", "stable-"]
FLAGS = ["dev", "alpha", "beta", "RC", "rc", "stable", "Dev", "STABLE"]
BRANCH_NAMES = ["main", "master", "feature/x", "foo", "1.x", "bugfix-12", "release_2", "Main", "ünï"]
# Normalised versions compared with each other exhaustively: number saturation, branches, odd tails.
EDGE_VERSIONS = [
    "1.9223372036854775806.0.0",
    "1.9223372036854775807.0.0",
    "1.18446744073709551616.0.0",
    "1.99999999999999999999.0.0",
    "1.0.0.0",
    "1.0.0.0-patch1",
    "1.0.0.0-RC1",
    "1.0.0.0-RC1-dev",
    "1.0.0.0-dev",
    "1.0.0.0-beta.1",
    "1.9999999.9999999.9999999-dev",
    "9999999-dev",
    "dev-master",
    "dev-feature",
]
GARBAGE = [
    "",
    " ",
    "foo",
    "a.b",
    "1.0 foo",
    "1..0",
    "1.0-",
    "~",
    "^",
    "v",
    "@dev",
    "as",
    "#",
    "dev",
    "||",
    ",",
]


# --- corpus ----------------------------------------------------------------------------------------


def _number(rng: random.Random) -> str:
    """Mostly small numbers, so versions land on constraint boundaries; sometimes odd ones."""
    if rng.random() < 0.96:
        return str(rng.choice([0, 0, 1, 1, 1, 2, 2, 3, 4, 5, 10]))
    return rng.choice(
        [
            "00",
            "01",
            "12345",
            "99999",
            "123456",
            "9223372036854775807",
            "18446744073709551616",
            "99999999999999999999",
        ]
    )


def _release(rng: random.Random, max_parts: int = 4) -> str:
    return ".".join(_number(rng) for _ in range(rng.randint(1, max_parts)))


def _modifier(rng: random.Random, wild: bool = False) -> str:
    """A pre-release / dev / build suffix in any of the spellings VersionParser accepts (or, when
    ``wild``, nearly accepts)."""
    if rng.random() < 0.45:
        return ""
    text = ""
    if rng.random() < 0.8:
        words = STABILITY_WORDS + ODD_STABILITY_WORDS if wild else STABILITY_WORDS
        text += rng.choice(["-", "-", ".", "_", ""]) + rng.choice(words)
        if rng.random() < 0.6:
            text += rng.choice(["", ".", "-"]) + str(rng.randint(0, 12))
            if rng.random() < 0.1:
                text += "." + str(rng.randint(0, 3))
    if rng.random() < 0.25:
        text += rng.choice(["-dev", ".dev", "dev", "-DEV"])
    if rng.random() < 0.08:
        text += rng.choice(["+build.1", "+20130313144700", "+exp.sha.5114f85"])
    return text


def _prefix(rng: random.Random) -> str:
    return rng.choice(["", "", "", "", "v", "V"])


def _raw_version(rng: random.Random) -> str:
    """A version string as it could appear in package metadata."""
    kind = rng.random()
    if kind < 0.55:
        return _prefix(rng) + _release(rng) + _modifier(rng)
    if kind < 0.62:
        return _prefix(rng) + _release(rng, 3) + rng.choice([".x-dev", ".*-dev", ".X-dev", "-dev", ".x"])
    if kind < 0.72:
        return rng.choice(["dev-", "DEV-", "", ""]) + rng.choice(BRANCH_NAMES) + rng.choice(["", "", "-dev"])
    if kind < 0.77:
        return (
            rng.choice(["2010", "2012"])
            + rng.choice([".", "-", ""])
            + rng.choice(["01.02", "01-02", "0102", "01", "01.02.10.20", "0102103000", "01.02.003"])
            + _modifier(rng)
        )
    if kind < 0.84:
        return _release(rng) + _modifier(rng) + "@" + rng.choice(FLAGS)
    if kind < 0.9:
        return _release(rng) + rng.choice([" as ", "  as  "]) + _release(rng) + rng.choice(["", "-dev", ".x-dev"])
    if kind < 0.95:
        return rng.choice([" ", "\t", ""]) + _release(rng) + _modifier(rng, wild=True) + rng.choice([" ", "\n", ""])
    return rng.choice([*GARBAGE, "1.0.0.0.0", "1.0-beta.1.foo", "123456.0", "1.0 - 2.0", "1.0#abc"])


def _operator(rng: random.Random, wild: bool) -> str:
    operators = ["", "", "=", "==", ">", ">=", "<", "<=", "!=", "<>", "~", "^"]
    return rng.choice([*operators, "~>", "=>", "=<", "!"] if wild else operators)


def _wildcard(rng: random.Random) -> str:
    star = rng.choice(["*", "x", "X"])
    return rng.choice(
        [
            star,
            f"{star}.{star}",
            f"v{star}",
            f"{_number(rng)}.{star}",
            f"{_prefix(rng)}{_number(rng)}.{_number(rng)}.{star}",
            f"{_number(rng)}.{star}.{star}",
            f"{_number(rng)}.{_number(rng)}.{_number(rng)}.{star}",
            f"{_release(rng, 3)}.x-dev",
        ]
    )


def _constraint_atom(rng: random.Random, wild: bool) -> str:
    """One AND-part of a constraint; ``wild`` ones include near-misses and garbage."""
    kind = rng.random() if wild else rng.random() * 0.95
    if kind < 0.45:
        spacing = rng.choice(["", "", " "])
        return _operator(rng, wild) + spacing + _prefix(rng) + _release(rng) + _modifier(rng, wild)
    if kind < 0.58:
        return _wildcard(rng)
    if kind < 0.68:
        hyphen = rng.choice([" - ", "  -  ", "-"] if wild else [" - "])
        return _release(rng, 3) + _modifier(rng, wild) + hyphen + _release(rng, 3) + _modifier(rng, wild)
    if kind < 0.76:
        return (
            rng.choice(["dev-", "", "=dev-", "!=dev-"])
            + rng.choice(BRANCH_NAMES)
            + rng.choice(["", "", "#abc123", "-dev", " as 1.0.x-dev"])
        )
    if kind < 0.9:
        body = rng.choice(["", _operator(rng, wild) + _release(rng) + _modifier(rng, wild), _wildcard(rng)])
        return body + "@" + rng.choice(FLAGS)
    if kind < 0.95:
        return _release(rng) + " as " + _release(rng)
    return rng.choice([*GARBAGE, "~>1.0", ">=", "1.0 -", "=>1.0", "1.0 ||", "|| 1.0", ">= 1.0 <"])


def _adjacent_ranges(rng: random.Random) -> str:
    """``^1.0 || ^2.0 || ^3.0`` and the like, which MultiConstraint merges into one range."""
    start = rng.randint(0, 3)
    template = rng.choice(["^{}.0", "~{}.0", "{}.*", "{}.x", ">={}.0 <{}.0", "^0.{}", "{} - {}"])
    ranges = [template.format(major, major + 1) for major in range(start, start + rng.randint(2, 4))]
    return rng.choice(["||", " || ", " | "]).join(ranges)


def _constraint(rng: random.Random) -> str:
    """A whole constraint: OR-groups of AND-parts with Composer's various separators."""
    if rng.random() < 0.05:
        return _adjacent_ranges(rng)
    wild = rng.random() < 0.25
    alternatives = []
    for _ in range(rng.choice([1, 1, 1, 2, 2, 3])):
        parts = [_constraint_atom(rng, wild) for _ in range(rng.choice([1, 1, 2, 2, 3]))]
        alternatives.append(_join(rng, parts, [" ", ",", ", ", "  "]))
    return _join(rng, alternatives, ["||", " || ", "|", " | "])


def _join(rng: random.Random, parts: list[str], separators: list[str]) -> str:
    """Join with a separator drawn afresh between each pair, as hand-written constraints mix them."""
    return functools.reduce(lambda left, right: left + rng.choice(separators) + right, parts)


def _normalized_pool(candidates: list[str]) -> list[str]:
    """The distinct normalised forms of the valid candidates."""
    pool = set()
    for candidate in candidates:
        try:
            pool.add(versions.normalize(candidate))
        except InvalidVersion:
            continue
    return sorted(pool)


def _sortable(normalized: list[str], rng: random.Random) -> list[str]:
    """Versions with a well-defined Semver::sort() order: no branches, no two comparing equal."""
    chosen: dict[str, str] = {}  # input -> what Semver::sort() compares
    for version in rng.sample(normalized, len(normalized)):
        key = versions.normalize(version)
        if key.startswith("dev-") or any(versions.compare(key, other, "==") for other in chosen.values()):
            continue
        chosen[version] = key
        if len(chosen) == SORT_COUNT:
            break
    return list(chosen)


def build_corpus() -> dict[str, Any]:
    """Everything to ask PHP, deterministic for SEED."""
    rng = random.Random(SEED)
    constraints = [_constraint(rng) for _ in range(CONSTRAINT_COUNT)]
    raw_versions = [_raw_version(rng) for _ in range(VERSION_COUNT)]
    pairs = [[rng.choice(raw_versions), rng.choice(constraints)] for _ in range(PAIR_COUNT)]
    normalized = _normalized_pool(raw_versions)
    operators = ["==", "=", "!=", "<>", "<", "<=", ">", ">="]
    comparisons = [
        [rng.choice(normalized), rng.choice(operators), rng.choice(normalized)] for _ in range(COMPARE_COUNT)
    ] + [[left, operator, right] for left in EDGE_VERSIONS for right in EDGE_VERSIONS for operator in operators]
    to_normalize = raw_versions + [_raw_version(rng) for _ in range(EXTRA_NORMALIZE_COUNT)]
    return {
        "satisfies": pairs,
        "normalize": to_normalize,
        "stability": to_normalize + normalized,
        "parse": constraints,
        "compare": comparisons,
        "sort": _sortable(normalized, rng),
    }


# --- oracle ----------------------------------------------------------------------------------------


def _require_php() -> str:
    """The php binary; a missing PHP fails the test unless skipping is explicitly allowed."""
    php = shutil.which("php")
    if php is not None and AUTOLOAD.is_file():
        return php
    message = (
        f"the differential test needs `php` on PATH and composer/semver at {AUTOLOAD} "
        "(apt-get install php-cli php-composer-semver, as the Makefile does)"
    )
    if os.environ.get("COMPOSER_MIRROR_ALLOW_SKIP") == "1":
        pytest.skip(message)
    pytest.fail(message)


@pytest.fixture(scope="module")
def corpus() -> dict[str, Any]:
    return build_corpus()


@pytest.fixture(scope="module")
def php_answers(corpus: dict[str, Any]) -> dict[str, Any]:
    """Every question answered by composer/semver, in a single PHP process."""
    php = _require_php()
    completed = subprocess.run(
        [php, str(ORACLE), str(AUTOLOAD)],
        input=json.dumps(corpus),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, f"semver_oracle.php failed:\n{completed.stderr}"
    return json.loads(completed.stdout)


def _python_or_none(function: Callable[..., Any], *args: str) -> Any:
    """The Python answer, or None where it raises InvalidVersion (PHP's null means "threw")."""
    try:
        return function(*args)
    except InvalidVersion:
        return None


def _disagreements(questions: list[Any], php: list[Any], python: list[Any]) -> list[str]:
    return [
        f"{question!r}: php={expected!r} python={actual!r}"
        for question, expected, actual in zip(questions, php, python, strict=True)
        if expected != actual
    ]


# --- tests -----------------------------------------------------------------------------------------


def test_the_corpus_is_large_and_covers_valid_and_invalid_inputs(corpus, php_answers):
    answers = php_answers["satisfies"]
    counts = {
        "pairs": len(answers),
        "matching": sum(answer is True for answer in answers),
        "not matching": sum(answer is False for answer in answers),
        "invalid": sum(answer is None for answer in answers),
    }
    print(f"differential corpus: {counts}")
    assert counts["pairs"] >= 10_000
    assert min(counts.values()) >= 500, counts


def test_satisfies_agrees_with_composer_semver_on_every_pair(corpus, php_answers):
    python = [_python_or_none(versions.satisfies, version, constraint) for version, constraint in corpus["satisfies"]]
    disagreements = _disagreements(corpus["satisfies"], php_answers["satisfies"], python)
    print(f"satisfies: {len(python)} pairs, {len(disagreements)} disagreements")
    assert not disagreements, "\n".join(disagreements[:50])


def test_parsed_constraints_render_like_composer_semver(corpus, php_answers):
    python = [_python_or_none(lambda text: str(versions.parse_constraints(text)), text) for text in corpus["parse"]]
    disagreements = _disagreements(corpus["parse"], php_answers["parse"], python)
    print(f"parse: {len(python)} constraints, {len(disagreements)} disagreements")
    assert not disagreements, "\n".join(disagreements[:50])


def test_normalize_agrees_with_version_parser(corpus, php_answers):
    python = [_python_or_none(versions.normalize, version) for version in corpus["normalize"]]
    disagreements = _disagreements(corpus["normalize"], php_answers["normalize"], python)
    print(f"normalize: {len(python)} versions, {len(disagreements)} disagreements")
    assert not disagreements, "\n".join(disagreements[:50])


def test_parse_stability_agrees_with_version_parser(corpus, php_answers):
    python = [versions.parse_stability(version) for version in corpus["stability"]]
    disagreements = _disagreements(corpus["stability"], php_answers["stability"], python)
    print(f"parse_stability: {len(python)} versions, {len(disagreements)} disagreements")
    assert not disagreements, "\n".join(disagreements[:50])


def test_compare_agrees_with_comparator(corpus, php_answers):
    python = [versions.compare(left, right, operator) for left, operator, right in corpus["compare"]]
    disagreements = _disagreements(corpus["compare"], php_answers["compare"], python)
    print(f"compare: {len(python)} comparisons, {len(disagreements)} disagreements")
    assert not disagreements, "\n".join(disagreements[:50])


def test_sort_versions_orders_like_semver_sort(corpus, php_answers):
    assert len(corpus["sort"]) >= 100
    assert versions.sort_versions(corpus["sort"]) == php_answers["sort"]
