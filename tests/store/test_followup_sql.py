"""A follow-up on a per-recipient account in the store (alertcast/store/followup_sql.py), on
every engine: the stop withdraws a parent half way and its sends not yet sent, in the
follow-up's own transaction; a correction's audience is copied from the original's family with
each recipient's original remote id; a correction of a stopped parent that reached someone is
claimed as threading to a delivered original."""

from __future__ import annotations

import time
from functools import partial
from typing import Any

from alertcast.store import followup_sql
from alertcast.store.base import (
    Effects,
    IncidentRow,
    NewDelivery,
    Recipient,
    SendOutcome,
    Store,
    Write,
)
from alertcast.store.driver import Conn
from tests.store.test_contract import store, store_url

__all__ = ["store", "store_url"]

ACCOUNT = "hook-people"
WITHDRAWN = "withdrawn: the incident was cancelled"


def _incident(incident_id: str, msg_type: str = "alert", refs: str | None = None) -> IncidentRow:
    return IncidentRow(
        id=incident_id,
        kind="earthquake",
        status="actual",
        severity="severe",
        msg_type=msg_type,
        state="active",
        issuer="city",
        source="api",
        body={"area": {"codes": ["510100"]}},
        created_at=time.time(),
        references=refs,
    )


def _delivery(delivery_id: str, target: str | None = None, **kw: Any) -> NewDelivery:
    action = "post" if target is None else "reply"
    return NewDelivery(
        id=delivery_id,
        account=ACCOUNT,
        channel="webhook",
        payload={},
        idempotency_key=delivery_id,
        action=action,
        target_delivery_id=target,
        **kw,
    )


async def _sent(store: Store, delivery_id: str, outcomes: dict[str, str]) -> None:
    """Record ``recipient -> state`` for the delivery's sends; a delivered one gets the remote
    id ``<delivery>-<recipient>`` (as the platform's receipt would give it)."""
    now = time.time()
    batch = [SendOutcome(r, state, 1) for r, state in outcomes.items()]
    await store.record_recipients(delivery_id, batch, now=now)

    async def ids(c: Conn) -> None:
        for r, state in outcomes.items():
            if state == "delivered":
                await c.execute(
                    "UPDATE recipient_sends SET remote_id = ? "
                    "WHERE delivery_id = ? AND recipient_id = ?",
                    (f"{delivery_id}-{r}", delivery_id, r),
                )

    await store._db.write(ids)  # type: ignore[attr-defined]


async def _alert(store: Store, n: int = 6) -> str:
    """An alert's parent expanded to ``n`` recipients (r0 … r{n-1}), claimed and half way:
    r0, r1 delivered, r2 refused, the rest not yet sent."""
    people = [(i + 2, Recipient(f"r{i}", "510104", {"phone": str(i)})) for i in range(n)]
    await store.import_recipients(ACCOUNT, iter(people))
    await store.apply(Write(incident=_incident("inc-a"), deliveries=[_delivery("A")]))
    now = time.time()
    claims = await store.claim_due(now=now, limit=5, lease_s=30, worker="w1", free={ACCOUNT: 5})
    assert [c.delivery.id for c in claims] == ["A"]
    await store.expand_recipients("A", ACCOUNT, [], limit=100, now=now)
    await _sent(store, "A", {"r0": "delivered", "r1": "delivered", "r2": "failed"})
    return "A"


async def _follow(store: Store, msg_type: str, correction: str, stop: tuple[str, ...]) -> None:
    """A follow-up of ``inc-a`` with one correction delivery threading to A, stopping
    ``stop``."""
    effects = Effects(withdraw_reason=WITHDRAWN, withdraw_recipients_of=stop)
    row = _incident(f"inc-{correction}", msg_type, refs="inc-a")
    await store.apply(
        Write(incident=row, deliveries=[_delivery(correction, "A", priority=10)], effects=effects)
    )


async def _audience(store: Store, correction: str, *, first: bool, limit: int = 2) -> int:
    """Run the correction's audience copy to its end, ``limit`` at a time; rows added."""
    after, total = "", 0
    while True:
        op = partial(
            followup_sql.audience_op,
            correction=correction,
            original="A",
            account=ACCOUNT,
            first=first,
            after=after,
            limit=limit,
            now=time.time(),
        )
        last, added = await store._db.write(op)  # type: ignore[attr-defined]
        total += added
        if last is None:
            return total
        after = last


