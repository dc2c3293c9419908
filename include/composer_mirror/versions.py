"""Composer version strings and constraints, evaluated exactly the way Composer evaluates them.

The mirror decides which versions of a package to copy by matching upstream version strings against
constraints from selections and composer.json files. If it disagreed with Composer even on odd inputs
(``1.0-rc1`` vs ``>=1.0-rc1``, ``dev-*`` branches, ``@dev`` flags, 4-part versions), a later
``composer install`` against the mirror would miss versions it needs. So this module is a line-by-line
port of composer/semver 3.x (``VersionParser``, ``Constraint``, ``MultiConstraint``, ``Comparator``,
``Semver``) and of PHP's ``version_compare()``, quirks included, rather than an implementation of the
SemVer specification. ``tests/composer_mirror/test_versions_differential.py`` checks it against the real
PHP library.

PHP strings are bytes and its regular expressions run without the ``u`` flag, so every pattern here is
compiled with ``re.ASCII`` (ASCII-only ``\\d``, ``\\s`` and case folding) and ``version_compare()`` works
on the UTF-8 bytes of its arguments.

Versions and constraints also come from hostile places (an upstream's p2 files, uploaded SBOMs), so the
work here must stay linear in the input: strings over ``MAX_VERSION_LENGTH`` / ``MAX_CONSTRAINT_LENGTH``
are refused before any pattern sees them, and composer/semver's patterns that would retry a run of
characters from every position are only tried where a match can start (see ``_last_line_start``).
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from composer_mirror.errors import InvalidVersion

__all__ = [
    "MAX_CONSTRAINT_LENGTH",
    "MAX_VERSION_LENGTH",
    "Comparison",
    "Constraint",
    "ConstraintNode",
    "MatchAllConstraint",
    "MultiConstraint",
    "cmp_versions",
    "compare",
    "is_stable",
    "normalize",
    "normalize_branch",
    "parse_constraints",
    "parse_stability",
    "satisfies",
    "sort_versions",
]

_ASCII = re.ASCII
_ASCII_I = re.ASCII | re.IGNORECASE

# Composer sets no limits; these are far above any real version (or constraint, with its ||, ranges and
# flags) and bound the work on hostile input. Every version normalize() reads is held to the limit,
# including those taken out of a constraint.
MAX_VERSION_LENGTH = 255
MAX_CONSTRAINT_LENGTH = 1024
_SNIPPET_LENGTH = 40

# VersionParser::$modifierRegex: pre-release data; groups are (stability, numbers, dev).
_MODIFIER = r"[._-]?(?:(stable|beta|b|RC|alpha|a|patch|pl|p)((?:[.-]?\d+)*+)?)?([.-]?dev)?"
_STABILITIES = "stable|RC|beta|alpha|dev"
# A version inside a constraint; groups 1-4 numbers, 5-7 modifier, 8 ".x-dev" style suffix.
_CONSTRAINT_VERSION = (
    r"v?(\d++)(?:\.(\d++))?(?:\.(\d++))?(?:\.(\d++))?"
    rf"(?:{_MODIFIER}|\.([xX*][.-]?dev))(?:\+[^\s]+)?"
)

_ALIAS_RE = re.compile(r"^([^,\s]++) ++as ++([^,\s]++)$", _ASCII)
_VERSION_FLAG_RE = re.compile(rf"@(?:{_STABILITIES})$", _ASCII_I)
_BUILD_METADATA_RE = re.compile(r"^([^,\s+]++)\+[^\s]++$", _ASCII)
_CLASSICAL_RE = re.compile(rf"^v?(\d{{1,5}})(\.\d++)?(\.\d++)?(\.\d++)?{_MODIFIER}$", _ASCII_I)
# Possessive: giving a pair of digits back to the optional 1-3 digits after it never turns a failure into
# a match, and without it a near miss tries every split of the digits.
_DATE_RE = re.compile(rf"^v?(\d{{4}}(?:[.:-]?\d{{2}}){{1,6}}+(?:[.:-]?\d{{1,3}})?){_MODIFIER}$", _ASCII_I)
_NON_DIGIT_RE = re.compile(r"\D", _ASCII)
_DEV_SUFFIX_RE = re.compile(r"(.*?)[.-]?dev$", _ASCII_I)
_BRANCH_RE = re.compile(r"^v?(\d++)(\.(?:\d++|[xX*]))?(\.(?:\d++|[xX*]))?(\.(?:\d++|[xX*]))?$", _ASCII_I)
_REFERENCE_RE = re.compile(r"#.+$", _ASCII)
_STABILITY_RE = re.compile(rf"{_MODIFIER}(?:\+.*)?$", _ASCII_I)

# Never starting inside a run of whitespace keeps the split linear and changes no split: a match from there
# is found from the run's start first, and the match before ends only where the whitespace after it ends.
_OR_SPLIT_RE = re.compile(r"(?!(?<=\s)\s)\s*+\|\|?\s*", _ASCII)
# PCRE's (?<!^|as|[=>< ,]) has alternatives of different lengths, which Python refuses: split it in three.
_AND_SPLIT_RE = re.compile(r"(?<!^)(?<!as)(?<![=>< ,]) *(?<!-)[, ](?!-) *(?!,|as|$)", _ASCII)
_CONSTRAINT_FLAG_RE = re.compile(rf"^([^,\s]*?)@({_STABILITIES})$", _ASCII_I)
_CONSTRAINT_REFERENCE_RE = re.compile(r"^(dev-[^,\s@]+?|[^,\s@]+?\.x-dev)#.+$", _ASCII_I)
_WILDCARD_RE = re.compile(r"^(v)?[xX*](\.[xX*])*$", _ASCII_I)
_TILDE_RE = re.compile(rf"^~>?{_CONSTRAINT_VERSION}$", _ASCII_I)
_CARET_RE = re.compile(rf"^\^{_CONSTRAINT_VERSION}($)", _ASCII_I)
_X_RANGE_RE = re.compile(r"^v?(\d++)(?:\.(\d++))?(?:\.(\d++))?(?:\.[xX*])++$", _ASCII)
# Groups: 1 low, 2-9 its parts; 10 high, 11-18 its parts.
_HYPHEN_RE = re.compile(rf"^({_CONSTRAINT_VERSION}) +- +({_CONSTRAINT_VERSION})($)", _ASCII_I)
_COMPARATOR_RE = re.compile(r"^(<>|!=|>=?|<=?|==?)?\s*(.*)", _ASCII)
# Deliberately case-sensitive: PHP lower-cases the subject, so "RC" never matches here (hence ">=1.0-RC1"
# gets a "-dev" suffix while ">=1.0-beta1" does not).
_PRE_RELEASE_SUFFIX_RE = re.compile(rf"-{_MODIFIER}$", _ASCII)
_DEV_RECOVERABLE_RE = re.compile(r"^[0-9a-zA-Z\-./]+$", _ASCII)

_FLAG_SUFFIXES = ("", *(f"@{stability}" for stability in _STABILITIES.split("|")))

_PHP_TRIM_CHARS = " \t\n\r\0\x0b"
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
_DEFAULT_BRANCHES = ("master", "trunk", "default")
_SHORT_STABILITIES = {"a": "alpha", "b": "beta", "p": "patch", "pl": "patch", "rc": "RC"}
# parseStability(): the (lower-cased) modifiers that make a version a pre-release; patch/pl/p are stable.
_PRE_RELEASE_STABILITIES = {"beta": "beta", "b": "beta", "alpha": "alpha", "a": "alpha", "rc": "RC"}
# Composer's BasePackage::STABILITIES: a higher rank is less stable.
_STABILITY_RANK = {"stable": 0, "RC": 5, "beta": 10, "alpha": 15, "dev": 20}
_OPERATORS = {"=": "==", "==": "==", "<": "<", "<=": "<=", ">": ">", ">=": ">=", "<>": "!=", "!=": "!="}

# The php_version_compare() results (-1, 0, 1) for which version_compare($a, $b, $operator) is true.
_OPERATOR_RESULTS = {"==": (0,), "!=": (-1, 1), "<": (-1,), "<=": (-1, 0), ">": (1,), ">=": (0, 1)}

_PHP_INT_MAX = 2**63 - 1
# version_compare()'s table of named segments; a segment matches the first name it starts with.
_SPECIAL_FORMS = (
    (b"dev", 0),
    (b"alpha", 1),
    (b"a", 1),
    (b"beta", 2),
    (b"b", 2),
    (b"RC", 3),
    (b"rc", 3),
    (b"#", 4),
    (b"pl", 5),
    (b"p", 5),
)
_NUMBER_FORM = b"#N#"
_NUMBER_FORM_ORDER = 4
_DIGITS = frozenset(b"0123456789")
_ALNUM = frozenset(b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
_DOT = ord(".")
_SEPARATORS = b"-_+"


# --- bounded work on hostile input -----------------------------------------------------------------


def _within(limit: int, text: str, what: str) -> str:
    """``text``, or InvalidVersion when it is longer than ``limit``. Checked before any pattern runs, so no
    input makes one work longer than the limit allows; the message quotes only the start of the text."""
    if len(text) > limit:
        raise InvalidVersion(
            f'{what} "{text[:_SNIPPET_LENGTH]}...": {len(text)} characters, longer than the {limit} allowed'
        )
    return text


def _last_line_start(text: str) -> int:
    """Where the last line of ``text`` starts (a final newline belongs to it).

    ``$`` matches only at the end or before a final newline, so a pattern ending in ``$`` that cannot
    match a newline can only match in the last line. Searched from the start, the pattern would run its
    ``.*`` from every position of the lines before up to their newline, for nothing: quadratic work.
    """
    return text.rfind("\n", 0, len(text) - 1) + 1


# --- small PHP equivalents -------------------------------------------------------------------------


def _php_trim(text: str) -> str:
    """PHP's trim(): only these six characters, unlike str.strip() which also eats Unicode spaces."""
    return text.strip(_PHP_TRIM_CHARS)


