"""An account's rate windows counted in the store, so replicas share them and restarts keep them.

The queue stays in the process, as in :class:`~alertcast.ratelimit.Limiter`: one per account,
corrections first, then arrival; a waiter never overtakes a better-ranked one on a window both
need, and alerts leave each window's reserve to corrections. Only the counting moves: letting
a waiter out is a *take* in the store (:class:`~alertcast.slots.Slots`), which inserts its slot
in every window only if each has room for its priority, atomically across replicas. A refused
take says, by the slots it counted, when the first window it needs reopens; the queue waits on
one timer for then (a send in flight elsewhere counts as ending now, the earliest it can: a
lower bound, never a tight poll), and looks again when a send of this process ends.

Every answer of the store is kept in the windows (:meth:`SlidingWindow.adopt`), so ``room`` —
asked on every claim — costs nothing; it asks the store again (in the background) once its copy
is older than ``refresh_s``, so what other replicas sent is seen within about that. A send that
waits longer than ``max_wait_s`` (half the claim's lease by default) gives up with
:class:`WaitedTooLong` rather than send late, when its lease may have run out and another
replica sent it too: the dispatcher gives the claim back at once, its attempt uncounted, and it
is claimed again when the window has room.

Every instant the limiter gives the store or compares with its slots (a take's *now* and its
needs' ``since``, a finish, the windows' copies) is read on the slots' clock
(:meth:`~alertcast.slots.Slots.clock`: on PostgreSQL the database's, so replicas whose clocks
differ still count one window); how long to wait is a duration, kept on the loop's clock.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import uuid
from collections.abc import AsyncIterator, Coroutine, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from typing import Any

import structlog

from alertcast.ratelimit import MIN_WAIT_S, Clock, Limiter, SlidingWindow, Use
from alertcast.slots import Need, SlotRow, Slots, counted

__all__ = ["SharedLimiter", "WaitedTooLong", "reopens_in"]

log = structlog.get_logger("alertcast.ratelimit")

REFRESH_S = 1.0
RETRY_S = 0.05


class WaitedTooLong(Exception):
    """A send waited for its windows past ``max_wait_s``: nothing was sent; its claim is
    given back."""


def reopens_in(held: Iterable[SlotRow], need: Need, window_s: float, now: float) -> float:
    """Seconds until ``need`` (a sliding window of ``window_s``) has room, by the slots held:
    an unfinished slot ends now at the earliest."""
    rows = counted(held, need)
    over = len(rows) - need.cap
    if over < 0:
        return 0.0
    ends = sorted(r.ends_at if r.finished else min(r.ends_at, now) for r in rows)
    return max(ends[over] + window_s - now, MIN_WAIT_S)


@dataclass(eq=False)
class _Ask:
    rank: tuple[int, int]
    priority: int
    windows: Sequence[SlidingWindow]
    granted: asyncio.Future[None]
    slot_id: str


class SharedLimiter(Limiter):
    """One account's windows, counted under ``key`` in ``slots``, on ``clock`` (by default
    the slots' own: the windows given should read it too)."""

    def __init__(
        self,
        windows: Iterable[SlidingWindow],
        by_action: Mapping[str, Sequence[SlidingWindow]] | None = None,
        *,
        key: str,
        slots: Slots,
        lease_s: float,
        clock: Clock | None = None,
        refresh_s: float = REFRESH_S,
        max_wait_s: float | None = None,
    ) -> None:
        super().__init__(windows, by_action, slots.clock if clock is None else clock)
        self.key, self.slots, self.lease_s = key, slots, lease_s
        self.refresh_s = refresh_s
        self.max_wait_s = lease_s / 2 if max_wait_s is None else max_wait_s
        self._asks: list[_Ask] = []
        self._ranks = itertools.count()
        self._pump: asyncio.Task[None] | None = None
        self._refreshing: asyncio.Task[None] | None = None
        self._again = False
        self._seen_at = -math.inf

    @property
    def every_window(self) -> list[SlidingWindow]:
        seen = {id(w): w for w in self.windows}
        seen.update({id(w): w for ws in self.by_action.values() for w in ws})
        return list(seen.values())

    @property
    def waiting(self) -> int:
        return len(self._asks)

    def room(self, priority: int = 0, actions: Iterable[str] = ("post", "repost")) -> int | None:
        """As :meth:`Limiter.room`, from the store's last answer (asked again when stale)."""
        if self.every_window and self._clock() - self._seen_at > self.refresh_s:
            with suppress(RuntimeError):  # no loop running: nothing to refresh with
                asyncio.get_running_loop()
                self._seen_at = self._clock()  # one refresh at a time
                self._refreshing = self._start(self._refresh_quietly())
        return super().room(priority, actions)

    async def refresh(self) -> None:
        """Adopt what the store holds now for every window."""
        now = self._clock()
        needs = [Need(w.name, w.limit, now - w.window_s) for w in self.every_window]
        self._adopt(await self.slots.held_slots(self.key, needs), self.every_window, now)

    async def _refresh_quietly(self) -> None:
        try:
            await self.refresh()
        except Exception as exc:  # the store is away: room stays as last seen, sends fail
            log.warning("ratelimit.refresh_failed", account=self.key, error=repr(exc))

    @asynccontextmanager
    async def slot(self, action: str = "post", priority: int = 0) -> AsyncIterator[Use]:
        windows = self.windows_for(action)
        use = Use()
        if not windows:  # most accounts: nothing to count, no store to ask
            yield use
            return
        slot_id = await self._wait(windows, priority)
        try:
            yield use
        finally:
            if use.used:
                await self._finish(slot_id, windows)
            else:  # nothing went out: the slot is given back, in the store and here
                await self._give_back(slot_id)
                for window in windows:
                    window.forget(slot_id)
                self.wake()

    async def _wait(self, windows: Sequence[SlidingWindow], priority: int) -> str:
        future = asyncio.get_running_loop().create_future()
        ask = _Ask((-priority, next(self._ranks)), priority, windows, future, uuid.uuid4().hex)
        self._asks.append(ask)
        self._asks.sort(key=lambda a: a.rank)
        self.wake()
        try:
            async with asyncio.timeout(self.max_wait_s):
                await asyncio.shield(future)
        except BaseException as exc:
            await self._give_up(ask)
            if isinstance(exc, TimeoutError):
                log.warning("ratelimit.waited_too_long", account=self.key, s=self.max_wait_s)
                raise WaitedTooLong(f"waited {self.max_wait_s:g} s for {self.key}") from exc
            raise
        return ask.slot_id

    async def _give_up(self, ask: _Ask) -> None:
        if ask in self._asks:
            self._asks.remove(ask)
        if not ask.granted.done():
            ask.granted.cancel()  # the pump, mid-take for it, drops what it took
        elif ask.granted.exception() is None:
            await self._give_back(ask.slot_id)
        self.wake()

    async def _give_back(self, slot_id: str) -> None:
        """Forget a slot taken for a send that never went out."""
        try:
            await self.slots.drop_slot(self.key, slot_id)
        except Exception as exc:  # it counts until its lease instead
            log.warning("ratelimit.drop_unrecorded", account=self.key, error=repr(exc))

    async def _finish(self, slot_id: str, windows: Sequence[SlidingWindow]) -> None:
        now = self._clock()
        for window in windows:
            window.ended(slot_id, now)
        try:
            await self.slots.finish_slot(self.key, slot_id, now=now)
        except Exception:  # it counts until its lease instead: never more than the window
            log.warning("ratelimit.finish_unrecorded", account=self.key, exc_info=True)
        self.wake()

    # -- the queue --------------------------------------------------------------------------
    def wake(self) -> None:
        """Look at the queue again (a send ended, a window reopened): one pass at a time."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._pump is not None and not self._pump.done():
            self._again = True
            return
        if self._asks:
            self._pump = self._start(self._serve())

    def _start(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(coro)
        task.add_done_callback(_logged)
        return task

    async def _serve(self) -> None:
        self._again, wait_s = True, math.inf
        while self._again:
            self._again = False
            wait_s = await self._pass()
        if self._asks and math.isfinite(wait_s):
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(max(wait_s, MIN_WAIT_S), self.wake)

    async def _pass(self) -> float:
        """Take a slot for every waiter the store admits, best ranked first; the seconds until
        the first window a refused waiter needs reopens."""
        blocked: set[SlidingWindow] = set()
        wait_s = math.inf
        for ask in list(self._asks):
            if ask.granted.done() or not blocked.isdisjoint(ask.windows):
                continue
            refused = await self._take(ask)
            if refused:
                blocked.update(w for w, _ in refused)
                wait_s = min(wait_s, *(s for _, s in refused))
        return wait_s

    async def _take(self, ask: _Ask) -> list[tuple[SlidingWindow, float]]:
        """One take for ``ask``: granted (``[]``), or the windows that refused it and when
        each reopens."""
        now = self._clock()
        needs = [Need(w.name, w.cap(ask.priority), now - w.window_s) for w in ask.windows]
        try:
            answer = await self.slots.take_slot(
                self.key, ask.slot_id, needs, now=now, lease_s=self.lease_s
            )
        except Exception as exc:  # the store is away: this send fails, its lease brings it back
            self._drop(ask)
            if not ask.granted.done():
                ask.granted.set_exception(exc)
            return []
        self._adopt(answer.held, ask.windows, now)
        if not answer.taken:
            return _refusing(answer.held, zip(ask.windows, needs, strict=True), now)
        self._drop(ask)
        if ask.granted.done():  # given up while the take was on its way
            await self._give_back(ask.slot_id)
        else:
            ask.granted.set_result(None)
        return []

    def _drop(self, ask: _Ask) -> None:
        with suppress(ValueError):
            self._asks.remove(ask)

    def _adopt(self, held: Sequence[SlotRow], windows: Iterable[SlidingWindow], now: float) -> None:
        for window in windows:
            window.adopt((r.id, r.ends_at) for r in held if r.budget == window.name)
        self._seen_at = now


def _refusing(
    held: Sequence[SlotRow], asked: Iterable[tuple[SlidingWindow, Need]], now: float
) -> list[tuple[SlidingWindow, float]]:
    """The windows whose need the held slots fill, and when each reopens (every window, soon,
    if none looks full: the store counted a slot that its answer does not show)."""
    reopens = [(w, reopens_in(held, need, w.window_s, now)) for w, need in asked]
    return [(w, s) for w, s in reopens if s > 0] or [(w, RETRY_S) for w, _ in reopens]


def _logged(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and (exc := task.exception()) is not None:
        log.error("ratelimit.pump_failed", exc_info=exc)
