"""The upstream's metadata changes feed (packagist's ``metadata/changes.json``).

An incremental run asks what changed since the cursor kept in the catalog and touches only
those packages. ``since`` is unix time x 10000. Without a valid ``since`` the feed answers 400
with the current timestamp: a full revalidation starts from there. The cursor is stored only
after a run has published, so a failed run is simply repeated.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from composer_mirror.composer_format import DEV_SUFFIX, is_valid_package_name
from composer_mirror.errors import UpstreamError
from composer_mirror.upstream import UpstreamClient, redact

logger = logging.getLogger(__name__)


@dataclass
class ChangeSet:
    """What the feed said: package -> newest action time (unix seconds), and the next cursor."""

    timestamp: int
    updates: dict[str, int] = field(default_factory=dict)
    # Branch-only changes (``name~dev`` actions): only the ~dev file is announced as newer.
    dev_updates: dict[str, int] = field(default_factory=dict)
    deletes: dict[str, int] = field(default_factory=dict)
    resync: bool = False
    ignored: int = 0
    actions: int = 0

    def min_times(self) -> dict[str, dict[str, int]]:
        """package -> {file suffix: time}: how new each announced p2 file must be when fetched."""
        times: dict[str, dict[str, int]] = {}
        for suffix, updates in (("", self.updates), (DEV_SUFFIX, self.dev_updates)):
            for name, when in updates.items():
                times.setdefault(name, {})[suffix] = when
        return times

    def next_cursor(self, current: int | None) -> int:
        """Advance only when the feed said something: a quiet feed then writes nothing at all."""
        if current is None or self.resync or self.actions:
            return self.timestamp
        return current


def current_timestamp(client: UpstreamClient, url: str) -> int:
    """The feed's current cursor: what a run records before a full revalidation."""
    return read_changes(client, url, None).timestamp


def read_changes(client: UpstreamClient, url: str, since: int | None) -> ChangeSet:
    """One request to the feed. A missing or stale ``since`` yields a resync with a fresh cursor."""
    full_url = url if since is None else f"{url}{'&' if '?' in url else '?'}{urlencode({'since': since})}"
    fetched = client.get_metadata(full_url, accept_statuses=(400,))
    try:
        document: Any = json.loads(fetched.body)
    except ValueError as exc:
        raise UpstreamError(f"{redact(url)} is not valid JSON: {exc}", url=redact(url)) from exc
    if not isinstance(document, dict) or not isinstance(document.get("timestamp"), int):
        raise UpstreamError(f"{redact(url)} answered without a timestamp", url=redact(url))
    changes = ChangeSet(timestamp=document["timestamp"])
    if fetched.status == 400 or since is None:
        changes.resync = True
        return changes
    actions = document.get("actions", [])
    changes.actions = len(actions) if isinstance(actions, list) else 0
    for action in actions if isinstance(actions, list) else []:
        _apply(changes, action)
    logger.info(
        "changes feed: %d updated, %d deleted%s since %s",
        len(changes.updates),
        len(changes.deletes),
        ", resync requested" if changes.resync else "",
        since,
    )
    return changes


def _apply(changes: ChangeSet, action: Any) -> None:
    if not isinstance(action, dict):
        changes.ignored += 1
        return
    kind, package = action.get("type"), str(action.get("package", ""))
    stamp = action.get("time")
    when = stamp if isinstance(stamp, int) else int(time.time())
    if kind == "resync":
        changes.resync = True
        return
    name = package.removesuffix(DEV_SUFFIX)
    if not is_valid_package_name(name):
        changes.ignored += 1
        return
    if kind == "update":
        target = changes.dev_updates if package.endswith(DEV_SUFFIX) else changes.updates
        target[name] = max(when, target.get(name, 0))
        changes.deletes.pop(name, None)
    elif kind == "delete":
        changes.deletes[name] = when
        changes.updates.pop(name, None)
        changes.dev_updates.pop(name, None)
    else:
        changes.ignored += 1
