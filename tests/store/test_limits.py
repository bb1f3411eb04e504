"""Limit slots on every engine: atomic takes, finishes and drops, retries, restarts, replicas."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from alertcast.ratelimit import SlidingWindow
from alertcast.shared_limiter import SharedLimiter
from alertcast.slots import Need
from alertcast.store import open_store
from alertcast.store.base import Store
from tests.store.test_contract import store, store_url

__all__ = ["store", "store_url"]  # the engine fixtures, shared with the contract suite

LEASE_S = 30.0


def minute(now: float, cap: int = 2, budget: str = "minute") -> Need:
    return Need(budget, cap, now - 60.0)


async def test_a_take_goes_in_while_every_window_has_room(store: Store) -> None:
    """Two a minute: two takes go in, the third is refused and counts the two it saw."""
    now = time.time()
    for slot in ("s1", "s2"):
        assert (await store.take_slot("acct", slot, [minute(now)], now=now, lease_s=LEASE_S)).taken
    refused = await store.take_slot("acct", "s3", [minute(now)], now=now, lease_s=LEASE_S)
    assert not refused.taken
    assert sorted(r.id for r in refused.held) == ["s1", "s2"]
    assert all(not r.finished and r.ends_at == pytest.approx(now + LEASE_S) for r in refused.held)


async def test_every_need_must_have_room(store: Store) -> None:
    """A send spending two budgets is refused when either is full, and inserted in neither."""
    now = time.time()
    posts, total = minute(now, 5, "hour:post"), minute(now, 1, "hour:*")
    await store.take_slot("acct", "s1", [total], now=now, lease_s=LEASE_S)
    answer = await store.take_slot("acct", "s2", [posts, total], now=now, lease_s=LEASE_S)
    assert not answer.taken
    assert [r.id for r in await store.held_slots("acct", [posts])] == []


async def test_a_finished_slot_counts_from_its_end_and_a_dropped_one_not_at_all(
    store: Store,
) -> None:
    """finish sets the end (the window reopens a minute after it); drop frees the slot now."""
    t0 = time.time() - 100
    for slot in ("s1", "s2"):
        await store.take_slot("acct", slot, [minute(t0)], now=t0, lease_s=LEASE_S)
    await store.finish_slot("acct", "s1", now=t0 + 1)
    await store.drop_slot("acct", "s2")
    later = t0 + 50
    (row,) = await store.held_slots("acct", [minute(later)])
    assert row.id == "s1" and row.finished and row.ends_at == pytest.approx(t0 + 1)
    assert await store.held_slots("acct", [minute(t0 + 62)]) == ()


async def test_an_unfinished_slot_counts_until_its_lease(store: Store) -> None:
    """A replica that died mid-send: its slot ends at start + lease, then leaves the window."""
    t0 = time.time() - 1000
    await store.take_slot("acct", "crashed", [minute(t0, 1)], now=t0, lease_s=10.0)
    blocked = await store.take_slot("acct", "s2", [minute(t0 + 65, 1)], now=t0 + 65, lease_s=10)
    freed = await store.take_slot("acct", "s3", [minute(t0 + 71, 1)], now=t0 + 71, lease_s=10)
    assert not blocked.taken and freed.taken


async def test_a_retry_of_a_taken_slot_is_taken_whatever_the_room(store: Store) -> None:
    """The same slot id again (a retry) is taken, and counted once."""
    now = time.time()
    await store.take_slot("acct", "s1", [minute(now, 1)], now=now, lease_s=LEASE_S)
    again = await store.take_slot("acct", "s1", [minute(now, 1)], now=now, lease_s=LEASE_S)
    assert again.taken and [r.id for r in again.held] == ["s1"]


async def test_accounts_count_apart(store: Store) -> None:
    """One account's full window leaves another's alone."""
    now = time.time()
    await store.take_slot("a", "s1", [minute(now, 1)], now=now, lease_s=LEASE_S)
    assert (await store.take_slot("b", "s1", [minute(now, 1)], now=now, lease_s=LEASE_S)).taken


async def test_takes_prune_what_no_window_counts(store: Store) -> None:
    """A slot older than every window is deleted by the next take, not kept for ever."""
    old = time.time() - 7200
    await store.take_slot("acct", "old", [minute(old)], now=old, lease_s=1.0)
    await store.finish_slot("acct", "old", now=old + 1)
    now = time.time()
    await store.take_slot("acct", "new", [minute(now)], now=now, lease_s=LEASE_S)
    hour = Need("minute", 2, now - 3 * 3600)  # a longer look back than any window
    assert [r.id for r in await store.held_slots("acct", [hour])] == ["new"]


async def test_concurrent_takes_never_exceed_the_cap(store: Store) -> None:
    """Fifty takes at once on a window of five: five go in."""
    now = time.time()
    answers = await asyncio.gather(
        *(
            store.take_slot("acct", f"s{i}", [minute(now, 5)], now=now, lease_s=LEASE_S)
            for i in range(50)
        )
    )
    assert sum(a.taken for a in answers) == 5


async def test_slots_survive_a_restart(store_url: str) -> None:
    """Closed and opened again (a restarted daemon), the store still counts the slots."""
    now = time.time()
    first = open_store(store_url)
    await first.open()
    await first.take_slot("acct", "s1", [minute(now, 1)], now=now, lease_s=LEASE_S)
    await first.close()
    second = open_store(store_url)
    await second.open()
    try:
        refused = await second.take_slot("acct", "s2", [minute(now, 1)], now=now, lease_s=LEASE_S)
    finally:
        await second.close()
    assert not refused.taken


@pytest.fixture
async def replicas(store_url: str) -> AsyncIterator[tuple[Store, Store]]:
    """Two stores on one PostgreSQL database: two replicas' pools."""
    if store_url.startswith("sqlite"):
        pytest.skip("one process owns a SQLite store (its lock file): no second replica")
    a, b = open_store(store_url), open_store(store_url)
    await a.open()
    await b.open()
    yield a, b
    await a.close()
    await b.close()


async def test_two_replicas_takes_never_exceed_the_cap(replicas: tuple[Store, Store]) -> None:
    """Forty takes from each of two pools at once on a window of seven: seven go in."""
    now = time.time()
    takes = [
        replica.take_slot("acct", f"{n}-{i}", [minute(now, 7)], now=now, lease_s=LEASE_S)
        for n, replica in enumerate(replicas)
        for i in range(40)
    ]
    answers = await asyncio.gather(*takes)
    assert sum(a.taken for a in answers) == 7
    assert {a.held[-1].id.split("-")[0] for a in answers if a.taken} <= {"0", "1"}


async def test_two_replicas_limiters_never_exceed_the_window(
    replicas: tuple[Store, Store],
) -> None:
    """Each replica's limiter over its own pool, 15 sends each: any 0.5 s holds at most 4."""
    limiters = [
        SharedLimiter([SlidingWindow(4, 0.5, time.time, name="w")], key="acct", slots=s, lease_s=30)
        for s in replicas
    ]
    seen: dict[int, list[float]] = {0: [], 1: []}

    async def send(n: int) -> None:
        async with limiters[n].slot():
            seen[n].append(time.time())
            await asyncio.sleep(0.005)

    await asyncio.wait_for(asyncio.gather(*(send(n) for n in (0, 1) for _ in range(15))), 20)
    times = sorted(seen[0] + seen[1])
    assert len(seen[0]) == len(seen[1]) == 15
    assert all(times[i + 4] - times[i] >= 0.5 for i in range(len(times) - 4))
