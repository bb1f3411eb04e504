"""What a ``503`` tells a client of a request the store failed (alertcast.outage.unknown), by
what the request was; the middleware's choice is tested through a running app in
tests/spine/test_db_unanswered.py (a read, a re-drive, an intake)."""

from __future__ import annotations

import pytest

from alertcast.outage import unknown


def test_a_read_is_sent_again() -> None:
    assert unknown("GET", None) == "send it again"


def test_a_change_replayed_by_its_key_is_sent_again_with_it_or_looked_for() -> None:
    text = unknown("POST", "Idempotency-Key")
    assert "may have been stored" in text and "same Idempotency-Key" in text
    assert "without one, look for it first (GET /v1/incidents)" in text


@pytest.mark.parametrize(
    "replays",
    ["CAP message (its sender and identifier)", "event (its id and version are recognised)"],
)
def test_a_message_that_names_itself_is_sent_again_as_it_is(replays: str) -> None:
    """A CAP message and a feed's event carry their own identity: no 'without a key' clause."""
    text = unknown("POST", replays)
    assert f"send it again with the same {replays}" in text and "without one" not in text


def test_any_other_change_is_looked_at_first() -> None:
    text = unknown("POST", None)
    assert "may have been carried out" in text and "look at what it changes" in text
    assert "Idempotency-Key" not in text
