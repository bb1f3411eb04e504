"""The mass-send quota: counted in shared slots per Shanghai day and month, both readings held."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from alertcast.channels._quota import DailyQuota
from alertcast.channels._vendor import SHANGHAI
from alertcast.channels.base import QuotaExhausted
from alertcast.slots import MemorySlots


class Clock:
    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at


def at(day: int, hour: int, month: int = 3) -> datetime:
    return datetime(2026, month, day, hour, tzinfo=SHANGHAI)


def subscription(slots: MemorySlots, clock: Clock) -> DailyQuota:
    return DailyQuota(1, what="mass-send", now=clock, slots=slots, key="wechat_oa:wx1")


def service(slots: MemorySlots, clock: Clock) -> DailyQuota:
    return DailyQuota(100, per_month=4, what="mass-send", now=clock, slots=slots, key="wx2")


async def sent(quota: DailyQuota, key: str) -> None:
    await quota.take(key)
    await quota.sent(key)


async def test_two_replicas_spend_one_daily_send_once() -> None:
    """Two replicas' quotas on one store: the first takes the day's send, the second is refused."""
    slots, clock = MemorySlots(), Clock(at(2, 9))
    first, second = subscription(slots, clock), subscription(slots, clock)
    await first.take("inc-1:wx")
    with pytest.raises(QuotaExhausted) as refused:
        await second.take("inc-2:wx")
    assert refused.value.until == at(3, 0)


async def test_a_restart_keeps_the_days_send_until_midnight_in_shanghai() -> None:
    """A quota opened on the same store after a restart reads 0 left, and 1 after midnight."""
    slots, clock = MemorySlots(), Clock(at(2, 23))
    await sent(subscription(slots, clock), "inc-1:wx")
    restarted = subscription(slots, clock)
    await restarted.refresh()
    assert restarted.left == 0
    with pytest.raises(QuotaExhausted):
        await restarted.take("inc-2:wx")
    clock.at = at(3, 0) + timedelta(seconds=1)
    await restarted.refresh()
    assert restarted.left == 1
    await restarted.take("inc-2:wx")


async def test_a_send_the_platform_refused_gives_its_slot_back() -> None:
    """not_sent (the platform answered with an error) frees the day's send for the next alert."""
    slots, clock = MemorySlots(), Clock(at(2, 9))
    quota = subscription(slots, clock)
    await quota.take("inc-1:wx")
    await quota.not_sent("inc-1:wx")
    await quota.take("inc-2:wx")


async def test_a_retry_is_recorded_without_being_refused() -> None:
    """A retry (unchecked) of a send that may have gone out is counted, never refused."""
    slots, clock = MemorySlots(), Clock(at(2, 9))
    quota = subscription(slots, clock)
    await sent(quota, "inc-1:wx")
    await quota.take("inc-2:wx", check=False)
    await quota.take("inc-1:wx")  # the same send again: already taken
    assert quota.left == 0


@pytest.mark.parametrize(
    ("last_send", "refused_at", "until"),
    [
        (None, at(2, 10), at(3, 0)),  # nothing of ours: someone else sent today
        (at(1, 14), at(2, 10), at(2, 14)),  # a rolling day: 24 h after our last send
        (at(1, 8), at(2, 10), at(3, 0)),  # the rolling day is past: the calendar's midnight
    ],
)
async def test_the_platforms_refusal_holds_until_either_reading_gives_the_send_back(
    last_send: datetime | None, refused_at: datetime, until: datetime
) -> None:
    """45028 while the calendar day had room: spent until the earliest reading lets it go."""
    slots, clock = MemorySlots(), Clock(refused_at)
    if last_send is not None:
        clock.at = last_send
        await sent(subscription(slots, clock), "inc-0:wx")
        clock.at = refused_at
    quota = subscription(slots, clock)
    await quota.take("inc-1:wx")  # the calendar day has room
    await quota.not_sent("inc-1:wx")
    assert quota.spent() == until
    with pytest.raises(QuotaExhausted) as refused:
        await quota.take("inc-2:wx")
    assert refused.value.until == until and quota.left == 0


async def test_a_service_account_has_four_a_calendar_month() -> None:
    """Four sends in March; the fifth waits for April the first."""
    slots, clock = MemorySlots(), Clock(at(1, 9))
    quota = service(slots, clock)
    for day in (1, 2, 10, 20):
        clock.at = at(day, 9)
        await sent(quota, f"inc-{day}:wx")
    clock.at = at(25, 9)
    with pytest.raises(QuotaExhausted) as refused:
        await quota.take("inc-25:wx")
    assert refused.value.until == at(1, 0, month=4)


async def test_a_service_account_has_four_in_any_30_days() -> None:
    """Four sends at the end of March: the first of April is refused by the 30-day reading."""
    slots, clock = MemorySlots(), Clock(at(28, 9))
    quota = service(slots, clock)
    for day in (28, 29, 30, 31):
        clock.at = at(day, 9)
        await sent(quota, f"inc-{day}:wx")
    clock.at = at(1, 9, month=4)
    with pytest.raises(QuotaExhausted) as refused:
        await quota.take("inc-apr:wx")
    assert refused.value.until == at(28, 9) + timedelta(days=30)
