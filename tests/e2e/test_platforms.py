"""One earthquake through the daemon to Weibo, WeChat and WeCom fakes; then its correction."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Any

import pytest

from alertcast.testing.fakes import FakeWechat, FakeWecom, FakeWeibo, serve
from tests.conftest import TOKEN, incident, until

AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
async def fakes(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[dict[str, Any]]:
    monkeypatch.setenv("T_WEIBO", "weibo-token")
    monkeypatch.setenv("T_WEIBO_2", "weibo-token-2")
    monkeypatch.setenv("T_WX", "wx-secret")
    monkeypatch.setenv("T_WECOM", "wecom-key")
    made = {
        "weibo": FakeWeibo({"weibo-token": 1001, "weibo-token-2": 1002}),
        "wechat": FakeWechat({"wx-app": "wx-secret"}),
        "wecom": FakeWecom({"wecom-key"}),
    }
    async with AsyncExitStack() as stack:
        urls = {n: await stack.enter_async_context(serve(f)) for n, f in made.items()}
        yield {"fakes": made, "urls": urls}


def _accounts(urls: dict[str, str], **weibo: Any) -> list[dict[str, Any]]:
    return [
        {
            "id": "weibo-city",
            "channel": "weibo",
            "base_url": urls["weibo"],
            "access_token_env": "T_WEIBO",
            "safe_domain_url": "https://alerts.example.gov.cn/",
            **weibo,
        },
        {
            "id": "wechat-city",
            "channel": "wechat_oa",
            "base_url": urls["wechat"],
            "app_id": "wx-app",
            "app_secret_env": "T_WX",
            "mode": "text",
            "format": "text",
            "fallback": ["wecom-duty"],
        },
        {
            "id": "wecom-duty",
            "channel": "wecom_robot",
            "base_url": urls["wecom"],
            "key_env": "T_WECOM",
        },
    ]


async def _paused(d: Any) -> dict[str, Any]:
    """``/v1/channels`` once the first account shows paused (failing after 30 s)."""
    channels: dict[str, Any] = {}

    async def paused() -> bool:
        nonlocal channels
        _, channels = await d.get("/v1/channels")
        return bool(channels["accounts"][0]["paused"])

    await until(paused, what="the account paused")
    return channels


async def test_one_earthquake_reaches_every_platform(start_daemon: Any, fakes: Any) -> None:
    """Each platform gets its format; the status API shows each platform's receipt."""
    d = await start_daemon(hooks=0, accounts=_accounts(fakes["urls"]))
    answer = await (await d.post(incident())).json()
    view = await d.settled(answer["id"])
    assert view["counts"] == {"delivered": 3}, view["deliveries"]
    receipts = {x["account"]: x["remote_id"] for x in view["deliveries"]}
    weibo, wechat = fakes["fakes"]["weibo"], fakes["fakes"]["wechat"]
    assert receipts["weibo-city"] in weibo.statuses
    post = weibo.statuses[receipts["weibo-city"]]
    assert "6.8" in post["text"] and "alerts.example.gov.cn" in post["text"]
    _, channels = await d.get("/v1/channels")
    left = {a["id"]: a["quota_left"] for a in channels["accounts"]}
    assert left["weibo-city"] == {"comment_this_hour": 60, "post_this_hour": 29}
    assert int(receipts["wechat-city"]) in wechat.mass_sent
    wecom_sent = [m for msgs in fakes["fakes"]["wecom"].received.values() for m in msgs]
    assert len(wecom_sent) == 1 and "6.8" in str(wecom_sent[0])


async def test_cancellation_reaches_the_weibo_timeline_and_the_original(
    start_daemon: Any, fakes: Any
) -> None:
    """A cancellation reaches Weibo twice: a new post in the followers' timelines (linking the
    incident's page on the safe domain) and a comment on the original post; each delivery
    records its path."""
    d = await start_daemon(hooks=0, accounts=_accounts(fakes["urls"])[:1])
    answer = await (await d.post(incident())).json()
    view = await d.settled(answer["id"])
    original = view["deliveries"][0]["remote_id"]
    resp = await d.client.post(
        f"/v1/incidents/{answer['id']}/cancel", json={"reason": "误报，已核实无地震"}, headers=AUTH
    )
    cancel = await resp.json()
    done = await d.settled(cancel["id"])
    assert done["counts"] == {"delivered": 2}, done["deliveries"]
    paths = {x["path"]: x for x in done["deliveries"]}
    assert set(paths) == {"timeline", "thread"}
    weibo = fakes["fakes"]["weibo"]
    comments = list(weibo.comments.values())
    assert [c["status"]["idstr"] for c in comments] == [original]
    assert comments[0]["idstr"] == paths["thread"]["remote_id"]
    post = weibo.statuses[paths["timeline"]["remote_id"]]
    assert "误报" in post["text"] and "alerts.example.gov.cn" in post["text"]
    assert original in weibo.statuses  # not deleted: on_cancel does not say so


