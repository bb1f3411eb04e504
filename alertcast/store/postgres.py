"""PostgreSQL engine: several replicas share one database.

Deliveries are claimed with ``FOR UPDATE SKIP LOCKED`` so replicas never take the same row
(the store's operations lock when :attr:`PgConn.locks` says so); a claim carries a lease, and a
replica that dies leaves rows that any other replica sweeps back when the lease runs out. New
work is announced with ``NOTIFY alertcast_due`` in the transaction that stores it, so every
replica's dispatcher wakes at once instead of waiting for its next poll. The connection that
listens is reopened when it drops (the database restarted, the network cut it), with backoff
and one warning each way, and the dispatcher is woken once it is back: what was stored while
this replica could not hear is claimed then, not at the next poll. An operation runs on
one pooled connection, in one transaction unless it is one statement; statements are sent as
written, their ``?`` placeholders numbered once per text.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterable, Sequence
from functools import lru_cache
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg
import structlog

from alertcast.store import sql
from alertcast.store.driver import Op, Row
from alertcast.store.sqlstore import SQLStore

__all__ = ["PgConn", "PgDriver", "PostgresStore"]

T = TypeVar("T")
log = structlog.get_logger("alertcast.store")
CHANNEL = "alertcast_due"
RELISTEN_S = (0.1, 2.0)  # the first wait before reopening the listener, and the longest
N = lru_cache(maxsize=1024)(sql.numbered)


def _split_schema(url: str) -> tuple[str, str | None]:
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    schema = query.pop("schema", None)
    return urlunsplit(parts._replace(query=urlencode(query))), schema


class PostgresStore(SQLStore):
    """The store on a PostgreSQL database (``?schema=`` in the URL: its own schema)."""

    def __init__(
        self,
        url: str,
        *,
        min_size: int = 2,
        max_size: int = 10,
        on_due: Callable[[], None] | None = None,
    ) -> None:
        self.driver = PgDriver(url, min_size=min_size, max_size=max_size, on_due=on_due)
        super().__init__(self.driver)
        self.url, self.schema = self.driver.url, self.driver.schema


class PgConn:
    """A pooled asyncpg connection, as an operation sees it."""

    locks = True  # other replicas claim the same rows

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    async def execute(self, query: str, params: Sequence[Any] = ()) -> int:
        return _count(await self.conn.execute(N(query), *params))

    async def copy(self, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> int:
        return _count(await self.conn.copy_records_to_table(table, records=rows, columns=columns))

    async def executemany(self, query: str, rows: Sequence[Sequence[Any]]) -> None:
        await self.conn.executemany(N(query), rows)

    async def fetchone(self, query: str, params: Sequence[Any] = ()) -> Row | None:
        return await self.conn.fetchrow(N(query), *params)

    async def fetchall(self, query: str, params: Sequence[Any] = ()) -> list[Row]:
        return list(await self.conn.fetch(N(query), *params))

    def any_of(self, ids: Sequence[str]) -> tuple[str, tuple[Any, ...]]:
        return "= ANY(?::text[])", (list(ids),)


class PgDriver:
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
        self._relisten: asyncio.Task[None] | None = None  # reopening a dropped listener
        self._closing = False
        self._on_due = on_due  # another replica stored due work (LISTEN/NOTIFY)

    def describe(self) -> str:
        parts = urlsplit(self.url)
        return f"postgresql://{parts.hostname}:{parts.port or 5432}{parts.path}"

    async def open(self) -> None:
        settings = {"search_path": self.schema} if self.schema else {}
        if self.schema:
            conn = await asyncpg.connect(self.url)
            try:  # two replicas starting at once: IF NOT EXISTS still races in the catalogue
                await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')
            except asyncpg.UniqueViolationError:
                pass  # the other one created it
            finally:
                await conn.close()
        self._pool = await asyncpg.create_pool(
            self.url, min_size=self._sizes[0], max_size=self._sizes[1], server_settings=settings
        )
        await self._migrate()
        await self._listen()

    async def close(self) -> None:
        self._closing = True
        if self._relisten is not None:
            self._relisten.cancel()
            await asyncio.gather(self._relisten, return_exceptions=True)
        if self._listener is not None:
            with contextlib.suppress(Exception):  # already dropped: nothing to close
                await self._listener.close()
        if self._pool is not None:
            await self._pool.close()

    async def _listen(self) -> None:
        """A connection of its own that LISTENs, and notices when it drops."""
        settings = {"search_path": self.schema} if self.schema else {}
        conn = await asyncpg.connect(self.url, server_settings=settings, timeout=10)
        try:
            await conn.add_listener(CHANNEL, self._notified)
        except BaseException:
            conn.terminate()
            raise
        conn.add_termination_listener(self._dropped)
        self._listener = conn

    def _dropped(self, _: Any) -> None:
        if self._closing or (self._relisten is not None and not self._relisten.done()):
            return
        log.warning("store.listen_lost", store=self.describe())
        self._relisten = asyncio.get_running_loop().create_task(self._reopen(), name="relisten")

    async def _reopen(self) -> None:
        """Reopen the listener until it is back (the first wait 0.1 s, doubling to 2 s), then
        wake the dispatcher: work other replicas stored meanwhile rang no bell here."""
        delay, tries = RELISTEN_S[0], 0
        while not self._closing:
            await asyncio.sleep(delay)
            tries += 1
            try:
                await self._listen()
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError):
                delay = min(2 * delay, RELISTEN_S[1])
                continue
            log.warning("store.listen_restored", store=self.describe(), tries=tries)
            self._notified()
            return

    def _notified(self, *_: Any) -> None:
        if self._on_due is not None:
            self._on_due()

    async def read(self, op: Op[T]) -> T:
        async with self.pool.acquire() as conn:
            return await op(PgConn(conn))

    async def write(self, op: Op[T], *, single: bool = False, notify: bool = False) -> T:
        async with self.pool.acquire() as conn:
            if single and not notify:
                return await op(PgConn(conn))
            async with conn.transaction():
                result = await op(PgConn(conn))
                if notify:
                    await conn.execute(f"NOTIFY {CHANNEL}")
            return result

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


def _count(status: str) -> int:
    """Rows touched, from asyncpg's command tag (``UPDATE 3``)."""
    tail = status.rsplit(" ", 1)[-1]
    return int(tail) if tail.isdigit() else 0  # DDL (CREATE TABLE) touches no rows
