"""A replica that loses its database (issue 15 item 6): PostgreSQL reached through a TCP proxy
that the test cuts and restores, a real app, a real webhook sink."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import asyncpg
import pytest
from structlog.testing import capture_logs

from alertcast.keys import DISPATCHER
from alertcast.store.postgres import CHANNEL, PostgresStore
from alertcast.testing.tcpproxy import TcpProxy
from tests.conftest import PG_URL, TOKEN, Daemon, incident, until

pytestmark = pytest.mark.postgres

HOOKS, INCIDENTS, SINK_LATENCY_S = 4, 10, 0.3


@pytest.fixture
async def daemon(schema: str, proxy: TcpProxy, start_daemon: Any) -> Daemon:
    """The app on PostgreSQL through the proxy, with ``HOOKS`` webhook accounts."""
    return await start_daemon(hooks=HOOKS, store={"url": _url(proxy, schema)})  # type: ignore[no-any-return]


async def _health(d: Daemon) -> tuple[int, dict[str, Any]]:
    resp = await d.client.get("/healthz")
    return resp.status, await resp.json()


async def _raise(d: Daemon, n: int) -> list[str]:
    resp = await d.post(incident(headline=f"第{n}号余震"))
    answer = await resp.json()
    assert resp.status == 202, answer
    return [x["id"] for x in answer["deliveries"]]


async def _direct(schema: str, query: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(PG_URL, server_settings={"search_path": schema})
    try:
        return list(await conn.fetch(query))
    finally:
        await conn.close()


async def test_a_cut_mid_fanout_loses_nothing_and_sends_nothing_twice(
    daemon: Daemon, proxy: TcpProxy, schema: str
) -> None:
    """Cut while sends are in flight: no claims and 503 while cut, then every delivery
    delivered once (each key seen once at the sink, one attempt each), and 200 again."""
    daemon.sink.latency_s = SINK_LATENCY_S
    ids = [i for n in range(INCIDENTS) for i in await _raise(daemon, n)]
    with capture_logs() as logs:
        await until(lambda: _just_arrived(daemon, HOOKS), 10, "sends in flight")
        await proxy.cut()
        cut_at = time.time()
        await asyncio.sleep(SINK_LATENCY_S + 0.2)  # the sends in flight get their answers
        status, health = await _health(daemon)
        assert status == 503, health
        assert health["status"] == "degraded" and health["store"].startswith("unreachable")
        assert health["store_unreachable_since"] and health["store_error"]
        assert health["unrecorded"] > 0  # answered by the sink, not yet recorded
        health_cut = health
        sent, refused = len(daemon.sink.received), proxy.refused
        await asyncio.sleep(1.5)
        assert len(daemon.sink.received) == sent  # nothing claimed, nothing sent while cut
        assert proxy.refused - refused < 60  # backoff, not a tight loop
        resp = await daemon.client.get("/v1/incidents?limit=5", headers=_auth())
        assert resp.status == 503, await resp.text()
        proxy.restore()
        restored_at = time.time()
        await until(lambda: _all_delivered(daemon, ids), 15, "every delivery delivered")
        settled_at = time.time()
    status, health = await _health(daemon)
    assert status == 200 and health["store"] == "ok" and health["unrecorded"] == 0, health
    assert daemon.sink.keys() == {i: 1 for i in ids}  # 0 lost, 0 sent twice
    events = [e["event"] for e in logs]
    assert events.count("store.unreachable") == 1 and events.count("store.reachable") == 1
    rows = await _direct(schema, "SELECT id, state, attempts, updated_at FROM deliveries")
    assert {(r["id"], r["state"], r["attempts"]) for r in rows} == {
        (i, "delivered", 1) for i in ids
    }
    # What was sent before the cut was recorded before anything new was sent after it.
    before = {r.key for r in daemon.sink.received if r.at < cut_at}
    after = [r.at for r in daemon.sink.received if r.at >= restored_at]
    recorded = max(r["updated_at"] for r in rows if r["id"] in before)
    assert after and min(after) >= recorded
    print(
        f"\nsent before the cut {len(before)}, unrecorded {health_cut['unrecorded']}, after the"
        f" restore {len(after)}; {proxy.refused} connects refused in {restored_at - cut_at:.2f} s;"
        f" settled {settled_at - restored_at:.2f} s after the restore"
    )


async def test_the_second_replica_goes_on_while_one_is_cut_off(
    schema: str, proxy: TcpProxy, start_daemon: Any
) -> None:
    """Two replicas on one database, one through the proxy. Cut it off mid-fan-out for less
    than a lease: the other keeps answering 200 and delivering, the cut one says 503; restored,
    it records what it sent before the cut, and every key reached the sink exactly once."""
    store = {"url": _url(proxy, schema)}
    dispatch = {"poll_interval_s": 0.2}
    cut_off = await start_daemon(hooks=HOOKS, store=store, dispatch=dispatch)
    direct = PG_URL + ("&" if "?" in PG_URL else "?") + f"schema={schema}"
    other = await start_daemon(hooks=HOOKS, store={"url": direct}, dispatch=dispatch)
    cut_off.sink.latency_s = SINK_LATENCY_S
    ids = [i for n in range(3 * INCIDENTS) for i in await _raise(other, n)]  # work left to do
    with capture_logs():
        await until(lambda: _claimed_by_both(schema), 10, "both replicas sending")
        await proxy.cut()
        await asyncio.sleep(SINK_LATENCY_S + 0.2)
        assert (await _health(cut_off))[0] == 503 and (await _health(other))[0] == 200
        during = await _delivered(schema)
        await asyncio.sleep(1.0)
        assert await _delivered(schema) > during, "the other replica stopped too"
        proxy.restore()
        await until(lambda: _all_delivered(other, ids), 20, "every delivery delivered")
    assert (await _health(cut_off))[0] == 200
    assert cut_off.sink.keys() == {i: 1 for i in ids}  # 0 lost, 0 sent twice
    rows = await _direct(schema, "SELECT id, attempts FROM deliveries")
    assert {(r["id"], r["attempts"]) for r in rows} == {(i, 1) for i in ids}


async def _claimed_by_both(schema: str) -> bool:
    rows = await _direct(
        schema, "SELECT DISTINCT claimed_by FROM deliveries WHERE state = 'sending'"
    )
    return len(rows) == 2


async def _delivered(schema: str) -> int:
    rows = await _direct(schema, "SELECT COUNT(*) AS n FROM deliveries WHERE state = 'delivered'")
    return int(rows[0]["n"])


async def test_intake_while_cut_is_refused_with_503_and_stores_nothing(
    daemon: Daemon, proxy: TcpProxy, schema: str
) -> None:
    """POST /v1/incidents while the store is away: 503 naming the store, nothing stored."""
    await proxy.cut()
    resp = await daemon.post(incident(headline="断线时的警报"), **{"Idempotency-Key": "cut-1"})
    body = await resp.json(content_type=None)
    assert resp.status == 503, body
    assert resp.content_type == "application/problem+json"
    assert "store is unreachable" in body["detail"] and resp.headers["Retry-After"]
    proxy.restore()
    await until(lambda: _health_is(daemon, 200), 10, "store back")
    assert await _direct(schema, "SELECT id FROM incidents") == []
    assert await _direct(schema, "SELECT id FROM deliveries") == []
    assert await _direct(schema, "SELECT key FROM idempotency_keys") == []
    resp = await daemon.post(incident(headline="断线时的警报"), **{"Idempotency-Key": "cut-1"})
    assert resp.status == 202, await resp.text()  # the same key, sent again, is a new alert


async def test_stopping_with_outcomes_unrecorded_names_them(
    schema: str, proxy: TcpProxy, start_daemon: Any
) -> None:
    """Stopped while the store is away, the dispatcher logs at error every delivery it sent
    whose outcome the store never took (they stay claimed: the lease sends them again)."""
    d = await start_daemon(hooks=HOOKS, store={"url": _url(proxy, schema)}, server=GRACE)
    d.sink.latency_s = SINK_LATENCY_S
    ids = await _raise(d, 0)
    await until(lambda: len(d.sink.received) == HOOKS, 10, "sends in flight")
    await proxy.cut()
    await until(lambda: _unrecorded(d, HOOKS), 10, "outcomes waiting")
    with capture_logs() as logs:
        await asyncio.wait_for(d.client.close(), 10)
    named = {e["delivery_id"] for e in logs if e["event"] == "store.outcome_unrecorded"}
    assert named == set(ids)
    assert {e["log_level"] for e in logs if e["event"] == "store.outcome_unrecorded"} == {"error"}
    proxy.restore()
    rows = await _direct(schema, "SELECT state FROM deliveries")
    assert [r["state"] for r in rows] == ["sending"] * HOOKS


async def test_the_error_kept_masks_the_dsn_password_and_secrets(
    schema: str, proxy: TcpProxy, start_daemon: Any
) -> None:
    """The last error that /healthz shows masks a DSN's password and every secret in use."""
    d = await start_daemon(store={"url": _url(proxy, schema)})
    outage = d.client.app[DISPATCHER].outage
    dsn = "postgresql://alertcast:pg-pass-93b1@db.internal:5432/alerts"
    outage.failed(OSError(f"cannot reach {dsn} (as Bearer {TOKEN}, token {TOKEN})"))
    error = outage.view()["store_error"]
    assert "pg-pass-93b1" not in error and TOKEN not in error
    assert "postgresql://alertcast:***@db.internal:5432/alerts" in error, error
    assert outage.down and (await _health(d))[0] == 200 and not outage.down  # a probe ends it