def _ascii_lower(text: str) -> str:
    """PHP 8's strtolower(): ASCII only, so non-ASCII letters cannot fold into ASCII ones."""
    return text.translate(_ASCII_LOWER)


def _php_float_to_string(value: float) -> str:
    """(string) of a PHP float above PHP_INT_MAX: 14 significant digits, e.g. ``1.0E+20``, or ``INF``."""
    if math.isinf(value):
        return "INF"
    mantissa, exponent = f"{value:.13E}".split("E")
    mantissa = mantissa.rstrip("0")
    if mantissa.endswith("."):
        mantissa += "0"
    return f"{mantissa}E{int(exponent):+d}"


def _php_increment(number: str) -> str:
    """``$digits + 1`` in PHP: integer arithmetic until PHP_INT_MAX, then a float (upper bounds of huge
    constraints such as ``~99999999999999999999`` really do read ``1.0E+20.0.0.0-dev`` in Composer)."""
    significant = number.lstrip("0") or "0"
    if len(significant) < 19 or (len(significant) == 19 and int(significant) < _PHP_INT_MAX):
        return str(int(significant) + 1)
    return _php_float_to_string(float(number) + 1.0)


# --- PHP's version_compare() -----------------------------------------------------------------------


def _canonicalize(version: bytes) -> bytes:
    """php_canonicalize_version(): ``-_+`` and other punctuation become dots, and a dot is inserted
    wherever digits meet non-digits; the first byte is copied as is."""
    if version.startswith(b"#"):
        return version
    out = bytearray(version[:1])
    previous = version[0]
    for char in version[1:]:
        digit_boundary = (previous not in _DIGITS and previous != _DOT and char in _DIGITS) or (
            previous in _DIGITS and char not in _DIGITS and char != _DOT
        )
        if char in _SEPARATORS or digit_boundary or char not in _ALNUM:
            if out[-1] != _DOT:
                out.append(_DOT)
            if digit_boundary and char not in _SEPARATORS:
                out.append(char)
        else:
            out.append(char)
        previous = char
    return bytes(out)


