"""A platform's send quota per local day (and month), counted where every replica sees it.

WeChat's mass sends: a subscription account has 1 a day, a service account's followers each get
4 a month (facts §2.3; the adapter also holds it to ``mass_per_day``). Each send is a slot
(:mod:`alertcast.slots`) under the platform app's key, taken atomically before the call — two
replicas never both spend the last one — and kept once sent, dropped when the platform answered
that it did not send; the store keeps them across restarts.

Which day the platform counts is not confirmed (facts §2.3 says "per day"): the calendar day
in Asia/Shanghai, or any 24 hours. Counting the calendar day never refuses a send the platform
would take (a rolling day is never more generous), so that is what is counted here; when the
platform refuses anyway (45028), the quota is spent until the earliest moment either reading
gives it back — 24 hours after the last send when that is still ahead, else the next midnight
— and the next send after that asks again. The month's 4 go to a follower only, and a fifth
fails silently for them: it is refused here while either reading (the calendar month, the last
30 days) counts 4.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import structlog

from alertcast.channels._vendor import SHANGHAI, next_midnight
from alertcast.channels.base import QuotaExhausted
from alertcast.slots import MemorySlots, Need, SlotRow, Slots, counted

__all__ = ["DailyQuota"]

log = structlog.get_logger("alertcast.channels.quota")

BUDGET = "mass"
DAY = timedelta(days=1)
MONTH = timedelta(days=30)
LEASE_S = 300.0  # a send in flight that long is taken as sent
REFRESH_S = 5.0  # ``left`` asks the store again once its copy is older than this


class DailyQuota:
    """Sends of ``key`` per local day in ``tz`` (and per month), counted in ``slots``; a spent
    budget raises :class:`QuotaExhausted` until it returns."""

    def __init__(
        self,
        per_day: int,
        *,
        per_month: int | None = None,
        what: str = "send",
        tz: ZoneInfo = SHANGHAI,
        now: Callable[[], datetime] | None = None,
        slots: Slots | None = None,
        key: str = "quota",
    ) -> None:
        self.per_day, self.per_month = per_day, per_month
        self.what, self.tz, self.key = what, tz, key
        self.slots: Slots = MemorySlots() if slots is None else slots
        # the slots' clock (the store's): every replica's day ends at the same instant
        self._now = now or (lambda: datetime.fromtimestamp(self.slots.clock(), tz))
        self._held: tuple[SlotRow, ...] = ()
        self._seen_at: datetime | None = None
        self._spent_until: datetime | None = None  # the platform said so (45028)
        self._refreshing: asyncio.Task[None] | None = None

    # -- the day and the month --------------------------------------------------------------
    def _readings(self, now: datetime) -> list[tuple[Need, datetime]]:
        """Each need (the day; the calendar month and the last 30 days) with when it has room
        again once full."""
        local = now.astimezone(self.tz)
        midnight = datetime.combine(local.date(), datetime.min.time(), tzinfo=self.tz)
        readings = [
            (Need(BUDGET, self.per_day, midnight.timestamp()), midnight + DAY),
            (Need(BUDGET, sys.maxsize, (now - DAY).timestamp()), now),  # the last 24 h: seen
        ]
        if self.per_month is not None:
            first = midnight.replace(day=1)
            month = Need(BUDGET, self.per_month, first.timestamp())
            last_30 = Need(BUDGET, self.per_month, (now - MONTH).timestamp())
            readings += [
                (month, (first + timedelta(days=32)).replace(day=1)),
                (last_30, self._ages_out(last_30, now)),
            ]
        return readings

    def _ages_out(self, need: Need, now: datetime) -> datetime:
        """When the send that fills ``need`` (a rolling 30 days) leaves it."""
        ends = sorted(r.ends_at for r in counted(self._held, need))
        if len(ends) < need.cap:
            return now
        return datetime.fromtimestamp(ends[len(ends) - need.cap], self.tz) + MONTH

    def _needs(self, now: datetime, *, check: bool = True) -> list[Need]:
        """What a take asks for (any number, when not ``check``ed: it only records the send)."""
        needs = [need for need, _ in self._readings(now)]
        return needs if check else [Need(n.budget, sys.maxsize, n.since) for n in needs]

    def _refusal(self, now: datetime) -> QuotaExhausted:
        full = [at for n, at in self._readings(now) if len(counted(self._held, n)) >= n.cap]
        per = f"{self.per_day}/day" + (f", {self.per_month}/month" if self.per_month else "")
        return QuotaExhausted(
            f"{self.what} quota of {per} spent", until=max(full, default=next_midnight(now))
        )

    # -- taking -----------------------------------------------------------------------------
    async def take(self, slot_id: str, *, check: bool = True) -> None:
        """Count the send ``slot_id`` before it goes; refused (:class:`QuotaExhausted`) when
        the quota is spent, unless not ``check``ed (a retry that may already have been sent
        asks the platform instead). Taking the same ``slot_id`` again is a no-op."""
        now = self._now()
        if check and (said := self._platform_refused(now)) is not None:
            raise said
        answer = await self.slots.take_slot(
            self.key, slot_id, self._needs(now, check=check), now=now.timestamp(), lease_s=LEASE_S
        )
        self._held, self._seen_at = answer.held, now
        if not answer.taken:
            raise self._refusal(now)
        # The platform may have refused another send while the store answered: its slot, given
        # back, is the one just taken. Look again, and give it back too.
        if check and (said := self._platform_refused(self._now())) is not None:
            await self.not_sent(slot_id)
            raise said

    def _platform_refused(self, now: datetime) -> QuotaExhausted | None:
        if self._spent_until is None or now >= self._spent_until:
            return None
        return QuotaExhausted(
            f"{self.what} quota spent (the platform said so)", until=self._spent_until
        )

    async def sent(self, slot_id: str) -> None:
        """The platform took the send: it counts from now (if the store cannot say so, the
        slot still counts, in flight, today: never a send the platform has and we do not)."""
        try:
            await self.slots.finish_slot(self.key, slot_id, now=self._now().timestamp())
        except Exception as exc:
            log.warning("quota.finish_unrecorded", key=self.key, error=repr(exc))
        await self._refresh_quietly()

    async def not_sent(self, slot_id: str) -> None:
        """The platform answered without sending: the send gives its slot back (kept when
        the store cannot drop it: the quota looks spent rather than free)."""
        try:
            await self.slots.drop_slot(self.key, slot_id)
        except Exception as exc:
            log.warning("quota.drop_unrecorded", key=self.key, error=repr(exc))
        await self._refresh_quietly()

    def spent(self) -> datetime:
        """The platform says the budget is gone, whatever was counted: until the earliest
        moment either reading of its day gives it back (returned)."""
        now = self._now()
        sends = [r.ends_at for r in self._held if r.finished]
        rolling = datetime.fromtimestamp(max(sends), self.tz) + DAY if sends else now
        self._spent_until = rolling if rolling > now else next_midnight(now, self.tz)
        return self._spent_until

    @property
    def spent_until(self) -> datetime | None:
        return self._spent_until

    # -- what is left -----------------------------------------------------------------------
    async def refresh(self) -> None:
        """Read what the store counts now (at start-up: the sends before a restart)."""
        now = self._now()
        self._held = await self.slots.held_slots(self.key, self._needs(now))
        self._seen_at = now

    @property
    def left(self) -> int:
        """Sends left today, as counted (0 while the platform's refusal holds); asks the store
        again, in the background, when its copy is old."""
        now = self._now()
        self._refresh_if_old(now)
        if self._spent_until is not None and now < self._spent_until:
            return 0
        return max(0, min(n.cap - len(counted(self._held, n)) for n in self._needs(now)))

    def _refresh_if_old(self, now: datetime) -> None:
        if self._seen_at is not None and (now - self._seen_at).total_seconds() < REFRESH_S:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self._seen_at = now  # one refresh at a time
        self._refreshing = loop.create_task(self._refresh_quietly())

    async def _refresh_quietly(self) -> None:
        try:
            await self.refresh()
        except Exception as exc:  # the store is away: what is left stays as last seen
            log.warning("quota.refresh_failed", key=self.key, error=repr(exc))
