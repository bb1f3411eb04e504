"""A claim the database committed while its answer was lost (issue 15 item 6): the rows are
claimed by this replica, which never received them. They must go out within the store's claim
bound, not after their lease (120 s), and exactly once. PostgreSQL through a TCP proxy that
forwards one COMMIT and drops everything the server says after it; a real app, a real sink."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
import asyncpg
import pytest
from structlog.testing import capture_logs

from alertcast.keys import DISPATCHER
from alertcast.testing.tcpproxy import TcpProxy
from tests.conftest import PG_URL, TOKEN, Daemon, incident, until

pytestmark = pytest.mark.postgres

TIMEOUT_S = 1.0  # connect and command timeouts: the claim bound is 1 + 2 x 1 = 3 s
CLAIM_BOUND_S = 3.0
# Released two bounds (and a 1 s margin) after the failure, then sent; the rest is room for a
# loaded machine. The lease is 120 s: without the release nothing comes before it.
WITHIN_S = 2 * CLAIM_BOUND_S + 1 + 8
DISPATCH = {"backoff_initial_s": 0.05, "backoff_max_s": 0.2, "poll_interval_s": 0.2}


def _url(proxy: TcpProxy, schema: str) -> str:
    head, tail = PG_URL.rsplit("@", 1)
    bounds = f"connect_timeout_s={TIMEOUT_S}&command_timeout_s={TIMEOUT_S}"
    return f"{head}@127.0.0.1:{proxy.port}/{tail.split('/', 1)[1]}?schema={schema}&{bounds}"


async def _post(d: Daemon, body: dict[str, Any], key: str) -> tuple[int, dict[str, Any]]:
    resp = await d.client.post(
        "/v1/incidents",
        json=body,
        headers={"Authorization": f"Bearer {TOKEN}", "Idempotency-Key": key},
        timeout=aiohttp.ClientTimeout(total=30),
    )
    return resp.status, await resp.json(content_type=None)


async def _rows(schema: str, query: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(PG_URL, server_settings={"search_path": schema})
    try:
        return list(await conn.fetch(query, *args))
    finally:
        await conn.close()


async def test_an_intake_whose_commit_answer_is_lost_is_sent_within_the_bound_once(
    schema: str, proxy: TcpProxy, start_daemon: Any
) -> None:
    """The office's POST is committed, its deliveries claimed at creation by this replica, and
    the answer lost: the office gets a 5xx and retries with its key (the first answer comes
    back); each account is sent the alert once, seconds later, not after the lease."""
    hooks = 3
    # A claim from the store in progress at the POST would leave nothing claimed at creation
    # (the dispatcher would claim the rows itself): a slow poll keeps it out of the way.
    quiet = {**DISPATCH, "poll_interval_s": 5.0}
    d = await start_daemon(hooks=hooks, store={"url": _url(proxy, schema)}, dispatch=quiet)
    inbox = d.client.app[DISPATCHER].inbox
    await until(lambda: inbox.open, 10, "the dispatcher takes what intake claims")
    await asyncio.sleep(0.5)  # its first claim, at start, is over
    body = incident(headline="答复丢失的地震速报")
    proxy.lose_answer(b"lost-answer-7f3a")  # its Idempotency-Key: a column of its own
    posted = time.monotonic()
    status, first = await _post(d, body, "lost-answer-7f3a")
    assert proxy.answers_lost == 1, "the intake's commit did not go through the proxy"
    assert status == 503, first  # the office does not know: it must ask again, and is told so
    assert "may have been stored" in first["detail"], first
    assert "same Idempotency-Key" in first["detail"], first
    claimed = await _rows(schema, "SELECT id, state, created_at, updated_at FROM deliveries")
    assert len(claimed) == hooks and {r["state"] for r in claimed} == {"sending"}
    assert all(r["created_at"] == r["updated_at"] for r in claimed)  # claimed at creation
    status, again = await _post(d, body, "lost-answer-7f3a")
    assert status == 202, again  # the commit happened: its answer, replayed
    ids = {x["id"] for x in again["deliveries"]}
    assert ids == {r["id"] for r in claimed}
    await until(lambda: len(d.sink.received) >= hooks, WITHIN_S, "every account sent once")
    took_s = time.monotonic() - posted
    await d.settled(again["id"])
    keys = d.sink.keys()
    assert sorted(keys.values()) == [1] * hooks and set(keys) == ids  # 0 lost, 0 twice
    rows = await _rows(schema, "SELECT state, attempts FROM deliveries")
    assert [(r["state"], r["attempts"]) for r in rows] == [("delivered", 1)] * hooks
    print(f"\nsent {took_s:.1f} s after the POST whose answer was lost (lease 120 s)")


async def test_a_dispatcher_claim_whose_answer_is_lost_is_released_and_sent_once(
    schema: str, proxy: TcpProxy, start_daemon: Any
) -> None:
    """The dispatcher's own claim of a waiting delivery is committed and its answer lost (the
    claim times out): the delivery goes out within the bound, once; the one in flight at the
    time (held by this replica all along) is not released, so it is not sent twice."""
    accounts = [
        {
            "id": "slow",
            "channel": "webhook",
            "url": "{sink}",
            "concurrency": 1,
            "secret_env": "T_HOOK_SECRET",
        }
    ]
    d = await start_daemon(
        hooks=0, accounts=accounts, store={"url": _url(proxy, schema)}, dispatch=DISPATCH
    )
    d.sink.latency_s = 2.0  # the first delivery holds the account's one slot meanwhile
    status, first = await _post(d, incident(headline="第一条"), "slow-1")
    assert status == 202, first
    await until(lambda: len(d.sink.received) == 1, 10, "the first send on the wire")
    status, second = await _post(d, incident(headline="第二条"), "slow-2")
    assert status == 202, second
    (waiting,) = second["deliveries"]
    assert waiting["state"] == "pending"  # no room at creation: the dispatcher claims it
    proxy.lose_answer(waiting["id"].encode())
    armed = time.monotonic()
    with capture_logs() as logs:
        await until(lambda: proxy.answers_lost == 1, 10, "the claim's commit forwarded")
        d.sink.latency_s = 0.0
        await until(lambda: len(d.sink.received) == 2, WITHIN_S, "the second sent")
    took_s = time.monotonic() - armed
    events = [e["event"] for e in logs]
    assert "dispatch.store_unanswered" in events and "dispatch.loop_crashed" not in events
    (released,) = [e for e in logs if e["event"] == "dispatch.lost_claims_released"]
    assert released["deliveries"] == 1
    await d.settled(second["id"])
    assert sorted(d.sink.keys().values()) == [1, 1]  # the first was held, not released
    rows = await _rows(schema, "SELECT state, attempts FROM deliveries ORDER BY created_at")
    assert [(r["state"], r["attempts"]) for r in rows] == [("delivered", 1), ("delivered", 1)]
    print(f"\nthe lost claim's delivery sent {took_s:.1f} s after the proxy was armed")


async def test_a_cancellation_whose_commit_answer_is_lost_goes_out_within_the_bound(
    schema: str, proxy: TcpProxy, start_daemon: Any
) -> None:
    """A correction takes the same path: the cancellation's commit (its deliveries claimed at
    creation) answers nothing; the operator sees a 5xx, and each account still gets the
    cancellation once, seconds later, not after the lease; it is not posted twice."""
    hooks = 2
    quiet = {**DISPATCH, "poll_interval_s": 5.0}  # as above: nothing claimed from the store
    d = await start_daemon(hooks=hooks, store={"url": _url(proxy, schema)}, dispatch=quiet)
    status, alert = await _post(d, incident(headline="误报的地震速报"), "alert-1")
    assert status == 202, alert
    await d.settled(alert["id"])
    await asyncio.sleep(0.5)
    reason = "lost-cancel-9c2e: false alarm"  # ASCII: bound as it is, the proxy's marker
    proxy.lose_answer(b"lost-cancel-9c2e")
    cancelled = time.monotonic()
    resp = await d.client.post(
        f"/v1/incidents/{alert['id']}/cancel",
        json={"reason": reason},
        headers={"Authorization": f"Bearer {TOKEN}"},
        timeout=aiohttp.ClientTimeout(total=30),
    )
    assert resp.status >= 500, await resp.text()
    assert proxy.answers_lost == 1, "the cancellation's commit did not go through the proxy"
    await until(lambda: len(d.sink.received) >= 2 * hooks, WITHIN_S, "each cancellation sent")
    took_s = time.monotonic() - cancelled
    await asyncio.sleep(0.5)  # nothing more comes
    assert len(d.sink.received) == 2 * hooks
    assert sorted(d.sink.keys().values()) == [1] * (2 * hooks)
    rows = await _rows(
        schema,
        "SELECT d.state, d.attempts FROM deliveries d JOIN incidents i ON i.id = d.incident_id "
        "WHERE i.msg_type = 'cancel'",
    )
    assert [(r["state"], r["attempts"]) for r in rows] == [("delivered", 1)] * hooks
    print(f"\nthe cancellations sent {took_s:.1f} s after the request whose answer was lost")
