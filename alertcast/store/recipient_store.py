"""The store's per-recipient methods (migrations 0008 and 0009), written once for every engine.

:class:`~alertcast.store.sqlstore.SQLStore` takes them from :class:`RecipientMethods`; each is
an operation of :mod:`alertcast.store.recipient_sql` (recipients, sends) or
:mod:`alertcast.store.part_sql` (the expansion and its parts) run by the engine's driver.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Sequence
from functools import partial
from typing import TYPE_CHECKING, TypeVar

from alertcast.store import followup_sql, part_sql, recipient_sql
from alertcast.store.base import Recipient, RecipientPart, RecipientSend, SendOutcome
from alertcast.store.clock import StoreClock
from alertcast.store.driver import Driver, Op

if TYPE_CHECKING:
    from alertcast.store.sqlstore import _ClaimGate

T = TypeVar("T")

__all__ = ["RecipientMethods"]


class RecipientMethods:
    """Recipients, a delivery's sends and their parts (see :class:`~alertcast.store.base.Store`)."""

    _db: Driver
    shared_clock: StoreClock  # sends on the wire are stamped and aged on it (Store.clock)
    claim_bound_s: float | None
    if TYPE_CHECKING:  # SQLStore's: a part's take is a claiming call, bounded and gated
        _claims: _ClaimGate

        async def _claiming(self, op: Op[T], notify: bool = False) -> T: ...

    async def import_recipients(
        self, account: str, rows: Iterable[tuple[int, Recipient]], *, replace: bool = False
    ) -> int:
        op = partial(recipient_sql.import_op, account=account, rows=rows, replace=replace)
        return await self._db.write(op)

    async def count_recipients(self, account: str) -> int:
        return await self._db.read(partial(recipient_sql.count_op, account=account))

    async def list_recipients(
        self, account: str, *, after: str = "", limit: int = 100
    ) -> list[Recipient]:
        op = partial(recipient_sql.list_op, account=account, after=after, limit=limit)
        return await self._db.read(op)

    async def expand_recipients(
        self, delivery_id: str, account: str, codes: Sequence[str], *, limit: int, now: float
    ) -> tuple[str | None, int]:
        op = partial(
            part_sql.expand_op,
            delivery_id=delivery_id,
            account=account,
            codes=codes,
            limit=limit,
            now=now,
        )
        return await self._db.write(op)

    async def expand_correction(
        self,
        correction_id: str,
        original_id: str,
        account: str,
        *,
        first: bool,
        after: str,
        limit: int,
        now: float,
    ) -> tuple[str | None, int]:
        op = partial(
            followup_sql.audience_op,
            correction=correction_id,
            original=original_id,
            account=account,
            first=first,
            after=after,
            limit=limit,
            now=now,
        )
        return await self._db.write(op)

    async def due_recipients(
        self,
        delivery_id: str,
        account: str,
        *,
        now: float,
        after: str = "",
        last: str | None = None,
        limit: int,
    ) -> list[RecipientSend]:
        op = partial(
            recipient_sql.page_op,
            delivery_id=delivery_id,
            account=account,
            now=now,
            wire_now=self.shared_clock.now(),
            after=after,
            last=last,
            limit=limit,
        )
        return await self._db.read(op)

    async def record_recipients(
        self,
        delivery_id: str,
        outcomes: Sequence[SendOutcome],
        *,
        now: float,
        worker: str = "",
        done: Sequence[str] = (),
    ) -> None:
        if not (outcomes or done):
            return
        op = partial(
            recipient_sql.record_op,
            delivery_id=delivery_id,
            outcomes=outcomes,
            now=now,
            worker=worker,
            done=done,
        )
        await self._db.write(op)

    async def recipient_summary(self, delivery_id: str) -> dict[str, int]:
        return await self._db.read(partial(recipient_sql.summary_op, delivery_id=delivery_id))

    async def next_recipient_due(self, delivery_id: str) -> float | None:
        wire_now = self.shared_clock.now()
        op = partial(
            recipient_sql.next_due_op, delivery_id=delivery_id, now=time.time(), wire_now=wire_now
        )
        return await self._db.read(op)

    async def give_up_recipients(self, delivery_id: str, reason: str, *, now: float) -> int:
        op = partial(recipient_sql.give_up_op, delivery_id=delivery_id, reason=reason, now=now)
        return await self._db.write(op, single=True)

    async def recipient_sends(
        self, delivery_id: str, *, state: str | None = None, after: str = "", limit: int = 100
    ) -> list[RecipientSend]:
        op = partial(
            recipient_sql.sends_op, delivery_id=delivery_id, state=state, after=after, limit=limit
        )
        return await self._db.read(op)

    # -- parts: ranges of the sends any replica may take (migration 0009) -------------------
    async def take_recipient_part(
        self, delivery_id: str, *, worker: str, now: float, lease_s: float
    ) -> RecipientPart | None:
        op = partial(
            part_sql.take_op, delivery_id=delivery_id, worker=worker, now=now, lease_s=lease_s
        )
        return await self._claiming(op)  # its answer may be lost: see release_lost_parts

    async def take_any_recipient_part(
        self,
        *,
        accounts: Sequence[str],
        skip: Sequence[str] = (),
        worker: str,
        now: float,
        lease_s: float,
    ) -> RecipientPart | None:
        op = partial(
            part_sql.take_any_op,
            accounts=accounts,
            skip=skip,
            worker=worker,
            now=now,
            lease_s=lease_s,
        )
        return await self._claiming(op)

    async def release_lost_parts(
        self, *, worker: str, held: Callable[[], Iterable[tuple[str, str]]], now: float
    ) -> int:
        async with self._claims.releasing(), asyncio.timeout(self.claim_bound_s):
            kept = set(held())  # no take is on its way: every answer that came is held
            op = partial(part_sql.release_lost_op, worker=worker, held=kept, now=now)
            return await self._db.write(op)

    async def renew_recipient_parts(
        self, delivery_id: str, parts: Sequence[str], *, worker: str, until: float
    ) -> set[str]:
        if not parts:
            return set()
        op = partial(
            part_sql.renew_op, delivery_id=delivery_id, parts=parts, worker=worker, until=until
        )
        return await self._db.write(op, single=True)

    async def release_recipient_parts(
        self, delivery_id: str, parts: Sequence[str], *, worker: str
    ) -> None:
        if parts:
            op = partial(
                part_sql.release_op,
                delivery_id=delivery_id,
                parts=parts,
                worker=worker,
                now=time.time(),
            )
            await self._db.write(op)

    async def start_recipients(
        self, delivery_id: str, ids: Sequence[str], *, now: float, by: str | None = None
    ) -> set[str]:
        if not ids:
            return set()
        op = partial(part_sql.start_op, delivery_id=delivery_id, ids=ids, now=now, by=by)
        return await self._db.write(op, single=True)

    async def touch_recipients(self, delivery_id: str, ids: Sequence[str], *, now: float) -> int:
        if not ids:
            return 0
        op = partial(part_sql.touch_op, delivery_id=delivery_id, ids=ids, now=now)
        return await self._db.write(op, single=True)

    async def unstart_recipients(self, delivery_id: str, *, now: float) -> int:
        op = partial(part_sql.unstart_op, delivery_id=delivery_id, now=now)
        return await self._db.write(op, single=True)

    async def give_back_recipients(
        self, delivery_id: str, ids: Sequence[str], *, by: str, now: float
    ) -> int:
        if not ids:
            return 0
        op = partial(part_sql.give_back_op, delivery_id=delivery_id, ids=ids, by=by, now=now)
        return await self._db.write(op, single=True)

    async def open_recipient_parts(self, delivery_id: str) -> int:
        return await self._db.read(partial(part_sql.open_op, delivery_id=delivery_id))

    async def correction_due(self, account: str, priority: int, *, now: float) -> bool:
        op = partial(part_sql.correction_due_op, account=account, priority=priority, now=now)
        return await self._db.read(op)