def _strtol(segment: bytes) -> int:
    """C strtol() on a digit segment, saturating at LONG_MAX like PHP on 64-bit Linux."""
    digits = segment[: len(segment) - len(segment.lstrip(b"0123456789"))].lstrip(b"0")
    return _PHP_INT_MAX if len(digits) > 19 else min(int(digits or b"0"), _PHP_INT_MAX)


def _form_order(segment: bytes) -> int:
    """Rank of a segment for compare_special_version_forms(); numbers rank as ``#``, unknown words -1."""
    if segment[:1].isdigit():
        return _NUMBER_FORM_ORDER
    return next((order for name, order in _SPECIAL_FORMS if segment.startswith(name)), -1)


def _compare_segment(left: bytes, right: bytes) -> int:
    """One step of php_version_compare(): numbers numerically, anything else by special-form rank."""
    if left[:1].isdigit() and right[:1].isdigit():
        difference = _strtol(left) - _strtol(right)
    else:
        difference = _form_order(left) - _form_order(right)
    return (difference > 0) - (difference < 0)


def _find_dot(text: bytes, start: int) -> int | None:
    """strchr(): the next dot at or after ``start``, or None like C's NULL."""
    position = text.find(b".", start)
    return None if position < 0 else position


def _compare_common_segments(left: bytes, right: bytes) -> tuple[int, bytes | None, bytes | None]:
    """Walk both canonical versions segment by segment, as PHP does with its strchr() pointers.

    Returns the result so far and what remains of each side when it still had a dot to go past
    (None otherwise); PHP decides the tail from exactly that state, odd as it is."""
    left_at = right_at = 0
    left_dot: int | None = 0
    right_dot: int | None = 0
    result = 0
    while left_at < len(left) and right_at < len(right) and left_dot is not None and right_dot is not None:
        left_dot, right_dot = _find_dot(left, left_at), _find_dot(right, right_at)
        result = _compare_segment(left[left_at:left_dot], right[right_at:right_dot])
        if result:
            break
        if left_dot is not None:
            left_at = left_dot + 1
        if right_dot is not None:
            right_at = right_dot + 1
    left_rest = None if left_dot is None else left[left_at:]
    right_rest = None if right_dot is None else right[right_at:]
    return result, left_rest, right_rest


