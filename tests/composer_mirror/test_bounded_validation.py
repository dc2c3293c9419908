"""Validating untrusted names, versions, constraints and PURLs does work linear in the input.

Names and versions arrive from the upload page's validate endpoint, SBOM and PURL parameters, the
selection Variable, and a hostile upstream's list.json, changes feed and ``require`` keys. A regular
expression that backtracks can take exponential time on them: the old package-name pattern needed 15 s
for ``pkg:composer/acme/`` + 26 ``a`` + ``>-@1.0.0``, twice as long for each extra character. So:

* the work of every pattern the validators run is measured on adversarial shapes (long runs of the
  characters a pattern loops over, ending in a character that makes it fail) and must stay within a
  fixed number of steps per input character;
* an input over its length limit is refused before any pattern sees it.

Work is counted, never timed. CPython's regex engine (sre) has no step counter, so ``_Backtracker``
interprets the parse tree that ``re`` itself compiles, trying alternatives in sre's order and with
its repeat, possessive and atomic semantics, and counts every node it tries. It stops as soon as the
budget is spent (an exponential pattern cannot hang the test), and every call it measures is checked
against what ``re`` returns, so the model cannot drift away from the engine it stands for.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import re
import re._constants as sre
import re._parser as sre_parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from unittest import mock

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from composer_mirror import composer_format, sbom, targets, versions
from composer_mirror.errors import InvalidVersion, MirrorError, TargetError

MEASURED_MODULES = (composer_format, versions, targets, sbom)
# Linear work measured up to 87 steps per character (a constraint of one-character versions, "1 1 1 ...",
# runs every pattern once per version). Quadratic work takes 350 per character at 240 characters and
# exponential work millions in all, so the bound tells them apart with room to spare.
STEPS_PER_CHARACTER = 128
STEPS_CONSTANT = 2_000
NAME_LIMIT = 255
VERSION_LIMIT = 255
CONSTRAINT_LIMIT = 1024
PURL_LIMIT = 2048
# Composer's own rule, as ValidatingArrayLoader writes it: the reference for the name validator.
COMPOSER_NAME_RULE = re.compile(r"^[a-z0-9]([_.-]?[a-z0-9]+)*/[a-z0-9](([_.]|-{1,2})?[a-z0-9]+)*$")
EXPLORATION = settings(max_examples=150, deadline=None, derandomize=True, database=None)

_SINGLE_CHARACTER = frozenset({sre.LITERAL, sre.NOT_LITERAL, sre.IN, sre.ANY})
_REPEATS = frozenset({sre.MAX_REPEAT, sre.MIN_REPEAT, sre.POSSESSIVE_REPEAT})
_ASCII_SPACE = " \t\n\r\f\v"
_UNMEASURED = frozenset({"finditer", "findall", "subn", "split", "sub", "scanner"})


# --- counting the work of a pattern --------------------------------------------------------------


class _OverBudget(AssertionError):
    """More steps than the input's budget: raised at once, before ``re`` runs the pattern itself."""


@dataclass
class _Meter:
    """The steps spent so far against a budget, and the length of every input a pattern was given."""

    budget: int
    steps: int = 0
    inputs: list[int] = field(default_factory=list)

    def tick(self) -> None:
        self.steps += 1
        if self.steps > self.budget:
            calls, longest = len(self.inputs), max(self.inputs)
            raise _OverBudget(f"more than {self.budget} steps in {calls} pattern calls on up to {longest} characters")


@functools.cache
def _parse(pattern: str, flags: int) -> list[Any]:
    return sre_parse.parse(pattern, flags).data


