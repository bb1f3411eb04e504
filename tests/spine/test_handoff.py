"""Deliveries claimed in the transaction that creates them: on their way without a second
round trip to the store, never more than an account (or the dispatcher) may have in flight,
and never lost if the commit fails or the daemon dies right after it."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from alertcast.app import create_app
from alertcast.keys import ACCOUNTS, DISPATCHER, STORE
from alertcast.models import DeliveryState
from alertcast.store.base import ActiveClaim, NewDelivery, Taken, Write
from tests.conftest import TOKEN, incident, make_config
from tests.store.test_contract import _incident

AUTH = {"Authorization": f"Bearer {TOKEN}"}
HOOK = {"channel": "webhook", "url": "{sink}", "secret_env": "T_HOOK_SECRET"}


def _claims_recorded(d: Any) -> list[str]:
    """Wrap the store's claim_due so the test sees every delivery claimed from the store."""
    store = d.client.app[STORE]
    claimed: list[str] = []
    original = store.claim_due

    async def claim_due(**kw: Any) -> list[ActiveClaim]:
        claims: list[ActiveClaim] = await original(**kw)
        claimed.extend(c.delivery.id for c in claims)
        return claims

    store.claim_due = claim_due
    return claimed


async def test_an_alert_and_its_cancellation_need_no_claim_from_the_store(
    start_daemon: Any,
) -> None:
    """Every post of a new alert, and every cancellation of a delivered original, is sent by
    the worker that committed it: none of them is claimed from the store afterwards."""
    # A long poll: the loop claims only when woken, and nothing wakes it while it is idle
    # (while a claim from the store is under way, new deliveries are left to it instead).
    d = await start_daemon(hooks=5, dispatch={"poll_interval_s": 30.0})
    claimed = _claims_recorded(d)
    await _idle(d)
    answer = await (await d.post(incident())).json()
    view = await d.settled(answer["id"])
    assert view["counts"] == {"delivered": 5}
    assert all(x["attempts"] == 1 for x in view["deliveries"])
    await _idle(d)
    resp = await d.client.post(
        f"/v1/incidents/{answer['id']}/cancel", json={"reason": "误报"}, headers=AUTH
    )
    cancel = await resp.json()
    done = await d.settled(cancel["id"])
    assert done["counts"] == {"delivered": 5}
    ids = {x["id"] for x in view["deliveries"]} | {x["id"] for x in done["deliveries"]}
    assert not ids & set(claimed)
    assert len(d.sink.delivered_keys()) == 10 and max(d.sink.keys().values()) == 1
    # Each cancellation names the original it follows, as through the store's claim.
    follows = [r.body for r in d.sink.received if r.body.get("references")]
    assert len(follows) == 5 and {b["references"] for b in follows} == {answer["id"]}


async def _idle(d: Any) -> None:
    """Until the dispatcher's loop is asleep, with no wake-up pending."""
    dispatcher = d.client.app[DISPATCHER]
    deadline = time.monotonic() + 30
    while not dispatcher.sleeping or dispatcher.inbox.rung:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.01)


def _new(n: int, account: str, **kw: Any) -> list[NewDelivery]:
    return [
        NewDelivery(f"{account}-{i}", account, "webhook", {"format": "webhook"}, f"k{i}", **kw)
        for i in range(n)
    ]


async def test_taking_respects_account_and_dispatcher_limits(start_daemon: Any) -> None:
    """An account takes no more than its free slots; the dispatcher no more than its room; a
    failed commit gives every slot back; nothing is taken while a store claim is under way,
    nor what must wait (held, waiting for another, a follow-up whose original is unknown)."""
    d = await start_daemon(
        hooks=0,
        accounts=[{"id": "slow", **HOOK, "concurrency": 2}, {"id": "fast", **HOOK}],
        dispatch={"concurrency": 5, "poll_interval_s": 0.2},
    )
    capacity, accounts = d.client.app[DISPATCHER].capacity, d.client.app[ACCOUNTS]
    slow, fast = accounts.get("slow"), accounts.get("fast")
    assert slow is not None and fast is not None
    new = _new(4, "slow") + _new(4, "fast")
    taken = capacity.reserve(new, {}, time.time())
    assert taken is not None and len(taken.tickets) == 5  # the dispatcher's room
    assert len({i for i in taken.tickets if i.startswith("slow")}) == slow.inflight == 2
    assert fast.inflight == 3
    assert capacity.reserve(_new(1, "fast"), {}, time.time()) is None  # no room left
    taken.cancel()
    assert slow.inflight == fast.inflight == slow.waiting == fast.waiting == 0
    assert capacity.held == 0
    with capacity.claiming():
        assert capacity.reserve(_new(1, "fast"), {}, time.time()) is None
    must_wait = [
        *_new(1, "fast", hold=True),
        *_new(1, "fast", wait_for="x"),
        *_new(1, "fast", target_delivery_id="x"),
        *_new(1, "fast", state=DeliveryState.failed),
    ]
    assert capacity.reserve(must_wait, {}, time.time()) is None
    follow_up = _new(1, "fast", target_delivery_id="x")
    taken = capacity.reserve(follow_up, {"x": "remote-1"}, time.time())  # original delivered
    assert taken is not None and set(taken.tickets) == {"fast-0"}
    taken.cancel()
    taken.cancel()  # giving back twice gives back once
    assert fast.inflight == 0 and capacity.held == 0


