"""The store's feed-event methods (issue 5), written once for every engine.

:class:`~alertcast.store.sqlstore.SQLStore` takes them from :class:`FeedMethods`; the SQL text
and the id bookkeeping are :mod:`alertcast.store.feed_sql`'s.
"""

from __future__ import annotations

from collections.abc import Sequence

from alertcast.store import feed_sql, sql
from alertcast.store.base import FeedEventRow
from alertcast.store.driver import Conn, Driver
from alertcast.store.records import FEED_EVENT

__all__ = ["FeedMethods"]


class FeedMethods:
    """Feed events and the ids that point at them (see :class:`~alertcast.store.base.Store`)."""

    _db: Driver

    async def get_feed_event(self, feed: str, event_id: str) -> FeedEventRow | None:
        params = (feed, event_id)
        row = await self._db.read(lambda c: c.fetchone(feed_sql.GET_EVENT, params))
        return None if row is None else FEED_EVENT.from_row(row)

    async def feed_events(
        self,
        feed: str,
        *,
        ids: Sequence[str],
        between: tuple[float, float] | None = None,
    ) -> list[FeedEventRow]:
        query = feed_sql.candidates(len(ids), between is not None)
        params = feed_sql.candidate_params(feed, ids, between)
        rows = await self._db.read(lambda c: c.fetchall(query, params))
        return [FEED_EVENT.from_row(r) for r in rows]

    async def live_feed_events(self, feed: str, *, since: float) -> list[FeedEventRow]:
        params = (feed, since)
        rows = await self._db.read(lambda c: c.fetchall(feed_sql.SELECT_LIVE, params))
        return [FEED_EVENT.from_row(r) for r in rows]

    async def put_feed_event(
        self, row: FeedEventRow, *, takeover: Sequence[str] = (), now: float
    ) -> bool:
        try:
            await self._db.write(lambda c: _put_feed_event(c, row, takeover, now))
        except feed_sql.Lost:
            return False
        return True

    async def prune_feed_events(self, feed: str, *, before: float, idle_since: float) -> int:
        params = (feed, before, idle_since)

        async def op(c: Conn) -> int:
            await c.execute(feed_sql.PRUNE_IDS, (feed, *params))
            return await c.execute(feed_sql.PRUNE_EVENTS, params)

        return await self._db.write(op)


async def _put_feed_event(c: Conn, row: FeedEventRow, takeover: Sequence[str], now: float) -> None:
    """Store the event and point its ids at it; :class:`feed_sql.Lost` when another writer
    changed the event or took one of its ids first (a write that touched no row)."""
    had = await _put_event_row(c, row, now)
    held = await c.fetchall(feed_sql.mapped_ids(len(row.ids)), (row.feed, *row.ids))
    inserts, moves = feed_sql.id_changes(row, {r[0]: r[1] for r in held}, takeover, had)
    for params in inserts:  # a concurrent writer's id makes the insert a no-op
        _must_touch(await c.execute(feed_sql.INSERT_ID + sql.NOTHING, params), "id taken")
    for move in moves:
        _must_touch(await c.execute(feed_sql.MOVE_ID, move), "id moved")


async def _put_event_row(c: Conn, row: FeedEventRow, now: float) -> tuple[str, ...]:
    """Insert or update the event row; the ids its stored version held."""
    if row.version == 0:
        query = feed_sql.INSERT_EVENT + sql.NOTHING
        _must_touch(await c.execute(query, feed_sql.insert_params(row, now)), "event exists")
        return ()
    key = (row.feed, row.event_id, row.version)
    had = feed_sql.stored_ids(await c.fetchone(feed_sql.STORED_IDS, key))
    status = await c.execute(feed_sql.UPDATE_EVENT, feed_sql.update_params(row, now))
    _must_touch(status, f"event {row.event_id} changed concurrently")
    return had


def _must_touch(touched: int, why: str) -> None:
    if touched == 0:
        raise feed_sql.Lost(why)
