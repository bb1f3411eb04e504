"""What :class:`~alertcast.store.sqlstore.SQLStore` needs of an engine: a thin driver.

The store's methods are written once, as *operations*: ``async def op(c: Conn) -> T`` over a
connection that speaks ``?`` placeholders and answers with rows and row counts. A driver runs
an operation as a read or inside a write transaction:

- SQLite (:mod:`alertcast.store.sqlite`) runs it on its writer thread, inside the group
  commit (every write queued at that moment shares one transaction, each in its own
  savepoint), or on the reader's thread. Its connection's methods are coroutines that never
  suspend, so the operation runs to its end in one ``send``: :func:`run_now`.
- PostgreSQL (:mod:`alertcast.store.postgres`) awaits it on a pooled asyncpg connection, in a
  transaction unless it is one statement, the placeholders numbered (once per text).

Why coroutines for both, rather than a sync body for SQLite and an async one for PostgreSQL:
one body per operation is the point of the fold, and an ``await`` that never suspends costs
a coroutine object, not a thread hop or a round trip. Where the engines differ by nature —
PostgreSQL's other replicas may hold the rows, so claims lock with ``FOR UPDATE SKIP LOCKED``
— the connection says so (:attr:`Conn.locks`) and the operation adds the lock; SQLite's one
writer needs none, so it pays for no extra statement.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Iterable, Sequence
from typing import Any, Protocol, TypeVar

__all__ = ["Conn", "Driver", "Op", "Row", "run_now"]

T = TypeVar("T")
Row = Any  # sqlite3.Row or asyncpg.Record: indexed by position and by column name


class Conn(Protocol):
    """A connection inside one operation (``?`` placeholders)."""

    locks: bool  # other processes claim rows too: lock what is taken (PostgreSQL)

    async def execute(self, query: str, params: Sequence[Any] = ()) -> int:
        """Run one statement; the rows it touched."""

    async def copy(self, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> int:
        """Stream ``rows`` into ``table`` in batches (PostgreSQL: COPY); how many there were.
        An exception raised by ``rows`` aborts the operation's transaction."""

    async def executemany(self, query: str, rows: Sequence[Sequence[Any]]) -> None: ...
    async def fetchone(self, query: str, params: Sequence[Any] = ()) -> Row | None: ...
    async def fetchall(self, query: str, params: Sequence[Any] = ()) -> list[Row]: ...

    def any_of(self, ids: Sequence[str]) -> tuple[str, tuple[Any, ...]]:
        """``ids`` as the right side of a match and its params: ``IN (?, …)`` (SQLite), or
        ``= ANY(?)`` with one array (PostgreSQL: one text for any count, so the prepared
        statement is reused instead of parsed again for every batch size)."""

    def via(self, index: str) -> str:
        """A table's hint to read it along ``index``: ``INDEXED BY index`` on SQLite, whose
        planner has no statistics to prefer a small partial index over a wide one; nothing on
        PostgreSQL, whose planner has them."""


Op = Callable[[Conn], Coroutine[Any, Any, T]]


class Driver(Protocol):
    """One engine's connections and life; the SQL is the store's."""

    single_process: bool

    @property
    def claim_bound_s(self) -> float | None:
        """What a claiming write may take, answer included (``Store.claim_bound_s``)."""

    def describe(self) -> str: ...
    async def open(self) -> None: ...
    async def close(self) -> None: ...

    async def read(self, op: Op[T]) -> T:
        """Run ``op`` on a connection that sees every committed write."""

    async def write(self, op: Op[T], *, single: bool = False, notify: bool = False) -> T:
        """Run ``op`` in one transaction (``single``: it is one statement, atomic by itself),
        committed before this returns; ``notify``: wake the other processes' dispatchers."""


def run_now(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine that never suspends to its end (a SQLite operation on its thread)."""
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
    coro.close()
    raise RuntimeError("a store operation awaited something that suspends")
