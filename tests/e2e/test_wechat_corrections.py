"""A WeChat subscription account's corrections, through the daemon against the WeChat fake,
which enforces one mass send a day (45028), article deletion by msg_id and template messages
to followers only.

The original spends the day's mass send. A cancellation withdraws the mass-sent article
(``mass/delete`` needs no quota), reaches the followers through the paired service account's
template messages, and its own mass send does not go out because the pair reached them; with
no pair, the correction waits for the next mass send instead of being skipped. An automatic
report waits for the official one before it spends the day's send.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Any

import pytest

from alertcast.testing.fakes import FakeWechat, serve
from tests.conftest import TOKEN, incident, until

AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
async def wechat(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[tuple[FakeWechat, str]]:
    monkeypatch.setenv("T_WX", "wx-secret")
    monkeypatch.setenv("T_SVC", "svc-secret")
    fake = FakeWechat({"wx-app": "wx-secret", "wx-svc": "svc-secret"})
    async with AsyncExitStack() as stack:
        yield fake, await stack.enter_async_context(serve(fake))


def _subscription(url: str, **options: Any) -> dict[str, Any]:
    return {
        "id": "wechat-sub",
        "channel": "wechat_oa",
        "base_url": url,
        "app_id": "wx-app",
        "app_secret_env": "T_WX",
        "mode": "article",
        "thumb_media_id": "thumb-1",
        **options,
    }


def _service(url: str) -> dict[str, Any]:
    return {
        "id": "wechat-svc",
        "channel": "wechat_oa",
        "base_url": url,
        "app_id": "wx-svc",
        "app_secret_env": "T_SVC",
        "account_type": "service",
        "mode": "template",
        "template_id": "TPL-ALERT",
        "template_audience": "followers",
        "format": "wechat_template",
        "kinds": ["police"],  # routing never chooses it for a quake: it only carries corrections
    }


async def _cancel(d: Any, incident_id: str) -> dict[str, Any]:
    resp = await d.client.post(
        f"/v1/incidents/{incident_id}/cancel", json={"reason": "误报，已核实无地震"}, headers=AUTH
    )
    assert resp.status == 202, await resp.text()
    return dict(await resp.json())


async def test_a_cancellation_reaches_followers_whose_mass_send_is_spent(
    start_daemon: Any, wechat: tuple[FakeWechat, str]
) -> None:
    fake, url = wechat
    sub = _subscription(url, corrections_via=["wechat-svc"])
    d = await start_daemon(hooks=0, accounts=[sub, _service(url)])
    first = await (await d.post(incident())).json()
    view = await d.settled(first["id"])
    assert view["counts"] == {"delivered": 1}, view["deliveries"]
    (msg_id,) = fake.mass_sent
    assert fake.mass_sent[msg_id]["msgtype"] == "mpnews"  # an article: it can be withdrawn
    _, channels = await d.get("/v1/channels")
    left = {a["id"]: a["quota_left"] for a in channels["accounts"]}
    assert left == {"wechat-sub": {"mass_sends_today": 0}, "wechat-svc": {}}

    cancel = await _cancel(d, first["id"])
    done = await d.settled(cancel["id"])
    paths = {(x["account"], x["path"]): x for x in done["deliveries"]}
    assert set(paths) == {
        ("wechat-svc", "paired"),
        ("wechat-sub", "withdraw"),
        ("wechat-sub", "timeline"),
    }, done["deliveries"]
    assert paths[("wechat-svc", "paired")]["state"] == "delivered"
    assert paths[("wechat-sub", "withdraw")]["state"] == "delivered"
    assert msg_id not in fake.mass_sent  # mass/delete: the article is withdrawn
    own = paths[("wechat-sub", "timeline")]
    assert own["state"] == "skipped" and "wechat-svc (paired)" in own["reason"]
    reached = sorted(m["touser"] for m in fake.template_sent)
    assert reached == sorted(fake.followers)  # every follower, once
    assert len(fake.mass_sent) == 0  # no second mass send was even tried today


async def test_with_no_other_path_the_correction_waits_for_the_next_mass_send(
    start_daemon: Any, wechat: tuple[FakeWechat, str]
) -> None:
    fake, url = wechat
    d = await start_daemon(hooks=0, accounts=[_subscription(url, mode="text", format="text")])
    first = await (await d.post(incident())).json()
    await d.settled(first["id"])
    cancel = await _cancel(d, first["id"])

    async def waiting() -> bool:
        _, view = await d.get(f"/v1/incidents/{cancel['id']}")
        return any(x["state"] == "retrying" for x in view["deliveries"])

    await until(waiting, what="the correction waiting for the quota")
    _, view = await d.get(f"/v1/incidents/{cancel['id']}")
    (own,) = view["deliveries"]
    assert own["path"] == "timeline" and own["state"] == "retrying"
    assert "next send" in own["reason"] and own["next_attempt_at"] is not None
    assert not view["settled"]  # never skipped while the next mass send remains
    assert len(fake.mass_sent) == 1


async def test_an_automatic_report_waits_for_the_official_one(
    start_daemon: Any, wechat: tuple[FakeWechat, str]
) -> None:
    """The day's one mass send is spent on the official report when it comes in time."""
    fake, url = wechat
    d = await start_daemon(hooks=0, accounts=[_subscription(url, official_wait_s=30)])
    eq = incident()
    auto = incident(details={**eq["details"], "report": "automatic", "magnitude": 5.9})
    first = await (await d.post(auto)).json()
    (waiting,) = first["deliveries"]
    await asyncio.sleep(0.5)
    _, view = await d.get(f"/v1/incidents/{first['id']}")
    (pending,) = view["deliveries"]
    assert pending["state"] == "pending" and "official" in pending["reason"], pending
    assert fake.mass_sent == {}
    resp = await d.client.post(
        f"/v1/incidents/{first['id']}/update",
        json={"details": {"report": "official", "magnitude": 5.8}},
        headers=AUTH,
    )
    update = await resp.json()
    assert update["superseded"] == [waiting["id"]]
    await d.settled(update["id"])
    (sent,) = fake.mass_sent.values()
    article = fake.drafts[sent["mpnews"]["media_id"]][0]
    assert "5.8" in article["title"] + article["content"]


