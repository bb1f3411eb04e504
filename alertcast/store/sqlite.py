"""SQLite engine: WAL, one serialised writer with group commit, one reader.

Writes queue up and run on a dedicated thread; every write waiting at that moment shares one
transaction (one ``fsync`` with ``synchronous=FULL``), each inside its own savepoint so one
failing write never takes its neighbours down. A write's future resolves only after COMMIT:
what the API acknowledges is on disk. Reads use a second connection on another thread and see
every committed write (WAL).

One process owns a store: :meth:`SQLiteStore.open` takes an exclusive ``flock`` on
``<database>.lock`` before it touches the database, and holds it until :meth:`close` (the kernel
drops it when the process dies, ``kill -9`` included). A second daemon on the same file is
refused with :class:`~alertcast.store.base.StoreInUse` before it reads or recovers anything.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import sqlite3
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

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
    StoreInUse,
    Write,
)

__all__ = ["SQLiteStore"]

T = TypeVar("T")
Op = Callable[[sqlite3.Connection], Any]
MAX_BATCH = 512
DUE_SCAN = 2000


class SQLiteStore:
    single_process = True

    def __init__(self, path: str | Path, *, synchronous: str = "FULL") -> None:
        self.path = str(path)
        self._synchronous = synchronous
        self._wexec = ThreadPoolExecutor(1, thread_name_prefix="sqlite-w")
        self._rexec = ThreadPoolExecutor(1, thread_name_prefix="sqlite-r")
        self._queue: asyncio.Queue[tuple[Op, asyncio.Future[Any]]] = asyncio.Queue()
        self._writer: asyncio.Task[None] | None = None
        self._w: sqlite3.Connection | None = None
        self._r: sqlite3.Connection | None = None
        self._lock: int | None = None  # the fd holding <database>.lock

    def describe(self) -> str:
        return f"sqlite:{self.path}"

    # -- life -------------------------------------------------------------------------------
    async def open(self) -> None:
        self._lock = _hold_lock(self.path)
        loop = asyncio.get_running_loop()
        try:
            self._w = await loop.run_in_executor(self._wexec, self._connect, True)
            await loop.run_in_executor(self._wexec, _migrate, self._w)
            self._r = await loop.run_in_executor(self._rexec, self._connect, False)
        except BaseException:
            self._release_lock()
            raise
        self._writer = asyncio.create_task(self._write_loop(), name="sqlite-writer")

    async def close(self) -> None:
        if self._writer is not None:
            await self._queue.join()
            self._writer.cancel()
            await asyncio.gather(self._writer, return_exceptions=True)
        loop = asyncio.get_running_loop()
        for conn, pool in ((self._w, self._wexec), (self._r, self._rexec)):
            if conn is not None:
                await loop.run_in_executor(pool, conn.close)
            pool.shutdown(wait=True)
        self._release_lock()

    def _release_lock(self) -> None:
        if self._lock is not None:
            os.close(self._lock)  # closing the last descriptor drops the flock
            self._lock = None

    def _connect(self, writer: bool) -> sqlite3.Connection:
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA busy_timeout = 10000")
        if writer:
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute(f"PRAGMA synchronous = {self._synchronous}")
            conn.execute("PRAGMA foreign_keys = ON")
        return conn

    # -- plumbing ---------------------------------------------------------------------------
    async def _write(self, op: Callable[[sqlite3.Connection], T]) -> T:
        fut: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        await self._queue.put((op, fut))
        return await fut

    async def _read(self, op: Callable[[sqlite3.Connection], T]) -> T:
        assert self._r is not None, "store is not open"
        return await asyncio.get_running_loop().run_in_executor(self._rexec, op, self._r)

    async def _write_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = [await self._queue.get()]
            while len(batch) < MAX_BATCH and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                assert self._w is not None
                results = await loop.run_in_executor(self._wexec, _run_batch, self._w, batch)
            except Exception as exc:  # COMMIT itself failed: nothing of the batch is stored
                results = [(fut, None, exc) for _, fut in batch]
            for fut, value, error in results:
                if not fut.done():
                    fut.set_exception(error) if error else fut.set_result(value)
                self._queue.task_done()

    # -- incidents --------------------------------------------------------------------------
    async def apply(self, write: Write) -> Applied:
        return await self._write(lambda c: _apply(c, write))

    async def get_idempotency(self, issuer: str, key: str) -> IdempotencyRecord | None:
        row = await self._read(
            lambda c: _one(
                c, "SELECT * FROM idempotency_keys WHERE issuer = ? AND key = ?", (issuer, key)
            )
        )
        return None if row is None else sql.idempotency_from(row)

    async def get_incident(self, incident_id: str) -> IncidentRow | None:
        row = await self._read(
            lambda c: _one(c, "SELECT * FROM incidents WHERE id = ?", (incident_id,))
        )
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
        rows = await self._read(lambda c: c.execute(query, params).fetchall())
        return [sql.incident_from(r) for r in rows]

    async def follow_ups(self, incident_id: str) -> list[IncidentRow]:
        rows = await self._read(
            lambda c: c.execute(
                "SELECT * FROM incidents WHERE refs = ? ORDER BY created_at", (incident_id,)
            ).fetchall()
        )
        return [sql.incident_from(r) for r in rows]

    async def get_delivery(self, delivery_id: str) -> DeliveryRow | None:
        row = await self._read(
            lambda c: _one(c, "SELECT * FROM deliveries WHERE id = ?", (delivery_id,))
        )
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
        rows = await self._read(lambda c: c.execute(query, params).fetchall())
        return [sql.delivery_from(r) for r in rows]

    async def counts(self, incident_id: str) -> dict[str, int]:
        rows = await self._read(
            lambda c: c.execute(
                "SELECT state, COUNT(*) FROM deliveries WHERE incident_id = ? GROUP BY state",
                (incident_id,),
            ).fetchall()
        )
        return {r[0]: r[1] for r in rows}

    async def attempts(self, delivery_id: str) -> list[AttemptRow]:
        rows = await self._read(
            lambda c: c.execute(
                "SELECT * FROM attempts WHERE delivery_id = ? ORDER BY number", (delivery_id,)
            ).fetchall()
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
        def op(c: sqlite3.Connection) -> list[ActiveClaim]:
            c.execute(sql.EXPIRE_DUE, (now, now))
            due = c.execute(*sql.select_due(now, max(limit, DUE_SCAN), waits)).fetchall()
            ids = sql.pick_within_capacity(
                [(r[0], r[1], r[2], r[3]) for r in due], free, limit, corrections
            )
            if not ids:
                return []
            marks = ", ".join("?" * len(ids))
            c.execute(
                f"UPDATE deliveries SET state = 'sending', attempts = attempts + 1, "
                f"claimed_by = ?, lease_until = ?, updated_at = ? WHERE id IN ({marks})",
                (worker, now + lease_s, now, *ids),
            )
            rows = c.execute(sql.SELECT_CLAIMED.format(ids=marks), ids).fetchall()
            return [sql.claim_from(r) for r in rows]

        return await self._write(op)

    async def finish_attempt(
        self, claim: DeliveryRow, attempt: AttemptRow, outcome: Outcome, *, worker: str = ""
    ) -> DeliveryRow:
        now = time.time()
        delivered_at = now if outcome.state.value == "delivered" else claim.delivered_at

        def op(c: sqlite3.Connection) -> DeliveryRow:
            c.execute(
                sql.INSERT_ATTEMPT.replace("INSERT", "INSERT OR IGNORE", 1),
                sql.attempt_params(attempt),
            )
            done = c.execute(
                sql.FINISH_DELIVERY,
                (
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
                ),
            )
            if done.rowcount == 1:
                return sql.finished(claim, outcome, now, delivered_at)
            return sql.delivery_from(_one(c, "SELECT * FROM deliveries WHERE id = ?", (claim.id,)))

        return await self._write(op)

    async def save_progress(
        self, delivery_id: str, progress: Mapping[str, Any], *, worker: str, lease_s: float
    ) -> bool:
        now, data = time.time(), sql.dumps(progress)

        def op(c: sqlite3.Connection) -> bool:
            params = (data, now + lease_s, now, delivery_id, worker)
            return c.execute(sql.SAVE_PROGRESS, params).rowcount == 1

        return await self._write(op)

    async def next_due_at(self) -> float | None:
        row = await self._read(lambda c: c.execute(sql.NEXT_DUE).fetchone())
        return None if row is None or row[0] is None else float(row[0])

    async def recover(self, *, now: float, everything: bool) -> int:
        cond = "1 = 1" if everything else "lease_until < ?"
        extra: tuple[Any, ...] = () if everything else (now,)

        def op(c: sqlite3.Connection) -> int:
            dead = c.execute(sql.RECOVER_DEAD.format(cond=cond), (now, *extra)).rowcount
            retry = c.execute(sql.RECOVER_RETRY.format(cond=cond), (now, now, *extra)).rowcount
            return int(dead + retry)

        return await self._write(op)

    async def add_audit(self, row: AuditRow) -> None:
        await self._write(lambda c: c.execute(sql.INSERT_AUDIT, sql.audit_params(row)))

    async def audit_trail(self, incident_id: str) -> list[AuditRow]:
        rows = await self._read(
            lambda c: c.execute(
                "SELECT * FROM audit WHERE incident_id = ? ORDER BY at", (incident_id,)
            ).fetchall()
        )
        return [sql.audit_from(r) for r in rows]

    # -- account state (issue 15) -----------------------------------------------------------
    async def account_states(self) -> dict[str, AccountState]:
        rows = await self._read(lambda c: c.execute(SELECT_STATES).fetchall())
        return {r["account"]: state_from(r) for r in rows}

    async def put_account_state(self, state: AccountState) -> None:
        params = state_params(state)
        await self._write(lambda c: c.execute(PUT_STATE, params))

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
        query = spent_alerts(accounts, now, limit, corrections=corrections)

        def op(c: sqlite3.Connection) -> list[ActiveClaim]:
            ids = [r[0] for r in c.execute(*query).fetchall()]
            if not ids:
                return []
            c.execute(*claim_spent(ids, worker, lease_s, now))
            return [sql.claim_from(r) for r in c.execute(*claimed(ids)).fetchall()]

        return await self._write(op)

    # -- feed events (issue 5) --------------------------------------------------------------
    async def get_feed_event(self, feed: str, event_id: str) -> FeedEventRow | None:
        row = await self._read(lambda c: _one(c, feed_sql.GET_EVENT, (feed, event_id)))
        return None if row is None else feed_sql.event_from(row)

    async def feed_events(
        self,
        feed: str,
        *,
        ids: Sequence[str],
        between: tuple[float, float] | None = None,
    ) -> list[FeedEventRow]:
        query = feed_sql.candidates(len(ids), between is not None)
        params = feed_sql.candidate_params(feed, ids, between)
        rows = await self._read(lambda c: c.execute(query, params).fetchall())
        return [feed_sql.event_from(r) for r in rows]

    async def live_feed_events(self, feed: str, *, since: float) -> list[FeedEventRow]:
        rows = await self._read(lambda c: c.execute(feed_sql.SELECT_LIVE, (feed, since)).fetchall())
        return [feed_sql.event_from(r) for r in rows]

    async def put_feed_event(
        self, row: FeedEventRow, *, takeover: Sequence[str] = (), now: float
    ) -> bool:
        def op(c: sqlite3.Connection) -> None:
            had = _put_feed_event(c, row, now)
            held = c.execute(feed_sql.mapped_ids(len(row.ids)), (row.feed, *row.ids)).fetchall()
            mapped = {r[0]: r[1] for r in held}
            inserts, moves = feed_sql.id_changes(row, mapped, takeover, had)
            c.executemany(feed_sql.INSERT_ID, inserts)
            c.executemany(feed_sql.MOVE_ID, moves)

        try:
            await self._write(op)
        except feed_sql.Lost:
            return False
        return True

    async def prune_feed_events(self, feed: str, *, before: float, idle_since: float) -> int:
        params = (feed, before, idle_since)

        def op(c: sqlite3.Connection) -> int:
            c.execute(feed_sql.PRUNE_IDS, (feed, *params))
            return int(c.execute(feed_sql.PRUNE_EVENTS, params).rowcount)

        return await self._write(op)

    # -- interaction windows (issue 11) -----------------------------------------------------
    async def note_interaction(self, account: str, openid: str, kind: str, at: float) -> None:
        statement, params = interaction_sql.note_statement(account, openid, kind, at)

        def op(c: sqlite3.Connection) -> None:
            c.execute(statement, params)
            c.execute(interaction_sql.PRUNE, interaction_sql.prune_params(account, at))

        await self._write(op)

    async def window(
        self, account: str, *, now: float, limit: int, after: str = ""
    ) -> list[InWindow]:
        params = interaction_sql.window_params(account, now, limit, after)
        rows = await self._read(lambda c: c.execute(interaction_sql.WINDOW, params).fetchall())
        return [interaction_sql.in_window(r, now) for r in rows]

    async def note_custom_sent(self, account: str, openids: Sequence[str], *, at: float) -> None:
        rows = interaction_sql.sent_params(account, openids, at)
        if rows:
            await self._write(lambda c: c.executemany(interaction_sql.NOTE_SENT, rows))


def _apply(c: sqlite3.Connection, w: Write) -> Applied:
    now = sql.write_time(w)
    if w.idempotency is not None:
        _claim_key(c, w.idempotency)
    if w.incident is not None:
        c.execute(sql.INSERT_INCIDENT, sql.incident_params(w.incident))
    owner = w.incident.id if w.incident is not None else w.attach_to
    if w.deliveries and owner is not None:
        insert = sql.INSERT_DELIVERY + (sql.IF_NEW if w.incident is None else "")
        c.executemany(insert, sql.deliveries_params(owner, w.deliveries, now, w.taken))
    for effect in sql.effect_statements(w.effects, now):
        effect.check(c.execute(effect.statement, effect.params).rowcount)
    released = _release(c, w.release, now) if w.release is not None else 0
    requeued = _requeue(c, w.requeue, now) if w.requeue is not None else None
    c.executemany(sql.INSERT_AUDIT, [sql.audit_params(a) for a in w.audit])
    claims = sql.taken_claims(w.incident, w.deliveries, w.taken) if w.incident else []
    return Applied(released, requeued, claims)


def _claim_key(c: sqlite3.Connection, record: IdempotencyRecord) -> None:
    try:
        c.execute(sql.INSERT_IDEMPOTENCY, sql.idempotency_params(record))
    except sqlite3.IntegrityError:
        first = _one(
            c,
            "SELECT * FROM idempotency_keys WHERE issuer = ? AND key = ?",
            (record.issuer, record.key),
        )
        raise IdempotencyConflict(sql.idempotency_from(first)) from None


def _release(c: sqlite3.Connection, r: Release, now: float) -> int:
    if (unseen := sql.unseen_statement(r)) is not None:
        sql.unseen_conflict(r, int(_one(c, *unseen)[0]))
    (approve, approve_params), (due, due_params) = sql.release_statements(r, now)
    sql.release_conflict(r, c.execute(approve, approve_params).rowcount)
    return int(c.execute(due, due_params).rowcount)


def _requeue(c: sqlite3.Connection, r: Requeue, now: float) -> DeliveryRow:
    if c.execute(sql.REQUEUE, (now, r.budget, now, r.delivery_id)).rowcount == 0:
        raise StateConflict(f"delivery {r.delivery_id} cannot be retried")
    return sql.delivery_from(_one(c, "SELECT * FROM deliveries WHERE id = ?", (r.delivery_id,)))


def _run_batch(
    conn: sqlite3.Connection, batch: list[tuple[Op, asyncio.Future[Any]]]
) -> list[tuple[asyncio.Future[Any], Any, BaseException | None]]:
    results: list[tuple[asyncio.Future[Any], Any, BaseException | None]] = []
    conn.execute("BEGIN IMMEDIATE")
    try:
        for op, fut in batch:
            conn.execute("SAVEPOINT op")
            try:
                value = op(conn)
            except Exception as exc:
                conn.execute("ROLLBACK TO op")
                results.append((fut, None, exc))
            else:
                results.append((fut, value, None))
            conn.execute("RELEASE op")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return results


def _hold_lock(path: str) -> int:
    """An exclusive, non-blocking ``flock`` on ``<path>.lock``, stamped with our pid; the
    descriptor holds it. Raises :class:`StoreInUse`, naming the store and the holder, if taken."""
    lock_path = Path(f"{path}.lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
        os.close(fd)
        raise StoreInUse(
            f"sqlite store {Path(path).resolve()} is in use by another alertcast process "
            f"(pid {holder}, lock {lock_path.resolve()}): one daemon per SQLite store; stop it "
            "first, or share a PostgreSQL store between replicas"
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def _migrate(conn: sqlite3.Connection) -> None:
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations "
        "(version INTEGER PRIMARY KEY, applied_at REAL)"
    )
    done = {r[0] for r in conn.execute("SELECT version FROM schema_migrations")}
    for version, script in sql.migrations():
        if version in done:
            continue
        conn.executescript(
            f"BEGIN IMMEDIATE;\n{script}\n"
            f"INSERT INTO schema_migrations VALUES ({version}, {time.time()});\nCOMMIT;"
        )


def _one(c: sqlite3.Connection, query: str, params: tuple[Any, ...]) -> Any:
    return c.execute(query, params).fetchone()


# -- feed events (issue 5) ---------------------------------------------------------------------
def _put_feed_event(c: sqlite3.Connection, row: FeedEventRow, now: float) -> tuple[str, ...]:
    """Insert or update the event row; the ids its stored version held (Lost if it moved on)."""
    if row.version == 0:
        try:
            c.execute(feed_sql.INSERT_EVENT, feed_sql.insert_params(row, now))
        except sqlite3.IntegrityError:
            raise feed_sql.Lost(f"event {row.event_id} exists") from None
        return ()
    key = (row.feed, row.event_id, row.version)
    had = feed_sql.stored_ids(c.execute(feed_sql.STORED_IDS, key).fetchone())
    c.execute(feed_sql.UPDATE_EVENT, feed_sql.update_params(row, now))
    return had
