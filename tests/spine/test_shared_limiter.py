"""The shared limiter: windows counted by atomic takes that every replica and restart shares."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

import pytest

from alertcast.ratelimit import CORRECTION, Limiter, SlidingWindow
from alertcast.shared_limiter import SharedLimiter, WaitedTooLong, reopens_in
from alertcast.slots import Answer, MemorySlots, Need, SlotRow

CANCEL, ALERT = 10, 0


class CountingSlots(MemorySlots):
    """The in-memory take, counting the round trips a store would make."""

    def __init__(self) -> None:
        super().__init__()
        self.takes = 0
        self.reads = 0

    async def take_slot(
        self, key: str, slot_id: str, needs: Sequence[Need], *, now: float, lease_s: float
    ) -> Answer:
        self.takes += 1
        await asyncio.sleep(0)  # a round trip lets others run meanwhile
        return await super().take_slot(key, slot_id, needs, now=now, lease_s=lease_s)

    async def held_slots(self, key: str, needs: Sequence[Need]) -> tuple[SlotRow, ...]:
        self.reads += 1
        return await super().held_slots(key, needs)


def replica(
    slots: MemorySlots, limit: int = 3, window_s: float = 0.4, lease_s: float = 30.0
) -> SharedLimiter:
    """One replica's limiter of the account ``acct``: ``limit`` sends in any ``window_s``."""
    rates = Limiter.per(per_minute=None, per_second=None, clock=time.time)
    windows = [SlidingWindow(limit, window_s, time.time, name="w"), *rates.windows]
    return SharedLimiter(windows, key="acct", slots=slots, lease_s=lease_s)


async def send(limiter: Limiter, seen: list[float], priority: int = ALERT) -> None:
    async with limiter.slot("post", priority):
        seen.append(time.time())
        await asyncio.sleep(0.01)


def most_in_any_window(times: list[float], window_s: float) -> int:
    times = sorted(times)
    return max(sum(1 for u in times if t <= u < t + window_s) for t in times)


async def test_two_replicas_together_never_exceed_the_window() -> None:
    """Two limiters on one store, 12 sends each at once: any 0.4 s holds at most 3."""
    slots = MemorySlots()
    a, b = replica(slots), replica(slots)
    seen_a: list[float] = []
    seen_b: list[float] = []
    sends = [send(a, seen_a) for _ in range(12)] + [send(b, seen_b) for _ in range(12)]
    await asyncio.wait_for(asyncio.gather(*sends), 10)
    assert len(seen_a) == len(seen_b) == 12
    assert most_in_any_window(seen_a + seen_b, 0.4) <= 3


async def test_a_refused_take_waits_for_the_window_not_a_poll() -> None:
    """Three sends fill the window; the fourth asks the store a handful of times, not hundreds."""
    slots = CountingSlots()
    limiter = replica(slots, limit=3, window_s=0.5)
    seen: list[float] = []
    await asyncio.gather(*(send(limiter, seen) for _ in range(4)))
    assert seen[3] - seen[0] >= 0.5
    assert slots.takes <= 8


async def test_a_restart_still_counts_the_sends_before_it() -> None:
    """A new limiter on the same store (a restarted daemon) waits for the old sends' window."""
    slots = MemorySlots()
    seen: list[float] = []
    await asyncio.gather(*(send(replica(slots), seen) for _ in range(3)))
    restarted = replica(slots)
    await restarted.refresh()
    assert restarted.room() == 0
    await send(restarted, seen)
    assert seen[3] - min(seen) >= 0.4


async def test_a_crashed_replicas_slot_blocks_only_until_its_lease() -> None:
    """A slot taken and never finished counts as ending at its lease, then frees the window."""
    slots = MemorySlots()
    now = time.time()
    await slots.take_slot("acct", "crashed", [Need("w", 1, now - 0.2)], now=now, lease_s=0.3)
    seen: list[float] = []
    await asyncio.wait_for(send(replica(slots, limit=1, window_s=0.2), seen), 5)
    assert seen[0] - now >= 0.3 + 0.2 - 0.02


