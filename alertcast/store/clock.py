"""The one clock the replicas' shared instants are read on: the database's.

Limit slots (:mod:`alertcast.slots`) hold instants every replica compares: a slot's start and
end, the ``since`` of a window, the local midnight of a daily quota. Read on each replica's own
clock, two machines whose clocks differ by 2 s exceed an account's window together (the one
behind stamps its sends in the past, where the one ahead no longer counts them), and the one
ahead ends leases early. So on PostgreSQL every such instant is read on the database's clock,
and the store says what time it is there: :meth:`DbClock.now`. Durations (how long to wait,
a lease) stay this machine's: a length needs no common origin.

How: the store estimates the offset between this machine's clock and the database's. One
sample is ``SELECT extract(epoch from clock_timestamp())`` timed on this side, ``t0`` before
and ``t1`` after; the database read its clock somewhere in between, so ``db - (t0 + t1) / 2``
is the offset to within half the round trip however the delay falls on the way out and back
(:class:`Estimate`). Of a few samples the one with the smallest round trip is kept, and
estimates are measured again every ``refresh_s``; a new one replaces the old when its bound is
smaller, the old one's bound growing with its age by :data:`DRIFT` (two crystals' rates
apart), or when the two cannot both be right (their bounds do not overlap: a clock was stepped
in between, and only the new one has seen it). So a slow round trip never moves the clock by
more than half of it, a good estimate is not traded for a worse one, and a database clock that
drifts or is stepped is followed at the next refresh. The local clock is
:func:`time.monotonic`, which a wall-clock step (NTP stepping this machine, ``date -s``) does
not move between samples.

Why not the other way, the database's ``clock_timestamp()`` inside the take's SQL: the limiter
keeps a copy of every window to answer ``room`` on each claim without a round trip, computes
how long a refused send waits from the slots' ends against *now*, stamps a send's end when it
finishes, and the daily quota finds the local midnight with :mod:`zoneinfo`; all of them need
the database's *now* in the process anyway, and moving each into SQL would be done twice (the
SQLite dialect has no ``clock_timestamp()``) for no better bound: the take's answer is also a
round trip away. With the estimate, replicas' readings of one instant differ by at most the sum
of their bounds (half a LAN round trip each: well under a millisecond here), against the seconds
of skew it removes.

SQLite has one process on one machine: :class:`LocalClock`, the wall clock, nothing to measure.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import structlog

from alertcast.store.driver import Conn, Driver

__all__ = ["DB_NOW", "DRIFT", "DbClock", "Estimate", "LocalClock", "StoreClock", "clock_for"]

log = structlog.get_logger("alertcast.store")

DB_NOW = "SELECT extract(epoch from clock_timestamp())"
SAMPLES = 5  # round trips per measure: the fastest is kept
REFRESH_S = 60.0
DRIFT = 1e-4  # how fast two uncorrected clocks part, at most (100 ppm: 6 ms a minute)

Clock = Callable[[], float]


class StoreClock(Protocol):
    """Now, on the clock every replica of the store reads."""

    def now(self) -> float: ...
    async def start(self) -> None: ...
    async def stop(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Estimate:
    """The database's clock minus the local one, off by at most ``error_s`` when measured at
    local time ``at``."""

    offset: float
    error_s: float
    at: float

    @classmethod
    def of(cls, t0: float, db: float, t1: float) -> Estimate:
        """From one sample: local ``t0`` before the query, the database's ``db``, ``t1`` after."""
        return cls(db - (t0 + t1) / 2, (t1 - t0) / 2, t1)

    def bound(self, local_now: float) -> float:
        """How far off it may be at ``local_now``: its error, grown by the drift since."""
        return self.error_s + DRIFT * max(0.0, local_now - self.at)

    def replaced_by(self, new: Estimate) -> bool:
        """Whether ``new`` is the better estimate: its bound is smaller, or the two cannot both
        be right (a clock was stepped since this one was measured: the newer one is)."""
        bound = self.bound(new.at)
        return new.error_s <= bound or abs(new.offset - self.offset) > bound + new.error_s


class LocalClock:
    """One process on one machine (SQLite): the wall clock."""

    def now(self) -> float:
        return time.time()

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None


class DbClock:
    """The database's clock, read locally through an estimated offset (see the module)."""

    def __init__(
        self,
        driver: Driver,
        *,
        local: Clock = time.monotonic,
        samples: int = SAMPLES,
        refresh_s: float = REFRESH_S,
    ) -> None:
        self._driver, self._local = driver, local
        self.samples, self.refresh_s = samples, refresh_s
        self.estimate = Estimate(time.time() - local(), math.inf, local())  # until measured
        self._refresher: asyncio.Task[None] | None = None

    def now(self) -> float:
        return self._local() + self.estimate.offset

    async def start(self) -> None:
        """Measure (a database that cannot tell its time fails the store's open), then again
        every ``refresh_s`` in the background."""
        await self.measure()
        self._refresher = asyncio.get_running_loop().create_task(self._refresh())

    async def stop(self) -> None:
        if self._refresher is not None:
            self._refresher.cancel()
            await asyncio.gather(self._refresher, return_exceptions=True)

    async def measure(self) -> Estimate:
        """Sample the offset; keep the better of the fastest sample and the current estimate."""
        samples = [await self._driver.read(self._sample) for _ in range(self.samples)]
        best = min(samples, key=lambda e: e.error_s)
        if self.estimate.replaced_by(best):
            self.estimate = best
        return self.estimate

    async def _sample(self, c: Conn) -> Estimate:
        t0 = self._local()
        row = await c.fetchone(DB_NOW)
        t1 = self._local()
        assert row is not None
        return Estimate.of(t0, float(row[0]), t1)

    async def _refresh(self) -> None:
        while True:
            await asyncio.sleep(self.refresh_s)
            try:
                await self.measure()
            except Exception as exc:  # the database is away: the last estimate holds meanwhile
                log.warning("store.clock_unmeasured", error=repr(exc))


def clock_for(driver: Driver) -> StoreClock:
    """The clock the store's replicas share: the database's, or this machine's for SQLite."""
    return LocalClock() if driver.single_process else DbClock(driver)