class _Backtracker:
    """A backtracking matcher over ``re``'s parse tree that counts its steps.

    Each node yields its possible end positions in the order sre tries them, so the steps counted are
    the attempts sre makes: one per node tried, per character a repeat consumes and per position a
    repeat gives back. Lookbehinds are fixed-width, as ``re`` requires.
    """

    def __init__(self, pattern: re.Pattern[str], meter: _Meter) -> None:
        self._flags = pattern.flags
        self._tree = _parse(pattern.pattern, pattern.flags)
        self._meter = meter
        self._text = ""

    def spans(self, method: str, text: str, pos: int = 0) -> list[tuple[int, int]]:
        """Spans of what ``method`` (search, match, fullmatch, or finditer for split and sub) finds."""
        self._text = text
        if method == "finditer":
            return list(self._finditer(pos))
        for begin in range(pos, (len(text) if method == "search" else pos) + 1):
            self._meter.tick()
            ends = self._ends(self._tree, begin)
            if method == "fullmatch":
                ends = (end for end in ends if end == len(text))
            first = next(ends, None)
            if first is not None:
                return [(begin, first)]
        return []

    def _finditer(self, pos: int) -> Iterator[tuple[int, int]]:
        while pos <= len(self._text):
            found = self.spans("search", self._text, pos)
            if not found:
                return
            yield found[0]
            begin, end = found[0]
            pos = end if end > begin else end + 1

    # structure

    def _ends(self, items: list[Any], pos: int) -> Iterator[int]:
        if not items:
            yield pos
            return
        for middle in self._node(items[0], pos):
            yield from self._ends(items[1:], middle)

    def _node(self, node: tuple[Any, Any], pos: int) -> Iterator[int]:
        self._meter.tick()
        op, argument = node
        if op in _SINGLE_CHARACTER:
            if self._char(node, pos):
                yield pos + 1
        elif op is sre.AT:
            if self._at(argument, pos):
                yield pos
        elif op is sre.SUBPATTERN:
            yield from self._ends(argument[-1].data, pos)
        elif op is sre.BRANCH:
            for alternative in argument[1]:
                yield from self._ends(alternative.data, pos)
        elif op is sre.ATOMIC_GROUP:
            yield from _first(self._ends(argument.data, pos))
        elif op in (sre.ASSERT, sre.ASSERT_NOT):
            if self._assertion(*argument, pos) == (op is sre.ASSERT):
                yield pos
        elif op in _REPEATS:
            yield from self._repeat(op, *argument, pos)
        else:
            raise NotImplementedError(f"the model does not know {op}")

    def _assertion(self, direction: int, body: Any, pos: int) -> bool:
        if direction == 1:
            return next(self._ends(body.data, pos), None) is not None
        start = pos - body.getwidth()[0]
        return start >= 0 and any(end == pos for end in self._ends(body.data, start))

    def _repeat(self, op: Any, low: int, high: int, body: Any, pos: int) -> Iterator[int]:
        items = body.data
        if len(items) == 1 and items[0][0] in _SINGLE_CHARACTER:
            yield from self._repeat_one(op, low, high, items[0], pos)
        elif op is sre.MIN_REPEAT:
            yield from self._lazy(items, low, high, pos, 0)
        elif op is sre.POSSESSIVE_REPEAT:
            yield from _first(self._greedy(items, low, high, pos, 0))
        else:
            yield from self._greedy(items, low, high, pos, 0)

    def _repeat_one(self, op: Any, low: int, high: int, item: Any, pos: int) -> Iterator[int]:
        """A repeated single character, sre's REPEAT_ONE: consume the run, then give it back."""
        end = pos
        while end - pos < (low if op is sre.MIN_REPEAT else high) and self._char(item, end):
            self._meter.tick()
            end += 1
        if end - pos < low:
            return
        if op is sre.POSSESSIVE_REPEAT:
            yield end
        elif op is sre.MAX_REPEAT:
            for back in range(end, pos + low - 1, -1):
                self._meter.tick()
                yield back
        else:
            yield end
            while end - pos < high and self._char(item, end):
                self._meter.tick()
                end += 1
                yield end

    def _greedy(self, items: list[Any], low: int, high: int, pos: int, count: int) -> Iterator[int]:
        if count < high:
            for middle in self._ends(items, pos):
                if middle > pos or count < low:
                    yield from self._greedy(items, low, high, middle, count + 1)
        if count >= low:
            self._meter.tick()
            yield pos

    def _lazy(self, items: list[Any], low: int, high: int, pos: int, count: int) -> Iterator[int]:
        if count >= low:
            yield pos
        if count < high:
            for middle in self._ends(items, pos):
                if middle > pos or count < low:
                    self._meter.tick()
                    yield from self._lazy(items, low, high, middle, count + 1)

    # characters

    def _char(self, node: tuple[Any, Any], pos: int) -> bool:
        if pos >= len(self._text):
            return False
        op, argument = node
        char = self._text[pos]
        if op is sre.ANY:
            return bool(self._flags & re.DOTALL) or char != "\n"
        if op is sre.IN:
            return self._in(argument, char)
        return (op is sre.LITERAL) == (chr(argument) in self._cases(char))

    def _in(self, items: list[Any], char: str) -> bool:
        cases = self._cases(char)
        found = False
        negate = False
        for op, argument in items:
            if op is sre.NEGATE:
                negate = True
            elif op is sre.LITERAL:
                found |= chr(argument) in cases
            elif op is sre.RANGE:
                found |= any(argument[0] <= ord(case) <= argument[1] for case in cases)
            else:
                found |= self._category(str(argument), char)
        return found != negate

    def _cases(self, char: str) -> set[str]:
        if self._flags & re.IGNORECASE and (char.isascii() or not self._flags & re.ASCII):
            return {char, char.lower(), char.upper()}
        return {char}

    def _category(self, name: str, char: str) -> bool:
        ascii_only = bool(self._flags & re.ASCII)
        if "DIGIT" in name:
            found = char in "0123456789" if ascii_only else char.isdecimal()
        elif "SPACE" in name:
            found = char in _ASCII_SPACE if ascii_only else char.isspace()
        else:
            found = char == "_" or (char.isalnum() and (char.isascii() or not ascii_only))
        return found != ("_NOT_" in name)

    def _at(self, code: Any, pos: int) -> bool:
        text, end = self._text, len(self._text)
        multiline = bool(self._flags & re.MULTILINE)
        if code is sre.AT_BEGINNING_STRING or (code is sre.AT_BEGINNING and not multiline):
            return pos == 0
        if code is sre.AT_BEGINNING:
            return pos == 0 or text[pos - 1] == "\n"
        if code is sre.AT_END_STRING:
            return pos == end
        if code is sre.AT_END and not multiline:
            return pos == end or (pos == end - 1 and text[pos] == "\n")
        if code is sre.AT_END:
            return pos == end or text[pos] == "\n"
        raise NotImplementedError(f"the model does not know {code}")


