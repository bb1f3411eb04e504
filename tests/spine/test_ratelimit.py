"""The limiter: sliding windows, budgets per action, corrections first and their reserve."""

from __future__ import annotations

import asyncio
import time

import pytest

from alertcast.ratelimit import CORRECTION, Limiter, SlidingWindow, reserve_of

CANCEL, UPDATE, ALERT = 10, 5, 0
HOUR = 3600.0


class Clock:
    def __init__(self) -> None:
        self.now = 0.0
        self.reads = 0

    def __call__(self) -> float:
        self.reads += 1
        return self.now


def weibo(clock: Clock, post: int = 30, comment: int = 60, total: int = 150) -> Limiter:
    """Weibo's shape: posts and reposts share a budget, comments have theirs, all one total."""
    budgets = [(post, {"post", "repost"}), (comment, {"reply"}), (total, set())]
    return Limiter.per(per_minute=None, per_second=None, budgets=budgets, clock=clock)


async def spend(limiter: Limiter, n: int, action: str = "post", priority: int = ALERT) -> None:
    for _ in range(n):
        async with limiter.slot(action, priority):
            pass


async def started(coro: object) -> asyncio.Task[None]:
    """The coroutine as a task that has had its turn to queue."""
    task: asyncio.Task[None] = asyncio.ensure_future(coro)  # type: ignore[arg-type]
    await asyncio.sleep(0)
    return task


async def test_window_admits_limit_then_waits_from_the_oldest_finish() -> None:
    """Three slots a second: the fourth waits until the first finished a second ago."""
    clock = Clock()
    limiter = Limiter([SlidingWindow(3, 1.0, clock)], clock=clock)
    (window,) = limiter.windows
    for t in (0.0, 0.1, 0.2):
        clock.now = t
        async with limiter.slot():
            clock.now = t + 0.05  # each send takes 50 ms
    clock.now = 0.5
    assert window.delay_s() == pytest.approx(1.05 - 0.5)
    clock.now = 1.06
    assert window.delay_s() == 0.0


async def test_a_send_in_flight_holds_its_slot() -> None:
    """While a send runs it counts; the window cannot reopen before it finishes."""
    clock = Clock()
    limiter = Limiter([SlidingWindow(1, 1.0, clock)], clock=clock)
    (window,) = limiter.windows
    entered, release = asyncio.Event(), asyncio.Event()

    async def slow() -> None:
        async with limiter.slot():
            entered.set()
            await release.wait()

    task = asyncio.create_task(slow())
    await entered.wait()
    clock.now = 5.0
    assert window.delay_s() == float("inf")
    release.set()
    await task
    assert window.delay_s() == 1.0


def test_fractional_rates_use_an_hour() -> None:
    """0.5 a minute is 30 an hour, not one a minute."""
    (window,) = Limiter.per(per_minute=0.5, per_second=None).windows
    assert (window.limit, window.window_s) == (30, HOUR)


@pytest.mark.parametrize(
    ("limit", "reserve"),
    [(1, 0), (2, 0), (9, 0), (10, 1), (15, 2), (20, 2), (30, 3), (60, 6), (150, 15)],
)
def test_the_reserve_is_a_tenth_rounded_up_from_ten_sends(limit: int, reserve: int) -> None:
    """Windows of 10 or more keep a tenth (rounded up) for corrections; smaller ones none."""
    assert reserve_of(limit) == reserve == SlidingWindow(limit, 60.0).reserve


async def test_alerts_leave_the_reserve_to_corrections() -> None:
    """30 posts an hour: alerts stop at 27; the last 3 are a correction's, with no wait."""
    clock = Clock()
    limiter = weibo(clock)
    await spend(limiter, 27)
    assert limiter.room(ALERT) == 0 and limiter.room(CORRECTION, ["post"]) == 3
    alert = await started(spend(limiter, 1))
    await asyncio.wait_for(spend(limiter, 3, "post", CANCEL), 1.0)  # the reserve, at once
    assert not alert.done() and limiter.room(CORRECTION, ["post"]) == 0
    alert.cancel()


