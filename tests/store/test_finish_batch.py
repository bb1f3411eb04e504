"""finish_attempts: several attempts recorded in one transaction, each as finish_attempt would."""

from __future__ import annotations

import time
from dataclasses import replace

import pytest

from alertcast.models import DeliveryState
from alertcast.store.base import ActiveClaim, AttemptRow, DeliveryRow, Outcome, Store
from tests.store.test_contract import _claim, _delivery, _incident, create, store, store_url

__all__ = ["store", "store_url"]  # the engines' fixtures, parametrised over SQLite and PostgreSQL

LATER = time.time() + 3600


async def _claims(store: Store, n: int, worker: str = "w1") -> list[ActiveClaim]:
    await create(store, _incident(), [_delivery(i, f"acc{i}") for i in range(n)])
    claims = await store.claim_due(now=time.time(), limit=n, lease_s=30, worker=worker, free={})
    return sorted(claims, key=lambda c: c.delivery.id)


def _delivered(d: DeliveryRow, n: int = 1) -> tuple[DeliveryRow, AttemptRow, Outcome]:
    attempt = AttemptRow(d.id, n, time.time(), 3.0, "delivered", 200)
    return d, attempt, Outcome(DeliveryState.delivered, remote_id=f"r-{d.id}")


def _retry(d: DeliveryRow) -> tuple[DeliveryRow, AttemptRow, Outcome]:
    attempt = AttemptRow(d.id, 1, time.time(), 4.0, "retrying", 503, None, "HTTP 503", LATER)
    return d, attempt, Outcome(DeliveryState.retrying, next_attempt_at=LATER, last_error="503")


async def test_every_outcome_is_stored_and_returned_in_order(store: Store) -> None:
    """Delivered, retrying and progress outcomes land; the rows come back in the items' order
    exactly as the store then holds them."""
    a, b, c = (claim.delivery for claim in await _claims(store, 3))
    cursor = {"next": 7}
    last = AttemptRow(a.id, 1, time.time(), 1.0, "retrying", 500, None, "HTTP 500", LATER)
    items = [
        _retry(c),
        _delivered(b),
        (a, last, Outcome(DeliveryState.retrying, next_attempt_at=LATER, progress=cursor)),
    ]
    rows = await store.finish_attempts(items, worker="w1")
    assert [r.id for r in rows] == [c.id, b.id, a.id]
    assert rows == [await store.get_delivery(r.id) for r in rows]
    assert [r.state for r in rows] == [
        DeliveryState.retrying,
        DeliveryState.delivered,
        DeliveryState.retrying,
    ]
    assert rows[1].remote_id == f"r-{b.id}" and rows[1].delivered_at is not None
    assert rows[2].progress == cursor
    assert [a.http_status for a in await store.attempts(c.id)] == [503]
    assert await _claim(store, now=time.time() + 1) == []
    assert await _claim(store, now=LATER + 1) == sorted([a.id, c.id])


async def test_a_lost_claim_is_left_to_its_new_holder(store: Store) -> None:
    """Claims whose leases were taken over keep the new owner's state and come back as
    stored, exactly as finish_attempt returns them; their attempts are still recorded."""
    first, second = (claim.delivery for claim in await _claims(store, 2))
    await store.recover(now=time.time() + 60, everything=False)
    assert await _claim(store, worker="w2", now=time.time() + 61) == [first.id, second.id]
    rows = await store.finish_attempts([_delivered(first), _delivered(second)], worker="w1")
    assert [r.state for r in rows] == [DeliveryState.sending, DeliveryState.sending]
    assert rows == [await store.get_delivery(first.id), await store.get_delivery(second.id)]
    assert rows[0] == await store.finish_attempt(*_delivered(first, 3), worker="w1")
    assert [a.number for a in await store.attempts(first.id)] == [1, 3]


async def test_a_lost_claim_beside_a_held_one(store: Store) -> None:
    """Of two claims, only the one taken over is left alone; the held one is delivered."""
    kept, lost = (claim.delivery for claim in await _claims(store, 2))
    # `lost` alone is taken over: its lease runs out and another worker claims it.
    await store.finish_attempt(*_retry(lost), worker="w1")
    (again,) = await store.claim_due(now=LATER + 1, limit=1, lease_s=30, worker="w2", free={})
    assert again.delivery.id == lost.id
    rows = await store.finish_attempts([_delivered(lost, 1), _delivered(kept)], worker="w1")
    assert rows[0] == await store.get_delivery(lost.id)
    assert rows[0].state is DeliveryState.sending and rows[0].remote_id is None
    assert rows[1].state is DeliveryState.delivered
    assert rows[1] == await store.get_delivery(kept.id)


async def test_the_same_claim_twice_is_finished_once(store: Store) -> None:
    """A claim repeated in one batch is finished by its first item; the second finds it
    settled, as a second finish_attempt would."""
    (claim,) = (c.delivery for c in await _claims(store, 1))
    rows = await store.finish_attempts([_delivered(claim), _retry(claim)], worker="w1")
    assert [r.state for r in rows] == [DeliveryState.delivered, DeliveryState.delivered]
    assert rows[1] == await store.get_delivery(claim.id)


async def test_the_batch_is_all_or_nothing(store: Store) -> None:
    """One item the store refuses (an attempt of no delivery) leaves every delivery claimed
    and no attempt recorded: the batch is one transaction."""
    (a, b) = (c.delivery for c in await _claims(store, 2))
    ghost = replace(a, id="no-such-delivery")
    with pytest.raises(Exception):  # noqa: B017 - the engines' own integrity errors differ
        await store.finish_attempts([_delivered(a), _delivered(ghost), _delivered(b)], worker="w1")
    assert [(await store.get_delivery(d.id)).state for d in (a, b)] == [  # type: ignore[union-attr]
        DeliveryState.sending,
        DeliveryState.sending,
    ]
    assert await store.attempts(a.id) == [] and await store.attempts(b.id) == []


async def test_nothing_to_finish(store: Store) -> None:
    """An empty batch is no write and no rows."""
    assert await store.finish_attempts([], worker="w1") == []
