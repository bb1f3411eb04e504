"""PostgreSQL engine: several replicas share one database.

Deliveries are claimed with ``FOR UPDATE SKIP LOCKED`` so replicas never take the same row;
a claim carries a lease, and a replica that dies leaves rows that any other replica sweeps back
when the lease runs out. New work is announced with ``NOTIFY alertcast_due`` so every replica's
dispatcher wakes at once instead of waiting for its next poll.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg

from alertcast.store import feed_sql, interaction_sql, sql
from alertcast.store.account_sql import (
    PUT_STATE,
    SELECT_STATES,
    claim_spent,
    claimed,
    spent_alerts,
    state_from,
    state_params,
)
from alertcast.store.base import (
    AccountState,
    ActiveClaim,
    Applied,
    AttemptRow,
    AuditRow,
    DeliveryRow,
    FeedEventRow,
    IdempotencyConflict,
    IdempotencyRecord,
    IncidentRow,
    InWindow,
    Outcome,
    Release,
    Requeue,
    StateConflict,
    Write,
)

__all__ = ["PostgresStore"]

CHANNEL = "alertcast_due"
DUE_SCAN = 2000
N = sql.numbered


def _split_schema(url: str) -> tuple[str, str | None]:
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    schema = query.pop("schema", None)
    return urlunsplit(parts._replace(query=urlencode(query))), schema


class PostgresStore:
    single_process = False

    def __init__(
        self,
        url: str,
        *,
        min_size: int = 2,
        max_size: int = 10,
        on_due: Callable[[], None] | None = None,
    ) -> None:
        self.url, self.schema = _split_schema(url)
        self._sizes = (min_size, max_size)
        self._pool: asyncpg.Pool | None = None
        self._listener: asyncpg.Connection | None = None
        self._on_due = on_due  # another replica stored due work (LISTEN/NOTIFY)

    def describe(self) -> str:
        parts = urlsplit(self.url)
        return f"postgresql://{parts.hostname}:{parts.port or 5432}{parts.path}"

    async def open(self) -> None:
        settings = {"search_path": self.schema} if self.schema else {}
        if self.schema:
            conn = await asyncpg.connect(self.url)
            try:
                await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')
            finally:
                await conn.close()
        self._pool = await asyncpg.create_pool(
            self.url, min_size=self._sizes[0], max_size=self._sizes[1], server_settings=settings
        )
        await self._migrate()
        self._listener = await asyncpg.connect(self.url, server_settings=settings)
        await self._listener.add_listener(CHANNEL, self._notified)

    async def close(self) -> None:
        if self._listener is not None:
            await self._listener.close()
        if self._pool is not None:
            await self._pool.close()

    def _notified(self, *_: Any) -> None:
        if self._on_due is not None:
            self._on_due()

    @property
    def pool(self) -> asyncpg.Pool:
        assert self._pool is not None, "store is not open"
        return self._pool

    async def _migrate(self) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(7401955)")
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations "
                "(version INTEGER PRIMARY KEY, applied_at DOUBLE PRECISION)"
            )
            done = {r[0] for r in await conn.fetch("SELECT version FROM schema_migrations")}
            for version, script in sql.migrations():
                if version not in done:
                    await conn.execute(script)
                    await conn.execute(
                        "INSERT INTO schema_migrations VALUES ($1, $2)", version, time.time()
                    )

    # -- incidents --------------------------------------------------------------------------
    async def apply(self, write: Write) -> Applied:
        async with self.pool.acquire() as conn, conn.transaction():
            applied = await _apply(conn, write)
            if write.deliveries or write.release or write.requeue:
                await conn.execute(f"NOTIFY {CHANNEL}")
        return applied

    async def get_idempotency(self, issuer: str, key: str) -> IdempotencyRecord | None:
        row = await self.pool.fetchrow(
            "SELECT * FROM idempotency_keys WHERE issuer = $1 AND key = $2", issuer, key
        )
        return None if row is None else sql.idempotency_from(row)

    async def get_incident(self, incident_id: str) -> IncidentRow | None:
        row = await self.pool.fetchrow("SELECT * FROM incidents WHERE id = $1", incident_id)
        return None if row is None else sql.incident_from(row)

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
        return [sql.incident_from(r) for r in await self.pool.fetch(N(query), *params)]

    async def follow_ups(self, incident_id: str) -> list[IncidentRow]:
        rows = await self.pool.fetch(
            "SELECT * FROM incidents WHERE refs = $1 ORDER BY created_at", incident_id
        )
        return [sql.incident_from(r) for r in rows]

    async def get_delivery(self, delivery_id: str) -> DeliveryRow | None:
        row = await self.pool.fetchrow("SELECT * FROM deliveries WHERE id = $1", delivery_id)
        return None if row is None else sql.delivery_from(row)

    async def list_deliveries(
        self,
        *,
        incident_id: str | None = None,
        state: str | None = None,
        account: str | None = None,
        limit: int = 500,
    ) -> list[DeliveryRow]:
        query, params = sql.deliveries_query(incident_id, state, account, limit)
        return [sql.delivery_from(r) for r in await self.pool.fetch(N(query), *params)]

    async def counts(self, incident_id: str) -> dict[str, int]:
        rows = await self.pool.fetch(
            "SELECT state, COUNT(*) FROM deliveries WHERE incident_id = $1 GROUP BY state",
            incident_id,
        )
        return {r[0]: int(r[1]) for r in rows}

    async def attempts(self, delivery_id: str) -> list[AttemptRow]:
        rows = await self.pool.fetch(
            "SELECT * FROM attempts WHERE delivery_id = $1 ORDER BY number", delivery_id
        )
        return [sql.attempt_from(r) for r in rows]

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
        query, params = sql.select_due(now, max(limit, DUE_SCAN), waits)
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(N(sql.EXPIRE_DUE), now, now)
            due = await conn.fetch(N(query), *params)
            wanted = sql.pick_within_capacity(
                [(r[0], r[1], r[2], r[3]) for r in due], free, limit, corrections
            )
            # Lock only what we take; rows another replica holds (or just took) are skipped.
            ids = [
                r[0]
                for r in await conn.fetch(
                    "SELECT id FROM deliveries WHERE id = ANY($1::text[]) "
                    "AND state IN ('pending', 'retrying') FOR UPDATE SKIP LOCKED",
                    wanted,
                )
            ]
            if not ids:
                return []
            await conn.execute(
                "UPDATE deliveries SET state = 'sending', attempts = attempts + 1, "
                "claimed_by = $1, lease_until = $2, updated_at = $3 WHERE id = ANY($4::text[])",
                worker,
                now + lease_s,
                now,
                ids,
            )
            marks = ", ".join("?" * len(ids))
            rows = await conn.fetch(N(sql.SELECT_CLAIMED.format(ids=marks)), *ids)
        return [sql.claim_from(r) for r in rows]

    async def finish_attempt(
        self, claim: DeliveryRow, attempt: AttemptRow, outcome: Outcome, *, worker: str = ""
    ) -> DeliveryRow:
        now = time.time()
        delivered_at = now if outcome.state.value == "delivered" else claim.delivered_at
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(
                N(sql.INSERT_ATTEMPT) + " ON CONFLICT DO NOTHING", *sql.attempt_params(attempt)
            )
            status = await conn.execute(
                N(sql.FINISH_DELIVERY),
                outcome.state.value,
                outcome.next_attempt_at,
                outcome.last_error,
                outcome.remote_id,
                delivered_at,
                outcome.reason,
                None if outcome.progress is None else sql.dumps(outcome.progress),
                now,
                claim.id,
                worker,
            )
            if _count(status) == 1:
                return sql.finished(claim, outcome, now, delivered_at)
            row = await conn.fetchrow("SELECT * FROM deliveries WHERE id = $1", claim.id)
        return sql.delivery_from(row)

    async def save_progress(
        self, delivery_id: str, progress: Mapping[str, Any], *, worker: str, lease_s: float
    ) -> bool:
        now = time.time()
        status = await self.pool.execute(
            N(sql.SAVE_PROGRESS), sql.dumps(progress), now + lease_s, now, delivery_id, worker
        )
        return _count(status) == 1

    async def next_due_at(self) -> float | None:
        value = await self.pool.fetchval(sql.NEXT_DUE)
        return None if value is None else float(value)

    async def recover(self, *, now: float, everything: bool) -> int:
        cond, extra = ("1 = 1", ()) if everything else ("lease_until < ?", (now,))
        async with self.pool.acquire() as conn, conn.transaction():
            dead = await conn.execute(N(sql.RECOVER_DEAD.format(cond=cond)), now, *extra)
            retry = await conn.execute(N(sql.RECOVER_RETRY.format(cond=cond)), now, now, *extra)
        return _count(dead) + _count(retry)

    async def add_audit(self, row: AuditRow) -> None:
        await self.pool.execute(N(sql.INSERT_AUDIT), *sql.audit_params(row))

    async def audit_trail(self, incident_id: str) -> list[AuditRow]:
        rows = await self.pool.fetch(
            "SELECT * FROM audit WHERE incident_id = $1 ORDER BY at", incident_id
        )
        return [sql.audit_from(r) for r in rows]

    # -- account state (issue 15) -----------------------------------------------------------
    async def account_states(self) -> dict[str, AccountState]:
        rows = await self.pool.fetch(SELECT_STATES)
        return {r["account"]: state_from(r) for r in rows}

    async def put_account_state(self, state: AccountState) -> None:
        await self.pool.execute(N(PUT_STATE), *state_params(state))

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
        lock = " FOR UPDATE OF d SKIP LOCKED"
        query, params = spent_alerts(accounts, now, limit, lock, corrections)
        async with self.pool.acquire() as conn, conn.transaction():
            ids = [r[0] for r in await conn.fetch(N(query), *params)]
            if not ids:
                return []
            update, values = claim_spent(ids, worker, lease_s, now)
            await conn.execute(N(update), *values)
            select, keys = claimed(ids)
            rows = await conn.fetch(N(select), *keys)
        return [sql.claim_from(r) for r in rows]

    # -- feed events (issue 5) --------------------------------------------------------------
    async def get_feed_event(self, feed: str, event_id: str) -> FeedEventRow | None:
        row = await self.pool.fetchrow(N(feed_sql.GET_EVENT), feed, event_id)
        return None if row is None else feed_sql.event_from(row)

    async def feed_events(
        self,
        feed: str,
        *,
        ids: Sequence[str],
        between: tuple[float, float] | None = None,
    ) -> list[FeedEventRow]:
        query = N(feed_sql.candidates(len(ids), between is not None))
        rows = await self.pool.fetch(query, *feed_sql.candidate_params(feed, ids, between))
        return [feed_sql.event_from(r) for r in rows]

    async def live_feed_events(self, feed: str, *, since: float) -> list[FeedEventRow]:
        rows = await self.pool.fetch(N(feed_sql.SELECT_LIVE), feed, since)
        return [feed_sql.event_from(r) for r in rows]

    async def put_feed_event(
        self, row: FeedEventRow, *, takeover: Sequence[str] = (), now: float
    ) -> bool:
        try:
            async with self.pool.acquire() as conn, conn.transaction():
                had = await self._put_event(conn, row, now)
                held = await conn.fetch(N(feed_sql.mapped_ids(len(row.ids))), row.feed, *row.ids)
                mapped = {r[0]: r[1] for r in held}
                inserts, moves = feed_sql.id_changes(row, mapped, takeover, had)
                for params in inserts:  # a concurrent writer's id makes the insert a no-op
                    status = await conn.execute(N(feed_sql.INSERT_ID) + _NOTHING, *params)
                    _must_touch(status, f"id {params[1]} was taken concurrently")
                for move in moves:
                    _must_touch(await conn.execute(N(feed_sql.MOVE_ID), *move), "id moved")
        except feed_sql.Lost:
            return False
        return True

    async def _put_event(
        self, conn: asyncpg.Connection, row: FeedEventRow, now: float
    ) -> tuple[str, ...]:
        """Insert or update the event row; the ids its stored version held."""
        if row.version == 0:
            query = N(feed_sql.INSERT_EVENT) + _NOTHING
            status = await conn.execute(query, *feed_sql.insert_params(row, now))
            _must_touch(status, f"event {row.event_id} was inserted concurrently")
            return ()
        key = (row.feed, row.event_id, row.version)
        had = feed_sql.stored_ids(await conn.fetchrow(N(feed_sql.STORED_IDS), *key))
        status = await conn.execute(N(feed_sql.UPDATE_EVENT), *feed_sql.update_params(row, now))
        _must_touch(status, f"event {row.event_id} changed concurrently")
        return had

    async def prune_feed_events(self, feed: str, *, before: float, idle_since: float) -> int:
        params = (feed, before, idle_since)
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(N(feed_sql.PRUNE_IDS), feed, *params)
            return _count(await conn.execute(N(feed_sql.PRUNE_EVENTS), *params))

    # -- interaction windows (issue 11) -----------------------------------------------------
    async def note_interaction(self, account: str, openid: str, kind: str, at: float) -> None:
        statement, params = interaction_sql.note_statement(account, openid, kind, at)
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(N(statement), *params)
            await conn.execute(N(interaction_sql.PRUNE), *interaction_sql.prune_params(account, at))

    async def window(
        self, account: str, *, now: float, limit: int, after: str = ""
    ) -> list[InWindow]:
        params = interaction_sql.window_params(account, now, limit, after)
        rows = await self.pool.fetch(N(interaction_sql.WINDOW), *params)
        return [interaction_sql.in_window(r, now) for r in rows]

    async def note_custom_sent(self, account: str, openids: Sequence[str], *, at: float) -> None:
        rows = interaction_sql.sent_params(account, openids, at)
        if rows:
            await self.pool.executemany(N(interaction_sql.NOTE_SENT), rows)


def _count(status: str) -> int:
    """Rows touched, from asyncpg's command tag (``UPDATE 3``)."""
    return int(status.rsplit(" ", 1)[-1])


