"""A WeChat account whose quota runs out on the platform's answer, with two sends close
together: once the first is told the quota is spent (45028), the second does not go out.
Through a running daemon (the dispatcher gives a send's slot back once its outcome is decided,
before its record: the account must be paused by then), and against the WeChat fake for the
quota's own take (the second send's take under way while the first is refused)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from alertcast.channels.base import Outgoing, QuotaExhausted
from alertcast.channels.wechat import WechatChannel
from alertcast.config import AccountConfig
from alertcast.secrets import Secrets
from alertcast.slots import Answer, MemorySlots, Need
from alertcast.testing.fakes import FakeWechat, serve
from tests.conftest import incident
from tests.store.test_contract import store_url

__all__ = ["store_url"]  # the engine fixture (SQLite, and PostgreSQL when reachable)

SENDALL = "/cgi-bin/message/mass/sendall"
SETTLE_S = 1.2
ENV = {"T_WX": "wx-secret"}


class TimedWechat(FakeWechat):
    """The WeChat fake, noting when each mass send arrived and when it was answered."""

    def __init__(self, **kw: Any) -> None:
        super().__init__({"wx-app": "wx-secret"}, **kw)
        self.mass_calls: list[tuple[float, float]] = []

    async def _sendall(self, request: web.Request) -> web.Response:
        arrived = time.monotonic()
        try:
            return await super()._sendall(request)
        finally:
            self.mass_calls.append((arrived, time.monotonic()))


@pytest.fixture
async def wechat(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[tuple[TimedWechat, str]]:
    """A platform whose day's mass sends are already spent (by another tool, say), which
    alertcast's own count does not know."""
    monkeypatch.setenv("T_WX", "wx-secret")
    fake = TimedWechat(mass_per_day=0, service_apps={"wx-app"}, service_mass_per_day=0)
    async with serve(fake) as url:
        yield fake, url


def _account(url: str, **keys: Any) -> dict[str, Any]:
    return {
        "id": "wechat-city",
        "channel": "wechat_oa",
        "base_url": url,
        "app_id": "wx-app",
        "app_secret_env": "T_WX",
        "mode": "text",
        "format": "text",
        **keys,
    }


async def test_a_send_queued_behind_the_refused_one_never_reaches_the_platform(
    start_daemon: Any, wechat: tuple[TimedWechat, str], store_url: str
) -> None:
    """Concurrency 1: the second alert waits for the first send's dispatch slot, which is
    given back as soon as the first's outcome (45028) is decided, before its record: the
    account is paused by then, so the second is not sent; neither alert is lost."""
    fake, url = wechat
    service = _account(url, account_type="service", mass_per_day=100, concurrency=1)
    d = await start_daemon(hooks=0, accounts=[service], store={"url": store_url})
    posted = await asyncio.gather(*(d.post(incident(headline=f"余震{i}")) for i in range(2)))
    assert [r.status for r in posted] == [202, 202]
    deadline = time.monotonic() + 20
    while not fake.mass_calls:
        assert time.monotonic() < deadline, "no mass send reached the platform"
        await asyncio.sleep(0.01)
    await asyncio.sleep(SETTLE_S)
    assert len(fake.mass_calls) == 1 and fake.mass_sent == {}, fake.mass_calls
    _, channels = await d.get("/v1/channels")
    (row,) = channels["accounts"]
    assert str(row["paused"]).startswith("quota exhausted: wechat 45028"), row
    for r in posted:
        _, view = await d.get(f"/v1/incidents/{(await r.json())['id']}")
        (one,) = view["deliveries"]
        assert one["state"] in ("pending", "skipped"), one  # waiting for the quota, or
        assert one["state"] == "pending" or one["reason"], one  # skipped saying why


class GatedSlots(MemorySlots):
    """The store's quota slots, where the take of one send waits for a gate: it has passed
    every check before it, and its slot is counted only once the gate opens."""

    def __init__(self, gated: str) -> None:
        super().__init__()
        self.gated, self.gate, self.waiting = gated, asyncio.Event(), asyncio.Event()

    async def take_slot(
        self, key: str, slot_id: str, needs: Sequence[Need], *, now: float, lease_s: float
    ) -> Answer:
        if slot_id == self.gated:
            self.waiting.set()
            await self.gate.wait()
        return await super().take_slot(key, slot_id, needs, now=now, lease_s=lease_s)


async def test_a_send_whose_quota_take_straddles_the_refusal_does_not_go_out(
    wechat: tuple[TimedWechat, str],
) -> None:
    """A subscription account (1 a day, none used as alertcast counts): the second send's
    take of the day's slot is under way when the first is refused 45028 and gives the slot
    back; the second must not then call the platform: QuotaExhausted, one mass call in all.
    (DailyQuota.take looked at the platform's refusal only before its awaited store take.)"""
    fake, url = wechat
    slots = GatedSlots(gated="k-2")
    account = AccountConfig(**_account(url, id="wx-sub"))
    async with aiohttp.ClientSession() as session:
        options = WechatChannel.Options.model_validate(account.options)
        channel = WechatChannel(account, options, session, Secrets(ENV), slots=slots)
        await channel.start()
        second = asyncio.create_task(channel.deliver(_outgoing("k-2")))
        await asyncio.wait_for(slots.waiting.wait(), 5)  # past its checks, its take under way
        with pytest.raises(QuotaExhausted) as first:
            await channel.deliver(_outgoing("k-1"))
        assert first.value.code == "45028"
        slots.gate.set()
        with pytest.raises(QuotaExhausted):
            await second
    assert len(fake.mass_calls) == 1, fake.mass_calls


def _outgoing(key: str) -> Outgoing:
    return Outgoing(
        delivery_id=f"d-{key}",
        incident_id="inc-1",
        idempotency_key=key,
        payload={"format": "text", "text": "【地震】泸定县发生6.8级地震，请远离危险建筑。"},
        action="post",
        target_remote_id=None,
        attempt=1,
    )
