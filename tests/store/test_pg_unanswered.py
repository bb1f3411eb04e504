"""How the PostgreSQL store fails when it gets no answer, and when it does: a session the server
ends under a statement is a ``ConnectionError`` naming why; an error of the caller's own rows
(an ``OSError`` reading its file) passes as it was raised, the connection kept."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import asyncpg
import pytest

from alertcast.store.base import Recipient
from alertcast.store.postgres import PostgresStore
from tests.conftest import PG_URL, until

pytestmark = pytest.mark.postgres


@pytest.fixture
async def store(schema: str) -> AsyncIterator[PostgresStore]:
    s = PostgresStore(f"{PG_URL}?schema={schema}&application_name={schema}", min_size=1)
    await s.open()
    yield s
    await s.close()


async def test_a_session_ended_under_a_statement_is_a_connection_error(
    store: PostgresStore, schema: str
) -> None:
    """``pg_terminate_backend`` while a statement runs: ``ConnectionError`` naming the
    server's reason; the next call works on a new connection."""

    async def slow(c: object) -> None:
        await c.execute("SELECT pg_sleep(5)")  # type: ignore[attr-defined]

    call = asyncio.create_task(store.driver.read(slow))
    await until(lambda: _terminate(schema), 5, "the statement running, then ended")
    with pytest.raises(ConnectionError) as caught:
        await asyncio.wait_for(call, 5)
    assert str(caught.value).startswith("the store's connection was lost: ")
    assert str(caught.value).endswith("terminating connection due to administrator command")
    assert await store.count_recipients("people") == 0


async def test_an_oserror_of_the_callers_rows_passes_as_it_is(store: PostgresStore) -> None:
    """Rows that fail with the file's own ``OSError`` mid-COPY: that error, not the store's;
    nothing imported; the connection goes on."""

    def rows() -> Iterator[tuple[int, Recipient]]:
        yield 2, Recipient("u-1", None, {})
        raise OSError(5, "Input/output error")

    with pytest.raises(OSError) as caught:
        await store.import_recipients("people", rows())
    assert type(caught.value) is OSError and caught.value.strerror == "Input/output error"
    assert await store.count_recipients("people") == 0


async def _terminate(schema: str) -> bool:
    conn = await asyncpg.connect(PG_URL)
    try:
        query = (
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE application_name = $1 AND query LIKE 'SELECT pg_sleep%' AND state = 'active'"
        )
        return bool(await conn.fetch(query, schema))
    finally:
        await conn.close()