_NOTHING = " ON CONFLICT DO NOTHING"


def _must_touch(status: str, why: str) -> None:
    """A feed-event write that touched no row lost a race: :class:`feed_sql.Lost`."""
    if _count(status) == 0:
        raise feed_sql.Lost(why)


async def _apply(conn: asyncpg.Connection, w: Write) -> Applied:
    now = sql.write_time(w)
    if w.idempotency is not None:
        await _claim_key(conn, w.idempotency)
    if w.incident is not None:
        await conn.execute(N(sql.INSERT_INCIDENT), *sql.incident_params(w.incident))
    owner = w.incident.id if w.incident is not None else w.attach_to
    if w.deliveries and owner is not None:
        insert = sql.INSERT_DELIVERY + (sql.IF_NEW if w.incident is None else "")
        await conn.executemany(N(insert), sql.deliveries_params(owner, w.deliveries, now, w.taken))
    for effect in sql.effect_statements(w.effects, now):
        effect.check(_count(await conn.execute(N(effect.statement), *effect.params)))
    released = await _release(conn, w.release, now) if w.release is not None else 0
    requeued = await _requeue(conn, w.requeue, now) if w.requeue is not None else None
    if w.audit:
        await conn.executemany(N(sql.INSERT_AUDIT), [sql.audit_params(a) for a in w.audit])
    claims = sql.taken_claims(w.incident, w.deliveries, w.taken) if w.incident else []
    return Applied(released, requeued, claims)


