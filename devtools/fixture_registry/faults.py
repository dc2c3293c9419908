"""Fault injection rules: which request fails, how, and how many times.

Rules are matched against the request path (no query string). ``times`` counts per distinct path, so
``FaultRule(r".*", "status", times=2, probability=0.3)`` means "30 % of the paths fail twice, then
work": what a retrying client should survive. Path selection by ``probability`` is a hash of
``seed`` and the path, never a random draw, so a failing test reproduces exactly.
"""

from __future__ import annotations

import hashlib
import re
import threading
from dataclasses import dataclass, field

KINDS = frozenset(
    {
        "status",
        "reset",
        "delay",
        "truncate",
        "bad_json",
        "wrong_package",
        "zip_no_central_directory",
        "slow_body",
    }
)
# Kinds that only make sense for some responses; elsewhere the rule is skipped (and not consumed).
_NEEDS_BODY = frozenset({"truncate", "slow_body"})


@dataclass(frozen=True)
class FaultRule:
    """One way to fail. See the package docstring for each ``kind``.

    ``delay`` is the sleep of "delay" and the pause between chunks of "slow_body" (0.05 s when 0);
    ``chunk_size`` is the chunk of "slow_body".
    """

    path_regex: str
    kind: str
    times: int | None = None
    probability: float = 1.0
    status: int = 503
    retry_after: int | None = None
    delay: float = 0.0
    seed: int = 0
    chunk_size: int = 1024
    _pattern: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; expected one of {sorted(KINDS)}")
        object.__setattr__(self, "_pattern", re.compile(self.path_regex))

    def selects(self, path: str) -> bool:
        """Whether this rule applies to ``path`` at all: regex match and the deterministic draw."""
        if not self._pattern.search(path):
            return False
        if self.probability >= 1.0:
            return True
        digest = hashlib.sha256(f"{self.seed}\0{path}".encode()).digest()
        return int.from_bytes(digest[:8], "big") / 2**64 < self.probability

    def applies_to(self, response_kind: str, has_body: bool) -> bool:
        """Body faults need a body; ``wrong_package`` needs a p2 file; the zip fault needs an archive."""
        if self.kind == "wrong_package":
            return response_kind == "p2"
        if self.kind == "zip_no_central_directory":
            return response_kind == "archive"
        if self.kind in _NEEDS_BODY:
            return has_body
        return True


class FaultState:
    """The active rules and how many times each fired on each path (thread-safe)."""

    def __init__(self, rules: list[FaultRule] | None = None) -> None:
        self._lock = threading.Lock()
        self._rules: list[FaultRule] = list(rules or [])
        self._fired: dict[tuple[int, str], int] = {}

    @property
    def rules(self) -> list[FaultRule]:
        """A copy of the active rules."""
        with self._lock:
            return list(self._rules)

    def replace(self, rules: list[FaultRule]) -> None:
        """Swap the rules and forget every counter."""
        with self._lock:
            self._rules = list(rules)
            self._fired.clear()

    def pick(self, path: str, response_kind: str, has_body: bool) -> FaultRule | None:
        """The first rule matching ``path`` with fires left, consuming one fire; None to answer normally."""
        with self._lock:
            for index, rule in enumerate(self._rules):
                if not rule.selects(path) or not rule.applies_to(response_kind, has_body):
                    continue
                fired = self._fired.get((index, path), 0)
                if rule.times is not None and fired >= rule.times:
                    continue
                self._fired[(index, path)] = fired + 1
                return rule
            return None