def _php_version_compare(version1: bytes, version2: bytes) -> int:
    """php_version_compare() on C strings: -1, 0 or 1. PHP recurses on the leftover tail compared with
    the number marker ``#N#``; that is a tail call, so it is a loop here (no recursion limit on long input).
    """
    while version1 and version2:
        result, left_rest, right_rest = _compare_common_segments(_canonicalize(version1), _canonicalize(version2))
        if result or (left_rest is None and right_rest is None):
            return result
        if left_rest is not None:
            if left_rest[:1].isdigit():
                return 1
            version1, version2 = left_rest, _NUMBER_FORM
        else:
            assert right_rest is not None  # both None returned above
            if right_rest[:1].isdigit():
                return -1
            version1, version2 = _NUMBER_FORM, right_rest
    return bool(version1) - bool(version2)


def _version_compare(version1: str, version2: str, operator: str) -> bool:
    """PHP's version_compare($a, $b, $operator) for the canonical operators; a NUL ends a C string."""
    result = _php_version_compare(
        version1.encode("utf-8", "surrogatepass").split(b"\0", 1)[0],
        version2.encode("utf-8", "surrogatepass").split(b"\0", 1)[0],
    )
    return result in _OPERATOR_RESULTS[operator]


def _composer_compare(version1: str, version2: str, operator: str, *, compare_branches: bool) -> bool:
    """Constraint::versionCompare(): ``dev-*`` branches are only equal to themselves and, unless
    ``compare_branches``, never ordered against anything."""
    branch1, branch2 = version1.startswith("dev-"), version2.startswith("dev-")
    if operator == "!=" and (branch1 or branch2):
        return version1 != version2
    if branch1 and branch2:
        return operator == "==" and version1 == version2
    if not compare_branches and (branch1 or branch2):
        return False
    return _version_compare(version1, version2, operator)


# --- normalisation ---------------------------------------------------------------------------------


def _expand_stability(stability: str) -> str:
    """VersionParser::expandStability(): ``a`` -> ``alpha``, ``pl`` -> ``patch``, ``rc`` -> ``RC``..."""
    lowered = _ascii_lower(stability)
    return _SHORT_STABILITIES.get(lowered, lowered)


def _with_modifiers(base: str, stability: str | None, numbers: str | None, dev: str | None) -> str:
    """Append the normalised pre-release part, e.g. ``1.0.0.0`` + ``b``, ``.2``, ``-dev``."""
    if stability:
        if stability == "stable":
            return base
        base += "-" + _expand_stability(stability) + (numbers.lstrip(".-") if numbers else "")
    if dev:
        base += "-dev"
    return base


def _normalize_numbered(version: str) -> str | None:
    """Classical (``1.2.3-beta4``) or date (``2010-01-02``) versions; None when neither applies."""
    if match := _CLASSICAL_RE.search(version):
        major, minor, patch, build, stability, numbers, dev = match.groups()
        base = major + (minor or ".0") + (patch or ".0") + (build or ".0")
        return _with_modifiers(base, stability, numbers, dev)
    if match := _DATE_RE.search(version):
        date, stability, numbers, dev = match.groups()
        return _with_modifiers(_NON_DIGIT_RE.sub(".", date), stability, numbers, dev)
    return None


def _invalid_version_message(original: str, version: str, full_version: str) -> str:
    """VersionParser's error text, with its hints about ``as`` aliases.

    PHP finds those with patterns built from the version, `` +as +<version>(@flag)?$`` and
    ``^<version>(@flag)? +as +``. The same tests on strings compile nothing per input and stay linear,
    where the first pattern compares the whole version again after every ``as`` of the text.
    """
    extra = ""
    if any(_is_alias_target(version + flag, full_version) for flag in _FLAG_SUFFIXES):
        extra = f' in "{full_version}", the alias must be an exact version'
    elif any(_is_alias_source(version + flag, full_version) for flag in _FLAG_SUFFIXES):
        extra = (
            f' in "{full_version}", the alias source must be an exact version, '
            "if it is a branch name you should prefix it with dev-"
        )
    return f'Invalid version string "{original}"{extra}'


