"""A replica whose database stops answering (issue 15 item 6, the other way to lose it): the
network drops packets instead of refusing them. PostgreSQL is reached through a TCP proxy that
the test blackholes (connections stay open, nothing arrives either way, new ones are never
answered) and restores; a real app, real webhook accounts, a real sink."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
import asyncpg
import pytest
from structlog.testing import capture_logs

from alertcast.outage import Outage
from alertcast.store.base import AccountState
from alertcast.store.postgres import PostgresStore
from alertcast.testing.tcpproxy import TcpProxy
from tests.conftest import PG_URL, TOKEN, Daemon, incident, until

pytestmark = pytest.mark.postgres

HOOKS, INCIDENTS, SINK_LATENCY_S = 4, 10, 0.3
TIMEOUT_S = 1.5  # the store's connect and command timeouts in these tests
# A store call in the dark fails after one timeout; a request that hit it then probes the store
# (one more); the rest is room for a loaded machine. Without the timeouts nothing ends at all.
BOUND_S = 3 * TIMEOUT_S + 3
DISPATCH = {
    "concurrency": HOOKS,  # a queue behind the sends in flight: claims must stop, visibly
    "backoff_initial_s": 0.05,
    "backoff_max_s": 0.2,
    "max_attempts": 5,
    "poll_interval_s": 0.2,
}


def _url(proxy: TcpProxy, schema: str, timeout_s: float = TIMEOUT_S) -> str:
    head, tail = PG_URL.rsplit("@", 1)
    bounds = f"connect_timeout_s={timeout_s}&command_timeout_s={timeout_s}"
    return f"{head}@127.0.0.1:{proxy.port}/{tail.split('/', 1)[1]}?schema={schema}&{bounds}"


@pytest.fixture
async def daemon(schema: str, proxy: TcpProxy, start_daemon: Any) -> Daemon:
    """The app on PostgreSQL through the proxy, ``HOOKS`` webhook accounts, ``HOOKS`` slots."""
    store = {"url": _url(proxy, schema)}
    return await start_daemon(hooks=HOOKS, store=store, dispatch=DISPATCH)  # type: ignore[no-any-return]


async def test_a_blackhole_mid_fanout_is_noticed_refused_and_loses_nothing(
    daemon: Daemon, proxy: TcpProxy, schema: str
) -> None:
    """Packets dropped while sends are in flight: within a few timeouts /healthz says 503
    naming the store, intake answers 503 and stores nothing, no new send leaves; restored,
    every delivery is delivered and each key reached the sink once."""
    daemon.sink.latency_s = SINK_LATENCY_S
    ids = [i for n in range(INCIDENTS) for i in await _raise(daemon, n)]
    with capture_logs() as logs:
        await until(lambda: _just_arrived(daemon, HOOKS), 10, "a wave of sends in flight")
        proxy.blackhole()
        dark_at = time.monotonic()
        status, health = await _health(daemon)
        noticed_s = time.monotonic() - dark_at
        assert status == 503, health
        assert health["store"].startswith("unreachable: TimeoutError"), health
        assert f"within {TIMEOUT_S:g} s" in health["store_error"]
        sent = len(daemon.sink.received)
        refused_s = await _intake_refused(daemon)
        await asyncio.sleep(1.0)  # claims would be due: the wave's slots are free by now
        assert len(daemon.sink.received) == sent, "sends left while the store was silent"
        assert proxy.held > 0 and proxy.dropped_bytes > 0  # it was tried, and heard nothing
        proxy.restore()
        restored_at = time.monotonic()
        await until(lambda: _all_delivered(daemon, ids), 30, "every delivery delivered")
        settled_s = time.monotonic() - restored_at
    status, health = await _health(daemon)
    assert status == 200 and health["store"] == "ok" and health["unrecorded"] == 0, health
    # The lease (120 s) outlasts the blackhole, so what was in flight was recorded, not resent.
    assert daemon.sink.keys() == {i: 1 for i in ids}  # 0 lost, 0 sent twice
    rows = await _direct(schema, "SELECT id, state, attempts FROM deliveries")
    assert {(r["id"], r["state"], r["attempts"]) for r in rows} == {
        (i, "delivered", 1) for i in ids
    }
    assert len(await _direct(schema, "SELECT id FROM incidents")) == INCIDENTS  # not the dark one
    assert await _direct(schema, "SELECT key FROM idempotency_keys WHERE key = 'dark-1'") == []
    events = [e["event"] for e in logs]
    assert events.count("store.unreachable") >= 1 and events.count("store.reachable") >= 1
    print(
        f"\n503 on /healthz {noticed_s:.2f} s into the blackhole, on intake in {refused_s:.2f} s;"
        f" {sent} sends before it; {proxy.held} connects held, {proxy.dropped_bytes} bytes"
        f" dropped; settled {settled_s:.2f} s after the restore;"
        f" unreachable logged {events.count('store.unreachable')} time(s)"
    )


async def _intake_refused(d: Daemon) -> float:
    """POST /v1/incidents in the dark: 503 naming the store within the bound; its duration."""
    started = time.monotonic()
    resp = await d.client.post(
        "/v1/incidents",
        json=incident(headline="断网时的警报"),
        headers={"Authorization": f"Bearer {TOKEN}", "Idempotency-Key": "dark-1"},
        timeout=aiohttp.ClientTimeout(total=BOUND_S),
    )
    body = await resp.json(content_type=None)
    assert resp.status == 503, body
    assert resp.content_type == "application/problem+json"
    assert "store is unreachable" in body["detail"] and resp.headers["Retry-After"]
    return time.monotonic() - started


async def test_a_store_call_in_the_dark_is_a_timeout_the_outage_counts(
    schema: str, proxy: TcpProxy
) -> None:
    """On the store itself: a read and a write in the dark fail within a few timeouts with a
    TimeoutError naming the bound, the outage notes it, the write stored nothing, and once
    restored no connection of the pool is left inside a transaction."""
    store = PostgresStore(_url(proxy, schema, 0.5))
    await store.open()
    outage = Outage(store, lambda text: text)
    try:
        proxy.blackhole()
        for call in (store.next_due_at, lambda: store.put_account_state(_paused())):
            started = time.monotonic()
            with pytest.raises(TimeoutError, match=r" within 0\.5 s$"):
                await asyncio.wait_for(call(), 5)
            assert time.monotonic() - started < 3
        assert not await asyncio.wait_for(outage.probe(), 5)
        error = outage.view()["store_error"]  # a statement's bound, or a new connection's
        assert error.startswith("TimeoutError: ") and error.endswith(" within 0.5 s"), error
        proxy.restore()
        assert await asyncio.wait_for(outage.probe(), 5) and not outage.down
        assert await store.account_states() == {}  # the write in the dark stored nothing
        async with store.driver.pool.acquire() as conn:  # what the pool hands out is clean
            assert not conn.is_in_transaction()
            assert await conn.fetchval("SELECT 1") == 1
    finally:
        await store.close()
    stuck = await _direct(
        schema,
        "SELECT pid FROM pg_stat_activity WHERE state LIKE 'idle in transaction%' "
        "AND query NOT LIKE '%pg_stat_activity%' AND datname = current_database()",
    )
    assert stuck == []


async def test_a_slow_statement_times_out_and_its_connection_is_not_reused(
    schema: str, proxy: TcpProxy
) -> None:
    """A statement slower than the command timeout fails with TimeoutError, mid-transaction;
    its connection is terminated (not handed out again) and the next call works."""
    store = PostgresStore(_url(proxy, schema, 0.5), min_size=1, max_size=1)
    await store.open()
    try:
        pids: list[int] = []

        async def slow(c: Any) -> None:
            pids.append((await c.fetchone("SELECT pg_backend_pid()"))[0])
            await c.execute("SELECT pg_sleep(3)")

        with pytest.raises(TimeoutError, match=r"within 0\.5 s"):
            await asyncio.wait_for(store.driver.write(slow), 5)
        assert await store.account_states() == {}  # the one connection there is: a new one
        async with store.driver.pool.acquire() as conn:
            assert await conn.fetchval("SELECT pg_backend_pid()") != pids[0]
    finally:
        await store.close()


def _paused() -> AccountState:
    return AccountState("hook-0", "quota", "spent", paused_until=time.time() + 60)


async def _raise(d: Daemon, n: int) -> list[str]:
    resp = await d.post(incident(headline=f"第{n}号余震"))
    answer = await resp.json()
    assert resp.status == 202, answer
    return [x["id"] for x in answer["deliveries"]]


async def _health(d: Daemon) -> tuple[int, dict[str, Any]]:
    """GET /healthz with a client timeout: a hang fails the test instead of holding it."""
    resp = await d.client.get("/healthz", timeout=aiohttp.ClientTimeout(total=BOUND_S))
    return resp.status, await resp.json()


def _just_arrived(d: Daemon, at_least: int) -> bool:
    """At least ``at_least`` sends reached the sink, the last well within its answer's delay."""
    got = d.sink.received
    return len(got) >= at_least and time.time() - got[-1].at < SINK_LATENCY_S / 3


async def _all_delivered(d: Daemon, ids: list[str]) -> bool:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    resp = await d.client.get("/v1/deliveries?state=delivered&limit=500", headers=headers)
    if resp.status != 200:
        return False
    return {x["id"] for x in (await resp.json())["deliveries"]} >= set(ids)


async def _direct(schema: str, query: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(PG_URL, server_settings={"search_path": schema})
    try:
        return list(await conn.fetch(query))
    finally:
        await conn.close()
