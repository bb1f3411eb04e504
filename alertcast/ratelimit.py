"""Sliding-window limiters: wait for a slot instead of burning a retry on a platform's 429.

A platform's "20 messages a minute" means any 60-second window holds at most 20 sends, so a
token bucket (which would allow a full burst and then a steady refill inside the same minute)
is not enough. A send occupies its slot from the moment it starts and counts, once done, from
the moment it finished: the platform saw it at some instant in between, so the next window never
opens early by the platform's clock, whatever the network latency.

An account has windows every action spends (``per_minute``, ``per_second``, a platform's total)
and, where the platform has them, budgets per action (Weibo: posts and reposts spend 30 an
hour, comments 60 an hour). A send waits in one queue per account, corrections first
(``priority`` > 0: updates 5, cancellations 10; alerts 0), then in arrival order; a waiter never
overtakes a better-ranked one on a window both need. Alerts may not spend a window's reserve,
the last :func:`reserve_of` sends of it, kept for corrections: a cancellation never waits for a
window that a burst of alerts emptied. The queue is looked at again when a send ends or when
the first window a waiter needs reopens (one timer), never by polling.

This process's memory holds the windows here; :class:`alertcast.shared_limiter.SharedLimiter`
counts the same windows in the store, so replicas share them and a restart keeps them.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import time
from collections.abc import AsyncIterator, Callable, Collection, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

__all__ = ["CORRECTION", "Limiter", "SlidingWindow", "Use", "reserve_of"]

CORRECTION = 1
"""The lowest priority that is a correction's (updates are 5, cancellations 10, alerts 0)."""
RESERVE_SHARE = 0.1
RESERVE_FROM = 10  # a window of fewer sends keeps no reserve: alerts need all of it
MIN_WAIT_S = 0.001  # a timer never fires before its window reopens by our clock

Clock = Callable[[], float]


def reserve_of(limit: int) -> int:
    """Sends of a window kept for corrections: 10 % of it rounded up, for windows of 10 or
    more (30 posts an hour keep 3, 60 comments 6, 20 a minute 2); none below 10."""
    return math.ceil(limit * RESERVE_SHARE) if limit >= RESERVE_FROM else 0


class SlidingWindow:
    """At most ``limit`` sends in any ``window_s``; alerts at most ``limit - reserve``."""

    def __init__(
        self,
        limit: int,
        window_s: float,
        clock: Clock = time.monotonic,
        *,
        reserve: int | None = None,
        name: str = "",
    ) -> None:
        if limit < 1 or window_s <= 0:
            raise ValueError("a window needs limit >= 1 and window_s > 0")
        self.name = name or f"{limit}/{window_s:g}s"  # the budget a shared store counts it as
        self.limit = limit
        self.window_s = window_s
        self.reserve = reserve_of(limit) if reserve is None else min(reserve, limit - 1)
        self._clock = clock
        self._sends: list[list[float]] = []  # [finished_at]; math.inf while in flight
        self._ids: dict[str, list[float]] = {}  # a shared store's slots, by id

    def cap(self, priority: int = 0) -> int:
        """Sends of the window a send of ``priority`` may find taken and still go."""
        return self.limit if priority >= CORRECTION else self.limit - self.reserve

    def _held(self) -> int:
        now = self._clock()
        self._sends = [s for s in self._sends if s[0] + self.window_s > now]
        return len(self._sends)

    def room(self, priority: int = 0) -> int:
        """Sends of ``priority`` this window admits right now without waiting."""
        return max(0, self.cap(priority) - self._held())

    def delay_s(self, priority: int = 0) -> float:
        """Seconds until one more send of ``priority`` fits (0: now; ``math.inf``: once a send
        in flight has finished, which the limiter hears of)."""
        over = self._held() - self.cap(priority)
        if over < 0:
            return 0.0
        ends = sorted(s[0] for s in self._sends)
        return ends[over] + self.window_s - self._clock()

    def hold(self) -> list[float]:
        """Count one send from now, in flight until its entry is given its end."""
        entry = [math.inf]
        self._sends.append(entry)
        return entry

    def drop(self, entry: list[float]) -> None:
        """Forget a held send that never went out."""
        self._sends = [s for s in self._sends if s is not entry]

    def forget(self, slot_id: str) -> None:
        """Forget a shared slot of this process that never went out."""
        if (entry := self._ids.pop(slot_id, None)) is not None:
            self.drop(entry)

    def adopt(self, ends: Iterable[tuple[str, float]]) -> None:
        """Count exactly the shared store's slots ``(id, ends_at)`` (its last answer)."""
        self._ids = {slot_id: [end] for slot_id, end in ends}
        self._sends = list(self._ids.values())

    def ended(self, slot_id: str, now: float) -> None:
        """A shared slot of this process finished ``now``."""
        if (entry := self._ids.get(slot_id)) is not None:
            entry[0] = now


@dataclass
class Use:
    """What a slot was used for: a send (counted from its end), unless :meth:`unused` says
    none went out (the sender stopped once it had the slot): then it counts for nothing."""

    used: bool = True

    def unused(self) -> None:
        self.used = False