async def _reply_to(store: Store, delivery_id: str) -> dict[str, tuple[str, str | None]]:
    async def read(c: Conn) -> dict[str, tuple[str, str | None]]:
        rows = await c.fetchall(
            "SELECT recipient_id, state, reply_to FROM recipient_sends WHERE delivery_id = ?",
            (delivery_id,),
        )
        return {str(r["recipient_id"]): (str(r["state"]), r["reply_to"]) for r in rows}

    return await store._db.read(read)  # type: ignore[attr-defined]


async def test_the_stop_withdraws_the_parent_and_its_unsent_sends_in_one_write(
    store: Store,
) -> None:
    """A parent being sent becomes skipped with the reason, its sends not yet sent too;
    those sent keep their outcome, and one on the wire records delivered over the stop."""
    await _alert(store)
    await _follow(store, "cancel", "C", ("A",))
    parent = await store.get_delivery("A")
    assert parent is not None
    assert (parent.state.value, parent.reason) == ("skipped", WITHDRAWN)
    sends = {s.recipient_id: (s.state, s.last_error) for s in await store.recipient_sends("A")}
    assert sends == {
        "r0": ("delivered", None),
        "r1": ("delivered", None),
        "r2": ("failed", None),
        **{f"r{i}": ("skipped", WITHDRAWN) for i in range(3, 6)},
    }
    assert await store.due_recipients("A", ACCOUNT, now=time.time(), limit=10) == []
    await _sent(store, "A", {"r3": "delivered"})  # it was on the wire when the stop came
    assert await store.recipient_summary("A") == {"delivered": 3, "failed": 1, "skipped": 2}


async def test_a_stop_of_a_parent_that_ended_meanwhile_changes_nothing(store: Store) -> None:
    """The stop touches only parents not settled: one delivered meanwhile stays delivered."""
    await store.apply(Write(incident=_incident("inc-a"), deliveries=[_delivery("A")]))

    async def delivered(c: Conn) -> None:
        await c.execute("UPDATE deliveries SET state = 'delivered' WHERE id = 'A'")

    await store._db.write(delivered)  # type: ignore[attr-defined]
    await _follow(store, "cancel", "C", ("A",))
    parent = await store.get_delivery("A")
    assert parent is not None and parent.state.value == "delivered"


async def test_a_cancellations_audience_is_who_the_original_reached_threaded(
    store: Store,
) -> None:
    """The cancellation's sends: each recipient the original reached (also the one on the wire
    at the stop), pending, naming its original's remote id; not the refused, not the
    withdrawn; copied twice, nothing changes."""
    await _alert(store)
    await _follow(store, "cancel", "C", ("A",))
    await _sent(store, "A", {"r3": "delivered"})
    assert await _audience(store, "C", first=False) == 3
    want = {r: ("pending", f"A-{r}") for r in ("r0", "r1", "r3")}
    assert await _reply_to(store, "C") == want
    assert await _audience(store, "C", first=False) == 0
    assert await _reply_to(store, "C") == want


async def test_an_updates_audience_adds_the_withdrawn_as_a_first_message(store: Store) -> None:
    """The update's sends: the reached, threaded; the withdrawn, with nothing to reply to
    (their first message); never the refused (the area's expansion decides about them)."""
    await _alert(store)
    await _follow(store, "update", "U", ("A",))
    assert await _audience(store, "U", first=True) == 5
    assert await _reply_to(store, "U") == {
        "r0": ("pending", "A-r0"),
        "r1": ("pending", "A-r1"),
        **{f"r{i}": ("pending", None) for i in range(3, 6)},
    }