def _is_alias_target(aliased: str, full_version: str) -> bool:
    """`` +as +<aliased>$`` found in ``full_version`` (``$`` also matches before a final newline)."""
    return any(
        text.endswith(aliased) and _ends_with_as(text[: len(text) - len(aliased)])
        for text in (full_version, full_version.removesuffix("\n"))
    )


def _ends_with_as(text: str) -> bool:
    """`` +as +$``: the word ``as`` between spaces, at the end."""
    words = text.rstrip(" ")
    return words != text and words.endswith(" as")


def _is_alias_source(aliased: str, full_version: str) -> bool:
    """``^<aliased> +as +`` found in ``full_version``."""
    after = full_version[len(aliased) :]
    words = after.lstrip(" ")
    return full_version.startswith(aliased) and words != after and words.startswith("as ")


@functools.lru_cache(maxsize=16384)
def normalize(version: str, full_version: str | None = None) -> str:
    """Normalise a version the way VersionParser::normalize() does (``v1.2`` -> ``1.2.0.0``,
    ``1.0RC1`` -> ``1.0.0.0-RC1``, ``2.1.x-dev`` -> ``2.1.9999999.9999999-dev``, ``master`` ->
    ``dev-master``), so versions from any source compare like Composer compares them.

    ``full_version`` only adds context to the error message. Raises InvalidVersion like PHP throws, and for
    a version longer than MAX_VERSION_LENGTH.
    """
    version = _within(MAX_VERSION_LENGTH, _php_trim(version), "Invalid version string")
    original = version
    if full_version is None:
        full_version = version
    if match := _ALIAS_RE.search(version):
        version = match.group(1)
    if match := _VERSION_FLAG_RE.search(version):
        version = version[: len(version) - len(match.group(0))]
    if version in _DEFAULT_BRANCHES:
        version = "dev-" + version
    if _ascii_lower(version[:4]) == "dev-":
        return "dev-" + version[4:]
    if match := _BUILD_METADATA_RE.search(version):
        version = match.group(1)
    numbered = _normalize_numbered(version)
    if numbered is not None:
        return numbered
    # Any match can start at the last line's start, where ".*?" takes the rest: only try there.
    if match := _DEV_SUFFIX_RE.match(version, _last_line_start(version)):
        branch = normalize_branch(match.group(1))
        # "foo-dev" is not a numbered branch: it should have been written "dev-foo".
        if "dev-" not in branch:
            return branch
    raise InvalidVersion(_invalid_version_message(original, version, full_version))


def normalize_branch(name: str) -> str:
    """VersionParser::normalizeBranch(): numbered branches (``2.1``, ``v3.x``) become ``9999999``-padded
    ``-dev`` versions so they sort after their releases; any other name becomes ``dev-<name>``."""
    name = _php_trim(name)
    match = _BRANCH_RE.search(name)
    if match is None:
        return "dev-" + name
    parts = (".x" if part is None else part.replace("*", "x").replace("X", "x") for part in match.groups())
    return "".join(parts).replace("x", "9999999") + "-dev"


def _normalize_default_branch(version: str) -> str:
    """VersionParser::normalizeDefaultBranch(), which Semver::sort() applies: default branches sort last."""
    return "9999999-dev" if version in ("dev-master", "dev-default", "dev-trunk") else version


def parse_stability(version: str) -> str:
    """VersionParser::parseStability(): ``stable``, ``RC``, ``beta``, ``alpha`` or ``dev``, which decides
    whether a version passes a ``minimum-stability``. Garbage gets an answer too, as in PHP; only a string
    longer than MAX_VERSION_LENGTH raises InvalidVersion."""
    version = _within(MAX_VERSION_LENGTH, version, "Invalid version string")
    if reference := _REFERENCE_RE.search(version, _last_line_start(version)):
        version = version[: reference.start()] + version[reference.end() :]
    if version.startswith("dev-") or version.endswith("-dev"):
        return "dev"
    lowered = _ascii_lower(version)
    match = _STABILITY_RE.search(lowered, _last_line_start(lowered))
    assert match is not None  # every part of the pattern is optional, so it matches at the end
    stability, _numbers, dev = match.groups()
    if dev:
        return "dev"
    return _PRE_RELEASE_STABILITIES.get(stability, "stable")


def is_stable(version: str) -> bool:
    """True when Composer considers ``version`` a stable release (no alpha/beta/RC/dev part)."""
    return parse_stability(version) == "stable"