async def test_alerts_leave_the_reserve_to_corrections_across_replicas() -> None:
    """A window of 10 keeps 1 for corrections: the tenth alert waits, a cancellation goes."""
    slots = MemorySlots()
    a, b = replica(slots, limit=10, window_s=30.0), replica(slots, limit=10, window_s=30.0)
    seen: list[float] = []
    await asyncio.gather(*(send(limiter, seen) for limiter in (a, b) * 4), send(a, seen))
    assert len(seen) == 9
    alert = asyncio.ensure_future(send(b, seen))
    await asyncio.wait_for(send(b, seen, CANCEL), 1)
    assert len(seen) == 10 and not alert.done()
    alert.cancel()


async def test_room_reads_the_store_not_only_this_process() -> None:
    """What another replica sent lowers this one's room once its copy is refreshed."""
    slots = MemorySlots()
    a, b = replica(slots, limit=5, window_s=30.0), replica(slots, limit=5, window_s=30.0)
    await asyncio.gather(*(send(a, []) for _ in range(4)))
    assert a.room() == 1
    await b.refresh()
    assert b.room() == 1 and b.room(CORRECTION, ["post"]) == 1


async def test_an_account_without_windows_asks_the_store_nothing() -> None:
    """No window: the slot is free and no take, read or finish reaches the store."""
    slots = CountingSlots()
    limiter = SharedLimiter([], key="acct", slots=slots, lease_s=30.0)
    await send(limiter, [])
    assert limiter.room() is None
    assert slots.takes == slots.reads == 0


async def test_a_send_that_waits_past_half_the_lease_gives_up_and_holds_nothing() -> None:
    """The claim's lease would give the delivery to another replica: this one lets it go."""
    slots = MemorySlots()
    limiter = replica(slots, limit=1, window_s=30.0, lease_s=0.4)
    await send(limiter, [])
    with pytest.raises(WaitedTooLong):
        await send(limiter, [])
    held = await slots.held_slots("acct", [Need("w", 1, time.time() - 30)])
    assert len(held) == 1


async def test_a_cancelled_waiter_takes_no_slot() -> None:
    """A send cancelled while it waits leaves the window as it was."""
    slots = MemorySlots()
    limiter = replica(slots, limit=1, window_s=30.0)
    await send(limiter, [])
    waiting = asyncio.ensure_future(send(limiter, []))
    await asyncio.sleep(0.05)
    waiting.cancel()
    await asyncio.gather(waiting, return_exceptions=True)
    held = await slots.held_slots("acct", [Need("w", 1, time.time() - 30)])
    assert len(held) == 1 and limiter.waiting == 0


@pytest.mark.parametrize(
    ("slots", "cap", "expected_s"),
    [
        ([(9.2, True), (9.5, True)], 2, 0.2),  # full: the oldest finish, a window on
        ([(9.2, True), (40.0, False)], 2, 0.2),  # the finished one leaves first
        ([(9.2, True), (40.0, False)], 1, 1.0),  # in flight: ends now at the earliest
        ([(9.2, True)], 2, 0.0),  # room now
    ],
)
def test_reopens_in(slots: list[tuple[float, bool]], cap: int, expected_s: float) -> None:
    """When a window of 1 s reopens at t = 10, by the ends of the slots it holds."""
    rows = [SlotRow(str(i), "w", 9.0, end, done) for i, (end, done) in enumerate(slots)]
    assert reopens_in(rows, Need("w", cap, 9.0), 1.0, 10.0) == pytest.approx(expected_s)


async def test_a_shared_slot_said_unused_is_given_back_to_every_replica() -> None:
    """A slot taken and said unused is dropped from the store: another replica has the whole
    window, this one too (its own copy forgets it)."""
    slots = MemorySlots()
    a, b = replica(slots, limit=1, window_s=30.0), replica(slots, limit=1, window_s=30.0)
    async with a.slot("post") as use:
        use.unused()
    await asyncio.wait_for(send(b, []), 2)  # the one slot of the window: b has it
    await b.refresh()
    assert b.room() == 0
    a_seen: list[float] = []
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(send(a, a_seen), 0.5)  # b's send fills it, for a too
    assert a_seen == []
