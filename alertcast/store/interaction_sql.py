"""SQL and rules of the interaction table (migration 0006), shared by every engine.

WeChat admits customer-service messages (``message/custom/send``) to a follower only inside
an interaction window (facts §2.6, since 2023-06-12): **5 messages within 48 h** of the
follower's last message, **3 within 1 minute** of their last menu click, follow or QR scan. A
new message (or click) opens its window afresh, with its full allowance. Which window a send
spends, when both are open, is not documented: here a send counts against every window open
when it is sent, and a follower has the larger of the allowances left — so we never send past
either count, and at worst leave one unused.

Written with ``?`` placeholders like :mod:`alertcast.store.sql`; PostgreSQL rewrites them with
:func:`alertcast.store.sql.numbered`. Every write prunes the account's rows past every window,
so the table holds at most the followers of the last 48 hours.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from alertcast.store.base import InWindow

__all__ = [
    "EVENT",
    "EVENT_SENDS",
    "EVENT_WINDOW_S",
    "GONE",
    "KINDS",
    "MESSAGE",
    "MESSAGE_SENDS",
    "MESSAGE_WINDOW_S",
    "NOTE_SENT",
    "PRUNE",
    "WINDOW",
    "in_window",
    "note_statement",
    "prune_params",
    "sent_params",
    "window_params",
]

MESSAGE, EVENT, GONE = "message", "event", "gone"  # gone: unfollowed, no window any more
KINDS = (MESSAGE, EVENT, GONE)
MESSAGE_WINDOW_S, MESSAGE_SENDS = 48 * 3600.0, 5
EVENT_WINDOW_S, EVENT_SENDS = 60.0, 3


def _upsert(at: str, sent: str) -> str:
    """Note an interaction of the kind whose time is column ``at``: a later one than stored
    restarts its window (``sent`` back to 0); an earlier one, arriving late, changes nothing."""
    newer = f"interactions.{at} IS NULL OR interactions.{at} <= excluded.{at}"
    return f"""
INSERT INTO interactions (account, openid, {at}, seen_at) VALUES (?, ?, ?, ?)
ON CONFLICT (account, openid) DO UPDATE SET
    {sent} = CASE WHEN {newer} THEN 0 ELSE interactions.{sent} END,
    {at} = CASE WHEN {newer} THEN excluded.{at} ELSE interactions.{at} END,
    seen_at = CASE WHEN interactions.seen_at < excluded.seen_at
                   THEN excluded.seen_at ELSE interactions.seen_at END"""


_NOTE = {
    MESSAGE: _upsert("message_at", "sent_message"),
    EVENT: _upsert("event_at", "sent_event"),
    GONE: "DELETE FROM interactions WHERE account = ? AND openid = ? AND seen_at <= ?",
}

PRUNE = "DELETE FROM interactions WHERE account = ? AND seen_at < ?"

WINDOW = f"""
SELECT openid, message_at, event_at, sent_message, sent_event FROM interactions
WHERE account = ? AND openid > ?
  AND ((message_at > ? AND sent_message < {MESSAGE_SENDS})
       OR (event_at > ? AND sent_event < {EVENT_SENDS}))
ORDER BY openid
LIMIT ?"""

# A send counts against a window only if that window opened before it (a follower who wrote
# again meanwhile has a fresh allowance).
NOTE_SENT = """
UPDATE interactions SET
    sent_message = sent_message + CASE WHEN message_at <= ? THEN 1 ELSE 0 END,
    sent_event = sent_event + CASE WHEN event_at <= ? THEN 1 ELSE 0 END
WHERE account = ? AND openid = ?"""


def note_statement(account: str, openid: str, kind: str, at: float) -> tuple[str, tuple[Any, ...]]:
    """The statement noting ``kind`` by ``openid`` at ``at``; ``ValueError`` for another kind.

    An unfollow forgets the follower, unless they came back after it (a later row stays).
    """
    if kind not in _NOTE:
        raise ValueError(f"interaction kind must be one of {KINDS}, not {kind!r}")
    times = (float(at),) if kind == GONE else (float(at), float(at))
    return _NOTE[kind], (account, openid, *times)


def prune_params(account: str, now: float) -> tuple[Any, ...]:
    """Rows of ``account`` past every window at ``now``."""
    return (account, float(now) - max(MESSAGE_WINDOW_S, EVENT_WINDOW_S))


def window_params(account: str, now: float, limit: int, after: str) -> tuple[Any, ...]:
    return (account, after, float(now) - MESSAGE_WINDOW_S, float(now) - EVENT_WINDOW_S, limit)


def sent_params(account: str, openids: Sequence[str], at: float) -> list[tuple[Any, ...]]:
    return [(float(at), float(at), account, o) for o in sorted(set(openids))]


def in_window(r: Mapping[str, Any], now: float) -> InWindow:
    """A :data:`WINDOW` row as the follower and the sends they have left at ``now``."""
    left = 0
    if r["message_at"] is not None and r["message_at"] > now - MESSAGE_WINDOW_S:
        left = MESSAGE_SENDS - int(r["sent_message"])
    if r["event_at"] is not None and r["event_at"] > now - EVENT_WINDOW_S:
        left = max(left, EVENT_SENDS - int(r["sent_event"]))
    return InWindow(str(r["openid"]), max(left, 0))