# --- constraints -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Comparison:
    """One ``operator version`` test: composer/semver's ``Constraint`` class."""

    operator: str
    version: str

    def matches(self, version: str) -> bool:
        """Whether the normalised ``version`` passes; dev branches only pass ``==``/``!=`` tests."""
        return _composer_compare(version, self.version, self.operator, compare_branches=False)

    def __str__(self) -> str:
        return f"{self.operator} {self.version}"


@dataclass(frozen=True)
class MultiConstraint:
    """Several constraints joined by AND (``conjunctive``) or OR: composer/semver's MultiConstraint."""

    constraints: tuple[ConstraintNode, ...]
    conjunctive: bool

    def matches(self, version: str) -> bool:
        """All (AND) or any (OR) of the parts match the normalised ``version``."""
        results = (constraint.matches(version) for constraint in self.constraints)
        return all(results) if self.conjunctive else any(results)

    def __str__(self) -> str:
        separator = " " if self.conjunctive else " || "
        return "[" + separator.join(str(constraint) for constraint in self.constraints) + "]"


@dataclass(frozen=True)
class MatchAllConstraint:
    """``*``: matches every version, dev branches included."""

    def matches(self, version: str) -> bool:
        """Always True."""
        return True

    def __str__(self) -> str:
        return "*"


ConstraintNode = Comparison | MultiConstraint | MatchAllConstraint

_MATCH_ALL = MatchAllConstraint()


@dataclass(frozen=True)
class Constraint:
    """A parsed constraint string: what parse_constraints() returns.

    ``stability_flag`` is the least stable ``@flag`` written in the constraint (``@dev`` in
    ``^1.0@dev``), normalised like Composer does (``dev``, ``alpha``, ``beta``, ``RC``, ``stable``), or
    None. The flag does not affect matches(); Composer uses it to relax ``minimum-stability`` for the
    package, which callers may want to do too. ``str()`` gives composer/semver's own rendering, e.g.
    ``[>= 1.0.0.0-dev < 2.0.0.0-dev]``.
    """

    pretty: str
    node: ConstraintNode
    stability_flag: str | None

    def matches(self, normalized_version: str) -> bool:
        """Whether a version, already normalised with normalize(), satisfies the constraint."""
        return self.node.matches(normalized_version)

    def __str__(self) -> str:
        return str(self.node)


def _manipulate_version(parts: Sequence[str | None], position: int, *, increment: bool) -> str:
    """VersionParser::manipulateVersionString(): zero the parts after ``position`` and optionally add one
    to the part at ``position`` (PHP arithmetic on the digit string)."""
    numbers = []
    for index, part in enumerate(parts, start=1):
        if index > position:
            numbers.append("0")
        elif index == position and increment:
            numbers.append(_php_increment(part or "0"))
        else:
            numbers.append(part or "")
    return ".".join(numbers)


def _tilde_range(constraint: str, match: re.Match[str]) -> tuple[ConstraintNode, ...]:
    """``~1.2`` means ``>=1.2.0.0-dev <2.0.0.0-dev``: the last given part may grow."""
    if constraint.startswith("~>"):
        raise InvalidVersion(
            f'Could not parse version constraint {constraint}: Invalid operator "~>", '
            'you probably meant to use the "~" operator'
        )
    position = max(index for index in (1, 2, 3, 4) if match.group(index) is not None)
    if match.group(8):
        position += 1
    suffix = "" if match.group(5) or match.group(7) or match.group(8) else "-dev"
    low = normalize(constraint[1:] + suffix)
    high = _manipulate_version(match.group(1, 2, 3, 4), max(1, position - 1), increment=True) + "-dev"
    return Comparison(">=", low), Comparison("<", high)


def _caret_range(constraint: str, match: re.Match[str]) -> tuple[ConstraintNode, ...]:
    """``^1.2`` allows everything below the next change of the left-most non-zero part."""
    major, minor, patch = match.group(1, 2, 3)
    if major != "0" or minor is None:
        position = 1
    elif minor != "0" or patch is None:
        position = 2
    else:
        position = 3
    suffix = "" if match.group(5) or match.group(7) or match.group(8) else "-dev"
    low = normalize(constraint[1:] + suffix)
    high = _manipulate_version(match.group(1, 2, 3, 4), position, increment=True) + "-dev"
    return Comparison(">=", low), Comparison("<", high)