async def test_a_crash_right_after_the_commit_loses_nothing(start_daemon: Any) -> None:
    """Rows stored claimed by a worker that died right after its commit are recovered and sent
    like any interrupted send."""
    d = await start_daemon(hooks=1)
    store, dispatcher = d.client.app[STORE], d.client.app[DISPATCHER]
    row = _incident()
    new = [
        NewDelivery(f"d{i}", "hook-0", "webhook", {"format": "webhook", "text": "t"}, f"d{i}")
        for i in range(2)
    ]
    taken = Taken("w-dead", time.time() + 600, frozenset({"d0", "d1"}))
    await store.apply(Write(incident=row, deliveries=new, taken=taken))
    rows = await store.list_deliveries(incident_id=row.id)
    assert {(x.state, x.attempts) for x in rows} == {(DeliveryState.sending, 1)}
    now = time.time() + 1
    assert await store.claim_due(now=now, limit=10, lease_s=30, worker="w2", free={}) == []
    assert await store.recover(now=time.time(), everything=True) == 2
    dispatcher.wake()
    deadline = time.monotonic() + 30
    while not all(x.state is DeliveryState.delivered for x in rows):
        assert time.monotonic() < deadline, rows
        await asyncio.sleep(0.05)
        rows = await store.list_deliveries(incident_id=row.id)
    assert {x.attempts for x in rows} == {2}
    assert sorted(d.sink.delivered_keys()) == ["d0", "d1"]


async def test_an_incident_already_expired_is_not_taken(start_daemon: Any) -> None:
    """An alert that arrives after its own expiry (a late feed report, a replayed CAP message)
    is stored but never sent: taking it at creation must honour ``expires_at`` as the store's
    claim does (there it ends dead as expired)."""
    d = await start_daemon(hooks=2)
    capacity = d.client.app[DISPATCHER].capacity
    stale = _new(1, "hook-0", expires_at=time.time() - 1)
    assert capacity.reserve(stale, {}, time.time()) is None
    answer = await (await d.post(incident(expires_at="2022-09-05T13:52:18+08:00"))).json()
    view = await d.settled(answer["id"])
    assert view["counts"] == {"dead": 2}
    expired = "expired: the incident's expires_at passed before it could be sent"
    assert {x["reason"] for x in view["deliveries"]} == {expired}
    assert d.sink.received == []


async def test_an_app_without_a_dispatcher_sends_nothing(
    env: None, tmp_path: Any, sink: Any, aiohttp_client: Any
) -> None:
    """``create_app(dispatch=False)`` stores what it accepts and sends none of it: the
    dispatcher it does not start takes nothing at creation either."""
    config = make_config(tmp_path, [sink.url.replace("/hook", "/hook/0")])
    client = await aiohttp_client(create_app(config, dispatch=False))
    resp = await client.post("/v1/incidents", json=incident(), headers=AUTH)
    assert resp.status == 202
    answer = await resp.json()
    await asyncio.sleep(0.3)
    rows = await client.app[STORE].list_deliveries(incident_id=answer["id"])
    assert [(x.state, x.attempts) for x in rows] == [(DeliveryState.pending, 0)]
    assert sink.received == []


async def test_every_ticket_is_given_back_once_the_work_settles(start_daemon: Any) -> None:
    """After alerts, a cancellation, a failing receiver and a rate-limited account settle, the
    dispatcher holds no capacity: no ticket leaks, whichever path took or claimed it."""
    d = await start_daemon(
        hooks=3,
        accounts=[{"id": "slow", **HOOK, "per_second": 20, "concurrency": 1}],
        dispatch={
            "concurrency": 4,
            "poll_interval_s": 0.2,
            "backoff_initial_s": 0.05,
            "backoff_max_s": 0.1,
            "max_attempts": 3,
        },
    )
    d.sink.answer = lambda item: (503, {}) if item.key.endswith("7") else (200, {})
    answers = [await (await d.post(incident())).json() for _ in range(4)]
    resp = await d.client.post(
        f"/v1/incidents/{answers[0]['id']}/cancel", json={"reason": "误报"}, headers=AUTH
    )
    cancel = await resp.json()
    for a in [*answers, cancel]:
        await d.settled(a["id"], timeout_s=60)
    capacity, accounts = d.client.app[DISPATCHER].capacity, d.client.app[ACCOUNTS]
    deadline = time.monotonic() + 10
    while capacity.held:
        assert time.monotonic() < deadline, capacity.held
        await asyncio.sleep(0.02)
    assert [(a.id, a.inflight, a.waiting) for a in accounts if a.inflight or a.waiting] == []