async def test_a_later_cancellation_reaches_whom_an_update_reached_first(store: Store) -> None:
    """After an update that was the first message of some (and reached a newcomer past the
    original's last recipient), the cancellation reaches them too, threaded to the update's
    send; a recipient both reached names the original's."""
    await _alert(store)
    await _follow(store, "update", "U", ("A",))
    await _audience(store, "U", first=True)
    newcomer = [(9, Recipient("r9", "510104", {"phone": "9"}))]
    await store.import_recipients(ACCOUNT, iter(newcomer))
    await store.expand_recipients("U", ACCOUNT, [], limit=100, now=time.time())
    reached = {"r0": "delivered", "r3": "delivered", "r4": "delivered", "r9": "delivered"}
    await _sent(store, "U", {**reached, "r1": "failed", "r5": "failed"})
    await _follow(store, "cancel", "C", ("U",))
    assert await _reply_to(store, "C") == {}
    await _audience(store, "C", first=False, limit=1)
    assert await _reply_to(store, "C") == {
        "r0": ("pending", "A-r0"),
        "r1": ("pending", "A-r1"),
        "r3": ("pending", "U-r3"),
        "r4": ("pending", "U-r4"),
        "r9": ("pending", "U-r9"),
    }


async def test_a_correction_of_a_stopped_parent_that_reached_someone_threads(
    store: Store,
) -> None:
    """The claim of a cancellation whose original was stopped half way says the original
    reached the account (its sends did), so the cancellation goes; one of an original that
    reached nobody says it did not."""
    await _alert(store)
    await _follow(store, "cancel", "C", ("A",))
    now = time.time() + 1
    (claim,) = await store.claim_due(now=now, limit=5, lease_s=30, worker="w2", free={ACCOUNT: 5})
    assert (claim.delivery.id, claim.msg_type, claim.target_delivered) == ("C", "cancel", True)
    await store.apply(Write(incident=_incident("inc-b"), deliveries=[_delivery("B")]))
    row = _incident("inc-cb", "cancel", refs="inc-b")
    effects = Effects(withdraw_reason=WITHDRAWN, withdraw_recipients_of=("B",))
    await store.apply(Write(incident=row, deliveries=[_delivery("CB", "B")], effects=effects))
    (nobody,) = await store.claim_due(now=now, limit=5, lease_s=30, worker="w2", free={ACCOUNT: 5})
    assert (nobody.delivery.id, nobody.target_delivered) == ("CB", False)


async def _due(store: Store, delivery_id: str) -> dict[str, str | None]:
    """The delivery's sends due now, each with what it replies to."""
    page = await store.due_recipients(delivery_id, ACCOUNT, now=time.time() + 1, limit=10)
    return {s.recipient_id: s.reply_to for s in page}


async def test_a_send_on_the_wire_at_the_copy_holds_its_correction_until_it_ends(
    store: Store,
) -> None:
    """r3's alert was on the wire when the cancellation's audience was copied: its
    cancellation is not due (the pass looks again in 0.2 s) until r3's outcome is recorded,
    then replies to the remote id recorded; the others go at once, threaded."""
    await _alert(store)
    assert await store.start_recipients("A", ["r3"], now=time.time()) == {"r3"}
    await _follow(store, "cancel", "C", ("A",))
    await _audience(store, "C", first=False)
    assert await _reply_to(store, "C") == {
        "r0": ("pending", "A-r0"),
        "r1": ("pending", "A-r1"),
        "r3": ("pending", None),
    }
    assert await _due(store, "C") == {"r0": "A-r0", "r1": "A-r1"}
    await _sent(store, "C", {"r0": "delivered", "r1": "delivered"})
    before = time.time()
    due = await store.next_recipient_due("C")
    assert due is not None and before < due <= time.time() + followup_sql.WIRE_LOOK_S
    await _sent(store, "A", {"r3": "delivered"})
    assert await _due(store, "C") == {"r3": "A-r3"}
    assert await store.next_recipient_due("C") == 0


async def test_a_send_left_on_the_wire_by_a_dead_worker_holds_nothing(store: Store) -> None:
    """r3 was taken for sending longer ago than a send may be on the wire (its worker died):
    its cancellation is due at once, with nothing to reply to."""
    await _alert(store)
    taken = time.time() - followup_sql.WIRE_S - 1
    assert await store.start_recipients("A", ["r3"], now=taken) == {"r3"}
    await _follow(store, "cancel", "C", ("A",))
    await _audience(store, "C", first=False)
    assert await _due(store, "C") == {"r0": "A-r0", "r1": "A-r1", "r3": None}
    assert await store.next_recipient_due("C") == 0


