"""The one SQL store: every :class:`~alertcast.store.base.Store` method, written once.

Each method is an operation over :class:`~alertcast.store.driver.Conn` run by the engine's
driver (:mod:`alertcast.store.driver` says how and why); the SQL text is in :mod:`sql`,
:mod:`account_sql` and :mod:`followup_sql`, the rows' columns and conversions in :mod:`records`;
the per-recipient methods are :mod:`recipient_store`'s, the feed events :mod:`feed_store`'s, the
interaction windows and limit slots :mod:`limit_store`'s.
:class:`~alertcast.store.sqlite.SQLiteStore` and :class:`~alertcast.store.postgres.PostgresStore`
are this store over their driver.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from typing import Any

from alertcast.store import account_sql, followup_sql, sql
from alertcast.store.base import (
    AccountState,
    ActiveClaim,
    Applied,
    AttemptRow,
    AuditRow,
    DeliveryRow,
    IdempotencyConflict,
    IdempotencyRecord,
    IncidentRow,
    Outcome,
    Release,
    Requeue,
    StateConflict,
    Write,
)
from alertcast.store.clock import StoreClock, clock_for
from alertcast.store.driver import Conn, Driver, Op, T
from alertcast.store.feed_store import FeedMethods
from alertcast.store.limit_store import LimitMethods
from alertcast.store.recipient_store import RecipientMethods
from alertcast.store.records import (
    ACCOUNT_STATE,
    ATTEMPT,
    AUDIT,
    DELIVERY,
    IDEMPOTENCY,
    INCIDENT,
    to_json,
)

__all__ = ["SQLStore"]

DUE_SCAN = 2000  # due rows a claim reads at most to find what fits the accounts' room
FIRST_SCAN = 64  # ... and first (or four times what it may take): enough unless full accounts
Finish = tuple[DeliveryRow, AttemptRow, Outcome]


class SQLStore(RecipientMethods, FeedMethods, LimitMethods):
    """The store over one engine's :class:`~alertcast.store.driver.Driver` (its per-recipient
    methods in :class:`~alertcast.store.recipient_store.RecipientMethods`, its feed events in
    :class:`~alertcast.store.feed_store.FeedMethods`, its interaction windows and limit slots
    in :class:`~alertcast.store.limit_store.LimitMethods`)."""

    def __init__(self, driver: Driver) -> None:
        self._db = driver
        self.single_process = driver.single_process
        self.shared_clock: StoreClock = clock_for(driver)  # the limit slots' clock
        self.claim_bound_s = driver.claim_bound_s
        self._claims = _ClaimGate()  # claiming calls in flight, kept apart from a release

    def describe(self) -> str:
        return self._db.describe()

    async def open(self) -> None:
        await self._db.open()
        await self.shared_clock.start()

    async def close(self) -> None:
        await self.shared_clock.stop()
        await self._db.close()

    # -- incidents --------------------------------------------------------------------------
    async def apply(self, write: Write) -> Applied:
        notify = bool(write.deliveries or write.release or write.requeue)
        if write.taken is None:
            return await self._db.write(lambda c: _apply(c, write), notify=notify)
        return await self._claiming(lambda c: _apply(c, write), notify)

    async def get_idempotency(self, issuer: str, key: str) -> IdempotencyRecord | None:
        row = await self._one(sql.SELECT_IDEMPOTENCY, (issuer, key))
        return None if row is None else IDEMPOTENCY.from_row(row)

    async def get_incident(self, incident_id: str) -> IncidentRow | None:
        row = await self._one("SELECT * FROM incidents WHERE id = ?", (incident_id,))
        return None if row is None else INCIDENT.from_row(row)

    async def list_incidents(
        self,
        *,
        limit: int = 50,
        kind: str | None = None,
        state: str | None = None,
        status: str | None = None,
        before: float | None = None,
    ) -> list[IncidentRow]:
        query, params = sql.incidents_query(kind, state, status, before, limit)
        return [INCIDENT.from_row(r) for r in await self._all(query, params)]

    async def follow_ups(self, incident_id: str) -> list[IncidentRow]:
        query = "SELECT * FROM incidents WHERE refs = ? ORDER BY created_at"
        return [INCIDENT.from_row(r) for r in await self._all(query, (incident_id,))]

    async def get_delivery(self, delivery_id: str) -> DeliveryRow | None:
        row = await self._one(sql.SELECT_DELIVERY, (delivery_id,))
        return None if row is None else DELIVERY.from_row(row)

    async def list_deliveries(
        self,
        *,
        incident_id: str | None = None,
        state: str | None = None,
        account: str | None = None,
        limit: int = 500,
    ) -> list[DeliveryRow]:
        query, params = sql.deliveries_query(incident_id, state, account, limit)
        return [DELIVERY.from_row(r) for r in await self._all(query, params)]

    async def counts(self, incident_id: str) -> dict[str, int]:
        query = "SELECT state, COUNT(*) FROM deliveries WHERE incident_id = ? GROUP BY state"
        return {r[0]: int(r[1]) for r in await self._all(query, (incident_id,))}

    async def attempts(self, delivery_id: str) -> list[AttemptRow]:
        query = "SELECT * FROM attempts WHERE delivery_id = ? ORDER BY number"
        return [ATTEMPT.from_row(r) for r in await self._all(query, (delivery_id,))]

    # -- sending ----------------------------------------------------------------------------
    async def claim_due(
        self,
        *,
        now: float,
        limit: int,
        lease_s: float,
        worker: str,
        free: Mapping[str, int],
        waits: Mapping[str, float] | None = None,
        corrections: Mapping[str, Mapping[str, int]] | None = None,
    ) -> list[ActiveClaim]:
        async def op(c: Conn) -> list[ActiveClaim]:
            await c.execute(sql.EXPIRE_DUE.format(via=c.via("deliveries_expiring")), (now, now))
            ids = await _pick_due(c, now, limit, free, waits, corrections)
            if ids and c.locks:
                clause, params = c.any_of(ids)
                locked = await c.fetchall(sql.LOCK_CLAIMABLE.format(ids=clause), params)
                ids = [r[0] for r in locked]
            return await _claim(c, ids, worker, now + lease_s, now)

        return await self._claiming(op)

    async def finish_attempt(
        self, claim: DeliveryRow, attempt: AttemptRow, outcome: Outcome, *, worker: str = ""
    ) -> DeliveryRow:
        now = time.time()
        delivered_at, params = sql.finish_params(claim, outcome, now, worker)

        async def op(c: Conn) -> DeliveryRow:
            await c.execute(sql.INSERT_ATTEMPT, ATTEMPT.params(attempt))
            if await c.execute(sql.FINISH_DELIVERY, params) == 1:
                return sql.finished(claim, outcome, now, delivered_at)
            return DELIVERY.from_row(await c.fetchone(sql.SELECT_DELIVERY, (claim.id,)))

        return await self._db.write(op)

    async def finish_attempts(self, items: Sequence[Finish], *, worker: str) -> list[DeliveryRow]:
        if not items:
            return []
        now = time.time()
        return await self._db.write(lambda c: _finish_all(c, items, worker, now))

    async def save_progress(
        self, delivery_id: str, progress: Mapping[str, Any], *, worker: str, lease_s: float
    ) -> bool:
        now = time.time()
        params = (to_json(progress), now + lease_s, now, delivery_id, worker)
        return await self._db.write(lambda c: _touched(c, sql.SAVE_PROGRESS, params), single=True)

    async def unclaim(
        self,
        delivery_id: str,
        *,
        worker: str,
        due_at: float,
        reason: str | None = None,
        progress: Mapping[str, Any] | None = None,
    ) -> bool:
        kept = None if progress is None else to_json(progress)
        params = (due_at, reason, kept, time.time(), delivery_id, worker)
        return await self._db.write(lambda c: _touched(c, sql.UNCLAIM, params), single=True)

    async def release_lost(
        self,
        *,
        worker: str,
        held: Callable[[], Iterable[str]],
        claimed_before: float,
        now: float,
    ) -> int:
        """Once no claiming call of this store is on its way (none starts meanwhile), ``held``
        called then: a call's answer, whatever its rows' stamps, is handed before it is read."""

        async def op(c: Conn) -> int:
            if kept := sorted(set(held())):
                clause, ids = c.any_of(kept)
                query, params = sql.RELEASE_LOST.format(held=f"NOT (id {clause})"), ids
            else:
                query, params = sql.RELEASE_LOST.format(held="TRUE"), ()
            return await c.execute(query, (now, now, worker, claimed_before, *params))

        async with self._claims.releasing(), asyncio.timeout(self.claim_bound_s):
            return await self._db.write(op, single=True)  # new claims wait: not for long

    async def next_due_at(self) -> float | None:
        row = await self._one(sql.NEXT_DUE, ())
        return None if row is None or row[0] is None else float(row[0])

    async def recover(self, *, now: float, everything: bool) -> int:
        cond, extra = ("1 = 1", ()) if everything else ("lease_until < ?", (now,))

        async def op(c: Conn) -> int:
            dead = await c.execute(sql.RECOVER_DEAD.format(cond=cond), (now, *extra))
            return dead + await c.execute(sql.RECOVER_RETRY.format(cond=cond), (now, now, *extra))

        return await self._db.write(op)

    async def add_audit(self, row: AuditRow) -> None:
        await self._db.write(lambda c: c.execute(AUDIT.insert, AUDIT.params(row)), single=True)

    async def audit_trail(self, incident_id: str) -> list[AuditRow]:
        query = "SELECT * FROM audit WHERE incident_id = ? ORDER BY at"
        return [AUDIT.from_row(r) for r in await self._all(query, (incident_id,))]

    # -- account state (issue 15) -----------------------------------------------------------
    async def account_states(self) -> dict[str, AccountState]:
        rows = await self._all(account_sql.SELECT_STATES, ())
        return {r["account"]: ACCOUNT_STATE.from_row(r) for r in rows}

    async def put_account_state(self, state: AccountState) -> None:
        params = ACCOUNT_STATE.params(state)
        await self._db.write(lambda c: c.execute(account_sql.PUT_STATE, params), single=True)

    async def claim_spent(
        self,
        *,
        accounts: Sequence[str],
        now: float,
        limit: int,
        lease_s: float,
        worker: str,
        corrections: Sequence[str] = (),
    ) -> list[ActiveClaim]:
        if not (accounts or corrections) or limit <= 0:
            return []

        async def op(c: Conn) -> list[ActiveClaim]:
            lock = " FOR UPDATE OF d SKIP LOCKED" if c.locks else ""
            query = account_sql.spent_alerts(accounts, now, limit, lock, corrections)
            ids = [r[0] for r in await c.fetchall(*query)]
            if not ids:
                return []
            await c.execute(*account_sql.claim_spent(ids, worker, lease_s, now))
            return [sql.claim_from(r) for r in await c.fetchall(*account_sql.claimed(ids))]

        return await self._claiming(op)

    # -- plumbing ---------------------------------------------------------------------------
    async def _claiming(self, op: Op[T], notify: bool = False) -> T:
        """A write that claims rows: answered within ``claim_bound_s`` of its start, or failed
        (its connection ended), and never while a :meth:`release_lost` runs (``_ClaimGate``),
        so a release sees every answer that came."""
        bound = self.claim_bound_s
        if bound is None:
            return await self._db.write(op, notify=notify)
        within = asyncio.timeout(bound)
        try:
            async with self._claims.claiming(), within:
                return await self._db.write(op, notify=notify)
        except TimeoutError as exc:
            if within.expired():  # not a statement's own bound: the whole call's
                raise TimeoutError(f"the store did not answer a claim within {bound:g} s") from exc
            raise

    async def _one(self, query: str, params: Sequence[Any]) -> Any:
        return await self._db.read(lambda c: c.fetchone(query, params))

    async def _all(self, query: str, params: Sequence[Any]) -> list[Any]:
        return await self._db.read(lambda c: c.fetchall(query, params))


async def _touched(c: Conn, query: str, params: Sequence[Any]) -> bool:
    return await c.execute(query, params) == 1


async def _pick_due(
    c: Conn,
    now: float,
    limit: int,
    free: Mapping[str, int],
    waits: Mapping[str, float] | None,
    corrections: Mapping[str, Mapping[str, int]] | None,
) -> list[str]:
    """The due ids a claim takes, in order, within each account's room: the head of the due
    index first; only when accounts at their limit filled it, the deeper scan (DUE_SCAN)."""
    deepest = max(limit, DUE_SCAN)
    page = min(max(FIRST_SCAN, 4 * limit), deepest)
    while True:
        due = await _due(c, now, page, waits)
        ids = sql.pick_within_capacity(
            [(r[0], r[1], r[2], r[3]) for r in due], free, limit, corrections
        )
        if len(ids) >= limit or len(due) < page or page >= deepest:
            return ids
        page = deepest


async def _due(c: Conn, now: float, n: int, waits: Mapping[str, float] | None) -> list[Any]:
    """Up to ``n`` due rows, the highest priority first, then the oldest due: one range of the
    due index per priority level there is (a few: alerts, updates, cancellations)."""
    via, below = c.via("deliveries_due"), sql.PRIORITY_CEILING
    rows: list[Any] = []
    while len(rows) < n:
        top = await c.fetchone(sql.NEXT_PRIORITY.format(via=via), (below,))
        if top is None or top[0] is None:
            return rows
        below = int(top[0])
        rows += await c.fetchall(*sql.select_due(now, below, n - len(rows), waits, via))
    return rows


async def _claim(
    c: Conn, ids: Sequence[str], worker: str, lease_until: float, now: float
) -> list[ActiveClaim]:
    """Mark ``ids`` ``sending`` for ``worker`` (one more attempt) and read them as claims."""
    if not ids:
        return []
    clause, params = c.any_of(ids)
    await c.execute(sql.CLAIM.format(ids=clause), (worker, lease_until, now, *params))
    rows = await c.fetchall(sql.SELECT_CLAIMED.format(ids=clause), params)
    return [sql.claim_from(r) for r in rows]


async def _finish_all(
    c: Conn, items: Sequence[Finish], worker: str, now: float
) -> list[DeliveryRow]:
    """Every attempt recorded, and each delivery ``worker`` still holds finished, as
    :meth:`SQLStore.finish_attempt` would one by one; the others are read as stored."""
    await c.executemany(sql.INSERT_ATTEMPT, [ATTEMPT.params(a) for _, a, _ in items])
    ids = sorted({claim.id for claim, _, _ in items})
    clause, params = c.any_of(ids)
    held_sql = sql.HELD.format(ids=clause) + (" ORDER BY id FOR UPDATE" if c.locks else "")
    held = {r[0] for r in await c.fetchall(held_sql, (*params, worker))}
    done: list[DeliveryRow | None] = []
    updates: list[tuple[Any, ...]] = []
    for claim, _, outcome in items:
        if claim.id not in held:  # lost, or finished earlier in this batch
            done.append(None)
            continue
        held.discard(claim.id)
        delivered_at, params = sql.finish_params(claim, outcome, now, worker)
        updates.append(params)
        done.append(sql.finished(claim, outcome, now, delivered_at))
    if updates:
        await c.executemany(sql.FINISH_DELIVERY, updates)
    return await _fill_lost(c, [claim for claim, _, _ in items], done)


async def _fill_lost(
    c: Conn, claims: Sequence[DeliveryRow], done: Sequence[DeliveryRow | None]
) -> list[DeliveryRow]:
    """``done``, each gap filled with the delivery as stored."""
    lost = sorted({claim.id for claim, row in zip(claims, done, strict=True) if row is None})
    stored: dict[str, DeliveryRow] = {}
    if lost:
        clause, params = c.any_of(lost)
        rows = await c.fetchall(f"SELECT * FROM deliveries WHERE id {clause}", params)
        stored = {r["id"]: DELIVERY.from_row(r) for r in rows}
    return [
        stored[claim.id] if row is None else row for claim, row in zip(claims, done, strict=True)
    ]


async def _apply(c: Conn, w: Write) -> Applied:
    now = sql.write_time(w)
    if w.idempotency is not None:
        await _claim_key(c, w.idempotency)
    if w.incident is not None:
        await c.execute(INCIDENT.insert, INCIDENT.params(w.incident))
    owner = w.incident.id if w.incident is not None else w.attach_to
    if w.deliveries and owner is not None:
        insert = sql.INSERT_DELIVERY + (sql.IF_NEW if w.incident is None else "")
        await c.executemany(insert, sql.deliveries_params(owner, w.deliveries, now, w.taken))
    for effect in [
        *sql.effect_statements(w.effects, now),
        *followup_sql.effect_statements(w.effects, now),
    ]:
        effect.check(await c.execute(effect.statement, effect.params))
    released = await _release(c, w.release, now) if w.release is not None else 0
    requeued = await _requeue(c, w.requeue, now) if w.requeue is not None else None
    if w.audit:
        await c.executemany(AUDIT.insert, [AUDIT.params(a) for a in w.audit])
    claims = sql.taken_claims(w.incident, w.deliveries, w.taken) if w.incident else []
    return Applied(released, requeued, claims)


async def _claim_key(c: Conn, record: IdempotencyRecord) -> None:
    if await c.execute(IDEMPOTENCY.insert + sql.NOTHING, IDEMPOTENCY.params(record)) == 0:
        first = await c.fetchone(sql.SELECT_IDEMPOTENCY, (record.issuer, record.key))
        raise IdempotencyConflict(IDEMPOTENCY.from_row(first))


async def _release(c: Conn, r: Release, now: float) -> int:
    if (unseen := sql.unseen_statement(r)) is not None:
        count = await c.fetchone(*unseen)  # COUNT(*): always one row
        sql.unseen_conflict(r, int(count[0]) if count is not None else 0)
    (approve, approve_params), (due, due_params) = sql.release_statements(r, now)
    sql.release_conflict(r, await c.execute(approve, approve_params))
    return await c.execute(due, due_params)


async def _requeue(c: Conn, r: Requeue, now: float) -> DeliveryRow:
    if await c.execute(sql.REQUEUE, (now, r.budget, now, r.delivery_id)) == 0:
        raise StateConflict(f"delivery {r.delivery_id} cannot be retried")
    return DELIVERY.from_row(await c.fetchone(sql.SELECT_DELIVERY, (r.delivery_id,)))


class _ClaimGate:
    """This store's claiming calls in flight, and a release that runs while none is: a
    release waits for those on their way (each ends within its bound) and holds new ones
    back until it is done, so no answer can be handed while it decides what is held."""

    def __init__(self) -> None:
        self._flying = 0
        self._idle = asyncio.Event()  # no claiming call in flight
        self._open = asyncio.Event()  # no release running
        self._idle.set()
        self._open.set()

    @contextlib.asynccontextmanager
    async def claiming(self) -> AsyncIterator[None]:
        while not self._open.is_set():
            await self._open.wait()
        self._flying += 1
        self._idle.clear()
        try:
            yield
        finally:  # no await here: the caller acts on the answer before a release resumes
            self._flying -= 1
            if not self._flying:
                self._idle.set()

    @contextlib.asynccontextmanager
    async def releasing(self) -> AsyncIterator[None]:
        while not self._open.is_set():
            await self._open.wait()
        self._open.clear()
        try:
            if not self._idle.is_set():
                await self._idle.wait()
            yield
        finally:
            self._open.set()