async def _claim_key(conn: asyncpg.Connection, record: IdempotencyRecord) -> None:
    inserted = await conn.fetchval(
        N(sql.INSERT_IDEMPOTENCY) + " ON CONFLICT DO NOTHING RETURNING 1",
        *sql.idempotency_params(record),
    )
    if inserted is None:
        first = await conn.fetchrow(
            "SELECT * FROM idempotency_keys WHERE issuer = $1 AND key = $2",
            record.issuer,
            record.key,
        )
        raise IdempotencyConflict(sql.idempotency_from(first))


async def _release(conn: asyncpg.Connection, r: Release, now: float) -> int:
    if (unseen := sql.unseen_statement(r)) is not None:
        sql.unseen_conflict(r, int(await conn.fetchval(N(unseen[0]), *unseen[1])))
    (approve, approve_params), (due, due_params) = sql.release_statements(r, now)
    sql.release_conflict(r, _count(await conn.execute(N(approve), *approve_params)))
    return _count(await conn.execute(N(due), *due_params))


async def _requeue(conn: asyncpg.Connection, r: Requeue, now: float) -> DeliveryRow:
    status = await conn.execute(N(sql.REQUEUE), now, r.budget, now, r.delivery_id)
    if _count(status) == 0:
        raise StateConflict(f"delivery {r.delivery_id} cannot be retried")
    row = await conn.fetchrow("SELECT * FROM deliveries WHERE id = $1", r.delivery_id)
    return sql.delivery_from(row)