async def test_a_later_correction_waits_for_an_earlier_ones_send_on_the_wire(
    store: Store,
) -> None:
    """The update's send to r0 (threaded to the alert) is on the wire when the cancellation
    is copied: the cancellation to r0 waits for it, and replies to the alert's message."""
    await _alert(store)
    await _follow(store, "update", "U", ("A",))
    await _audience(store, "U", first=True)
    assert await store.start_recipients("U", ["r0"], now=time.time()) == {"r0"}
    await _follow(store, "cancel", "C", ("U",))
    await _audience(store, "C", first=False)
    assert "r0" not in await _due(store, "C")
    await _sent(store, "U", {"r0": "delivered"})
    assert (await _due(store, "C"))["r0"] == "A-r0"


async def _states(store: Store, delivery_id: str) -> dict[str, tuple[str, str | None]]:
    return {
        s.recipient_id: (s.state, s.last_error) for s in await store.recipient_sends(delivery_id)
    }


async def _taken(store: Store, ids: list[str], worker: str = "w1", lease_s: float = 60) -> None:
    """``worker`` takes A's part (the one part of six recipients) and its pass (the token
    ``worker``) starts ``ids``."""
    part = await store.take_recipient_part("A", worker=worker, now=time.time(), lease_s=lease_s)
    assert part is not None
    assert await store.start_recipients("A", ids, now=time.time(), by=worker) == set(ids)


def _give_back(store: Store, ids: list[str], by: str = "w1") -> Any:
    return store.give_back_recipients("A", ids, by=by, now=time.time())


async def test_a_cancellation_of_a_send_given_back_unmade_is_withdrawn(store: Store) -> None:
    """r3 and r4 were taken for sending (so copied into the cancellation as reached, held)
    when the cancellation stopped the alert; its pass gives r3 back unmade: the alert's r3 is
    withdrawn, and the cancellation's r3 with it (the alert never reached r3); r4, still on
    the wire, keeps its cancellation."""
    await _alert(store)
    await _taken(store, ["r3", "r4"])
    await _follow(store, "cancel", "C", ("A",))
    await _audience(store, "C", first=False)
    assert await _give_back(store, ["r3"]) == 1
    assert (await _states(store, "A"))["r3"][0] == "skipped"
    assert await _states(store, "C") == {
        "r0": ("pending", None),
        "r1": ("pending", None),
        "r3": ("skipped", followup_sql.NEVER_REACHED_WHY),
        "r4": ("pending", None),
    }
    assert await _due(store, "C") == {"r0": "A-r0", "r1": "A-r1"}


async def test_an_updates_send_given_back_unmade_stays_as_a_first_message(
    store: Store,
) -> None:
    """The same give-back under an update: its send to r3 stays due, unthreaded (the
    recipient's first message, as for any send the update found withdrawn)."""
    await _alert(store)
    await _taken(store, ["r3"])
    await _follow(store, "update", "U", ("A",))
    await _audience(store, "U", first=True)
    assert await _give_back(store, ["r3"]) == 1
    assert (await _states(store, "U"))["r3"] == ("pending", None)
    assert (await _due(store, "U"))["r3"] is None


async def test_a_cancellation_stays_where_something_else_may_have_reached(store: Store) -> None:
    """The give-back withdraws a cancellation's send only when nothing may have reached its
    recipient: not when the given-back send had been tried before (r4: a retry, which may
    have arrived), nor when another of the family reached them (r3: an update delivered)."""
    await _alert(store)
    await _sent(store, "A", {"r4": "retrying"})
    await _taken(store, ["r3", "r4"])
    await _follow(store, "update", "U", ("A",))
    await _audience(store, "U", first=True)
    await _sent(store, "U", {"r3": "delivered"})
    await _follow(store, "cancel", "C", ("U",))
    await _audience(store, "C", first=False)
    assert await _give_back(store, ["r3", "r4"]) == 2
    states = await _states(store, "C")
    assert (states["r3"], states["r4"]) == (("pending", None), ("pending", None))
    assert await _due(store, "C") == {"r0": "A-r0", "r1": "A-r1", "r3": "U-r3", "r4": None}


