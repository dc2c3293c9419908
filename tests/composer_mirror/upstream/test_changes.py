"""Tests for the changes feed reader, against the fixture registry and a scripted client for odd answers."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from composer_mirror.errors import UpstreamError
from composer_mirror.upstream import Fetched, FetchPolicy, RetryPolicy, UpstreamClient
from composer_mirror.upstream.changes import ChangeSet, current_timestamp, read_changes
from devtools.fixture_registry import Registry, RegistryServer


@pytest.fixture
def client(registry_server: RegistryServer) -> Iterator[UpstreamClient]:
    with UpstreamClient(FetchPolicy(registry_server.url), retry=RetryPolicy(attempts=1)) as upstream:
        yield upstream


@pytest.fixture
def feed(registry_server: RegistryServer) -> str:
    return f"{registry_server.url}/metadata/changes.json"


# --- against the fixture registry ---------------------------------------------------------------
def test_without_a_cursor_the_feed_asks_for_a_resync_and_gives_a_fresh_timestamp(client, feed) -> None:
    before = int(time.time() * 10000)
    changes = read_changes(client, feed, None)
    assert changes.resync is True
    assert changes.timestamp >= before
    assert (changes.updates, changes.deletes, changes.actions) == ({}, {}, 0)
    assert changes.next_cursor(None) == changes.timestamp


def test_current_timestamp_is_the_feeds_cursor_and_advances(client, feed) -> None:
    first = current_timestamp(client, feed)
    second = current_timestamp(client, feed)
    assert second > first > 0


def test_a_quiet_feed_reports_nothing_and_keeps_the_cursor(client, feed) -> None:
    since = current_timestamp(client, feed)
    changes = read_changes(client, feed, since)
    assert changes.resync is False
    assert (changes.updates, changes.deletes, changes.actions, changes.ignored) == ({}, {}, 0, 0)
    assert changes.next_cursor(since) == since


def test_an_update_of_both_files_is_folded_into_one_package_update(client, feed, registry: Registry) -> None:
    since = current_timestamp(client, feed)
    registry.touch("psr/log")  # psr/log has a 3.0.x-dev branch: both p2 files change
    changes = read_changes(client, feed, since)
    assert changes.actions == 2
    assert list(changes.updates) == ["psr/log"]
    assert abs(changes.updates["psr/log"] - time.time()) < 60
    assert changes.deletes == {}
    assert changes.next_cursor(since) == changes.timestamp > since


def test_a_deleted_package_is_reported_as_a_delete(client, feed, registry: Registry) -> None:
    since = current_timestamp(client, feed)
    registry.touch("twig/twig")
    registry.delete_package("psr/container")
    changes = read_changes(client, feed, since)
    assert list(changes.deletes) == ["psr/container"]
    assert list(changes.updates) == ["twig/twig"]
    assert changes.resync is False


def test_a_resync_action_is_reported_beside_the_other_actions(client, feed, registry: Registry) -> None:
    since = current_timestamp(client, feed)
    registry.touch("twig/twig")
    registry.force_resync()
    changes = read_changes(client, feed, since)
    assert changes.resync is True
    assert list(changes.updates) == ["twig/twig"]
    assert changes.next_cursor(since) == changes.timestamp


def test_a_cursor_older_than_the_log_yields_a_resync(client, feed, registry: Registry) -> None:
    since = current_timestamp(client, feed)
    registry.truncate_changes_log()
    changes = read_changes(client, feed, since)
    assert changes.resync is True
    assert changes.timestamp > since


def test_a_stale_cursor_answered_with_a_resync_action_is_a_resync(client, feed, registry: Registry) -> None:
    registry.stale_since = "resync"
    since = current_timestamp(client, feed)
    registry.truncate_changes_log()
    changes = read_changes(client, feed, since)
    assert changes.resync is True
    assert changes.next_cursor(since) == changes.timestamp


# --- scripted answers ---------------------------------------------------------------------------
class ScriptedClient:
    """Answers get_metadata with a fixed status and body; records the URLs asked."""

    def __init__(self, document: Any, status: int = 200) -> None:
        self.body = document if isinstance(document, bytes) else json.dumps(document).encode()
        self.status = status
        self.urls: list[str] = []

    def get_metadata(self, url: str, *args: Any, **kwargs: Any) -> Fetched:
        self.urls.append(url)
        return Fetched(self.status, self.body)


def scripted(*actions: Any, timestamp: int = 17_000_000_000_000) -> ScriptedClient:
    return ScriptedClient({"actions": list(actions), "timestamp": timestamp})


def test_a_dev_action_announces_only_the_dev_file_and_invalid_names_and_actions_are_ignored() -> None:
    client = scripted(
        {"type": "update", "package": "acme/tool~dev", "time": 100},
        {"type": "update", "package": "Not A Name", "time": 100},
        {"type": "update", "package": "../etc/passwd", "time": 100},
        {"type": "update", "time": 100},
        {"type": "rename", "package": "acme/other", "time": 100},
        "not an object",
        {"type": "delete", "package": "acme/gone", "time": 90},
    )
    changes = read_changes(client, "https://up.example/changes.json", 5)
    assert changes.updates == {}
    assert changes.dev_updates == {"acme/tool": 100}
    assert changes.min_times() == {"acme/tool": {"~dev": 100}}
    assert changes.deletes == {"acme/gone": 90}
    assert changes.ignored == 5
    assert changes.actions == 7


def test_the_newest_update_time_wins_and_the_last_action_decides_update_or_delete() -> None:
    client = scripted(
        {"type": "update", "package": "a/a", "time": 200},
        {"type": "update", "package": "a/a~dev", "time": 150},
        {"type": "update", "package": "b/b", "time": 100},
        {"type": "delete", "package": "b/b", "time": 110},
        {"type": "delete", "package": "c/c", "time": 100},
        {"type": "update", "package": "c/c", "time": 120},
    )
    changes = read_changes(client, "https://up.example/changes.json", 5)
    assert changes.updates == {"a/a": 200, "c/c": 120}
    assert changes.deletes == {"b/b": 110}


def test_an_action_without_a_time_counts_as_now() -> None:
    changes = read_changes(scripted({"type": "update", "package": "a/a"}), "https://up.example/c.json", 5)
    assert abs(changes.updates["a/a"] - time.time()) < 5


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://up.example/changes.json", "https://up.example/changes.json?since=42"),
        ("https://up.example/changes.json?x=1", "https://up.example/changes.json?x=1&since=42"),
    ],
)
def test_the_cursor_is_sent_as_the_since_parameter(url: str, expected: str) -> None:
    client = scripted()
    read_changes(client, url, 42)
    assert client.urls == [expected]


def test_without_a_cursor_no_since_parameter_is_sent() -> None:
    client = scripted({"type": "update", "package": "a/a", "time": 1})
    changes = read_changes(client, "https://up.example/changes.json", None)
    assert client.urls == ["https://up.example/changes.json"]
    assert changes.resync is True
    assert changes.updates == {}


def test_a_400_answer_with_a_timestamp_is_a_resync() -> None:
    client = ScriptedClient({"error": "bad since", "timestamp": 77}, status=400)
    changes = read_changes(client, "https://up.example/changes.json", 5)
    assert (changes.resync, changes.timestamp) == (True, 77)


def test_actions_that_are_not_a_list_are_no_actions() -> None:
    changes = read_changes(ScriptedClient({"actions": {"a": 1}, "timestamp": 9}), "https://up.example/c.json", 5)
    assert (changes.actions, changes.updates, changes.resync) == (0, {}, False)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"<html>not json</html>", "is not valid JSON"),
        ({"actions": []}, "answered without a timestamp"),
        ({"actions": [], "timestamp": "17000"}, "answered without a timestamp"),
        ([1, 2], "answered without a timestamp"),
    ],
)
def test_an_answer_without_a_usable_timestamp_is_an_upstream_error(body: Any, message: str) -> None:
    with pytest.raises(UpstreamError, match=message):
        read_changes(ScriptedClient(body), "https://user:pw@up.example/changes.json?token=x", 5)


def test_an_upstream_error_never_shows_credentials_or_query_strings() -> None:
    with pytest.raises(UpstreamError) as raised:
        read_changes(ScriptedClient(b"nope"), "https://user:secret@up.example/changes.json?token=tok", 5)
    assert "secret" not in str(raised.value) and "tok" not in str(raised.value)


@pytest.mark.parametrize(
    ("current", "resync", "actions", "expected"),
    [
        (None, False, 0, 500),
        (100, True, 0, 500),
        (100, False, 3, 500),
        (100, False, 0, 100),
    ],
)
def test_next_cursor_advances_only_when_the_feed_said_something(
    current: int | None, resync: bool, actions: int, expected: int
) -> None:
    assert ChangeSet(timestamp=500, resync=resync, actions=actions).next_cursor(current) == expected