async def test_a_waiting_correction_takes_the_next_token_before_waiting_alerts() -> None:
    """A full window: alerts queued first, then an update and a cancellation; as the window
    reopens one send at a time the cancellation goes first, the update next, then the alerts
    in their order."""
    clock = Clock()
    limiter = Limiter.per(per_minute=None, per_second=None, budgets=[(3, {"post"})], clock=clock)
    for t in (0.0, 1.0, 2.0):  # three sends, finished at 0, 1 and 2 s
        clock.now = t
        await spend(limiter, 1, priority=CANCEL)
    order: list[str] = []

    async def send(name: str, priority: int) -> None:
        async with limiter.slot("post", priority):
            order.append(name)

    tasks = [
        await started(send(name, priority))
        for name, priority in (("alert-1", ALERT), ("alert-2", ALERT), ("update", UPDATE))
    ]
    tasks.append(await started(send("cancel", CANCEL)))
    for t in (HOUR, HOUR + 1, HOUR + 2):  # the window lets out one more each second
        clock.now = t
        limiter.wake()  # what the limiter's timer does when the window reopens
        await asyncio.sleep(0)
    assert order == ["cancel", "update", "alert-1"]
    clock.now = 2 * HOUR + 0.5
    limiter.wake()
    await asyncio.gather(*tasks)
    assert order == ["cancel", "update", "alert-1", "alert-2"]


async def test_a_spent_post_budget_does_not_hold_a_comment() -> None:
    """Posts and reposts spend one budget: when it is gone, a comment still goes at once."""
    clock = Clock()
    limiter = weibo(clock)
    await spend(limiter, 27)  # the alerts' share of 30 posts
    await spend(limiter, 3, "repost", CANCEL)  # and the reserve: posts are spent for everyone
    assert limiter.room(CORRECTION, ["post"]) == 0 == limiter.room(CORRECTION, ["repost"])
    await asyncio.wait_for(spend(limiter, 1, "reply", CANCEL), 1.0)
    await asyncio.wait_for(spend(limiter, 1, "reply", ALERT), 1.0)
    assert limiter.room(ALERT, ["reply"]) == 60 - 6 - 2


async def test_a_deletion_spends_only_the_total() -> None:
    """A deletion is in no action's budget but counts in the total, which binds every action."""
    clock = Clock()
    limiter = weibo(clock, total=12)
    await spend(limiter, 10, "delete")  # the total's alert share: 12 less a reserve of 2
    assert limiter.room(ALERT, ["post"]) == 0  # posts are left but the total is not
    assert limiter.room(CORRECTION, ["reply"]) == 2
    await asyncio.wait_for(spend(limiter, 2, "reply", CANCEL), 1.0)
    assert limiter.room(CORRECTION, ["delete"]) == 0


async def test_waiting_for_a_send_in_flight_does_not_poll() -> None:
    """A full window whose only send is still in flight: the waiter sleeps until that send
    ends (the clock is not read meanwhile), then until the window reopens, then goes."""
    clock = Clock()
    limiter = Limiter([SlidingWindow(1, 10.0, clock)], clock=clock)
    release = asyncio.Event()

    async def slow() -> None:
        async with limiter.slot():
            await release.wait()

    first = await started(slow())
    second = await started(spend(limiter, 1))
    reads = clock.reads
    await asyncio.sleep(0.2)
    assert clock.reads == reads and not second.done()
    release.set()
    await first
    await asyncio.sleep(0.05)
    assert not second.done()  # the window reopens 10 s (by its clock) after the first ended
    clock.now = 10.0
    limiter.wake()
    await asyncio.wait_for(second, 1.0)


async def test_the_timer_lets_the_next_send_out_when_the_window_reopens() -> None:
    """With the real clock, a second send waits about the window and no more."""
    limiter = Limiter([SlidingWindow(1, 0.2)])
    await spend(limiter, 1)
    t0 = time.monotonic()
    await asyncio.wait_for(spend(limiter, 1), 2.0)
    assert 0.15 < time.monotonic() - t0 < 0.6


async def test_a_cancelled_waiter_leaves_no_slot_behind() -> None:
    """A send given up while it waited takes no slot: the next one goes as if it never came."""
    clock = Clock()
    limiter = Limiter([SlidingWindow(1, 10.0, clock)], clock=clock)
    await spend(limiter, 1)
    gone = await started(spend(limiter, 1, priority=CANCEL))
    gone.cancel()
    await asyncio.gather(gone, return_exceptions=True)
    assert limiter.waiting == 0
    clock.now = 10.0
    await asyncio.wait_for(spend(limiter, 1), 1.0)
    assert limiter.room() == 0


async def test_an_account_without_windows_never_waits() -> None:
    """No limits: every slot is free, and the room is unbounded (None)."""
    limiter = Limiter.per(per_minute=None, per_second=None)
    await asyncio.wait_for(spend(limiter, 100), 1.0)
    assert limiter.room() is None


async def test_a_slot_said_unused_counts_for_nothing() -> None:
    """A sender that stops once it has its slot (its pass stopped meanwhile) says so: the
    slot goes back at once and the window's room is as before; a used one counts."""
    clock = Clock()
    limiter = Limiter([SlidingWindow(2, 10.0, clock)], clock=clock)
    async with limiter.slot() as use:
        use.unused()
    assert limiter.room() == 2
    async with limiter.slot():
        pass
    assert limiter.room() == 1