def _x_range(match: re.Match[str]) -> tuple[ConstraintNode, ...]:
    """``1.2.*`` / ``1.x`` mean ``>=1.2.0.0-dev <1.3.0.0-dev`` (no lower bound for ``0.*``)."""
    parts = (*match.group(1, 2, 3), None)
    position = max(index for index in (1, 2, 3) if parts[index - 1] is not None)
    low = _manipulate_version(parts, position, increment=False) + "-dev"
    high = _manipulate_version(parts, position, increment=True) + "-dev"
    if low == "0.0.0.0-dev":
        return (Comparison("<", high),)
    return Comparison(">=", low), Comparison("<", high)


def _hyphen_range(match: re.Match[str]) -> tuple[ConstraintNode, ...]:
    """``1.0 - 2.1`` is inclusive; a partial upper bound (``- 2``) allows all of ``2.*``."""
    low_suffix = "" if match.group(6) or match.group(8) or match.group(9) else "-dev"
    lower = Comparison(">=", normalize(match.group(1)) + low_suffix)
    high_parts = match.group(11, 12, 13, 14)
    exact_high = high_parts[1] is not None and high_parts[2] is not None
    if exact_high or match.group(15) or match.group(17) or match.group(18):
        return lower, Comparison("<=", normalize(match.group(10)))
    normalize(match.group(10))  # PHP validates the upper version even though it only uses its numbers
    position = 1 if high_parts[1] is None else 2
    return lower, Comparison("<", _manipulate_version(high_parts, position, increment=True) + "-dev")


def _normalize_comparison_target(target: str) -> str:
    """Normalise the version after an operator, accepting ``foo-dev`` as the branch ``dev-foo``."""
    try:
        return normalize(target)
    except InvalidVersion:
        if target.endswith("-dev") and _DEV_RECOVERABLE_RE.search(target):
            return normalize("dev-" + target[:-4])
        raise


def _basic_comparison(constraint: str, modifier: str | None) -> tuple[ConstraintNode, ...]:
    """``>=1.0``, ``!=2.0``, ``1.0.2``, ``dev-main``. A ``@flag`` lowers a stable bound to that stability,
    and ``<``/``>=`` bounds without a pre-release get ``-dev`` so pre-releases of the bound count."""
    match = _COMPARATOR_RE.search(constraint)
    assert match is not None  # every part of the pattern is optional
    operator, target = match.group(1) or "=", match.group(2)
    try:
        version = _normalize_comparison_target(target)
    except InvalidVersion as exc:
        raise InvalidVersion(f"Could not parse version constraint {constraint}: {exc}") from exc
    if operator not in ("==", "=") and modifier and parse_stability(version) == "stable":
        version += "-" + modifier
    elif (
        operator in ("<", ">=")
        and not _PRE_RELEASE_SUFFIX_RE.search(_ascii_lower(target))
        and not target.startswith("dev-")
    ):
        version += "-dev"
    return (Comparison(_OPERATORS[operator], version),)


def _parse_range(constraint: str, modifier: str | None) -> tuple[ConstraintNode, ...]:
    """The constraint forms in VersionParser's order of precedence."""
    if match := _WILDCARD_RE.search(constraint):
        return (Comparison(">=", "0.0.0.0-dev"),) if match.group(1) or match.group(2) else (_MATCH_ALL,)
    if match := _TILDE_RE.search(constraint):
        return _tilde_range(constraint, match)
    if match := _CARET_RE.search(constraint):
        return _caret_range(constraint, match)
    if match := _X_RANGE_RE.search(constraint):
        return _x_range(match)
    if match := _HYPHEN_RE.search(constraint):
        return _hyphen_range(match)
    return _basic_comparison(constraint, modifier)


def _parse_single(constraint: str) -> tuple[tuple[ConstraintNode, ...], str | None]:
    """VersionParser::parseConstraint() for one AND-part; also returns the ``@flag`` it stripped."""
    if match := _ALIAS_RE.search(constraint):
        constraint = match.group(1)
    flag = modifier = None
    if match := _CONSTRAINT_FLAG_RE.search(constraint):
        constraint = match.group(1) or "*"
        flag = match.group(2)
        modifier = None if flag == "stable" else flag
    # A match runs from the start to the end (or a final newline): there is none with a newline inside, and
    # looking for one would take quadratic time.
    if _last_line_start(constraint) == 0 and (match := _CONSTRAINT_REFERENCE_RE.search(constraint)):
        constraint = match.group(1)
    return _parse_range(constraint, modifier), flag


