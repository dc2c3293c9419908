"""The handshake between prune's deletes and the writers that reuse an object without writing it.

A sync takes an archive back into use without writing to it: its create-only upload is refused
(the bytes are stored already) or its journal marker says it is there. Then it records the version,
and its p2 files name the archive. Prune, for its part, reads what the state references and then
deletes what nothing does. Reads alone cannot order the two: a sync that decided to reuse an
archive before prune's last read, and records it after, would have its archive deleted under it.

So both sides write before they read, on one object per path (``mirror-state/prune/intents/``),
changed only by compare-and-swap:

- a **writer** reusing an object :func:`claim`\\ s it first (a write, whatever is there), and only
  then records it. The claim tells it whether prune is already deleting the object: then it must
  not reference it (it fetches it again, or fails the version for this run).
- **prune** :func:`begin`\\ s (writes its intent), then reads the references afresh, then
  :func:`commit`\\ s: a compare-and-swap from its intent to ``deleting``, which fails when a writer
  claimed the object meanwhile (``rescued``). Only after that does it delete, then :func:`finish`.

Whatever the interleaving, one of the two sees the other: a writer that claimed before the intent
was written is respected by :func:`begin` (a claim newer than the object's prune mark); one that
claims after it turns the intent into ``rescued``, and the commit fails; one that claims after the
commit is told to keep away. A claim older than the mark belongs to a writer long finished (a run's
tasks are killed at their execution timeout, well inside the prune grace period), whose reference,
if it made one, the fresh read sees.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable
from datetime import datetime

from composer_mirror.store import STATE_CACHE, Store, compare_and_swap, md5_etag
from composer_mirror.store.layout import INTENT_DIR, intent_path, intent_target

logger = logging.getLogger(__name__)

CLAIMED = "claimed"  # a writer reuses the object
INTENT = "intent"  # prune means to delete it, once it has read the references again
RESCUED = "rescued"  # a writer claimed it after prune's intent: prune keeps it
KEPT = "kept"  # prune read it referenced again and kept it
DELETING = "deleting"  # prune committed to deleting it: writers keep away
DONE = "done"  # prune deleted it; an object there now is a new one


def _state(body: bytes | None) -> str | None:
    if body is None:
        return None
    try:
        document = json.loads(body)
    except ValueError:
        return None
    return str(document.get("state")) if isinstance(document, dict) else None


def _document(state: str) -> bytes:
    # A token of its own every time: a claim is a write even when the state does not change.
    return json.dumps({"state": state, "token": uuid.uuid4().hex}, sort_keys=True).encode()


def _swap(store: Store, path: str, change: Callable[[str | None], str | None]) -> str | None:
    """Apply ``change`` to the path's intent state by compare-and-swap; returns the state it decided."""
    decided: list[str | None] = [None]

    def apply(body: bytes | None) -> bytes | None:
        state = change(_state(body))
        decided[0] = state
        return _document(state) if state is not None else None

    compare_and_swap(store, intent_path(path), apply, cache_control=STATE_CACHE)
    return decided[0]


# --- writers ------------------------------------------------------------------------------------
def claim(store: Store, path: str) -> bool:
    """Claim an object this writer reuses without writing it, before recording it; False: keep away.

    False only while prune is deleting it: the writer must not reference it (fetch it again once it
    is gone, or fail the version for this run).
    """
    allowed = [True]

    def change(state: str | None) -> str | None:
        allowed[0] = state != DELETING
        if state == DELETING:
            return None
        return RESCUED if state == INTENT else CLAIMED

    _swap(store, path, change)
    if not allowed[0]:
        logger.warning("%s is being pruned: not reused", store.key(path))
    return allowed[0]


# --- prune --------------------------------------------------------------------------------------
def begin(store: Store, path: str, marked_at: int) -> bool:
    """Write prune's intent to delete ``path``; False when a writer claimed it since ``marked_at``.

    A claim is recent when the intent object was written at or after the mark, or changed after the
    HEAD that tells when (a claim landing between the two). Resumes a deletion an earlier prune
    committed to and did not finish.
    """
    info = store.head(intent_path(path))
    decided: list[str | None] = [None]

    def apply(body: bytes | None) -> bytes | None:
        state = _state(body)
        changed = body is not None and (info is None or md5_etag(body) != info.etag)
        at = info.last_modified if info is not None else None
        recent = changed or (at is not None and at.timestamp() >= marked_at)
        if state in (CLAIMED, RESCUED) and recent:
            decided[0] = None
            return None
        decided[0] = DELETING if state == DELETING else INTENT
        return None if state == DELETING else _document(INTENT)

    compare_and_swap(store, intent_path(path), apply, cache_control=STATE_CACHE)
    return decided[0] is not None


def commit(store: Store, path: str) -> bool:
    """Move from intent to deleting; False when a writer claimed the object meanwhile (keep it)."""
    return _swap(store, path, lambda state: DELETING if state in (INTENT, DELETING) else None) == DELETING


def release(store: Store, path: str) -> None:
    """Prune keeps the object after all (referenced again): its intent ends."""
    _swap(store, path, lambda state: KEPT if state == INTENT else None)


def finish(store: Store, path: str) -> None:
    """The object is deleted: writers may store and use a new one at that key."""
    _swap(store, path, lambda state: DONE if state == DELETING else None)


def settle(store: Store, cutoff: datetime) -> int:
    """Tidy the intents: a deletion committed to whose object is gone is finished (a prune died
    between its delete and :func:`finish`), and a finished one older than ``cutoff`` whose object is
    still gone is removed. Returns how many intents were removed.
    """
    removed = []
    for info in store.list_objects(INTENT_DIR):
        target = intent_target(info.path)
        if target is None:
            continue
        stored = store.get(info.path)
        state = _state(stored.body if stored is not None else None)
        if state not in (DELETING, DONE) or store.head(target) is not None:
            continue
        if state == DELETING:
            finish(store, target)
        elif info.last_modified is not None and info.last_modified < cutoff:
            removed.append(info.path)  # nobody claims an absent object: a writer stores a new one
    failed = set(store.delete_many(removed)) if removed else set()
    return len(removed) - len(failed)
