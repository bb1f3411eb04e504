"""A WeChat template alert to every subscriber, through the running daemon and its store.

The platform fails halfway through the list; the dispatcher records the attempt with the
adapter's cursor and the retry sends only to those not yet alerted. The fake ignores
``client_msg_id`` (facts §2.5: UNCONFIRMED), so only the stored cursor prevents repeats.
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import pytest

from alertcast.testing.fakes import FakeWechat, serve
from tests.conftest import incident

FOLLOWERS = [f"o-{n:03d}" for n in range(60)]


@pytest.fixture
async def wechat(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[tuple[FakeWechat, str]]:
    monkeypatch.setenv("T_WX", "wx-secret")
    fake = FakeWechat({"wx-app": "wx-secret"}, followers=FOLLOWERS, template_dedupe=False)
    fake.refused.add(FOLLOWERS[7])
    async with serve(fake) as url:
        yield fake, url


def _account(url: str) -> dict[str, Any]:
    return {
        "id": "wechat-service",
        "channel": "wechat_oa",
        "base_url": url,
        "app_id": "wx-app",
        "app_secret_env": "T_WX",
        "account_type": "service",
        "mode": "template",
        "format": "wechat_template",
        "template_id": "TPL-ALERT",
        "template_to": FOLLOWERS,
        "template_concurrency": 4,
    }


async def test_retry_after_a_failure_midway_alerts_nobody_twice(
    start_daemon: Any, wechat: tuple[FakeWechat, str]
) -> None:
    fake, url = wechat
    fake.fail_next(-1, path="/cgi-bin/message/template/send", after=30)
    d = await start_daemon(hooks=0, accounts=[_account(url)])
    answer = await (await d.post(incident())).json()
    view = await d.settled(answer["id"])
    (delivery,) = view["deliveries"]
    assert delivery["state"] == "delivered" and delivery["attempts"] == 2, delivery
    alerted = Counter(str(b["touser"]) for b in fake.template_sent)
    assert alerted == Counter(o for o in FOLLOWERS if o != FOLLOWERS[7])
    assert delivery["progress"] == {
        "total": 60,
        "sent": 59,
        "refused": 1,
        "refusals": {FOLLOWERS[7]: 43101},
    }
    _, full = await d.get(f"/v1/deliveries/{delivery['id']}")
    assert [a["outcome"] for a in full["attempt_log"]] == ["retrying", "delivered"]
    with sqlite3.connect(d.db) as conn:
        (stored,) = conn.execute("SELECT progress FROM deliveries").fetchone()
    assert len(stored) < 400  # a cursor, not a copy of the list


async def test_spent_mass_send_falls_back_to_a_template_to_every_follower(
    start_daemon: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The subscription account's one mass send of the day is spent; the route's fallback, a
    service account's template message, reaches every follower, paged through user/get."""
    import time

    monkeypatch.setenv("T_WX", "wx-secret")
    monkeypatch.setenv("T_WX_SERVICE", "wx-service-secret")
    now = time.time()
    fake = FakeWechat(
        {"wx-app": "wx-secret", "wx-service": "wx-service-secret"},
        followers=FOLLOWERS,
        clock=lambda: now,  # one day, even close to midnight
    )
    fake.page_size = 25
    async with serve(fake) as url:
        subscription = {
            "id": "wechat-city",
            "channel": "wechat_oa",
            "base_url": url,
            "app_id": "wx-app",
            "app_secret_env": "T_WX",
            "mode": "text",
            "format": "text",
            "fallback": ["wechat-service"],
        }
        service = {
            **_account(url),
            "app_id": "wx-service",
            "app_secret_env": "T_WX_SERVICE",
            "kinds": ["fire"],  # only what falls back to it
            "template_audience": "followers",
        }
        del service["template_to"]
        d = await start_daemon(hooks=0, accounts=[subscription, service])
        first = await (await d.post(incident())).json()
        await d.settled(first["id"])
        second = await (await d.post(incident(headline="余震"))).json()
        view = await d.settled(second["id"])
    states = {x["account"]: x for x in view["deliveries"]}
    assert states["wechat-city"]["state"] == "skipped"
    assert "quota" in states["wechat-city"]["reason"]
    fallback = states["wechat-service"]
    assert fallback["state"] == "delivered", fallback
    assert fallback["progress"]["sent"] == len(FOLLOWERS) == fallback["progress"]["total"]
    assert Counter(str(b["touser"]) for b in fake.template_sent) == Counter(FOLLOWERS)
    assert len(fake.calls("/cgi-bin/user/get")) == 4  # 60 followers, 25 a page, then empty
