"""A correction of a per-recipient alert one of whose requests is still on the wire when the
correction is posted, through the running daemon, on every engine: that recipient's
correction waits for the alert's answer, then goes threaded to the remote id it gave; nobody
else's waits (docs/delivery.md, "A correction follows what is on the wire")."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web

from alertcast.keys import STORE
from alertcast.store import followup_sql
from alertcast.store.recipient_store import RecipientMethods
from alertcast.store.sqlstore import SQLStore
from alertcast.testing.sink import Received, WebhookSink
from tests.conftest import HOOK_SECRET
from tests.spine.bulk_people import account, answer_with_ids, load, people, quake, start

HELD = "cd-0007"  # the recipient whose alert the receiver answers only when told
PEOPLE = [f"cd-{i:04d}" for i in range(20)]
LATER_S = 1.0  # how long the held one's correction is watched for before the answer


@dataclass
class HoldingSink(WebhookSink):
    """The test's receiver: answers each POST with its own id (``<msg_type>-<recipient>``),
    but holds its answer to ``HELD``'s alert until ``release`` is set."""

    holding: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    released_at: float = 0.0
    held: frozenset[str] = frozenset({HELD})

    async def _handle(self, request: web.Request) -> web.Response:
        body = json.loads(await request.read())  # aiohttp keeps it for the sink's own read
        if body.get("msg_type") == "alert" and body.get("recipient", {}).get("id") in self.held:
            self.holding.set()
            await self.release.wait()
        return await super()._handle(request)

    def posts(self, msg_type: str) -> dict[str, Received]:
        """Each recipient's POST of ``msg_type`` (one each: a second fails the test)."""
        found = [r for r in self.received if r.body.get("msg_type") == msg_type]
        by_recipient = {r.body["recipient"]["id"]: r for r in found}
        assert len(by_recipient) == len(found), f"a {msg_type} twice to one recipient"
        return by_recipient


@pytest.fixture
async def receiver() -> AsyncIterator[HoldingSink]:
    sink = HoldingSink(secret=HOOK_SECRET, answer=answer_with_ids)
    await sink.start()
    yield sink
    sink.release.set()
    await sink.stop()