@dataclass(eq=False)
class _Waiter:
    rank: tuple[int, int]
    priority: int
    windows: Sequence[SlidingWindow]
    granted: asyncio.Future[None]
    entries: list[list[float]] = field(default_factory=list)

    def take(self) -> None:
        self.entries = [w.hold() for w in self.windows]
        if not self.granted.done():
            self.granted.set_result(None)

    def give_back(self) -> None:
        for window, entry in zip(self.windows, self.entries, strict=True):
            window.drop(entry)
        self.entries = []


class Limiter:
    """One account's windows: ``windows`` every action spends, ``by_action`` an action's own
    (several actions may share one window object: one budget)."""

    def __init__(
        self,
        windows: Iterable[SlidingWindow] = (),
        by_action: Mapping[str, Sequence[SlidingWindow]] | None = None,
        clock: Clock = time.monotonic,
    ) -> None:
        self.windows = list(windows)
        self.by_action = {a: tuple(ws) for a, ws in (by_action or {}).items()}
        self._clock = clock
        self._queue: list[_Waiter] = []
        self._arrivals = itertools.count()
        self._timer: asyncio.TimerHandle | None = None

    @classmethod
    def per(
        cls,
        *,
        per_minute: float | None,
        per_second: float | None,
        budgets: Iterable[tuple[float, Collection[str]]] = (),
        clock: Clock = time.monotonic,
    ) -> Limiter:
        """Windows for an account's rates, and one per budget ``(per_hour, actions)`` (no
        actions: a total every action spends)."""
        windows = []
        if per_minute and per_minute >= 1:
            windows.append(SlidingWindow(int(per_minute), 60.0, clock, name="minute"))
        elif per_minute:  # e.g. 30 an hour = 0.5 a minute
            limit = max(1, round(per_minute * 60))
            windows.append(SlidingWindow(limit, 3600.0, clock, name="minute"))
        if per_second:
            windows.append(SlidingWindow(max(1, int(per_second)), 1.0, clock, name="second"))
        by_action: dict[str, list[SlidingWindow]] = {}
        for per_hour, actions in budgets:
            name = "hour:" + (",".join(sorted(actions)) or "*")
            window = SlidingWindow(max(1, round(per_hour)), 3600.0, clock, name=name)
            if not actions:
                windows.append(window)
            for action in actions:
                by_action.setdefault(action, []).append(window)
        return cls(windows, by_action, clock)

    def windows_for(self, action: str) -> tuple[SlidingWindow, ...]:
        return (*self.windows, *self.by_action.get(action, ()))

    def room(self, priority: int = 0, actions: Iterable[str] = ("post", "repost")) -> int | None:
        """Sends of ``priority`` that every window of each of ``actions`` admits right now
        (``None``: no window limits them)."""
        windows = {w for action in actions for w in self.windows_for(action)}
        return min((w.room(priority) for w in windows), default=None)

    @property
    def waiting(self) -> int:
        """Sends queued for a window."""
        return len(self._queue)

    @asynccontextmanager
    async def slot(self, action: str = "post", priority: int = 0) -> AsyncIterator[Use]:
        """Wait for room in every window ``action`` spends, hold it while the send runs, then
        count it from its end (not at all if the :class:`Use` yielded says it was unused)."""
        windows = self.windows_for(action)
        use = Use()
        if not windows:  # most accounts: no platform limit to wait for
            yield use
            return
        entries = await self._acquire(windows, priority)
        try:
            yield use
        finally:
            now = self._clock()
            for window, entry in zip(windows, entries, strict=True):
                if use.used:
                    entry[0] = now
                else:
                    window.drop(entry)
            self.wake()

    async def _acquire(self, windows: Sequence[SlidingWindow], priority: int) -> list[list[float]]:
        future = asyncio.get_running_loop().create_future()
        waiter = _Waiter((-priority, next(self._arrivals)), priority, windows, future)
        self._queue.append(waiter)
        self._queue.sort(key=lambda w: w.rank)
        self.wake()
        try:
            await future
        except asyncio.CancelledError:
            if waiter in self._queue:
                self._queue.remove(waiter)
            waiter.give_back()
            self.wake()
            raise
        return waiter.entries

    def wake(self) -> None:
        """Let out every waiter whose windows admit it now, best ranked first, and set the
        timer for the first window a waiter still needs to reopen (the timer calls this)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        blocked: set[SlidingWindow] = set()
        wait_s = math.inf
        for waiter in list(self._queue):
            delays = {w: w.delay_s(waiter.priority) for w in waiter.windows}
            refusing = [w for w, delay in delays.items() if delay > 0]
            if refusing:
                blocked.update(refusing)
                wait_s = min(wait_s, *(delays[w] for w in refusing))
            elif blocked.isdisjoint(waiter.windows):
                self._queue.remove(waiter)
                waiter.take()
        if self._queue and math.isfinite(wait_s):
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(max(wait_s, MIN_WAIT_S), self.wake)
