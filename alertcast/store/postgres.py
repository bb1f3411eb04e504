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

Every wait is bounded, so a database that stops answering (packets dropped, not refused) is an
error within seconds, not a call held for as long as the kernel retransmits (about 15 min).
The URL's own keys say how long (:class:`PgOptions`); the others go to the server as settings.
A statement that runs out of time raises ``TimeoutError`` naming the bound, and its connection
is terminated, never given back to the pool: it may be mid-statement or mid-transaction, and
asyncpg's own clean-up (a cancel request, then a reset) would wait for the same silent server.
A connection that drops under an operation (reset, closed by the server, shut down) raises
``ConnectionError`` naming what dropped. Those two are the store not answering, whatever the
driver said; any other error is an answer (a constraint, a bug), raised as it came.

The server bounds its side too (:meth:`PgOptions.session`): a transaction left idle, by a
replica that died, froze or was cut off between two statements, is ended after
``idle_in_transaction_s`` and its row locks with it, instead of when TCP keepalive notices
(two hours by default) or the partition heals; and the server probes a silent client sooner.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg
import structlog

from alertcast.store import sql
from alertcast.store.driver import Op, Row
from alertcast.store.sqlstore import SQLStore

__all__ = ["PgConn", "PgDriver", "PgOptions", "PostgresStore"]

T = TypeVar("T")
log = structlog.get_logger("alertcast.store")
IDLE_IN_TRANSACTION_X = 3  # a transaction idle this many command timeouts: its client is gone
KEEPALIVE_PROBES = 3  # unanswered keepalive probes before the server drops a client
CHANNEL = "alertcast_due"
RELISTEN_S = (0.1, 2.0)  # the first wait before reopening the listener, and the longest
N = lru_cache(maxsize=1024)(sql.numbered)


@dataclass(frozen=True)
class PgOptions:
    """The store URL's own query keys (``postgresql://…/db?command_timeout_s=5``).

    The defaults come from what the store runs. Its slowest statements outside bulk loads are
    the status ``GROUP BY`` over a million sends (170–220 ms) and one part's expansion (an
    ``INSERT … SELECT`` of 5,000 ids, about 0.1 s): ``command_timeout_s`` is 50 times the
    slowest, so a loaded machine is not mistaken for a lost one, and a claim, a record or an
    intake that gets no answer fails within seconds. A bulk load is another matter: the
    recipients import's COPY of a million rows takes 10–20 s and its merge several more, and a
    file ten times bigger ten times as long, so an operation that COPYs (its COPY and every
    statement after it) and a migration get ``bulk_timeout_s``: a partition still ends them,
    a big file does not.
    """

    schema: str | None = None  # the store's own schema (created if missing)
    connect_timeout_s: float = 10.0  # a new connection's whole handshake
    command_timeout_s: float = 10.0  # one statement (a commit included)
    bulk_timeout_s: float = 600.0  # one statement of an import (the COPY, the merge) or migration

    @classmethod
    def split(cls, url: str) -> tuple[str, PgOptions]:
        """The URL without the store's own keys, and those keys (a bad value: ValueError)."""
        parts = urlsplit(url)
        query = dict(parse_qsl(parts.query))
        seconds: dict[str, float] = {
            key: _seconds(key, query.pop(key))
            for key in ("connect_timeout_s", "command_timeout_s", "bulk_timeout_s")
            if key in query
        }
        options = cls(query.pop("schema", None), **seconds)
        return urlunsplit(parts._replace(query=urlencode(query))), options

    @property
    def idle_in_transaction_s(self) -> float:
        """How long the server lets a session sit idle inside a transaction before it ends it.

        Between two statements of one operation the client only runs its own code (no call
        waits on anything but the database inside a transaction), so a gap of several
        statement bounds means the client died, froze or lost the route, and its row locks
        (``FOR UPDATE`` claims) would hold other replicas off. Three command timeouts (30 s by
        default) is far past any gap the store makes, even on a loaded machine."""
        return IDLE_IN_TRANSACTION_X * self.command_timeout_s

    def session(self) -> dict[str, str]:
        """The settings every connection gives the server: ``idle_in_transaction_s``, and TCP
        keepalive from the server after a command timeout of silence, every command timeout,
        ``KEEPALIVE_PROBES`` times (a client whose host is gone is dropped within 40 s by
        default, rather than after the kernel's two hours; a unix socket ignores them)."""
        every_s = str(max(1, round(self.command_timeout_s)))
        return {
            "idle_in_transaction_session_timeout": str(round(self.idle_in_transaction_s * 1000)),
            "tcp_keepalives_idle": every_s,
            "tcp_keepalives_interval": every_s,
            "tcp_keepalives_count": str(KEEPALIVE_PROBES),
        }


