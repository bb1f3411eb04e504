"""The sliding window: at most N sends in any window, counted from when each finished."""

from __future__ import annotations

import asyncio

from alertcast.ratelimit import Limiter, SlidingWindow


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_window_admits_limit_then_waits_from_the_oldest_finish() -> None:
    """Three slots a second: the fourth waits until the first finished a second ago."""
    clock = Clock()
    window = SlidingWindow(3, 1.0, clock)
    for t in (0.0, 0.1, 0.2):
        clock.now = t
        async with window.slot():
            clock.now = t + 0.05  # each send takes 50 ms
    clock.now = 0.5
    assert window.delay_s() == 1.05 - 0.5
    clock.now = 1.06
    assert window.delay_s() == 0.0


async def test_a_send_in_flight_holds_its_slot() -> None:
    """While a send runs it counts; the window cannot reopen before it finishes."""
    clock = Clock()
    window = SlidingWindow(1, 1.0, clock)
    entered = asyncio.Event()
    release = asyncio.Event()

    async def slow() -> None:
        async with window.slot():
            entered.set()
            await release.wait()

    task = asyncio.create_task(slow())
    await entered.wait()
    clock.now = 5.0
    assert window.delay_s() > 0
    release.set()
    await task
    assert window.delay_s() == 1.0


def test_fractional_rates_use_an_hour() -> None:
    """0.5 a minute is 30 an hour, not one a minute."""
    (window,) = Limiter.per(per_minute=0.5, per_second=None).windows
    assert (window.limit, window.window_s) == (30, 3600.0)
