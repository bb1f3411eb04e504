"""The store's interaction windows (issue 11) and limit slots (issue 15), written once for
every engine.

:class:`~alertcast.store.sqlstore.SQLStore` takes them from :class:`LimitMethods`; the SQL is
:mod:`alertcast.store.interaction_sql`'s and :mod:`alertcast.store.limit_sql`'s, and a slot's
instants are read on :attr:`shared_clock` (:mod:`alertcast.store.clock`).
"""

from __future__ import annotations

from collections.abc import Sequence

from alertcast.slots import Answer, Need, SlotRow
from alertcast.store import interaction_sql, limit_sql
from alertcast.store.base import InWindow
from alertcast.store.clock import StoreClock
from alertcast.store.driver import Conn, Driver

__all__ = ["LimitMethods"]


class LimitMethods:
    """WeChat's 48-hour interaction windows, and the rate windows, quotas and pauses that
    replicas share as rows (see :class:`~alertcast.store.base.Store`)."""

    _db: Driver
    shared_clock: StoreClock

    # -- interaction windows (issue 11) -----------------------------------------------------
    async def note_interaction(self, account: str, openid: str, kind: str, at: float) -> None:
        statement, params = interaction_sql.note_statement(account, openid, kind, at)

        async def op(c: Conn) -> None:
            await c.execute(statement, params)
            await c.execute(interaction_sql.PRUNE, interaction_sql.prune_params(account, at))

        await self._db.write(op)

    async def window(
        self, account: str, *, now: float, limit: int, after: str = ""
    ) -> list[InWindow]:
        params = interaction_sql.window_params(account, now, limit, after)
        rows = await self._db.read(lambda c: c.fetchall(interaction_sql.WINDOW, params))
        return [interaction_sql.in_window(r, now) for r in rows]

    async def note_custom_sent(self, account: str, openids: Sequence[str], *, at: float) -> None:
        rows = interaction_sql.sent_params(account, openids, at)
        if rows:
            await self._db.write(lambda c: c.executemany(interaction_sql.NOTE_SENT, rows))

    # -- limit slots: rate windows and quotas shared by replicas (issue 15) ---------------------
    def clock(self) -> float:
        return self.shared_clock.now()

    async def take_slot(
        self, key: str, slot_id: str, needs: Sequence[Need], *, now: float, lease_s: float
    ) -> Answer:
        return await self._db.write(lambda c: limit_sql.take(c, key, slot_id, needs, now, lease_s))

    async def finish_slot(self, key: str, slot_id: str, *, now: float) -> None:
        params = (now, key, slot_id)
        await self._db.write(lambda c: c.execute(limit_sql.FINISH_SLOT, params), single=True)

    async def drop_slot(self, key: str, slot_id: str) -> None:
        params = (key, slot_id)
        await self._db.write(lambda c: c.execute(limit_sql.DROP_SLOT, params), single=True)

    async def held_slots(self, key: str, needs: Sequence[Need]) -> tuple[SlotRow, ...]:
        return await self._db.read(lambda c: limit_sql.held(c, key, needs))
