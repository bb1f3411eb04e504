"""A replica gone quiet mid-transaction (issue 15 item 6): PostgreSQL ends the session after
``idle_in_transaction_session_timeout`` (three command timeouts), and the rows it locked for a
claim are claimed by another replica then, not when TCP keepalive or a healed route tells the
server. Replica A reaches the database through a TCP proxy the test blackholes while A holds
its locks; replica B reaches it directly."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from alertcast.store.base import NewDelivery, Write
from alertcast.store.postgres import PostgresStore
from alertcast.testing.tcpproxy import TcpProxy
from tests.conftest import PG_URL, until
from tests.store.test_contract import _incident

pytestmark = pytest.mark.postgres

COMMAND_S = 1.0  # replica A's command timeout: its sessions idle in a transaction end at 3 s
IDS = [f"d-{n}" for n in range(5)]


@pytest.fixture
async def replicas(schema: str, proxy: TcpProxy) -> AsyncIterator[tuple[PostgresStore, ...]]:
    """Replica A through the proxy (1 s bounds, its sessions named ``a-<schema>``) and replica
    B straight to the server, sharing the schema; five deliveries due."""
    head, tail = PG_URL.rsplit("@", 1)
    db = tail.split("/", 1)[1]
    bounds = f"connect_timeout_s={COMMAND_S}&command_timeout_s={COMMAND_S}"
    a = PostgresStore(
        f"{head}@127.0.0.1:{proxy.port}/{db}?schema={schema}&{bounds}&application_name=a-{schema}"
    )
    b = PostgresStore(f"{PG_URL}?schema={schema}")
    await a.open()
    await b.open()
    try:
        await b.apply(Write(incident=_incident(), deliveries=[_delivery(i) for i in IDS]))
        yield a, b
    finally:
        proxy.restore()
        await a.close()
        await b.close()


async def test_a_transaction_left_idle_ends_and_its_locked_rows_are_claimed(
    replicas: tuple[PostgresStore, PostgresStore], proxy: TcpProxy, schema: str
) -> None:
    """A locks every due row (``FOR UPDATE``, as a claim does) and goes silent, the route to it
    dropping packets: B claims none at first, and all of them once the server ended A's
    session, about 3 s later and well before anything else would have (the blackhole lasts)."""
    a, b = replicas
    locked, never = asyncio.Event(), asyncio.Event()

    async def hold(c: Any) -> None:
        await c.fetchall("SELECT id FROM deliveries WHERE state = 'pending' FOR UPDATE")
        locked.set()
        await never.wait()  # frozen, or cut off, between two statements

    held = asyncio.create_task(a.driver.write(hold))
    try:
        await asyncio.wait_for(locked.wait(), 5)
        since = time.monotonic()
        proxy.blackhole()
        assert await _claim(b) == []  # SKIP LOCKED: A holds them
        assert await _idle_in_transaction(schema) == 1
        claimed: list[str] = []

        async def b_claims() -> bool:
            claimed.extend(await _claim(b))
            return bool(claimed)

        await until(b_claims, 3 * COMMAND_S + 3, "B claims the rows A locked")
        waited_s = time.monotonic() - since
        assert sorted(claimed) == IDS
        assert 3 * COMMAND_S - 0.5 < waited_s < 3 * COMMAND_S + 3, waited_s
        assert await _idle_in_transaction(schema) == 0 and proxy.is_dark  # the server ended it
    finally:
        held.cancel()
        await asyncio.gather(held, return_exceptions=True)
    print(f"\nB claimed A's locked rows {waited_s:.2f} s after A went silent")


async def test_every_session_is_given_the_bounds(schema: str) -> None:
    """A store connection's session: idle in a transaction 3 command timeouts at most (30 s by
    default), TCP keepalive from the server every command timeout, 3 probes; a setting the URL
    gives itself wins."""
    for query, expected in (
        ("", ("30s", "10", "10", "3")),
        ("&command_timeout_s=2", ("6s", "2", "2", "3")),
        ("&idle_in_transaction_session_timeout=0", ("0", "10", "10", "3")),
    ):
        store = PostgresStore(f"{PG_URL}?schema={schema}{query}")
        await store.open()
        try:
            async with store.driver.pool.acquire() as conn:
                shown = [
                    await conn.fetchval(f"SHOW {name}")
                    for name in (
                        "idle_in_transaction_session_timeout",
                        "tcp_keepalives_idle",
                        "tcp_keepalives_interval",
                        "tcp_keepalives_count",
                    )
                ]
        finally:
            await store.close()
        assert tuple(shown) == expected, query


async def _claim(store: PostgresStore) -> list[str]:
    claims = await store.claim_due(now=time.time() + 1, limit=10, lease_s=30, worker="b", free={})
    return sorted(c.delivery.id for c in claims)


async def _idle_in_transaction(schema: str) -> int:
    """Replica A's sessions idle in a transaction, as the server sees them."""
    conn = await asyncpg.connect(PG_URL)
    try:
        query = (
            "SELECT COUNT(*) FROM pg_stat_activity WHERE application_name = $1 "
            "AND state = 'idle in transaction'"
        )
        return int(await conn.fetchval(query, f"a-{schema}"))
    finally:
        await conn.close()


def _delivery(delivery_id: str) -> NewDelivery:
    return NewDelivery(
        id=delivery_id,
        account="a",
        channel="webhook",
        payload={"n": delivery_id},
        idempotency_key=delivery_id,
    )
