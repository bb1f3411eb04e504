"""One contract, every engine: SQLite always, PostgreSQL when the server is reachable."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from alertcast.models import DeliveryState
from alertcast.store import open_store
from alertcast.store.base import (
    AttemptRow,
    AuditRow,
    Effects,
    FeedEventRow,
    IdempotencyConflict,
    IdempotencyRecord,
    IncidentRow,
    NewDelivery,
    Outcome,
    Release,
    Requeue,
    StaleRead,
    StateConflict,
    Store,
    Taken,
    Write,
)
from tests.conftest import PG_URL, drop_schema, fresh_schema, pg_reachable  # noqa: F401 (PG_URL: for the tests that import it from here)

# One copy of the PostgreSQL helpers (tests/conftest.py); the old names stay for the tests that
# import them from here.
_pg_reachable, _drop_schema = pg_reachable, drop_schema


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'contract.db'}"
        return
    async with fresh_schema() as url:
        yield url


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[Store]:
    s = open_store(store_url)
    await s.open()
    yield s
    await s.close()


def _incident(n: int = 0, **kw: Any) -> IncidentRow:
    return IncidentRow(
        id=f"inc_{n}",
        kind="earthquake",
        status="actual",
        severity="severe",
        msg_type="alert",
        state="active",
        issuer="city",
        source="api",
        body={"headline": f"h{n}"},
        created_at=time.time() + n,
        **kw,
    )


def _delivery(n: int, account: str = "a", **kw: Any) -> NewDelivery:
    return NewDelivery(
        id=f"d_{n}",
        account=account,
        channel="webhook",
        payload={"n": n},
        idempotency_key=f"d_{n}",
        max_attempts=3,
        **kw,
    )


async def _claim(
    store: Store,
    free: dict[str, int] | None = None,
    limit: int = 100,
    worker: str = "w1",
    now: float | None = None,
) -> list[str]:
    claims = await store.claim_due(
        now=now or time.time() + 1, limit=limit, lease_s=30, worker=worker, free=free or {}
    )
    return sorted(c.delivery.id for c in claims)


async def create(
    store: Store,
    incident: IncidentRow,
    deliveries: list[NewDelivery],
    *,
    audit: AuditRow | None = None,
    **kw: Any,
) -> None:
    """A new incident with its deliveries, in one :meth:`Store.apply`."""
    await store.apply(
        Write(incident=incident, deliveries=deliveries, audit=(audit,) if audit else (), **kw)
    )


async def test_incident_and_deliveries_round_trip(store: Store) -> None:
    """What is written in one call reads back whole."""
    await create(
        store,
        _incident(),
        [_delivery(1), _delivery(2, "b")],
        audit=AuditRow(time.time(), "city", "incident.create", "inc_0"),
    )
    row = await store.get_incident("inc_0")
    assert row is not None and row.body == {"headline": "h0"}
    assert [d.id for d in await store.list_deliveries(incident_id="inc_0")] == ["d_1", "d_2"]
    assert await store.counts("inc_0") == {"pending": 2}
    assert [a.action for a in await store.audit_trail("inc_0")] == ["incident.create"]


async def test_create_is_atomic(store: Store) -> None:
    """A failing delivery insert leaves no incident behind."""
    with pytest.raises(Exception):  # noqa: B017 - each engine raises its own IntegrityError
        await create(store, _incident(), [_delivery(1), _delivery(1)])
    assert await store.get_incident("inc_0") is None
    assert await store.list_deliveries() == []


async def test_idempotency_key_is_unique_per_issuer(store: Store) -> None:
    """A second use of a key raises with the first record and stores nothing."""
    rec = IdempotencyRecord("city", "k", "sha", {"id": "inc_0"}, time.time())
    await create(store, _incident(0), [_delivery(1)], idempotency=rec)
    with pytest.raises(IdempotencyConflict) as caught:
        await create(store, _incident(1), [_delivery(2)], idempotency=rec)
    assert caught.value.record.response == {"id": "inc_0"}
    assert await store.get_incident("inc_1") is None
    assert await store.get_idempotency("city", "k") is not None


async def test_claim_respects_capacity_and_marks_sending(store: Store) -> None:
    """Per-account free slots and the global limit bound a claim; claimed rows are sending."""
    await create(store, _incident(), [_delivery(i, "a" if i < 5 else "b") for i in range(8)])
    ids = await _claim(store, free={"a": 2, "b": 1})
    assert len(ids) == 3
    rows = {d.id: d for d in await store.list_deliveries()}
    assert all(rows[i].state is DeliveryState.sending and rows[i].attempts == 1 for i in ids)
    assert len(await _claim(store, limit=2)) == 2


async def test_claim_skips_what_is_not_due(store: Store) -> None:
    """A delivery due in the future is not claimed before its time."""
    await create(store, _incident(), [_delivery(1)])
    assert await _claim(store, now=time.time() - 60) == []
    assert await _claim(store) == ["d_1"]
    assert await _claim(store) == []


async def test_finish_records_attempt_and_state(store: Store) -> None:
    """An attempt and the new state land together; a retry is claimable again when due."""
    await create(store, _incident(), [_delivery(1)])
    (claim,) = await store.claim_due(now=time.time(), limit=1, lease_s=30, worker="w1", free={})
    # Far enough ahead that no scheduling delay on a loaded machine can reach it: the
    # claims below pass their own `now`, so the test never waits for it.
    later = time.time() + 3600
    row = await store.finish_attempt(
        claim.delivery,
        AttemptRow("d_1", 1, time.time(), 12.5, "retrying", 500, None, "HTTP 500", later),
        Outcome(DeliveryState.retrying, next_attempt_at=later, last_error="HTTP 500"),
        worker="w1",
    )
    assert row.state is DeliveryState.retrying and row.last_error == "HTTP 500"
    assert [a.http_status for a in await store.attempts("d_1")] == [500]
    assert await _claim(store, now=time.time()) == []
    assert await _claim(store, now=later + 0.01) == ["d_1"]


async def test_progress_is_checkpointed_by_the_holder_only_and_survives_a_crash(
    store: Store,
) -> None:
    """A long send's cursor: saved (and the lease extended) only by the claim's holder, kept
    through a crash recovery and a later attempt that reports none, replaced by one that does."""
    await create(store, _incident(), [_delivery(1)])
    t0 = time.time()
    (claim,) = await store.claim_due(now=t0, limit=1, lease_s=5, worker="w1", free={})
    assert claim.delivery.progress is None
    cursor = {"list": "3:abc", "next": 2, "ahead": [[3, 4]], "sent": 3, "refused": 0}
    assert await store.save_progress("d_1", cursor, worker="w2", lease_s=600) is False
    assert await store.save_progress("d_1", cursor, worker="w1", lease_s=600) is True
    # The lease now runs 600 s: a sweep 60 s on does not take the delivery back ...
    assert await store.recover(now=t0 + 60, everything=False) == 0
    # ... a crash recovery does, and the next claim starts from the checkpoint.
    assert await store.recover(now=t0 + 60, everything=True) == 1
    (again,) = await store.claim_due(now=t0 + 61, limit=1, lease_s=30, worker="w2", free={})
    assert again.delivery.progress == cursor
    row = await store.finish_attempt(
        again.delivery,
        AttemptRow("d_1", 2, time.time(), 1, "retrying", 500, None, "HTTP 500", t0 + 3600),
        Outcome(DeliveryState.retrying, next_attempt_at=t0 + 3600, last_error="HTTP 500"),
        worker="w2",
    )
    assert row.progress == cursor == (await store.get_delivery("d_1")).progress  # type: ignore[union-attr]
    done = {**cursor, "next": 5, "ahead": [], "sent": 5}
    (last,) = await store.claim_due(now=t0 + 3601, limit=1, lease_s=30, worker="w3", free={})
    await store.finish_attempt(
        last.delivery,
        AttemptRow("d_1", 3, time.time(), 1, "delivered"),
        Outcome(DeliveryState.delivered, remote_id="r1", progress=done),
        worker="w3",
    )
    assert (await store.get_delivery("d_1")).progress == done  # type: ignore[union-attr]
    assert await store.save_progress("d_1", cursor, worker="w3", lease_s=30) is False


async def test_deliveries_taken_in_the_creating_transaction(store: Store) -> None:
    """Taken rows are stored claimed (first attempt, the worker's lease): no one else claims
    them, their worker finishes them, and a lease that runs out brings them back."""
    t0 = time.time()
    taken = Taken("w1", t0 + 30, frozenset({"d_1", "d_2"}))
    await create(store, _incident(), [_delivery(i) for i in (1, 2, 3)], taken=taken)
    rows = {d.id: d for d in await store.list_deliveries()}
    assert [(rows[i].state, rows[i].attempts) for i in ("d_1", "d_2", "d_3")] == [
        (DeliveryState.sending, 1),
        (DeliveryState.sending, 1),
        (DeliveryState.pending, 0),
    ]
    assert await _claim(store, worker="w2") == ["d_3"]
    row = await store.finish_attempt(
        rows["d_1"],
        AttemptRow("d_1", 1, time.time(), 1, "delivered"),
        Outcome(DeliveryState.delivered, remote_id="r1"),
        worker="w1",
    )
    assert row.state is DeliveryState.delivered
    assert await store.recover(now=t0 + 10, everything=False) == 0
    assert await store.recover(now=t0 + 31, everything=False) == 1  # d_2's lease ran out
    assert await _claim(store, worker="w2", now=t0 + 32) == ["d_2"]


async def test_a_withdrawal_planned_on_a_stale_read_changes_nothing(store: Store) -> None:
    """A follow-up that would withdraw an original claimed meanwhile is refused whole
    (StaleRead), so its planner reads again; nothing of it is stored."""
    await create(store, _incident(), [_delivery(1), _delivery(2)])
    (sending,) = await _claim(store, free={"a": 1}, limit=1)  # on its way now
    (unsent,) = {"d_1", "d_2"} - {sending}
    follow = _incident(1, references="inc_0")
    why = "withdrawn: the incident was cancelled"
    with pytest.raises(StaleRead):
        await create(store, follow, [_delivery(3)], effects=Effects(("d_1", "d_2"), why))
    assert await store.get_incident("inc_1") is None
    rows = {d.id: d.state for d in await store.list_deliveries()}
    assert rows == {sending: DeliveryState.sending, unsent: DeliveryState.pending}
    await create(store, follow, [_delivery(3)], effects=Effects((unsent,), why))
    assert (await store.get_delivery(unsent)).state is DeliveryState.skipped  # type: ignore[union-attr]


async def test_finish_by_a_stale_worker_changes_nothing(store: Store) -> None:
    """A worker whose lease was taken over cannot overwrite the new owner's state."""
    await create(store, _incident(), [_delivery(1)])
    (claim,) = await store.claim_due(now=time.time(), limit=1, lease_s=30, worker="w1", free={})
    await store.recover(now=time.time() + 60, everything=False)
    assert await _claim(store, worker="w2", now=time.time() + 61) == ["d_1"]
    row = await store.finish_attempt(
        claim.delivery,
        AttemptRow("d_1", 1, time.time(), 1, "delivered"),
        Outcome(DeliveryState.delivered, remote_id="r1"),
        worker="w1",
    )
    assert row.state is DeliveryState.sending


async def test_wait_for_holds_a_follow_up(store: Store) -> None:
    """A delivery waiting for another is claimable only once that one is settled."""
    await create(
        store, _incident(), [_delivery(1), _delivery(2, wait_for="d_1", target_delivery_id="d_1")]
    )
    assert await _claim(store) == ["d_1"]
    assert await _claim(store) == []
    (claim,) = [c for c in await store.list_deliveries() if c.id == "d_1"]
    await store.finish_attempt(
        claim,
        AttemptRow("d_1", 1, time.time(), 1, "delivered"),
        Outcome(DeliveryState.delivered, remote_id="r1"),
        worker="w1",
    )
    claims = await store.claim_due(now=time.time() + 1, limit=5, lease_s=30, worker="w1", free={})
    assert [(c.delivery.id, c.target_remote_id) for c in claims] == [("d_2", "r1")]


def _hall() -> list[NewDelivery]:
    """A lead's delivery, a member's repost of it and the lead account's own follow-up."""
    return [
        _delivery(1, "lead"),
        _delivery(2, "member", action="repost", target_delivery_id="d_1", wait_for="d_1"),
        _delivery(3, "lead", action="reply", target_delivery_id="d_1", wait_for="d_1"),
    ]


async def _claim_waiting(
    store: Store, now: float, waits: dict[str, float] | None, free: dict[str, int] | None = None
) -> list[Any]:
    """Claim with ``waits``: each claim as (id, its target's state, its target's account)."""
    claims = await store.claim_due(
        now=now, limit=10, lease_s=30, worker="w1", free=free or {}, waits=waits
    )
    return sorted((c.delivery.id, c.target_state, c.target_account) for c in claims)


async def test_a_member_waits_for_its_unsettled_lead_at_most_its_wait(store: Store) -> None:
    """A member is due once it has waited its account's wait; a follow-up waits on."""
    await create(store, _incident(), _hall())
    t0 = time.time()
    assert await _claim(store, now=t0) == ["d_1"]
    assert await _claim_waiting(store, t0 + 30, {"member": 60.0, "lead": 0.0}) == []
    assert await _claim_waiting(store, t0 + 61, None) == []
    waited = await _claim_waiting(store, t0 + 61, {"member": 60.0, "lead": 0.0})
    assert waited == [("d_2", DeliveryState.sending, "lead")]


async def test_a_member_of_a_paused_lead_is_due_at_once(store: Store) -> None:
    """No wait (the lead is paused): the member is due though its lead never went out."""
    await create(store, _incident(), _hall())
    paused = {"lead": 0}
    claimed = await _claim_waiting(store, time.time() + 1, {"member": 0.0, "other": 60.0}, paused)
    assert claimed == [("d_2", DeliveryState.pending, "lead")]


async def test_a_member_tried_before_waits_no_more(store: Store) -> None:
    """A member that was sent once is due at its retry, its lead settled or not."""
    await create(store, _incident(), _hall()[:2])
    t0 = time.time()
    assert await _claim_waiting(store, t0, {"member": 0.0}, {"lead": 0}) == [
        ("d_2", DeliveryState.pending, "lead")
    ]
    (member,) = [d for d in await store.list_deliveries() if d.id == "d_2"]
    await store.finish_attempt(
        member,
        AttemptRow("d_2", 1, t0, 1, "retrying"),
        Outcome(DeliveryState.retrying, next_attempt_at=t0 + 5),
        worker="w1",
    )
    assert await _claim_waiting(store, t0 + 4, {"member": 60.0}, {"lead": 0}) == []
    assert await _claim_waiting(store, t0 + 6, {"member": 60.0}, {"lead": 0}) == [
        ("d_2", DeliveryState.pending, "lead")
    ]


LAPSED = [
    (
        "the incident's expiry came first",
        1.0,
        1.0,
        "expired: the incident's expires_at passed before it could be sent",
    ),
    (
        "the kind's max_delay_s came first",
        None,
        2.0,
        "too late: not sent within max_delay_s for earthquake (2 s) of being queued",
    ),
    (
        "max_delay_s before a later expiry",
        60.0,
        2.0,
        "too late: not sent within max_delay_s for earthquake (2 s) of being queued",
    ),
]


@pytest.mark.parametrize(("desc", "incident_s", "delivery_s", "reason"), LAPSED)
async def test_lapsed_originals_end_dead_saying_which_limit_passed(
    store: Store, desc: str, incident_s: float | None, delivery_s: float, reason: str
) -> None:
    """Past its expires_at an unsent delivery ends dead, naming the expiry or max_delay_s."""
    incident = _incident()
    t0 = incident.created_at
    expires = None if incident_s is None else t0 + incident_s
    await create(
        store, replace(incident, expires_at=expires), [_delivery(1, expires_at=t0 + delivery_s)]
    )
    assert await _claim(store, now=t0 + delivery_s - 0.5) == ["d_1"]  # in time: it goes
    await store.recover(now=t0, everything=True)
    assert await _claim(store, now=t0 + delivery_s + 0.5) == []
    (row,) = await store.list_deliveries()
    assert (row.state, row.reason) == (DeliveryState.dead, reason), desc


async def test_recover_returns_interrupted_sends(store: Store) -> None:
    """Sending rows come back as retrying; those out of budget end dead."""
    await create(store, _incident(), [_delivery(1), _delivery(2)])
    await _claim(store)
    assert await store.recover(now=time.time(), everything=True) == 2
    assert {d.state for d in await store.list_deliveries()} == {DeliveryState.retrying}


async def test_requeue_gives_a_new_budget(store: Store) -> None:
    """Only a settled, undelivered delivery can be re-driven."""
    await create(store, _incident(), [_delivery(1, state=DeliveryState.failed, reason="render")])
    audit = AuditRow(time.time(), "op", "delivery.retry", "inc_0", "d_1")
    retry = Write(requeue=Requeue("d_1", 3), audit=(audit,))
    row = (await store.apply(retry)).requeued
    assert row is not None and row.state is DeliveryState.pending and row.max_attempts == 3
    with pytest.raises(StateConflict):
        await store.apply(retry)
    assert [a.action for a in await store.audit_trail("inc_0")] == ["delivery.retry"]


async def test_requeue_holds_a_cancelled_incident_but_not_its_cancellation(store: Store) -> None:
    """Once an incident is cancelled, its original's and its updates' failed deliveries stay
    put; the cancellation's own failed delivery (a correction) can be re-driven."""
    failed = {"state": DeliveryState.failed, "reason": "HTTP 400"}
    root = replace(_incident(0), state="cancelled")
    update = replace(_incident(1), msg_type="update", references="inc_0")
    cancel = replace(_incident(2), msg_type="cancel", state="cancelled", references="inc_0")
    for n, message in enumerate((root, update, cancel), start=1):
        await create(store, message, [_delivery(n, **failed)])
    for original in ("d_1", "d_2"):
        with pytest.raises(StateConflict):
            await store.apply(Write(requeue=Requeue(original, 3)))
    row = (await store.apply(Write(requeue=Requeue("d_3", 3)))).requeued
    assert row is not None and row.state is DeliveryState.pending
    assert await _claim(store) == ["d_3"]


async def test_requeue_holds_a_message_awaiting_approval(store: Store) -> None:
    """A held update's failed delivery waits for approval; its active original's does not."""
    failed = {"state": DeliveryState.failed, "reason": "HTTP 400"}
    held = replace(_incident(1), msg_type="update", state="awaiting_approval", references="inc_0")
    await create(store, _incident(0), [_delivery(1, **failed)])
    await create(store, held, [_delivery(2, **failed)])
    with pytest.raises(StateConflict):
        await store.apply(Write(requeue=Requeue("d_2", 3)))
    assert (await store.apply(Write(requeue=Requeue("d_1", 3)))).requeued is not None


async def test_a_write_is_all_or_nothing(store: Store) -> None:
    """When one part of a write cannot be made, none of it is: no incident, no delivery, no
    key, no audit row."""
    rec = IdempotencyRecord("city", "k", "sha", {"id": "inc_0"}, time.time())
    audit = AuditRow(time.time(), "city", "incident.create", "inc_0")
    doomed = Write(
        incident=_incident(),
        deliveries=[_delivery(1)],
        idempotency=rec,
        requeue=Requeue("d_missing", 1),
        audit=(audit,),
    )
    with pytest.raises(StateConflict):
        await store.apply(doomed)
    assert await store.get_incident("inc_0") is None
    assert await store.list_deliveries() == []
    assert await store.get_idempotency("city", "k") is None
    assert await store.audit_trail("inc_0") == []


async def test_release_makes_held_deliveries_due(store: Store) -> None:
    """Approving a held incident makes it active and its held deliveries claimable, once."""
    held = replace(_incident(), state="awaiting_approval")
    await create(store, held, [_delivery(1, hold=True), _delivery(2, hold=True)])
    assert await _claim(store) == []
    audit = AuditRow(time.time(), "boss", "incident.approve", "inc_0")
    applied = await store.apply(Write(release=Release(("inc_0",), "inc_0"), audit=(audit,)))
    assert applied.released == 2
    row = await store.get_incident("inc_0")
    assert row is not None and row.state == "active"
    assert await _claim(store) == ["d_1", "d_2"]
    with pytest.raises(StateConflict):
        await store.apply(Write(release=Release(("inc_0",), "inc_0"), audit=(audit,)))


async def test_an_approval_releases_only_what_its_approver_saw(store: Store) -> None:
    """Releasing an incident whole fails while a held update exists that the approval did not
    name (written after its read: plan again); naming it, both are released."""
    held = replace(_incident(), state="awaiting_approval")
    await create(store, held, [_delivery(1, hold=True)])
    later = replace(_incident(1), state="awaiting_approval", msg_type="update", references="inc_0")
    await create(store, later, [_delivery(2, hold=True)])
    audit = AuditRow(time.time(), "boss", "incident.approve", "inc_0")
    with pytest.raises(StaleRead):
        await store.apply(Write(release=Release(("inc_0",), "inc_0"), audit=(audit,)))
    assert (await store.get_incident("inc_1")).state == "awaiting_approval"  # type: ignore[union-attr]
    both = Release(("inc_0", "inc_1"), "inc_0")
    assert (await store.apply(Write(release=both, audit=(audit,)))).released == 2


async def test_attached_deliveries_are_added_once(store: Store) -> None:
    """Deliveries attached to a stored incident (a fallback) are added once by id, however
    often the same write is applied."""
    await create(store, _incident(), [_delivery(1)])
    audit = AuditRow(time.time(), "alertcast", "delivery.fallback", "inc_0", "d_1")
    spare = Write(deliveries=[_delivery(9, "spare")], attach_to="inc_0", audit=(audit,))
    await asyncio.gather(store.apply(spare), store.apply(spare))
    rows = await store.list_deliveries(incident_id="inc_0")
    assert sorted(r.id for r in rows) == ["d_1", "d_9"]


async def test_taken_deliveries_come_back_as_claims(store: Store) -> None:
    """What a write takes at creation comes back as claims, each with the remote id of the
    original it threads to."""
    taken = Taken("w1", time.time() + 30, frozenset({"d_2"}), {"d_orig": "remote-7"})
    follow = [_delivery(1), _delivery(2, target_delivery_id="d_orig")]
    applied = await store.apply(Write(incident=_incident(), deliveries=follow, taken=taken))
    (claim,) = applied.claims
    assert claim.delivery.id == "d_2" and claim.delivery.state is DeliveryState.sending
    assert claim.target_remote_id == "remote-7" and claim.target_delivered


@pytest.mark.postgres
async def test_two_replicas_never_claim_the_same_row(store_url: str) -> None:
    """Concurrent claimers over one database take disjoint sets (SKIP LOCKED)."""
    if store_url.startswith("sqlite"):
        pytest.skip("one SQLite file has one writer; replicas need PostgreSQL")
    a, b = open_store(store_url), open_store(store_url)
    await a.open()
    await b.open()
    taken: list[str] = []
    try:
        await create(a, _incident(), [_delivery(i, f"acc{i % 7}") for i in range(300)])
        for _ in range(20):
            got = await asyncio.gather(
                *(_claim(s, limit=40, worker=f"w{i}") for i, s in enumerate([a, b, a, b, a, b]))
            )
            taken += [i for ids in got for i in ids]
            if len(taken) >= 300:
                break
    finally:
        await a.close()
        await b.close()
    assert len(taken) == len(set(taken)) == 300


# -- feed events (issue 5) ---------------------------------------------------------------------
def _event(event_id: str, *ids: str, t: float = 1000.0, **kw: Any) -> FeedEventRow:
    return FeedEventRow(
        feed="usgs-day",
        event_id=event_id,
        known={"event_id": event_id, "facts": [7.0]},
        ids=tuple(sorted({event_id, *ids})),
        event_time=t,
        **kw,
    )


async def test_feed_event_round_trip(store: Store) -> None:
    """A new event reads back whole, at version 1, by any of its ids."""
    pending = {"action": "raise", "key": "us1:1"}
    assert await store.put_feed_event(_event("us1", "at1", pending=pending, live=True), now=5.0)
    (row,) = await store.feed_events("usgs-day", ids=["at1"])
    assert (row.event_id, row.ids, row.version, row.live) == ("us1", ("at1", "us1"), 1, True)
    assert (row.known, row.pending, row.updated_at) == (
        {"event_id": "us1", "facts": [7.0]},
        pending,
        5.0,
    )
    assert await store.get_feed_event("usgs-day", "us1") == row
    assert await store.get_feed_event("other-feed", "us1") is None


async def test_feed_event_is_unique_per_feed_and_id(store: Store) -> None:
    """A second new event under the same (feed, event id), or holding a known id, loses."""
    assert await store.put_feed_event(_event("us1", "at1"), now=1.0)
    assert not await store.put_feed_event(_event("us1"), now=2.0)
    assert not await store.put_feed_event(_event("pt9", "at1"), now=2.0)
    assert await store.get_feed_event("usgs-day", "pt9") is None
    assert await store.put_feed_event(replace(_event("us1", "at1"), feed="usgs-week"), now=2.0)


async def test_feed_event_write_names_the_version_it_read(store: Store) -> None:
    """An update from a stale version changes nothing; the current one bumps the version."""
    await store.put_feed_event(_event("us1"), now=1.0)
    (row,) = await store.feed_events("usgs-day", ids=["us1"])
    newer = replace(row, incident_id="inc_1", live=True, known={"v": 2}, ids=("us1", "nc5"))
    assert await store.put_feed_event(newer, now=2.0)
    assert not await store.put_feed_event(replace(row, known={"v": "stale"}), now=3.0)
    (now,) = await store.feed_events("usgs-day", ids=["nc5"])
    assert (now.version, now.known, now.incident_id, now.pending) == (2, {"v": 2}, "inc_1", None)


async def test_feed_event_takes_over_the_ids_it_absorbs(store: Store) -> None:
    """Ids of a named absorbed event move to the one that joins them (and stay there when the
    absorbed one is written again); ids held by any other event clash."""
    await store.put_feed_event(_event("us1", "at1"), now=1.0)
    await store.put_feed_event(_event("pt2", "at2"), now=1.0)
    await store.put_feed_event(_event("nc3"), now=1.0)
    (kept,) = await store.feed_events("usgs-day", ids=["us1"])
    joined = replace(kept, ids=("at1", "at2", "nc3", "pt2", "us1"))
    assert not await store.put_feed_event(joined, takeover=["pt2"], now=2.0)
    joined = replace(joined, ids=("at1", "at2", "pt2", "us1"))
    assert await store.put_feed_event(joined, takeover=["pt2"], now=2.0)
    found = await store.feed_events("usgs-day", ids=["at2"])
    assert sorted(r.event_id for r in found) == ["us1"]
    assert sorted(r.event_id for r in await store.feed_events("usgs-day", ids=["pt2"])) == [
        "pt2",
        "us1",
    ]
    absorbed = await store.get_feed_event("usgs-day", "pt2")
    assert absorbed is not None
    assert await store.put_feed_event(replace(absorbed, known={"cancelled": True}), now=3.0)
    assert [r.event_id for r in await store.feed_events("usgs-day", ids=["at2"])] == ["us1"]


async def test_feed_event_candidates_and_live(store: Store) -> None:
    """Candidates come by id or by time span; live events by time, oldest first."""
    await store.put_feed_event(_event("AU1", t=100.0, live=True), now=1.0)
    await store.put_feed_event(_event("CC1", t=150.0), now=1.0)
    await store.put_feed_event(_event("CC2", t=400.0, live=True), now=1.0)
    near = await store.feed_events("usgs-day", ids=["XX"], between=(90.0, 160.0))
    assert [r.event_id for r in near] == ["AU1", "CC1"]
    assert [r.event_id for r in await store.live_feed_events("usgs-day", since=50.0)] == [
        "AU1",
        "CC2",
    ]
    assert [r.event_id for r in await store.live_feed_events("usgs-day", since=101.0)] == ["CC2"]


async def test_feed_events_prune_only_old_idle_settled_ones(store: Store) -> None:
    """Pruning forgets old, idle events without a pending action, and their ids."""
    await store.put_feed_event(_event("old", "old-b", t=10.0), now=1.0)
    await store.put_feed_event(_event("busy", t=10.0, pending={"action": "cancel"}), now=1.0)
    await store.put_feed_event(_event("recent", t=500.0), now=1.0)
    await store.put_feed_event(_event("touched", t=10.0), now=50.0)
    assert await store.prune_feed_events("usgs-day", before=100.0, idle_since=20.0) == 1
    assert await store.feed_events("usgs-day", ids=["old-b", "old"]) == []
    assert await store.put_feed_event(_event("again", "old-b"), now=60.0)
    left = await store.feed_events("usgs-day", ids=["busy", "recent", "touched"])
    assert sorted(r.event_id for r in left) == ["busy", "recent", "touched"]


@pytest.mark.postgres
async def test_feed_event_race_has_one_winner(store_url: str) -> None:
    """Two replicas inserting the same event at once: exactly one write wins."""
    if store_url.startswith("sqlite"):
        pytest.skip("one SQLite file has one writer; replicas need PostgreSQL")
    a, b = open_store(store_url), open_store(store_url)
    await a.open()
    await b.open()
    try:
        won = await asyncio.gather(
            *(
                s.put_feed_event(_event(f"ev{n}", f"alias{n}"), now=1.0)
                for n in range(20)
                for s in (a, b)
            )
        )
    finally:
        await a.close()
        await b.close()
    assert sum(won) == 20


async def test_a_claim_given_back_is_due_again_with_its_attempt_taken_back(store: Store) -> None:
    """``unclaim`` by the worker holding the claim: the delivery is pending again with no
    attempt counted and claimable at once; by another worker, or twice, it changes nothing."""
    await create(store, _incident(), [_delivery(1)])
    assert await _claim(store) == ["d_1"]
    assert not await store.unclaim("d_1", worker="someone-else", due_at=time.time())
    assert await store.unclaim("d_1", worker="w1", due_at=time.time())
    assert not await store.unclaim("d_1", worker="w1", due_at=time.time())
    row = await store.get_delivery("d_1")
    assert row is not None and (row.state, row.attempts) == ("pending", 0)
    assert await _claim(store) == ["d_1"]
    assert (await store.get_delivery("d_1")).attempts == 1  # type: ignore[union-attr]


@pytest.mark.postgres
async def test_replicas_opening_a_new_schema_at_once_all_start() -> None:
    """Several replicas started together on a schema that does not exist yet: each creates
    it if missing and migrates under the advisory lock; none fails on the other's create."""
    async with fresh_schema() as url:
        stores = [open_store(url) for _ in range(6)]
        await asyncio.gather(*(s.open() for s in stores))
        for s in stores:
            await s.close()