async def _until(check: Callable[[], bool], what: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, f"{what}: not in {timeout_s} s"
        await asyncio.sleep(0.01)


async def _cancel_while_held(
    b: Any, receiver: HoldingSink, held_s: float, first: dict[str, Any] | None = None
) -> None:
    """Alert (unless ``first`` was raised); once cd-0007's alert is held and the 19 others are
    in, cancel; watch for ``held_s`` that cd-0007's cancellation does not go; answer its alert;
    then every one of the 20 cancellations is a reply whose in_reply_to names the id that
    recipient's alert got, cd-0007's sent after the answer."""
    first = first or await b.raise_(quake())
    await asyncio.wait_for(receiver.holding.wait(), 30)
    await _until(lambda: len(receiver.posts("alert")) == 19, "the 19 other alerts")
    cancel = await b.follow(first["id"], "cancel", "city", reason="误报")
    await _until(lambda: len(receiver.posts("cancel")) >= 19, "the 19 other cancellations")
    await asyncio.sleep(held_s)
    assert HELD not in receiver.posts("cancel"), "the cancellation went before the alert's answer"
    released = time.time()
    receiver.release.set()
    await b.settled(cancel["id"])
    cancels = receiver.posts("cancel")
    threads = {rid: (r.body["action"], r.body.get("in_reply_to")) for rid, r in cancels.items()}
    assert threads == {rid: ("reply", f"alert-{rid}") for rid in PEOPLE}
    assert cancels[HELD].at >= released


async def test_a_cancellation_threads_to_an_alert_that_was_on_the_wire(
    start_daemon: Any, monkeypatch: pytest.MonkeyPatch, engine: str, receiver: HoldingSink
) -> None:
    """The alert to cd-0007 is on the wire (unanswered) when the cancellation is posted: the
    19 others get theirs at once, cd-0007 only after its alert's answer, and every one of the
    20 is a reply whose in_reply_to names the id that recipient's alert got."""
    await load(engine, people(chengdu=20, nowhere=0, beijing=0))
    hook = account(url=receiver.url, concurrency=4)
    b = await start(start_daemon, monkeypatch, accounts=[hook], store={"url": engine})
    await _cancel_while_held(b, receiver, LATER_S)


async def test_an_answer_slower_than_wire_s_still_holds_its_correction(
    start_daemon: Any, monkeypatch: pytest.MonkeyPatch, engine: str, receiver: HoldingSink
) -> None:
    """The held alert stays on the wire twice ``WIRE_S`` (scaled here to 3 s; 30 s in service,
    outlasted by a webhook with ``timeout_s = 60`` or a send waiting for its rate window): its
    live pass stamps it at every lease renewal (1.25 s with ``lease_s = 5``), so cd-0007's
    cancellation still waits for the answer and threads to it. Before the stamp it went once
    the send was ``WIRE_S`` old, unthreaded, ahead of the alert it cancels."""
    monkeypatch.setattr(followup_sql, "WIRE_S", 3.0)
    await load(engine, people(chengdu=20, nowhere=0, beijing=0))
    hook = account(url=receiver.url, concurrency=4, timeout_s=30)
    config = {"store": {"url": engine}, "dispatch": {"lease_s": 5}}
    b = await start(start_daemon, monkeypatch, accounts=[hook], **config)
    await _cancel_while_held(b, receiver, 2 * followup_sql.WIRE_S)


class HourBehind:
    """The store's clock as a database an hour behind this machine would give it."""

    def now(self) -> float:
        return time.time() - 3600.0

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None


async def test_the_wire_is_stamped_and_aged_on_the_stores_clock(
    start_daemon: Any, monkeypatch: pytest.MonkeyPatch, engine: str, receiver: HoldingSink
) -> None:
    """A database an hour behind this machine (replicas' clocks part the same way): the held
    alert's send is stamped on the store's clock, where a correction on any replica ages it,
    and its cancellation still waits for the answer and threads to it. (The stamps were this
    machine's: a replica whose clock ran 30 s ahead of the sender's saw every send on the
    wire as its dead pass's, and the correction overtook the alert.)"""
    monkeypatch.setattr(followup_sql, "WIRE_S", 3.0)
    await load(engine, people(chengdu=20, nowhere=0, beijing=0))
    hook = account(url=receiver.url, concurrency=4, timeout_s=30)
    config = {"store": {"url": engine}, "dispatch": {"lease_s": 5}}
    b = await start(start_daemon, monkeypatch, accounts=[hook], **config)
    store = b.d.client.app[STORE]
    assert isinstance(store, SQLStore)
    await store.shared_clock.stop()
    store.shared_clock = HourBehind()
    first = await b.raise_(quake())
    await asyncio.wait_for(receiver.holding.wait(), 30)
    parent = await b.parent(first["id"])
    for stamp in ("its take", "a lease renewal"):  # the first renewal comes 1.25 s after
        sending = await store.recipient_sends(parent["id"], state="sending")
        (held,) = [s for s in sending if s.recipient_id == HELD]
        assert abs(held.updated_at - store.clock()) < 5.0, (stamp, held.updated_at)
        await asyncio.sleep(2.0)
    await _cancel_while_held(b, receiver, 2 * followup_sql.WIRE_S, first)


HUNG = [f"cd-{i:04d}" for i in range(4)]  # as many as the account's senders and connections


async def _every_sender_hung(
    start_daemon: Any,
    monkeypatch: pytest.MonkeyPatch,
    engine: str,
    receiver: HoldingSink,
    **config: Any,
) -> tuple[Any, dict[str, Any]]:
    """The alert raised on an account of four senders, all four hanging on HUNG's alerts:
    nothing answered, nothing delivered. The daemon (``config`` added to its configuration)
    and the alert's answer."""
    receiver.held = frozenset(HUNG)
    await load(engine, people(chengdu=20, nowhere=0, beijing=0))
    hook = account(url=receiver.url, concurrency=4, timeout_s=60)
    b = await start(start_daemon, monkeypatch, accounts=[hook], store={"url": engine}, **config)
    first = await b.raise_(quake())
    await asyncio.wait_for(receiver.holding.wait(), 30)
    await asyncio.sleep(0.5)  # the others are taken and queued behind them
    return b, first


async def test_a_cancellation_while_every_alert_is_on_the_wire_is_not_skipped(
    start_daemon: Any, monkeypatch: pytest.MonkeyPatch, engine: str, receiver: HoldingSink
) -> None:
    """All four senders (the account's concurrency) hang on cd-0000..0003's alerts when the
    cancellation is posted: none is answered yet, so no send is ``delivered``, but they are on
    the wire and will reach those four. The cancellation is not skipped as "never reached";
    once the alerts are answered, each of the four gets it, after its alert and threaded to
    it. (It was skipped: the four saw the false alarm and never its cancellation.)"""
    b, first = await _every_sender_hung(start_daemon, monkeypatch, engine, receiver)
    cancel = await b.follow(first["id"], "cancel", "city", reason="误报")
    await asyncio.sleep(LATER_S)
    assert not receiver.posts("cancel"), "a cancellation before its alert's answer"
    released = time.time()
    receiver.release.set()
    view = await b.settled(cancel["id"])
    assert [x["state"] for x in view["deliveries"]] == ["delivered"], view["deliveries"]
    alerts, cancels = receiver.posts("alert"), receiver.posts("cancel")
    assert set(HUNG) <= set(alerts), sorted(alerts)
    for rid in alerts:  # everyone who saw the alert sees its cancellation, after it
        assert cancels[rid].at >= max(alerts[rid].at, released), rid
        assert cancels[rid].body.get("in_reply_to") == f"alert-{rid}", cancels[rid].body


async def test_no_cancellation_goes_to_whom_the_stopped_pass_never_sent_the_alert(
    start_daemon: Any, monkeypatch: pytest.MonkeyPatch, engine: str, receiver: HoldingSink
) -> None:
    """The four senders hang and the sends queued behind them are taken (``sending``) when
    the cancellation is posted, so its audience copies them as reached. The alert's pass
    learns of the stop at its next lease renewal and gives the queued sends back unmade
    (withdrawn with their parent); their cancellations are withdrawn with them, as the alert
    never reached those recipients. Then the four hung alerts are answered: the alert and its
    cancellation reach exactly the four, threaded, and the cancellation is delivered, its
    other sends skipped with the reason. (Before, the queued recipients got a cancellation,
    unthreaded, of an alert they never received, as soon as their sends were given back.)"""
    copied = asyncio.Event()  # the give-back waits for the copy (else it may come first)
    give_back = RecipientMethods.give_back_recipients

    async def after_the_copy(self: Any, delivery_id: str, ids: Any, **kw: Any) -> int:
        await asyncio.wait_for(copied.wait(), 20)
        return await give_back(self, delivery_id, ids, **kw)

    monkeypatch.setattr(RecipientMethods, "give_back_recipients", after_the_copy)
    config = {"dispatch": {"lease_s": 5}}  # a renewal every 1.25 s
    b, first = await _every_sender_hung(start_daemon, monkeypatch, engine, receiver, **config)
    store = b.d.client.app[STORE]
    alert = (await b.parent(first["id"]))["id"]
    queued = [s.recipient_id for s in await store.recipient_sends(alert, state="sending")]
    queued = sorted(set(queued) - set(HUNG))
    assert queued, "no send was queued behind the hung four"
    cancel = await b.follow(first["id"], "cancel", "city", reason="误报")
    cancel_parent = (await b.parent(cancel["id"]))["id"]

    async def is_copied() -> bool:
        sends = {s.recipient_id for s in await store.recipient_sends(cancel_parent)}
        return set(queued) <= sends

    deadline = time.monotonic() + 20
    while not await is_copied():
        assert time.monotonic() < deadline, "the cancellation's audience was never copied"
        await asyncio.sleep(0.05)
    copied.set()

    async def given_back() -> bool:
        sends = {s.recipient_id: s.state for s in await store.recipient_sends(alert)}
        return all(sends[rid] == "skipped" for rid in queued)

    deadline = time.monotonic() + 20
    while not await given_back():
        assert time.monotonic() < deadline, "the stopped pass never gave its queued sends back"
        await asyncio.sleep(0.1)
    await asyncio.sleep(LATER_S)  # what would go once they were given back
    assert not receiver.posts("cancel"), sorted(receiver.posts("cancel"))
    receiver.release.set()
    view = await b.settled(cancel["id"])
    assert [x["state"] for x in view["deliveries"]] == ["delivered"], view["deliveries"]
    alerts, cancels = receiver.posts("alert"), receiver.posts("cancel")
    assert set(alerts) == set(cancels) == set(HUNG), (sorted(alerts), sorted(cancels))
    for rid in HUNG:
        assert cancels[rid].body.get("in_reply_to") == f"alert-{rid}", cancels[rid].body
    sends = await store.recipient_sends(cancel_parent)
    unsent = {s.recipient_id: (s.state, s.last_error) for s in sends if s.recipient_id in queued}
    assert set(unsent.values()) == {("skipped", followup_sql.NEVER_REACHED_WHY)}, unsent


async def test_an_update_while_every_alert_is_on_the_wire_follows_each_alert(
    start_daemon: Any, monkeypatch: pytest.MonkeyPatch, engine: str, receiver: HoldingSink
) -> None:
    """The same four hung senders, an update instead of a cancellation: every recipient the
    alert reaches gets the update after its alert, threaded to it; none before."""
    b, first = await _every_sender_hung(start_daemon, monkeypatch, engine, receiver)
    update = await b.follow(first["id"], "update", "city", instruction="远离建筑物，注意余震")
    await asyncio.sleep(LATER_S)
    assert not set(receiver.posts("update")) & set(HUNG), "an update before its alert's answer"
    released = time.time()
    receiver.release.set()
    await b.settled(update["id"])
    alerts, updates = receiver.posts("alert"), receiver.posts("update")
    assert set(HUNG) <= set(alerts) <= set(updates), (sorted(alerts), sorted(updates))
    for rid in HUNG:
        assert updates[rid].at >= max(alerts[rid].at, released), rid
        assert updates[rid].body.get("in_reply_to") == f"alert-{rid}", updates[rid].body


async def test_a_pause_that_ends_before_its_hung_pass_does_sends_no_alert_after_its_correction(
    start_daemon: Any, monkeypatch: pytest.MonkeyPatch, engine: str, receiver: HoldingSink
) -> None:
    """Four senders hang on their alerts and four more recipients are taken and queued behind them
    when the account is paused: the paused pass will never send the queued four, so it gives
    them back at its next stamp, and no longer stamps them. Right after a stamp (the pass's next
    checkpoint held until the answers) the account is resumed and the alert cancelled; when the
    hung alerts are answered, the pass that stopped for the pause stays stopped, though the
    pause has ended. The alert reached the four hung recipients only, and exactly they get the
    cancellation, each after its alert, threaded to it. (Before: the pause was read afresh at
    each send, so the pass sent the queued four the false alarm after a cancellation that had
    gone to them unthreaded, as to recipients it had reached.)"""
    monkeypatch.setattr(followup_sql, "WIRE_S", 4.0)
    stamped = asyncio.Event()
    touch = RecipientMethods.touch_recipients
    armed = False  # then the stamp waits for the answers: no checkpoint finds the claim lost

    async def watched(self: Any, delivery_id: str, ids: Any, *, now: float) -> int:
        found = await touch(self, delivery_id, ids, now=now)
        stamped.set()
        if armed:  # (else the cancellation's own stop, seen there, would stop the pass too)
            await asyncio.wait_for(receiver.release.wait(), 30)
        return found

    monkeypatch.setattr(RecipientMethods, "touch_recipients", watched)
    config = {"dispatch": {"lease_s": 8}}  # a stamp and a checkpoint every 2 s
    b, first = await _every_sender_hung(start_daemon, monkeypatch, engine, receiver, **config)
    status, _ = await b.call("city", "/v1/channels/people/pause", {"reason": "接收方升级维护"})
    assert status == 200
    await asyncio.sleep(followup_sql.WIRE_S + 0.5)  # a stamp of the queued four would be stale
    stamped.clear()
    armed = True
    await asyncio.wait_for(stamped.wait(), 10)
    status, _ = await b.call("city", "/v1/channels/people/resume")
    assert status == 200
    cancel = await b.follow(first["id"], "cancel", "city", reason="误报")
    await asyncio.sleep(LATER_S)  # what would go at once
    assert not receiver.posts("cancel"), "a cancellation before its alert's answer"
    released = time.time()
    receiver.release.set()
    await b.settled(cancel["id"])
    await asyncio.sleep(LATER_S)  # what the stopped pass would still send
    alerts, cancels = receiver.posts("alert"), receiver.posts("cancel")
    assert set(alerts) == set(cancels) == set(HUNG), (sorted(alerts), sorted(cancels))
    for rid, alert in alerts.items():
        assert cancels[rid].at >= max(alert.at, released), rid
        assert cancels[rid].body.get("in_reply_to") == f"alert-{rid}", cancels[rid].body
