"""The claim's room for corrections: one contract, every engine."""

from __future__ import annotations

import time

from alertcast.store.base import Store
from tests.store.test_contract import _delivery, _incident, create, store, store_url

__all__ = ["store", "store_url"]  # the engines' fixtures, parametrised over SQLite and PostgreSQL


async def claimed(
    store: Store, free: dict[str, int], corrections: dict[str, dict[str, int]] | None
) -> list[str]:
    claims = await store.claim_due(
        now=time.time() + 1,
        limit=100,
        lease_s=30,
        worker="w1",
        free=free,
        corrections=corrections,
    )
    return sorted(c.delivery.id for c in claims)


async def _queue(store: Store) -> None:
    """Account ``a``: three alerts, then an update (a post) and a cancellation (a reply);
    account ``b``: an alert."""
    alerts = [_delivery(n) for n in range(3)]
    followups = [_delivery(3, priority=5), _delivery(4, priority=10, action="reply")]
    await create(store, _incident(), [*alerts, *followups, _delivery(5, "b")])


async def test_only_corrections_take_the_room_alerts_may_not_use(store: Store) -> None:
    """No room for alerts but two for corrections: the update and the cancellation go."""
    await _queue(store)
    assert await claimed(store, {"a": 0, "b": 0}, {"a": {"post": 2, "reply": 2}}) == ["d_3", "d_4"]


async def test_a_correction_fits_its_own_actions_room(store: Store) -> None:
    """Posts spent, comments not: the cancellation (a reply) goes, the update (a post) waits."""
    await _queue(store)
    assert await claimed(store, {"a": 0, "b": 0}, {"a": {"post": 0, "reply": 5}}) == ["d_4"]


async def test_an_action_without_a_room_of_its_own_takes_free(store: Store) -> None:
    """A correction whose action has no room listed fits ``free``, as an alert would."""
    await _queue(store)
    assert await claimed(store, {"a": 1, "b": 0}, {"a": {"post": 0}}) == ["d_4"]


async def test_corrections_come_first_and_spend_the_alerts_room_too(store: Store) -> None:
    """Room for two (three for corrections): both corrections, and no alert beside them."""
    await _queue(store)
    assert await claimed(store, {"a": 2, "b": 0}, {"a": {"post": 3, "reply": 3}}) == ["d_3", "d_4"]


async def test_alerts_fill_what_corrections_leave(store: Store) -> None:
    """Room for three: the two corrections and one alert; ``b`` keeps its own room."""
    await _queue(store)
    got = await claimed(store, {"a": 3, "b": 1}, {"a": {"post": 5, "reply": 5}})
    assert {"d_3", "d_4", "d_5"} <= set(got) and len(set(got) & {"d_0", "d_1", "d_2"}) == 1


async def test_without_a_room_for_corrections_free_binds_them_too(store: Store) -> None:
    """No ``corrections``: ``free`` is every delivery's room, as before."""
    await _queue(store)
    assert await claimed(store, {"a": 1, "b": 0}, None) == ["d_4"]
