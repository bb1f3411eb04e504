"""A daily send budget that resets at local midnight (WeChat's mass sends: Asia/Shanghai)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from zoneinfo import ZoneInfo

from alertcast.channels._vendor import SHANGHAI, next_midnight
from alertcast.channels.base import QuotaExhausted

__all__ = ["DailyQuota"]


class DailyQuota:
    """Successful sends today in ``tz``; a spent budget raises QuotaExhausted until midnight."""

    def __init__(
        self,
        per_day: int,
        *,
        what: str = "send",
        tz: ZoneInfo = SHANGHAI,
        now: Callable[[], datetime] | None = None,
    ) -> None:
        self.per_day = per_day
        self.what = what
        self.tz = tz
        self._now = now or (lambda: datetime.now(tz))
        self._day: date | None = None
        self._used = 0

    def check(self) -> None:
        """Raise :class:`QuotaExhausted` (until the next local midnight) if today's is spent."""
        if self._today_used() >= self.per_day:
            raise QuotaExhausted(
                f"{self.what} quota of {self.per_day}/day spent",
                until=next_midnight(self._now(), self.tz),
            )

    @property
    def left(self) -> int:
        """Sends left today, as counted here (the platform's 45028 zeroes it)."""
        return max(0, self.per_day - self._today_used())

    def used(self) -> None:
        self._used = self._today_used() + 1

    def spent(self) -> None:
        """The platform says today's budget is gone, whatever we counted."""
        self._today_used()
        self._used = self.per_day

    def _today_used(self) -> int:
        today = self._now().astimezone(self.tz).date()
        if today != self._day:
            self._day, self._used = today, 0
        return self._used