def _first(ends: Iterator[int]) -> Iterator[int]:
    """Only the first way through: an atomic group or possessive repeat never backtracks into itself."""
    end = next(ends, None)
    if end is not None:
        yield end


class _MeteredPattern:
    """Stands in for a compiled pattern: the model counts the work first, then ``re`` answers."""

    def __init__(self, pattern: re.Pattern[str], meter: _Meter) -> None:
        self._pattern = pattern
        self._meter = meter

    def __getattr__(self, name: str) -> Any:
        if name in _UNMEASURED:
            raise AssertionError(f"{name}() is not measured: teach the model first")
        return getattr(self._pattern, name)

    def search(self, string: str, pos: int = 0) -> re.Match[str] | None:
        return self._single("search", string, pos)

    def match(self, string: str, pos: int = 0) -> re.Match[str] | None:
        return self._single("match", string, pos)

    def fullmatch(self, string: str, pos: int = 0) -> re.Match[str] | None:
        return self._single("fullmatch", string, pos)

    def split(self, string: str) -> list[str | Any]:
        self._check(self._measure("finditer", string, 0), self._pattern.finditer(string))
        return self._pattern.split(string)

    def sub(self, repl: str, string: str) -> str:
        self._check(self._measure("finditer", string, 0), self._pattern.finditer(string))
        return self._pattern.sub(repl, string)

    def _single(self, method: str, string: str, pos: int) -> re.Match[str] | None:
        spans = self._measure(method, string, pos)
        found = getattr(self._pattern, method)(string, pos)
        self._check(spans, [found] if found else [])
        return found

    def _measure(self, method: str, string: str, pos: int) -> list[tuple[int, int]]:
        self._meter.inputs.append(len(string))
        return _Backtracker(self._pattern, self._meter).spans(method, string, pos)

    def _check(self, spans: list[tuple[int, int]], found: Iterator[re.Match[str]] | list[re.Match[str]]) -> None:
        assert spans == [match.span() for match in found], f"the model disagrees with re on {self._pattern}"


class _MeteredRe:
    """Stands in for the ``re`` module inside a measured module, so patterns built at run time count too."""

    def __init__(self, meter: _Meter) -> None:
        self._meter = meter

    def __getattr__(self, name: str) -> Any:
        if name in _UNMEASURED:
            raise AssertionError(f"re.{name}() is not measured: compile the pattern instead")
        return getattr(re, name)

    def compile(self, pattern: str, flags: int = 0) -> _MeteredPattern:
        return _MeteredPattern(re.compile(pattern, flags), self._meter)

    def search(self, pattern: str, string: str, flags: int = 0) -> re.Match[str] | None:
        return self.compile(pattern, flags).search(string)

    def match(self, pattern: str, string: str, flags: int = 0) -> re.Match[str] | None:
        return self.compile(pattern, flags).match(string)

    def fullmatch(self, pattern: str, string: str, flags: int = 0) -> re.Match[str] | None:
        return self.compile(pattern, flags).fullmatch(string)


