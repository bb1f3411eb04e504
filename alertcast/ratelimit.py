"""Sliding-window limiters: wait for a slot instead of burning a retry on a platform's 429.

A platform's "20 messages a minute" means any 60-second window holds at most 20 sends, so a
token bucket (which would allow a full burst and then a steady refill inside the same minute)
is not enough. A send occupies its slot from the moment it starts and counts, once done, from
the moment it finished: the platform saw it at some instant in between, so the next window never
opens early by the platform's clock, whatever the network latency.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager

__all__ = ["Limiter", "SlidingWindow"]

IN_FLIGHT_POLL_S = 0.05


class SlidingWindow:
    def __init__(self, limit: int, window_s: float, clock: Callable[[], float] = time.monotonic):
        if limit < 1 or window_s <= 0:
            raise ValueError("a window needs limit >= 1 and window_s > 0")
        self.limit = limit
        self.window_s = window_s
        self._clock = clock
        self._sends: list[list[float]] = []  # [finished_at]; math.inf while in flight
        self._lock = asyncio.Lock()

    def delay_s(self) -> float:
        """Seconds until one more send fits the window (0 when it fits now)."""
        now = self._clock()
        self._sends = [s for s in self._sends if s[0] + self.window_s > now]
        if len(self._sends) < self.limit:
            return 0.0
        oldest = min(s[0] for s in self._sends)
        return IN_FLIGHT_POLL_S if math.isinf(oldest) else oldest + self.window_s - now

    def room(self) -> int:
        """Sends this window admits right now without waiting."""
        return 0 if self.delay_s() > 0 else self.limit - len(self._sends)

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Wait for room, hold it while the send runs, then count it from its end."""
        entry = [math.inf]
        async with self._lock:
            while (delay := self.delay_s()) > 0:  # noqa: ASYNC110 - a computed wait, not a poll
                await asyncio.sleep(delay)
            self._sends.append(entry)
        try:
            yield
        finally:
            entry[0] = self._clock()


class Limiter:
    """Several windows at once (e.g. 100 a minute and 5 a second); all must admit a send."""

    def __init__(self, windows: list[SlidingWindow]) -> None:
        self.windows = windows

    @classmethod
    def per(cls, *, per_minute: float | None, per_second: float | None) -> Limiter:
        windows = []
        if per_minute and per_minute >= 1:
            windows.append(SlidingWindow(int(per_minute), 60.0))
        elif per_minute:  # e.g. Weibo's 30 posts an hour = 0.5 a minute
            windows.append(SlidingWindow(max(1, round(per_minute * 60)), 3600.0))
        if per_second:
            windows.append(SlidingWindow(max(1, int(per_second)), 1.0))
        return cls(windows)

    def room(self) -> int | None:
        """Sends every window admits right now (``None``: no limit at all)."""
        return min((w.room() for w in self.windows), default=None)

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        if not self.windows:  # most accounts: no platform limit to wait for
            yield
            return
        async with AsyncExitStack() as stack:
            for window in self.windows:
                await stack.enter_async_context(window.slot())
            yield
