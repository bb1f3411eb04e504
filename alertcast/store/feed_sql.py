"""SQL and row mapping of the feed-event tables (migration 0002), shared by every engine.

Written with ``?`` placeholders like :mod:`alertcast.store.sql`; PostgreSQL rewrites them with
:func:`alertcast.store.sql.numbered`. :func:`id_changes` is the one rule both engines apply to
the id index: an event's ids point at it, ids of the events it absorbs move to it, ids it gave
up to an event that absorbed it stay there, and a new id held by any other event means a
concurrent writer got there first (:class:`Lost`).
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from typing import Any

from alertcast.store.base import FeedEventRow
from alertcast.store.records import dumps

__all__ = [
    "GET_EVENT",
    "INSERT_EVENT",
    "INSERT_ID",
    "MOVE_ID",
    "PRUNE_EVENTS",
    "PRUNE_IDS",
    "SELECT_LIVE",
    "STORED_IDS",
    "UPDATE_EVENT",
    "Lost",
    "candidate_params",
    "candidates",
    "id_changes",
    "insert_params",
    "mapped_ids",
    "stored_ids",
    "update_params",
]

INSERT_EVENT = """
INSERT INTO feed_events (feed, event_id, known, ids, incident_id, live, event_time, pending,
                         version, created_at, updated_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, 1, ?, ?)"""

UPDATE_EVENT = """
UPDATE feed_events SET known = ?, ids = ?, incident_id = ?, live = ?, event_time = ?, pending = ?,
       version = version + 1, updated_at = ?
WHERE feed = ? AND event_id = ? AND version = ?"""

GET_EVENT = "SELECT * FROM feed_events WHERE feed = ? AND event_id = ?"

STORED_IDS = "SELECT ids FROM feed_events WHERE feed = ? AND event_id = ? AND version = ?"

SELECT_LIVE = """
SELECT * FROM feed_events WHERE feed = ? AND live = 1 AND event_time >= ?
ORDER BY event_time, event_id"""

INSERT_ID = "INSERT INTO feed_event_ids (feed, id, event_id) VALUES (?, ?, ?)"

MOVE_ID = "UPDATE feed_event_ids SET event_id = ? WHERE feed = ? AND id = ? AND event_id = ?"

_PRUNABLE = "feed = ? AND event_time < ? AND updated_at < ? AND pending IS NULL"
PRUNE_IDS = f"""
DELETE FROM feed_event_ids WHERE feed = ? AND event_id IN (
    SELECT event_id FROM feed_events WHERE {_PRUNABLE})"""
PRUNE_EVENTS = f"DELETE FROM feed_events WHERE {_PRUNABLE}"


class Lost(Exception):
    """Another writer changed the event (or took one of its ids) first: roll back, re-read."""


def candidates(n_ids: int, between: bool) -> str:
    """Events of a feed holding any of ``n_ids`` ids (by index or own id), or in a time span."""
    marks = ", ".join("?" * n_ids)
    clauses = [
        f"event_id IN (SELECT event_id FROM feed_event_ids WHERE feed = ? AND id IN ({marks}))",
        f"event_id IN ({marks})",
    ]
    if between:
        clauses.append("event_time BETWEEN ? AND ?")
    return (
        f"SELECT * FROM feed_events WHERE feed = ? AND ({' OR '.join(clauses)}) "
        "ORDER BY event_time, event_id"
    )


def candidate_params(
    feed: str, ids: Collection[str], between: tuple[float, float] | None
) -> tuple[Any, ...]:
    return (feed, feed, *ids, *ids, *(between or ()))


def mapped_ids(n_ids: int) -> str:
    marks = ", ".join("?" * n_ids)
    return f"SELECT id, event_id FROM feed_event_ids WHERE feed = ? AND id IN ({marks})"


def insert_params(row: FeedEventRow, now: float) -> tuple[Any, ...]:
    return (row.feed, row.event_id, *_state(row), now, now)


def update_params(row: FeedEventRow, now: float) -> tuple[Any, ...]:
    return (*_state(row), now, row.feed, row.event_id, row.version)


def _state(row: FeedEventRow) -> tuple[Any, ...]:
    pending = None if row.pending is None else dumps(dict(row.pending))
    return (
        dumps(dict(row.known)),
        dumps(sorted(row.ids)),
        row.incident_id,
        int(row.live),
        float(row.event_time),
        pending,
    )


def stored_ids(value: Any) -> tuple[str, ...]:
    """The ``ids`` column of a :data:`STORED_IDS` row; :class:`Lost` if there was no row."""
    if value is None:
        raise Lost("the event is past the version read")
    return tuple(json.loads(value[0]))


def id_changes(
    row: FeedEventRow, mapped: Mapping[str, str], takeover: Collection[str], had: Collection[str]
) -> tuple[list[tuple[str, str, str]], list[tuple[str, str, str, str]]]:
    """``(inserts, moves)`` that point the ids of ``row`` at it; :class:`Lost` on a clash.

    ``had``: the ids the stored version already held; one of them now held by another event
    was given up to it (an absorbed duplicate) and stays there.
    """
    inserts: list[tuple[str, str, str]] = []
    moves: list[tuple[str, str, str, str]] = []
    for ident in sorted(row.ids):
        holder = mapped.get(ident)
        if holder is None:
            inserts.append((row.feed, ident, row.event_id))
        elif holder in takeover:
            moves.append((row.event_id, row.feed, ident, holder))
        elif holder != row.event_id and ident not in had:
            raise Lost(f"id {ident} belongs to event {holder}")
    return inserts, moves