def _seconds(key: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not 0 < value <= 86400:  # NaN fails too
        raise ValueError(f"store url: {key} must be seconds, more than 0 (not {text!r})")
    return value


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
    """A pooled asyncpg connection, as an operation sees it: each statement bounded by
    ``command_timeout_s``, or from a COPY on (a bulk load) by ``bulk_timeout_s``."""

    locks = True  # other replicas claim the same rows

    def __init__(self, conn: asyncpg.Connection, options: PgOptions = PgOptions()) -> None:
        self.conn = conn
        self.options = options
        self.timeout_s = options.command_timeout_s  # what the statement running may take

    async def execute(self, query: str, params: Sequence[Any] = ()) -> int:
        return _count(await self.conn.execute(N(query), *params, timeout=self.timeout_s))

    async def copy(self, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> int:
        self.timeout_s = self.options.bulk_timeout_s  # the load, and its merge after it
        status = await self.conn.copy_records_to_table(
            table, records=rows, columns=columns, timeout=self.timeout_s
        )
        return _count(status)

    async def executemany(self, query: str, rows: Sequence[Sequence[Any]]) -> None:
        await self.conn.executemany(N(query), rows, timeout=self.timeout_s)

    async def fetchone(self, query: str, params: Sequence[Any] = ()) -> Row | None:
        return await self.conn.fetchrow(N(query), *params, timeout=self.timeout_s)

    async def fetchall(self, query: str, params: Sequence[Any] = ()) -> list[Row]:
        return list(await self.conn.fetch(N(query), *params, timeout=self.timeout_s))

    def any_of(self, ids: Sequence[str]) -> tuple[str, tuple[Any, ...]]:
        return "= ANY(?::text[])", (list(ids),)

    def via(self, index: str) -> str:
        return ""


class PgDriver:
    single_process = False

    @property
    def claim_bound_s(self) -> float:
        """What a claiming write may take, from the time it stamps to its answer: a new
        connection, then two statement bounds (SQLStore bounds the whole call by it)."""
        return self.options.connect_timeout_s + 2 * self.options.command_timeout_s

    def __init__(
        self,
        url: str,
        *,
        min_size: int = 2,
        max_size: int = 10,
        on_due: Callable[[], None] | None = None,
    ) -> None:
        self.url, self.options = PgOptions.split(url)
        self.schema = self.options.schema
        self._sizes = (min_size, max_size)
        self._pool: asyncpg.Pool | None = None
        self._listener: asyncpg.Connection | None = None
        self._relisten: asyncio.Task[None] | None = None  # reopening a dropped listener
        self._closing = False
        self._on_due = on_due  # another replica stored due work (LISTEN/NOTIFY)

    def describe(self) -> str:
        parts = urlsplit(self.url)
        return f"postgresql://{parts.hostname}:{parts.port or 5432}{parts.path}"

    def _connect_kwargs(self, *, search_path: bool = True) -> dict[str, Any]:
        """Every connection's bounds and settings: the pool's, the listener's, the schema's.
        A setting the URL gives itself (``?idle_in_transaction_session_timeout=0``) wins."""
        given = dict(parse_qsl(urlsplit(self.url).query))
        settings = {k: v for k, v in self.options.session().items() if k not in given}
        if self.schema and search_path:
            settings["search_path"] = self.schema
        return {
            "timeout": self.options.connect_timeout_s,
            "command_timeout": self.options.command_timeout_s,
            "server_settings": settings,
        }

    async def open(self) -> None:
        if self.schema:
            await self._create_schema()
        self._pool = await asyncpg.create_pool(
            self.url, min_size=self._sizes[0], max_size=self._sizes[1], **self._connect_kwargs()
        )
        await self._migrate()
        await self._listen()

    async def _create_schema(self) -> None:
        assert self.schema is not None
        conn = await asyncpg.connect(self.url, **self._connect_kwargs(search_path=False))
        try:  # two replicas starting at once: IF NOT EXISTS still races in the catalogue
            await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')
        except asyncpg.UniqueViolationError:
            pass  # the other one created it
        finally:
            await _close(conn, self.options.connect_timeout_s)

    async def close(self) -> None:
        self._closing = True
        if self._relisten is not None:
            self._relisten.cancel()
            await asyncio.gather(self._relisten, return_exceptions=True)
        if self._listener is not None:
            await _close(self._listener, self.options.connect_timeout_s)
        if self._pool is not None:
            try:  # a graceful close waits for the server: not past the bound
                await asyncio.wait_for(self._pool.close(), self.options.connect_timeout_s)
            except TimeoutError:
                self._pool.terminate()

    async def _listen(self) -> None:
        """A connection of its own that LISTENs, and notices when it drops."""
        conn = await asyncpg.connect(self.url, **self._connect_kwargs())
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
        async with self._connection() as conn:
            return await op(conn)

    async def write(self, op: Op[T], *, single: bool = False, notify: bool = False) -> T:
        async with self._connection() as conn:
            if single and not notify:
                return await op(conn)
            return await _in_transaction(conn, op, notify)

    @contextlib.asynccontextmanager
    async def _connection(self) -> AsyncIterator[PgConn]:
        """A pooled connection for one operation. If a statement runs out of time (or the
        operation is cancelled: a probe's own bound), the connection is terminated before the
        transaction's rollback or the pool's reset could wait on it, and the timeout says which
        bound ran out; if the connection dropped, a ``ConnectionError`` says how. Given back
        after an operation that ended, a reset that fails (asyncpg terminates that connection)
        does not undo the operation's result."""
        conn = PgConn(await self._acquire(), self.options)
        try:
            yield conn
        except asyncio.CancelledError:
            _terminate(conn.conn)
            raise
        except Exception as exc:
            if (unanswered := _unanswered(exc, conn)) is None:
                raise  # an answer: a constraint, a bad statement, the caller's own error
            _terminate(conn.conn)
            raise unanswered from exc
        finally:
            with contextlib.suppress(Exception):
                await self.pool.release(conn.conn)

    async def _acquire(self) -> asyncpg.Connection:
        """A pooled connection; no connection to be had is a ``TimeoutError`` (a handshake
        unanswered within ``connect_timeout_s``) or a ``ConnectionError`` (refused, reset, the
        server starting or stopping or full)."""
        try:
            return await self.pool.acquire()
        except TimeoutError as exc:
            bound_s = self.options.connect_timeout_s
            raise TimeoutError(f"no connection to the store within {bound_s:g} s") from exc
        except CONNECT_FAILED as exc:
            raise ConnectionError(f"no connection to the store: {_name(exc)}") from exc

    @property
    def pool(self) -> asyncpg.Pool:
        assert self._pool is not None, "store is not open"
        return self._pool

    async def _migrate(self) -> None:
        """Every migration not applied yet, one replica at a time (a migration may rewrite a big
        table, or wait for another replica's: ``bulk_timeout_s`` for each statement)."""
        bulk_s = self.options.bulk_timeout_s
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(7401955)", timeout=bulk_s)
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations "
                "(version INTEGER PRIMARY KEY, applied_at DOUBLE PRECISION)"
            )
            done = {r[0] for r in await conn.fetch("SELECT version FROM schema_migrations")}
            for version, script in sql.migrations():
                if version not in done:
                    await conn.execute(script, timeout=bulk_s)
                    await conn.execute(
                        "INSERT INTO schema_migrations VALUES ($1, $2)", version, time.time()
                    )


async def _in_transaction(conn: PgConn, op: Op[T], notify: bool) -> T:
    """``op`` in one transaction. No rollback after a timeout or a cancellation: the connection
    is terminated then (:meth:`PgDriver._connection`), and a rollback would wait on it."""
    transaction = conn.conn.transaction()
    await transaction.start()
    try:
        result = await op(conn)
        if notify:
            await conn.execute(f"NOTIFY {CHANNEL}")
    except (TimeoutError, asyncio.CancelledError):
        raise
    except BaseException:
        try:
            await transaction.rollback()
        except Exception:  # the connection broke too: it is not given back as it is
            _terminate(conn.conn)
        raise
    await transaction.commit()
    return result


async def _close(conn: asyncpg.Connection, timeout_s: float) -> None:
    """Close gracefully within ``timeout_s``, or terminate (the server no longer answers)."""
    try:
        await conn.close(timeout=timeout_s)
    except Exception:  # already dropped, or silent: nothing more to wait for
        conn.terminate()


# No connection to be had: refused or reset, the server starting, stopping or full.
CONNECT_FAILED = (
    OSError,
    asyncpg.PostgresConnectionError,  # class 08: the connection failed, or does not exist
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.CannotConnectNowError,  # starting up, or in recovery
    asyncpg.TooManyConnectionsError,
)
# The server ended the session under an operation (it closes the connection after them).
ENDED = (
    asyncpg.PostgresConnectionError,
    asyncpg.AdminShutdownError,  # pg_terminate_backend, a fast shutdown
    asyncpg.CrashShutdownError,
    asyncpg.IdleInTransactionSessionTimeoutError,
)


def _unanswered(exc: Exception, conn: PgConn) -> OSError | None:
    """What the store raises when ``exc`` is its not answering: the ``TimeoutError`` naming the
    bound that ran out, or a ``ConnectionError`` naming what dropped (the server ended the
    session, or any error after which the connection is closed: a reset is asyncpg's
    ``OSError`` then). None: ``exc`` is an answer, raised as it is (a constraint, a bug, or an
    error of the rows a COPY was given, an ``OSError`` of the caller's own file included: the
    COPY fails cleanly and the connection stays open)."""
    if isinstance(exc, TimeoutError):
        return TimeoutError(f"the store did not answer within {conn.timeout_s:g} s")
    if isinstance(exc, ENDED) or _closed(conn.conn):
        return ConnectionError(f"the store's connection was lost: {_name(exc)}")
    return None


def _closed(conn: asyncpg.Connection) -> bool:
    try:
        return bool(conn.is_closed())
    except asyncpg.InterfaceError:  # the pool's proxy, detached: terminated already
        return True


def _terminate(conn: asyncpg.Connection) -> None:
    """Drop the connection without a word to the server; once is enough (a pooled one, once
    terminated, is detached, and terminating it again raises)."""
    with contextlib.suppress(asyncpg.InterfaceError):
        conn.terminate()


def _name(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _count(status: str) -> int:
    """Rows touched, from asyncpg's command tag (``UPDATE 3``)."""
    tail = status.rsplit(" ", 1)[-1]
    return int(tail) if tail.isdigit() else 0  # DDL (CREATE TABLE) touches no rows