GRACE = {"shutdown_grace_s": 0.5}


def _url(proxy: TcpProxy, schema: str) -> str:
    head, tail = PG_URL.rsplit("@", 1)
    return f"{head}@127.0.0.1:{proxy.port}/{tail.split('/', 1)[1]}?schema={schema}"


def _just_arrived(d: Daemon, at_least: int) -> bool:
    """At least ``at_least`` sends reached the sink, the last well within its answer's delay."""
    got = d.sink.received
    return len(got) >= at_least and time.time() - got[-1].at < SINK_LATENCY_S / 3


async def _unrecorded(d: Daemon, n: int) -> bool:
    return (await _health(d))[1].get("unrecorded") == n


def _auth() -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKEN}"}


async def _health_is(d: Daemon, status: int) -> bool:
    return (await _health(d))[0] == status


async def _all_delivered(d: Daemon, ids: list[str]) -> bool:
    resp = await d.client.get("/v1/deliveries?state=delivered&limit=500", headers=_auth())
    if resp.status != 200:
        return False
    return {x["id"] for x in (await resp.json())["deliveries"]} >= set(ids)


async def test_wake_ups_from_other_replicas_are_heard_again_after_a_cut(
    schema: str, proxy: TcpProxy
) -> None:
    """The LISTEN connection dropped by the cut is reopened once the database is back: the
    replica is woken on its return (work stored meanwhile rang no bell here), and another
    replica's NOTIFY reaches it again instead of its dispatcher falling back to polling."""
    woken = asyncio.Event()
    store = PostgresStore(_url(proxy, schema), on_due=woken.set)
    await store.open()
    try:
        with capture_logs() as logs:
            await proxy.cut()
            await until(lambda: _logged(logs, "store.listen_lost"), 10, "the loss noticed")
            await asyncio.sleep(0.5)  # a few tries refused while cut
            woken.clear()
            proxy.restore()
            await until(lambda: _logged(logs, "store.listen_restored"), 15, "listener back")
        assert woken.is_set(), "the return itself wakes the dispatcher"
        woken.clear()
        await _direct(schema, f"NOTIFY {CHANNEL}")  # another replica stored due work
        await asyncio.wait_for(woken.wait(), 5)
    finally:
        await store.close()


def _logged(logs: list[dict[str, Any]], event: str) -> bool:
    return any(e["event"] == event for e in logs)
