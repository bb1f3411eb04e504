"""SQLite engine: WAL, one serialised writer with group commit, one reader.

Writes queue up (a thread-safe queue) and run on a dedicated thread; every write waiting at
that moment shares one transaction (one ``fsync`` with ``synchronous=FULL``), each inside its
own savepoint so one failing write never takes its neighbours down. A write's future resolves
only after COMMIT: what the API acknowledges is on disk. The thread takes its work and hands a
batch's results back itself (one ``call_soon_threadsafe`` per batch), with no coroutine in
between: under load each hop through the event loop costs a whole turn of it, and a claim
waits for every one. Reads use a second connection on another thread and see every committed
write (WAL). The store's operations (:mod:`alertcast.store.sqlstore`) run on those threads to
their end without suspending (:func:`~alertcast.store.driver.run_now`).

One process owns a store: :meth:`SQLiteDriver.open` takes an exclusive ``flock`` on
``<database>.lock`` before it touches the database, and holds it until :meth:`close` (the kernel
drops it when the process dies, ``kill -9`` included). A second daemon on the same file is
refused with :class:`~alertcast.store.base.StoreInUse` before it reads or recovers anything.
"""

from __future__ import annotations

import asyncio
import fcntl
import itertools
import os
import queue
import sqlite3
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from alertcast.store import sql
from alertcast.store.base import StoreInUse
from alertcast.store.driver import Op, Row, run_now
from alertcast.store.sqlstore import SQLStore

__all__ = ["SQLiteDriver", "SQLiteStore"]

T = TypeVar("T")
Queued = tuple[Op[Any], "asyncio.Future[Any]"]
Results = list[tuple["asyncio.Future[Any]", Any, BaseException | None]]
MAX_BATCH = 512


COPY_CHUNK = 5000  # rows per executemany of a copy


class SQLiteStore(SQLStore):
    """The store on one SQLite file (``synchronous``: the writer's ``PRAGMA synchronous``)."""

    def __init__(self, path: str | Path, *, synchronous: str = "FULL") -> None:
        super().__init__(SQLiteDriver(path, synchronous=synchronous))
        self.path = str(path)


class SQLiteConn:
    """One of the driver's connections, as an operation sees it (runs without suspending)."""

    locks = False  # one writer: what it reads stays as it read it until it commits

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    async def execute(self, query: str, params: Sequence[Any] = ()) -> int:
        return int(self.conn.execute(query, params).rowcount)

    async def copy(self, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> int:
        marks = ", ".join("?" * len(columns))
        statement = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})"
        count, source = 0, iter(rows)
        while chunk := list(itertools.islice(source, COPY_CHUNK)):  # chunked: never the whole
            self.conn.executemany(statement, chunk)
            count += len(chunk)
        return count

    async def executemany(self, query: str, rows: Sequence[Sequence[Any]]) -> None:
        self.conn.executemany(query, rows)

    async def fetchone(self, query: str, params: Sequence[Any] = ()) -> Row | None:
        return self.conn.execute(query, params).fetchone()

    async def fetchall(self, query: str, params: Sequence[Any] = ()) -> list[Row]:
        return self.conn.execute(query, params).fetchall()

    def any_of(self, ids: Sequence[str]) -> tuple[str, tuple[Any, ...]]:
        return f"IN ({sql.marks(len(ids))})", tuple(ids)

    def via(self, index: str) -> str:
        return f"INDEXED BY {index}"


class SQLiteDriver:
    single_process = True

    @property
    def claim_bound_s(self) -> float | None:
        return None  # one process, its own disk: a claim is never stored yet unanswered

    def __init__(self, path: str | Path, *, synchronous: str = "FULL") -> None:
        self.path = str(path)
        self._synchronous = synchronous
        self._wexec = ThreadPoolExecutor(1, thread_name_prefix="sqlite-w")
        self._rexec = ThreadPoolExecutor(1, thread_name_prefix="sqlite-r")
        self._queue: queue.SimpleQueue[Queued | None] = queue.SimpleQueue()
        self._writer: asyncio.Future[None] | None = None  # the writer thread's loop
        self._w: SQLiteConn | None = None
        self._r: SQLiteConn | None = None
        self._conns: list[sqlite3.Connection] = []
        self._lock: int | None = None  # the fd holding <database>.lock

    def describe(self) -> str:
        return f"sqlite:{self.path}"

    # -- life -------------------------------------------------------------------------------
    async def open(self) -> None:
        self._lock = _hold_lock(self.path)
        loop = asyncio.get_running_loop()
        try:
            w = await loop.run_in_executor(self._wexec, self._connect, True)
            await loop.run_in_executor(self._wexec, _migrate, w)
            r = await loop.run_in_executor(self._rexec, self._connect, False)
        except BaseException:
            self._release_lock()
            raise
        self._w, self._r = SQLiteConn(w), SQLiteConn(r)
        self._conns = [w, r]
        self._writer = loop.run_in_executor(self._wexec, self._write_loop, self._w, loop)

    async def close(self) -> None:
        if self._writer is not None:
            self._queue.put(None)  # after every write queued before: they are committed first
            await self._writer
        loop = asyncio.get_running_loop()
        for conn, pool in zip(self._conns, (self._wexec, self._rexec), strict=True):
            await loop.run_in_executor(pool, conn.close)
        for pool in (self._wexec, self._rexec):
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

    # -- running operations -----------------------------------------------------------------
    async def write(self, op: Op[T], *, single: bool = False, notify: bool = False) -> T:
        """Queue ``op`` for the writer's next group commit (one process: nobody to notify)."""
        fut: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._queue.put((op, fut))
        return await fut

    async def read(self, op: Op[T]) -> T:
        r = self._r
        assert r is not None, "store is not open"
        return await asyncio.get_running_loop().run_in_executor(self._rexec, lambda: run_now(op(r)))

    def _write_loop(self, w: SQLiteConn, loop: asyncio.AbstractEventLoop) -> None:
        """The writer thread: each batch of what is queued, in one transaction; its results
        handed to the event loop at once. Returns at the stop mark :meth:`close` queues."""
        while (first := self._queue.get()) is not None:
            batch, stop = [first], False
            while len(batch) < MAX_BATCH and not self._queue.empty():
                if (queued := self._queue.get_nowait()) is None:
                    stop = True
                    break
                batch.append(queued)
            try:
                results = _run_batch(w, batch)
            except Exception as exc:  # COMMIT itself failed: nothing of the batch is stored
                results = [(fut, None, exc) for _, fut in batch]
            loop.call_soon_threadsafe(_settle, results)
            if stop:
                return


def _settle(results: Results) -> None:
    """On the event loop: each write's future, resolved (unless its caller went away)."""
    for fut, value, error in results:
        if not fut.done():
            fut.set_exception(error) if error else fut.set_result(value)


def _run_batch(c: SQLiteConn, batch: list[Queued]) -> Results:
    """Every queued operation in one transaction, each in its own savepoint (on the writer)."""
    results: Results = []
    conn = c.conn
    conn.execute("BEGIN IMMEDIATE")
    try:
        for op, fut in batch:
            conn.execute("SAVEPOINT op")
            try:
                value = run_now(op(c))
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
