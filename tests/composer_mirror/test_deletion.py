"""The handshake between prune's deletes and writers reusing an object: every order of the two sides."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from composer_mirror import deletion
from composer_mirror.store.layout import intent_path
from composer_mirror.store.memory import MemoryStore

PATH = "dists/aa/bb/" + "a" * 64 + ".zip"
START = datetime(2026, 12, 1, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(clock: Clock) -> MemoryStore:
    store = MemoryStore("repo/", clock=clock)
    store.put(PATH, b"zip")
    return store


def mark(clock: Clock) -> int:
    """A prune mark made now; the sweep comes a grace period later."""
    stamp = int(clock.now.timestamp())
    clock.now += timedelta(hours=48)
    return stamp


def test_without_a_writer_prune_begins_commits_and_finishes(store: MemoryStore, clock: Clock) -> None:
    marked = mark(clock)
    assert deletion.begin(store, PATH, marked)
    assert deletion.commit(store, PATH)
    store.delete(PATH)
    deletion.finish(store, PATH)
    assert deletion.claim(store, PATH)  # a new copy stored at that key may be reused


def test_a_claim_made_since_the_mark_keeps_the_object(store: MemoryStore, clock: Clock) -> None:
    marked = mark(clock)
    assert deletion.claim(store, PATH)  # a writer reusing it, before prune's intent
    assert not deletion.begin(store, PATH, marked)


def test_a_claim_older_than_the_mark_does_not_hold_the_object(store: MemoryStore, clock: Clock) -> None:
    assert deletion.claim(store, PATH)
    clock.now += timedelta(hours=5)
    marked = mark(clock)
    assert deletion.begin(store, PATH, marked)


def test_a_claim_after_the_intent_makes_the_commit_fail(store: MemoryStore, clock: Clock) -> None:
    marked = mark(clock)
    assert deletion.begin(store, PATH, marked)
    assert deletion.claim(store, PATH)  # rescued
    assert not deletion.commit(store, PATH)


def test_a_claim_after_the_commit_is_told_to_keep_away(store: MemoryStore, clock: Clock) -> None:
    marked = mark(clock)
    assert deletion.begin(store, PATH, marked) and deletion.commit(store, PATH)
    assert not deletion.claim(store, PATH)


def test_a_claim_landing_between_prunes_head_and_its_write_is_respected(
    store: MemoryStore, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The claim is older than nothing prune saw: its HEAD came before the claim's write."""
    assert deletion.claim(store, PATH)
    clock.now += timedelta(hours=5)
    marked = mark(clock)
    head = store.head

    def claim_after_head(path: str):  # type: ignore[no-untyped-def]
        info = head(path)
        if path == intent_path(PATH):
            deletion.claim(store, PATH)
        return info

    monkeypatch.setattr(store, "head", claim_after_head)
    assert not deletion.begin(store, PATH, marked)


def test_a_deletion_committed_to_is_resumed_and_settled(store: MemoryStore, clock: Clock) -> None:
    marked = mark(clock)
    assert deletion.begin(store, PATH, marked) and deletion.commit(store, PATH)
    assert deletion.begin(store, PATH, marked)  # a later prune resumes it
    store.delete(PATH)  # ... and dies before finishing
    assert deletion.settle(store, clock.now - timedelta(hours=48)) == 0
    assert deletion.claim(store, PATH)  # finished by settle: a new copy may be reused
    store.delete(intent_path(PATH))
    assert deletion.begin(store, PATH, marked) and deletion.commit(store, PATH)
    store.delete(PATH)
    deletion.finish(store, PATH)
    clock.now += timedelta(hours=49)
    assert deletion.settle(store, clock.now - timedelta(hours=48)) == 1
    assert store.get(intent_path(PATH)) is None