async def test_release_hall_reposts_on_weibo(start_daemon: Any, fakes: Any) -> None:
    """A district account reposts the city's Weibo post instead of posting a copy."""
    city = _accounts(fakes["urls"])[0]
    district = {
        **city,
        "id": "weibo-district",
        "access_token_env": "T_WEIBO_2",
        "lead": "weibo-city",
    }
    d = await start_daemon(hooks=0, accounts=[city, district])
    answer = await (await d.post(incident())).json()
    view = await d.settled(answer["id"])
    remote = {x["account"]: x["remote_id"] for x in view["deliveries"]}
    repost = fakes["fakes"]["weibo"].statuses[remote["weibo-district"]]
    assert repost["retweeted_status"]["idstr"] == remote["weibo-city"]


async def test_auth_expired_pauses_the_account(start_daemon: Any, fakes: Any) -> None:
    """An expired Weibo token pauses the account: shown unhealthy, no retry storm."""
    d = await start_daemon(hooks=0, accounts=_accounts(fakes["urls"])[:1])
    fakes["fakes"]["weibo"].expired.add("weibo-token")
    answer = await (await d.post(incident())).json()
    channels = await _paused(d)
    (account,) = channels["accounts"]
    assert account["healthy"] is False and "credentials" in account["paused"]
    # The dispatcher pauses the account before it records the attempt: wait for the record.
    view: dict[str, Any] = {}

    async def recorded() -> bool:
        nonlocal view
        _, view = await d.get(f"/v1/incidents/{answer['id']}")
        return bool(view["deliveries"][0]["state"] not in ("pending", "sending"))

    await until(recorded, what="the first attempt recorded")
    (delivery,) = view["deliveries"]
    assert delivery["state"] == "retrying" and delivery["attempts"] == 1
    assert "weibo-token" not in str(view) and "weibo-token" not in str(channels)


async def test_spent_wechat_quota_falls_back_to_wecom(start_daemon: Any, fakes: Any) -> None:
    """The day's one mass send is spent: the status says why and WeCom takes the alert over."""
    accounts = _accounts(fakes["urls"])
    accounts[2] = {**accounts[2], "kinds": ["fire"]}  # WeCom only gets what falls back to it
    now = time.time()
    fakes["fakes"]["wechat"].clock = lambda: now  # one day for both, even close to midnight
    d = await start_daemon(hooks=0, accounts=accounts[1:])
    first = await (await d.post(incident())).json()
    await d.settled(first["id"])
    second = await (await d.post(incident(headline="余震"))).json()
    view = await d.settled(second["id"])
    states = {x["account"]: (x["state"], x["reason"]) for x in view["deliveries"]}
    assert states["wechat-city"][0] == "skipped" and "quota" in states["wechat-city"][1]
    assert states["wecom-duty"] == ("delivered", None)
    assert "delivery.fallback" in [a["action"] for a in view["audit"]]
    wecom = [m for msgs in fakes["fakes"]["wecom"].received.values() for m in msgs]
    assert len(wecom) == 1 and "余震" in str(wecom)


@pytest.mark.slow
async def test_wecom_21st_message_waits_for_the_minute(start_daemon: Any, fakes: Any) -> None:
    """21 alerts to one WeCom robot (20 a minute, 2 kept for corrections): 18 go at once, the
    rest wait for the minute, none is refused (~61 s)."""
    d = await start_daemon(hooks=0, accounts=_accounts(fakes["urls"])[2:])
    ids = [(await (await d.post(incident(headline=f"第{n}条"))).json())["id"] for n in range(21)]
    starts = []
    for incident_id in ids:
        view = await d.settled(incident_id, timeout_s=90)
        (delivery,) = view["deliveries"]
        assert delivery["state"] == "delivered" and delivery["attempts"] == 1
        _, full = await d.get(f"/v1/deliveries/{delivery['id']}")
        starts.append(full["attempt_log"][0]["started_at"])
    from datetime import datetime

    times = sorted(datetime.fromisoformat(s).timestamp() for s in starts)
    assert times[17] - times[0] < 30
    assert times[18] - times[0] >= 59.9  # and every attempt count is 1: the fake refused none


async def test_replaced_token_file_resumes_the_account(
    start_daemon: Any, fakes: Any, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A token read from NAME_FILE: once the file holds a valid token the account resumes."""
    token_file = tmp_path / "weibo.token"
    token_file.write_text("weibo-token")
    monkeypatch.delenv("T_WEIBO", raising=False)
    monkeypatch.setenv("T_WEIBO_FILE", str(token_file))
    d = await start_daemon(hooks=0, accounts=_accounts(fakes["urls"])[:1])
    fakes["fakes"]["weibo"].expired.add("weibo-token")
    answer = await (await d.post(incident())).json()
    channels = await _paused(d)
    assert channels["accounts"][0]["paused"]
    token_file.write_text("weibo-token-2\n")
    view = await d.settled(answer["id"])
    (delivery,) = view["deliveries"]
    assert delivery["state"] == "delivered" and delivery["attempts"] == 2
    _, channels = await d.get("/v1/channels")
    assert channels["accounts"][0]["healthy"] is True