@contextlib.contextmanager
def _metered(budget: int) -> Iterator[_Meter]:
    """Measure every pattern the validating modules run, compiled at import or at run time.

    Caches are emptied first, or a repeated input would be answered without running anything.
    """
    meter = _Meter(budget)
    with contextlib.ExitStack() as stack:
        for module in MEASURED_MODULES:
            stack.enter_context(mock.patch.object(module, "re", _MeteredRe(meter)))
            for name, value in list(vars(module).items()):
                if isinstance(value, re.Pattern):
                    stack.enter_context(mock.patch.object(module, name, _MeteredPattern(value, meter)))
                elif hasattr(value, "cache_clear"):
                    value.cache_clear()
        yield meter


def _linear_budget(text: str) -> int:
    return STEPS_PER_CHARACTER * len(text) + STEPS_CONSTANT


def _validate(check: Callable[[str], object], text: str) -> None:
    """Run a validator; refusing the input is as good an answer as accepting it."""
    with contextlib.suppress(MirrorError):
        check(text)


# --- adversarial shapes ----------------------------------------------------------------------------


@st.composite
def _shapes(draw: st.DrawFn, prefixes: list[str], units: list[str], tails: list[str], limit: int) -> str:
    """``prefix + unit * n + tail``, between half the limit and the limit long: a long run that a pattern
    loops over, and a tail that makes it fail, make a backtracking pattern retry the run from many
    places or split it in many ways."""
    prefix, tail = draw(st.sampled_from(prefixes)), draw(st.sampled_from(tails))
    alphabet = "".join(sorted(set("".join(units))))
    unit = draw(st.sampled_from(units) | st.text(alphabet, min_size=1, max_size=3))
    room = limit - len(prefix) - len(tail)
    count = draw(st.integers(min_value=room // (2 * len(unit)), max_value=room // len(unit)))
    return prefix + unit * count + tail


NAMES = _shapes(
    prefixes=["", "a/", "acme/", "a-b/", "pkg:composer/acme/", "pkg:composer/"],
    units=["a", "a-", "a.", "a_", "a--", "-a", "0a", "a/", "--", "ab-"],
    tails=["", ">", "A", "-", "--", "/", ".", ">-@1.0.0", "!"],
    limit=NAME_LIMIT,
)
VERSIONS = _shapes(
    prefixes=["", "v", "1", "1.0", "1.0-", "2010", "dev-", "~", "^", ">=", "1 - ", "1.0 as ", "@"],
    units=["1", "1.", "-1", "a", "b1", "-b1.", "#", "+", " ", " as", "@dev", "-dev", ".x", "|", " |", ",", "\n"],
    tails=["", "!", "\n", "\nx", "\n\n", "A", "@dev", "-dev", "#", " as 1.0", "-", "+"],
    limit=VERSION_LIMIT,
)
# Shapes found slow before the fix, run first whatever Hypothesis generates.
SLOW_NAMES = [
    "acme/" + "a" * 40 + ">",
    "a" * 40 + ">/a",
    "pkg:composer/acme/" + "a" * 40 + ">-@1.0.0",
]
SLOW_VERSIONS = [
    "a" * 240,
    "+" * 240 + "\nx",
    "#" * 240 + "\nx",
    "dev-" + "#" * 240 + "\nx",
    "1" + " " * 240 + "2",
    "x as " * 48 + "x",
]


def _run_first(shapes: list[str]) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Hypothesis's ``@example`` for each shape."""

    def decorate(test: Callable[..., None]) -> Callable[..., None]:
        for shape in shapes:
            test = example(text=shape)(test)
        return test

    return decorate


def _purl(text: str) -> object:
    return sbom.parse_purl(text, "test")


def _selection(text: str) -> object:
    return targets.parse_selection([text])


def _outcome(check: Callable[[str], object], text: str) -> str:
    """What a call returns, rendered, or the message it raises."""
    try:
        return str(check(text))
    except InvalidVersion as exc:
        return f"InvalidVersion: {exc}"


def _param_id(value: object) -> str | None:
    """Validators by name, inputs by length: the inputs over a limit would fill the screen."""
    if callable(value):
        return getattr(value, "__name__", "").strip("_")
    return f"{len(value)}-characters" if isinstance(value, str) else None


# --- the tests -------------------------------------------------------------------------------------


def test_the_step_count_exposes_backtracking() -> None:
    """The instrument itself: Composer's rule as a plain regex doubles its work with each character
    of ``acme/aaa...>``, while a linear pattern's work grows by the same amount for each character."""

    def steps(pattern: str, text: str) -> int:
        meter = _Meter(budget=10**7)
        _Backtracker(re.compile(pattern), meter).spans("fullmatch", text)
        return meter.steps

    exponential = [steps(COMPOSER_NAME_RULE.pattern, "acme/" + "a" * n + ">") for n in range(8, 13)]
    assert all(later > 1.9 * earlier for earlier, later in itertools.pairwise(exponential))
    lengths = (8, 16, 32, 64)
    linear = zip(lengths, [steps(r"[a-z]++/[a-z]++", "acme/" + "a" * n + ">") for n in lengths], strict=True)
    per_character = {(later - earlier) / (m - n) for (n, earlier), (m, later) in itertools.pairwise(linear)}
    assert len(per_character) == 1


@pytest.mark.parametrize("check", [composer_format.is_valid_package_name, _purl, _selection], ids=_param_id)
@EXPLORATION
@_run_first(SLOW_NAMES)
@given(text=NAMES)
def test_name_validation_work_grows_linearly(check: Callable[[str], object], text: str) -> None:
    """Package names through any door (a bare name, a PURL, a selection entry) cost at most a fixed
    number of pattern steps per character, whatever their shape."""
    with _metered(_linear_budget(text)):
        _validate(check, text)


@pytest.mark.parametrize(
    "check", [versions.normalize, versions.parse_stability, versions.parse_constraints], ids=_param_id
)
@EXPLORATION
@_run_first(SLOW_VERSIONS)
@given(text=VERSIONS)
def test_version_validation_work_grows_linearly(check: Callable[[str], object], text: str) -> None:
    """Versions and constraints, the other half of every requirement, are held to the same bound."""
    with _metered(_linear_budget(text)):
        _validate(check, text)


@settings(max_examples=2000, deadline=None, derandomize=True, database=None)
@given(
    text=st.text("az09_.-/>A\n", max_size=12)
    | st.lists(st.sampled_from(["a", "0", "-", "--", "_", ".", "/", "A", ">"]), max_size=8).map("".join)
)
def test_name_validator_accepts_exactly_composers_names(text: str) -> None:
    """Whatever the implementation, it accepts exactly Composer's names (on short inputs, where the plain
    rule is quick)."""
    assert composer_format.is_valid_package_name(text) is (COMPOSER_NAME_RULE.fullmatch(text) is not None)


@pytest.mark.parametrize(
    ("check", "text", "refusal"),
    [
        (composer_format.is_valid_package_name, "acme/" + "a" * (NAME_LIMIT - 4), False),
        (composer_format.is_platform_package, "ext-" + "a" * (NAME_LIMIT - 3), False),
        (versions.normalize, "1." + "0" * (VERSION_LIMIT - 1), InvalidVersion),
        (versions.parse_stability, "1." + "0" * (VERSION_LIMIT - 1), InvalidVersion),
        (versions.parse_constraints, "^1.0 || " * (CONSTRAINT_LIMIT // 8) + "^2", InvalidVersion),
        (_purl, "pkg:composer/acme/tool@" + "1" * (PURL_LIMIT - 22), TargetError),
        (_selection, "acme/" + "*" * (NAME_LIMIT - 4), TargetError),
    ],
    ids=_param_id,
)
def test_inputs_over_the_limit_are_refused_before_any_pattern_runs(
    check: Callable[[str], object], text: str, refusal: bool | type[Exception]
) -> None:
    """One character over the limit and the input is refused outright: no pattern, however written,
    takes a single step on it (the budget is zero) and the PURL parser is never called."""
    with _metered(budget=0), mock.patch.object(sbom.PackageURL, "from_string", side_effect=AssertionError):
        if isinstance(refusal, bool):
            assert check(text) is refusal
        else:
            with pytest.raises(refusal, match="longer than"):
                check(text)


@pytest.mark.parametrize(
    ("check", "text", "limit"),
    [
        (composer_format.is_valid_package_name, "acme/" + "a" * (NAME_LIMIT - 5), NAME_LIMIT),
        (composer_format.is_platform_package, "ext-" + "a" * (NAME_LIMIT - 4), NAME_LIMIT),
        (versions.normalize, "1." + "0" * (VERSION_LIMIT - 2), VERSION_LIMIT),
        (versions.parse_stability, "1." + "0" * (VERSION_LIMIT - 2), VERSION_LIMIT),
        (versions.parse_constraints, "^1.0 || " * (CONSTRAINT_LIMIT // 8 - 1) + "^2.0.0.0", CONSTRAINT_LIMIT),
        (_purl, "pkg:composer/acme/tool@" + "1" * (PURL_LIMIT - 23), PURL_LIMIT),
        (_selection, "acme/" + "*" * (NAME_LIMIT - 5), NAME_LIMIT),
    ],
    ids=_param_id,
)
def test_inputs_at_the_limit_are_still_accepted(check: Callable[[str], object], text: str, limit: int) -> None:
    """The limits refuse only what no real package, version or constraint comes near."""
    assert len(text) == limit
    assert check(text)


@pytest.mark.parametrize(
    ("check", "text", "outcome"),
    [
        (versions.parse_stability, "1.0-beta\n#x", "beta"),
        (versions.parse_stability, "1.0-beta#x\n", "beta"),
        (versions.parse_stability, "1.0\n-RC1\n", "RC"),
        (versions.parse_stability, "1.0+x\n1.0-alpha+y", "alpha"),
        (versions.parse_stability, "1.0-RC1\nfoo", "stable"),
        (versions.parse_stability, "1.0-beta\n+x+y", "stable"),
        (versions.normalize, "a\n1.0-dev", "1.0.9999999.9999999-dev"),
        (versions.normalize, "x\n1.x-dev\n@dev", "1.9999999.9999999.9999999-dev"),
        (versions.normalize, "1.0\nfoo-dev", 'InvalidVersion: Invalid version string "1.0\nfoo-dev"'),
        (versions.parse_constraints, "dev-a#b\nc", "== dev-a#b"),
        (versions.parse_constraints, "dev-a#b\n 1.0", "[== dev-a == 1.0.0.0]"),
        (versions.parse_constraints, "1.0  ||2.0 |\t3.0", "[== 1.0.0.0 || == 2.0.0.0 || == 3.0.0.0]"),
        (
            versions.parse_constraints,
            "1.0 |  | 2.0",
            'InvalidVersion: Could not parse version constraint : Invalid version string ""',
        ),
    ],
)
def test_results_on_odd_input_are_unchanged(check: Callable[[str], object], text: str, outcome: str) -> None:
    """Composer's answers on input spread over several lines or with runs of separators, which the
    patterns made linear must keep (recorded from the code before the change)."""
    assert _outcome(check, text) == outcome


@pytest.mark.parametrize(
    ("full_version", "hint"),
    [
        ("1.0 as foo", ' in "1.0 as foo", the alias must be an exact version'),
        ("1.0 as  foo@dev\n", ' in "1.0 as  foo@dev\n", the alias must be an exact version'),
        (
            "foo@beta  as 1.0",
            ' in "foo@beta  as 1.0", the alias source must be an exact version, if it is a branch '
            "name you should prefix it with dev-",
        ),
        ("xfoo as 1.0", ""),
        ("1.0 asfoo", ""),
        ("1.0 as foo@Dev", ""),
        ("foo\n as 1.0", ""),
    ],
)
def test_alias_hints_are_unchanged(full_version: str, hint: str) -> None:
    """The hints about ``as`` aliases in normalize()'s errors (recorded from the code before the change)."""
    with pytest.raises(InvalidVersion) as raised:
        versions.normalize("foo", full_version)
    assert str(raised.value) == f'Invalid version string "foo"{hint}'


@pytest.mark.parametrize("blanks", [100, 1_000, 10_000])
def test_sniffing_an_spdx_tag_value_document_is_linear_in_a_long_line(blanks: int) -> None:
    """Any upload that is neither JSON nor XML is searched for ``SPDXVersion:``: a 20 MB line of blanks
    must cost steps in proportion to it (a lazy group before optional blanks was quadratic)."""
    text = "SPDXVersion:a" + " " * blanks + "b"
    with _metered(_linear_budget(text)):
        _validate(sbom.parse_sbom, text)


def test_the_spdx_version_is_read_without_its_surrounding_blanks() -> None:
    match = sbom.SPDX_TAG_VALUE_RE.search("DataLicense: CC0-1.0\n  SPDXVersion: \tSPDX-2.3 \t\r\nX: y")
    assert match is not None and match.group(1).strip(" \t\r") == "SPDX-2.3"
