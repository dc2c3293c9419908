"""Is the published repository fresh? Judged from ``status.json``, the status every sync run publishes.

Airflow 3 has no SLAs, and its Deadline Alerts time runs that exist; neither notices a repository
that stopped being republished (paused DAG, scheduler down, runs failing before they publish).
``status.json`` is written by every run that reaches publish_index, so its ``generated_at`` is when
the repository was last known current: what clients see is at least that fresh.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from composer_mirror.errors import MirrorError
from composer_mirror.listing_page import STATUS_TIME_FORMAT
from composer_mirror.store import Store
from composer_mirror.store.layout import STATUS_JSON


@dataclass(frozen=True)
class Freshness:
    """The verdict: fresh or not, and a sentence an operator can act on."""

    fresh: bool
    message: str


def judge(body: bytes | None, now: datetime, max_age_hours: int, where: str) -> Freshness:
    """Fresh when status.json's ``generated_at`` is at most ``max_age_hours`` before ``now``.

    Missing or unreadable counts as stale: a monitor that stays quiet when it cannot see is no monitor.
    """
    threshold = f"threshold {max_age_hours} h (composer_mirror_max_age_hours)"
    if body is None:
        return Freshness(False, f"{where} is missing: no sync run has published the repository there; {threshold}")
    try:
        generated_at = json.loads(body)["generated_at"]
        published = datetime.strptime(generated_at, STATUS_TIME_FORMAT).replace(tzinfo=UTC)
    except (ValueError, KeyError, TypeError) as exc:
        problem = f"{type(exc).__name__}: {exc}"
        return Freshness(False, f"{where} is unreadable (no valid generated_at: {problem}); {threshold}")
    age = now - published
    hours = age / timedelta(hours=1)
    verdict = f"{where}: last published at {generated_at}, {hours:.1f} h ago; {threshold}"
    if age > timedelta(hours=max_age_hours):
        return Freshness(False, f"repository is stale: {verdict}")
    return Freshness(True, f"repository is fresh: {verdict}")


def check(store: Store, now: datetime, max_age_hours: int) -> Freshness:
    """Read status.json through the store and judge it; a failed read is a verdict too, not a crash."""
    where = store.key(STATUS_JSON)
    try:
        stored = store.get(STATUS_JSON)
    except MirrorError as exc:
        return Freshness(False, f"{where} could not be read ({exc}); threshold {max_age_hours} h")
    return judge(stored.body if stored else None, now, max_age_hours, where)