async def test_a_take_whose_pass_died_may_have_reached(store: Store) -> None:
    """r3 was taken by a pass that died (its request may have left; nothing was recorded):
    the part, its lease run out, is taken again, r3 given back as a dead pass's and taken
    anew; when that pass stops and gives r3 back unmade, r3's cancellation stays, since the
    first take may have reached r3 (``taken`` counts it; ``attempts`` is still 0)."""
    await _alert(store)
    await _taken(store, ["r3"], worker="dead", lease_s=-1)
    part = await store.take_recipient_part("A", worker="w1", now=time.time(), lease_s=60)
    assert part is not None  # and r3 given back with it: due again
    assert await store.start_recipients("A", ["r3"], now=time.time(), by="w1") == {"r3"}
    await _follow(store, "cancel", "C", ("A",))
    await _audience(store, "C", first=False)
    assert await _give_back(store, ["r3"]) == 1
    assert (await _states(store, "C"))["r3"] == ("pending", None)


async def test_a_give_back_leaves_what_another_pass_took_since(store: Store) -> None:
    """w1's lease on the part ran out and it was taken again, by another replica (w2) or by
    another pass of the same replica (``w1:b``), which has r3 on the wire when w1's stopped
    pass gives back the r3 it had queued: nothing of the new take changes, r3 stays on the
    wire and its cancellation stays."""
    await _alert(store)
    await _taken(store, ["r3"], worker="w1", lease_s=-1)
    assert await store.take_recipient_part("A", worker="w2", now=time.time(), lease_s=-1)
    assert await store.start_recipients("A", ["r3"], now=time.time(), by="w2") == {"r3"}
    assert await store.take_recipient_part("A", worker="w1", now=time.time(), lease_s=60)
    assert await store.start_recipients("A", ["r3"], now=time.time(), by="w1:b") == {"r3"}
    await _follow(store, "cancel", "C", ("A",))
    await _audience(store, "C", first=False)
    assert await _give_back(store, ["r3"], by="w1") == 0
    assert await _give_back(store, ["r3"], by="w2") == 0
    assert (await _states(store, "A"))["r3"][0] == "sending"
    assert (await _states(store, "C"))["r3"] == ("pending", None)


async def test_a_give_back_needs_no_part(store: Store) -> None:
    """The holder's last sweep, over the whole delivery once its parts are done, leases no
    part: what it took and gives back is still given back (and its cancellation withdrawn)."""
    await _alert(store)
    assert await store.start_recipients("A", ["r3"], now=time.time(), by="whole") == {"r3"}
    await _follow(store, "cancel", "C", ("A",))
    await _audience(store, "C", first=False)
    assert await _give_back(store, ["r3"], by="whole") == 1
    assert (await _states(store, "A"))["r3"][0] == "skipped"
    assert (await _states(store, "C"))["r3"] == ("skipped", followup_sql.NEVER_REACHED_WHY)


async def test_an_updates_unmade_send_withdraws_a_later_cancellation(store: Store) -> None:
    """Update, then cancellation: r3's alert was withdrawn before it was taken, so the update
    took r3 (its first message) and had it queued when the cancellation stopped it; the
    update's pass gives r3 back unmade. Nothing of the family ever left for r3 (the alert's
    send never taken, the update's given back), so r3's cancellation is withdrawn. r0, whom
    the alert reached, keeps its cancellation."""
    await _alert(store)
    await _follow(store, "update", "U", ("A",))
    await _audience(store, "U", first=True)
    assert await store.start_recipients("U", ["r3"], now=time.time(), by="u1") == {"r3"}
    await _follow(store, "cancel", "C", ("U",))
    await _audience(store, "C", first=False)
    assert (await _states(store, "C"))["r3"] == ("pending", None)
    assert await store.give_back_recipients("U", ["r3"], by="u1", now=time.time()) == 1
    states = await _states(store, "C")
    assert states["r3"] == ("skipped", followup_sql.NEVER_REACHED_WHY)
    assert states["r0"] == ("pending", None)
