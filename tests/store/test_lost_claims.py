"""``Store.release_lost``: a worker's claims it never received go back to the queue, and only
those (the contract, on both engines)."""

from __future__ import annotations

import time

from alertcast.store.base import Store
from tests.store.test_contract import _claim, _delivery, _incident, create, store, store_url

__all__ = ["store", "store_url"]  # the fixtures, used by name


async def _state(store: Store, delivery_id: str) -> tuple[str, int]:
    row = await store.get_delivery(delivery_id)
    assert row is not None
    return row.state.value, row.attempts


async def test_only_the_workers_old_claims_it_does_not_hold_are_released(store: Store) -> None:
    """Of ``w1``'s claims made before the bound, the ones it holds stay; those it never
    received are due again with their attempt taken back; ``w2``'s, and ``w1``'s recent
    ones, are not touched; once it no longer holds one, that one goes too."""
    await create(store, _incident(), [_delivery(n) for n in range(1, 6)])
    assert await _claim(store, {"a": 3}, worker="w1") == ["d_1", "d_2", "d_3"]
    assert await _claim(store, {"a": 1}, worker="w2") == ["d_4"]
    later = time.time() + 60  # stamped after the bound used below: too recent to be lost
    assert await _claim(store, {"a": 1}, worker="w1", now=later) == ["d_5"]
    bound = later - 1
    released = await store.release_lost(
        worker="w1", held=lambda: {"d_2"}, claimed_before=bound, now=time.time()
    )
    assert released == 2
    assert [await _state(store, f"d_{n}") for n in range(1, 6)] == [
        ("pending", 0),
        ("sending", 1),  # held
        ("pending", 0),
        ("sending", 1),  # another worker's
        ("sending", 1),  # too recent
    ]
    assert not await store.unclaim("d_1", worker="w1", due_at=time.time())  # no longer w1's
    assert await store.unclaim("d_4", worker="w2", due_at=time.time())  # still w2's
    again = await store.release_lost(worker="w1", held=list, claimed_before=bound, now=time.time())
    assert again == 1  # d_2, given up by its task
    assert await _claim(store, {"a": 5}) == ["d_1", "d_2", "d_3", "d_4"]  # due at once


async def test_a_retry_released_stays_a_retry(store: Store) -> None:
    """A lost claim of a delivery tried before goes back ``retrying``, the earlier attempt
    kept; the claim's own attempt is taken back."""
    await create(store, _incident(), [_delivery(1)])
    assert await _claim(store, worker="w1") == ["d_1"]
    await store.recover(now=time.time(), everything=True)  # interrupted: an attempt counted
    assert await _state(store, "d_1") == ("retrying", 1)
    assert await _claim(store, worker="w1", now=time.time() + 3600) == ["d_1"]
    assert await _state(store, "d_1") == ("sending", 2)
    released = await store.release_lost(
        worker="w1", held=list, claimed_before=time.time() + 7200, now=time.time()
    )
    assert released == 1
    assert await _state(store, "d_1") == ("retrying", 1)
