"""The WeChat fake's quotas, as facts §2.3 gives them, exercised through the adapter: a
subscription account's one mass send a day; a service account's follower receives at most
four mass sends a month (the job is accepted, the fifth reaches nobody who already had four)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime

import aiohttp
import pytest

from alertcast.channels._vendor import SHANGHAI
from alertcast.channels.base import QuotaExhausted
from alertcast.channels.wechat import WechatChannel
from alertcast.testing.fakes import FakeWechat, serve
from tests.channels.conftest import build, outgoing

ENV = {"WX_SECRET": "wx-secret"}
TEXT = {"format": "text", "text": "【地震】泸定县发生6.8级地震，请远离危险建筑。"}


def _clock(day: int, hour: int = 12) -> float:
    return datetime(2026, 12, day, hour, tzinfo=SHANGHAI).timestamp()


@pytest.fixture
def now() -> list[float]:
    return [_clock(1)]


@pytest.fixture
def fake(now: list[float]) -> FakeWechat:
    return FakeWechat(
        {"wx-app": "wx-secret", "wx-svc": "wx-secret"},
        service_apps={"wx-svc"},
        clock=lambda: now[0],
    )


@pytest.fixture
async def base_url(fake: FakeWechat) -> AsyncIterator[str]:
    async with serve(fake) as url:
        yield url


async def _mass(
    session: aiohttp.ClientSession, base_url: str, app: str, key: str, attempt: int = 1
) -> None:
    account = "service" if app == "wx-svc" else "subscription"
    channel = build(
        WechatChannel,
        session,
        ENV,
        id=app,
        base_url=base_url,
        app_id=app,
        app_secret_env="WX_SECRET",
        account_type=account,
        mode="text",
    )
    await channel.start()
    await channel.deliver(outgoing(TEXT, key=key, attempt=attempt))


async def test_a_subscription_account_sends_once_a_day(fake: FakeWechat, base_url: str) -> None:
    async with aiohttp.ClientSession() as session:
        await _mass(session, base_url, "wx-app", "k-1")
        with pytest.raises(QuotaExhausted) as refused:  # a retry asks the platform itself
            await _mass(session, base_url, "wx-app", "k-2", attempt=2)
    assert refused.value.code == "45028"
    assert all(len(got) == 1 for got in fake.mass_received.values())


async def test_a_service_follower_receives_four_mass_sends_a_month(
    fake: FakeWechat, base_url: str, now: list[float]
) -> None:
    async with aiohttp.ClientSession() as session:
        for day in range(1, 5):  # four sends on four days of one month
            now[0] = _clock(day)
            await _mass(session, base_url, "wx-svc", f"svc-{day}")
        now[0] = _clock(5)
        with pytest.raises(QuotaExhausted):  # the adapter counts four a month: no call
            await _mass(session, base_url, "wx-svc", "svc-5")
        assert len(fake.mass_sent) == 4
        # A retry asks the platform whatever the count (it may have been sent): the job is
        # accepted and reaches nobody who already had four.
        await _mass(session, base_url, "wx-svc", "svc-5", attempt=2)
        assert len(fake.mass_sent) == 5  # every job was accepted
        assert {o: len(got) for o, got in fake.mass_received.items()} == dict.fromkeys(
            fake.followers, 4
        )
        now[0] = datetime(2027, 1, 2, 12, tzinfo=SHANGHAI).timestamp()  # a new month
        # (the fake's month; the adapter's is the real one: a retry is not counted against it)
        await _mass(session, base_url, "wx-svc", "svc-jan", attempt=2)
    assert all(len(got) == 5 for got in fake.mass_received.values())