async def test_an_automatic_report_goes_alone_when_the_official_one_is_late(
    start_daemon: Any, wechat: tuple[FakeWechat, str]
) -> None:
    fake, url = wechat
    d = await start_daemon(hooks=0, accounts=[_subscription(url, official_wait_s=1)])
    eq = incident()
    auto = incident(details={**eq["details"], "report": "automatic", "magnitude": 5.9})
    first = await (await d.post(auto)).json()
    view = await d.settled(first["id"], timeout_s=15)
    assert view["counts"] == {"delivered": 1}
    assert len(fake.mass_sent) == 1


async def test_a_cancellation_on_a_spent_account_withdraws_now_and_waits_for_the_rest(
    start_daemon: Any, wechat: tuple[FakeWechat, str]
) -> None:
    """Alert, update, cancel on a subscription account with no pair: the update's mass send
    waits for the quota (and pauses the account); the cancellation still withdraws the article
    at once (mass/delete spends no quota), replaces the waiting update, and its own mass send
    waits for the quota's reset with the reason: nothing sits unclaimed without one."""
    fake, url = wechat
    d = await start_daemon(hooks=0, accounts=[_subscription(url)])
    first = await (await d.post(incident())).json()
    await d.settled(first["id"])
    (msg_id,) = fake.mass_sent
    resp = await d.client.post(
        f"/v1/incidents/{first['id']}/update", json={"details": {"depth_km": 12}}, headers=AUTH
    )
    update = await resp.json()

    async def waiting(incident_id: str) -> dict[str, Any]:
        _, view = await d.get(f"/v1/incidents/{incident_id}")
        return dict(view)

    await until(
        lambda: _state(waiting(update["id"]), "timeline", "retrying"), what="the update waiting"
    )
    cancel = await _cancel(d, first["id"])
    await until(
        lambda: _state(waiting(cancel["id"]), "timeline", "retrying"), what="the cancel waiting"
    )
    view = await waiting(cancel["id"])
    by_path = {x["path"]: x for x in view["deliveries"]}
    assert by_path["withdraw"]["state"] == "delivered" and msg_id not in fake.mass_sent
    assert "next send" in by_path["timeline"]["reason"]
    updated = (await waiting(update["id"]))["deliveries"]
    assert [x["state"] for x in updated] == ["skipped"]  # the cancellation replaced it
    assert "cancelled" in updated[0]["reason"]


async def _state(view: Any, path: str, state: str) -> bool:
    found = await view
    return any(x["path"] == path and x["state"] == state for x in found["deliveries"])