def _merge_contiguous(left: ConstraintNode, right: ConstraintNode) -> MultiConstraint | None:
    """MultiConstraint's optimisation: ``[>= a < b] || [>= b < c]`` becomes ``[>= a < c]``."""
    if not (isinstance(left, MultiConstraint) and isinstance(right, MultiConstraint)):
        return None
    if not (left.conjunctive and right.conjunctive and len(left.constraints) == len(right.constraints) == 2):
        return None
    left_low, left_high = map(str, left.constraints)
    right_low, right_high = map(str, right.constraints)
    if (
        left_low.startswith(">=")
        and left_high.startswith("<")
        and right_low.startswith(">=")
        and right_high.startswith("<")
        and left_high[2:] == right_low[3:]
    ):
        return MultiConstraint((left.constraints[0], right.constraints[1]), conjunctive=True)
    return None


def _disjunction(groups: list[ConstraintNode]) -> ConstraintNode:
    """MultiConstraint::create($groups, false), including its merge of contiguous ranges: ported too, so
    that results and rendering stay identical even where version_compare() is not transitive."""
    merged: list[ConstraintNode] = []
    left = groups[0]
    for right in groups[1:]:
        combined = _merge_contiguous(left, right)
        if combined is None:
            merged.append(left)
            left = right
        else:
            left = combined
    merged.append(left)
    return merged[0] if len(merged) == 1 else MultiConstraint(tuple(merged), conjunctive=False)


def _least_stable(flags: Iterable[str]) -> str | None:
    """The least stable of the ``@flags`` (Composer keeps the most permissive one), normalised."""
    normalized = ["RC" if flag.lower() == "rc" else flag.lower() for flag in flags]
    return max(normalized, key=_STABILITY_RANK.__getitem__, default=None)


@functools.lru_cache(maxsize=4096)
def parse_constraints(text: str) -> Constraint:
    """Parse a constraint string like VersionParser::parseConstraints(): ``||``/``|`` for OR, space or
    comma for AND, then ``~``, ``^``, wildcards, hyphen ranges, comparisons, ``@flags`` and ``as`` aliases.

    Cached, because the mirror evaluates the same few constraints against thousands of versions; the
    result is immutable. Raises InvalidVersion where Composer throws, and for a constraint longer than
    MAX_CONSTRAINT_LENGTH.
    """
    groups: list[ConstraintNode] = []
    flags: list[str] = []
    trimmed = _within(MAX_CONSTRAINT_LENGTH, _php_trim(text), "Could not parse version constraint")
    for alternative in _OR_SPLIT_RE.split(trimmed):
        nodes: list[ConstraintNode] = []
        for part in _AND_SPLIT_RE.split(alternative):
            parsed, flag = _parse_single(part)
            nodes.extend(parsed)
            if flag is not None:
                flags.append(flag)
        groups.append(nodes[0] if len(nodes) == 1 else MultiConstraint(tuple(nodes), conjunctive=True))
    return Constraint(pretty=text, node=_disjunction(groups), stability_flag=_least_stable(flags))


def satisfies(version: str, constraints: str) -> bool:
    """Semver::satisfies(): does the (raw) ``version`` match the ``constraints`` string?

    Raises InvalidVersion when either cannot be parsed, where Composer would throw."""
    normalized = normalize(version)
    return parse_constraints(constraints).matches(normalized)


# --- ordering --------------------------------------------------------------------------------------


def compare(version1: str, version2: str, operator: str) -> bool:
    """Comparator::compare($version1, $operator, $version2) on normalised versions.

    Unlike constraint matching, dev branches are ordered here (``dev-foo`` sorts before any number), as
    Comparator does. ``operator`` is one of ``== = != <> < <= > >=``; anything else is a programming error
    and raises ValueError."""
    try:
        canonical = _OPERATORS[operator]
    except KeyError:
        raise ValueError(f"invalid operator {operator!r}, expected one of {', '.join(_OPERATORS)}") from None
    return _composer_compare(version1, version2, canonical, compare_branches=True)


def cmp_versions(version1: str, version2: str) -> int:
    """The comparison Semver::sort() hands to usort(), on normalised versions: 0 only for identical
    strings, else -1 or 1. Use with functools.cmp_to_key."""
    if version1 == version2:
        return 0
    return -1 if compare(version1, version2, "<") else 1


def sort_versions(versions: Iterable[str], *, reverse: bool = False) -> list[str]:
    """Semver::sort() / Semver::rsort(): the raw versions ordered oldest first (newest first with
    ``reverse``), default branches last. Raises InvalidVersion for a version Composer cannot parse.

    The order equals PHP's whenever no two different normalised versions compare equal (``1.0`` vs
    ``01.0``); PHP's own order is unspecified in that case."""
    keyed = [(_normalize_default_branch(normalize(version)), version) for version in versions]
    by_version = functools.cmp_to_key(cmp_versions)
    keyed.sort(key=lambda pair: by_version(pair[0]), reverse=reverse)
    return [version for _normalized, version in keyed]
