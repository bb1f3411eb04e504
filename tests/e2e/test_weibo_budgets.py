"""Through the daemon to the Weibo fake: a burst of aftershocks spends the post budget, the
corrections still go out at once (their reserve of it, and the comment budget)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from alertcast.testing.fakes import FakeWeibo, serve
from tests.conftest import TOKEN, incident, until

AUTH = {"Authorization": f"Bearer {TOKEN}"}
SHARE = "/2/statuses/share.json"
AT_ONCE_S = 3.0  # a poll is 0.2 s here; the window, were a correction waiting for it, an hour


@pytest.fixture
async def weibo(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[tuple[FakeWeibo, str]]:
    monkeypatch.setenv("T_WEIBO", "weibo-token")
    fake = FakeWeibo({"weibo-token": 1001})
    async with serve(fake) as url:
        yield fake, url


def aftershock(n: int) -> dict[str, Any]:
    quake = incident()
    quake["occurred_at"] = f"2022-09-05T13:{n:02d}:00+08:00"
    quake["details"] = {**quake["details"], "magnitude": round(3.0 + n / 10, 1)}
    return quake


async def states(d: Any, incident_id: str) -> list[str]:
    _, view = await d.get(f"/v1/incidents/{incident_id}")
    return [x["state"] for x in view["deliveries"]]


async def test_aftershocks_spend_the_post_budget_and_corrections_still_go_at_once(
    start_daemon: Any, weibo: tuple[FakeWeibo, str]
) -> None:
    """30 aftershocks: 27 are posted and 3 wait unclaimed (the last tenth of the 30 posts an
    hour is kept for corrections). Three updates posted as new posts take that reserve at
    once, ahead of the waiting alerts, and spend the post budget; a cancellation, a comment,
    spends the comment budget and goes out at once too. The platform refuses nothing."""
    fake, url = weibo
    account = {
        "id": "weibo-city",
        "channel": "weibo",
        "base_url": url,
        "access_token_env": "T_WEIBO",
        "safe_domain_url": "https://alerts.example.gov.cn/",
        "on_update": "post",
        "on_cancel": "reply",
    }
    d = await start_daemon(hooks=0, accounts=[account])
    ids = [(await (await d.post(aftershock(n))).json())["id"] for n in range(30)]
    await until(lambda: len(fake.calls(SHARE)) >= 27, what="27 aftershocks posted")
    await asyncio.sleep(0.6)  # three polls: the last three stay unclaimed
    waiting = [i for i in ids if await states(d, i) == ["pending"]]
    assert len(fake.calls(SHARE)) == 27 and len(waiting) == 3

    sent = [i for i in ids if i not in waiting]
    for original in sent[:3]:
        t0 = time.monotonic()
        resp = await d.client.post(
            f"/v1/incidents/{original}/update", json={"headline": "更正：震级修订"}, headers=AUTH
        )
        update = await resp.json()
        assert resp.status == 202, update
        view = await d.settled(update["id"])
        assert view["counts"] == {"delivered": 1} and time.monotonic() - t0 < AT_ONCE_S
    assert len(fake.calls(SHARE)) == 30  # the post budget is spent, for corrections too

    t0 = time.monotonic()
    resp = await d.client.post(
        f"/v1/incidents/{sent[3]}/cancel", json={"reason": "误报"}, headers=AUTH
    )
    cancel = await resp.json()
    view = await d.settled(cancel["id"])
    assert view["counts"] == {"delivered": 1} and time.monotonic() - t0 < AT_ONCE_S
    assert len(fake.comments) == 1 and len(fake.calls(SHARE)) == 30
    assert [await states(d, i) for i in waiting] == [["pending"]] * 3  # never tried: no 20016
