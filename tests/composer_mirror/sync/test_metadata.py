"""Tests for the sync's metadata step on its own: a copy is stale when older than the feed's action."""

from __future__ import annotations

import email.utils

import pytest

from composer_mirror.sync.metadata import _older_than

# --- _older_than --------------------------------------------------------------------------------
NOW = 1_700_000_000


@pytest.mark.parametrize(
    ("last_modified", "older"),
    [
        (email.utils.formatdate(NOW - 1, usegmt=True), True),
        (email.utils.formatdate(NOW - 86400, usegmt=True), True),
        (email.utils.formatdate(NOW, usegmt=True), False),
        (email.utils.formatdate(NOW + 5, usegmt=True), False),
        (None, False),
        ("", False),
        ("not a date", False),
    ],
)
def test_older_than_compares_a_last_modified_header_with_the_feeds_action_time(
    last_modified: str | None, older: bool
) -> None:
    assert _older_than(last_modified, NOW) is older
