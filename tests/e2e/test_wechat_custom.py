"""A correction by customer-service messages reaches exactly the followers inside the window.

Through the running daemon: followers write to (or click in) the account through its callback
endpoint, signed as WeChat signs it; then a ``custom`` delivery of a correction, stored the way
the door stores a fallback's, is sent by the dispatcher to the followers the store has inside a
window with sends left — once each — and what it sent and what was refused is in its progress.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from alertcast.keys import DISPATCHER, STORE
from alertcast.store.base import NewDelivery, Write
from alertcast.testing.fakes import FakeWechat, callback_query, event_message, serve, text_message
from tests.conftest import incident

CALLBACK_TOKEN = "wx-callback-token-51c"
CORRECTION = "【更正】泸定县地震预警为误报，请勿惊慌。"


def _account(url: str) -> dict[str, Any]:
    return {
        "id": "wechat-city",
        "channel": "wechat_oa",
        "base_url": url,
        "app_id": "wx-app",
        "app_secret_env": "T_WX",
        "mode": "text",
        "format": "text",
        "callback_token_env": "T_WX_CALLBACK",
    }


async def _says(client: TestClient[Any, Any], body: bytes, openid: str) -> str:
    """POST ``body`` to the account's callback as WeChat does; the passive reply."""
    resp = await client.post(
        "/wechat/wechat-city",
        data=body,
        params=callback_query(CALLBACK_TOKEN, openid=openid),
        headers={"Content-Type": "text/xml"},
    )
    assert resp.status == 200
    return str(await resp.text())


async def _correct(d: Any, incident_id: str, original_id: str) -> dict[str, Any]:
    """Store a correction's ``custom`` delivery of ``original_id`` as the door stores a
    fallback's (attached to the incident), ring the dispatcher; the incident once settled."""
    custom = NewDelivery(
        id="dlv-window",
        account="wechat-city",
        channel="wechat_oa",
        payload={"format": "text", "text": CORRECTION},
        idempotency_key="dlv-window",
        action="custom",
        target_delivery_id=original_id,
        path="window",
    )
    await d.client.app[STORE].apply(Write(attach_to=incident_id, deliveries=[custom]))
    d.client.app[DISPATCHER].wake()
    return dict(await d.settled(incident_id))


async def test_a_custom_correction_reaches_the_followers_inside_the_window_once_each(
    start_daemon: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Alice wrote and Bob clicked through the callback; Dan wrote but WeChat's window for him
    has closed (45015, refused); Carol followed and left; Erin wrote 49 h ago; Fay's five
    messages are spent: only Alice and Bob get the correction, once each."""
    monkeypatch.setenv("T_WX", "wx-secret")
    monkeypatch.setenv("T_WX_CALLBACK", CALLBACK_TOKEN)
    now = time.time()
    fake = FakeWechat({"wx-app": "wx-secret"}, followers=())
    async with serve(fake) as url:
        # The 2022 quake is still in force for the keyword reply (it would be past its 24 h).
        d = await start_daemon(hooks=0, accounts=[_account(url)], expiry={"earthquake_h": None})
        store = d.client.app[STORE]
        alert = await (await d.post(incident())).json()
        (original,) = (await d.settled(alert["id"]))["deliveries"]
        assert original["state"] == "delivered" and len(fake.mass_sent) == 1

        fake.user_wrote("o-alice")
        reply = await _says(
            d.client, text_message("地震", msg_id="1", from_user="o-alice"), "o-alice"
        )
        assert "泸定县" in reply
        fake.user_clicked("o-bob")
        await _says(d.client, event_message("CLICK", from_user="o-bob", event_key="M1"), "o-bob")
        fake.user_wrote("o-dan", at=now - 49 * 3600)  # WeChat's clock says his window closed
        await _says(d.client, text_message("你好", msg_id="2", from_user="o-dan"), "o-dan")
        fake.user_clicked("o-carol")
        await _says(d.client, event_message("subscribe", from_user="o-carol"), "o-carol")
        fake.unfollow("o-carol")
        await _says(d.client, event_message("unsubscribe", from_user="o-carol"), "o-carol")
        fake.user_wrote("o-erin", at=now - 49 * 3600)
        await store.note_interaction("wechat-city", "o-erin", "message", now - 49 * 3600)
        fake.user_wrote("o-fay")
        await _says(d.client, text_message("最新", msg_id="3", from_user="o-fay"), "o-fay")
        for _ in range(5):  # five earlier corrections reached her
            await store.note_custom_sent("wechat-city", ["o-fay"], at=time.time())

        view = await _correct(d, alert["id"], original["id"])

    got = {o: fake.received(o) for o in ("o-alice", "o-bob", "o-carol", "o-dan", "o-erin", "o-fay")}
    assert got == {
        "o-alice": [CORRECTION],
        "o-bob": [CORRECTION],
        "o-carol": [],
        "o-dan": [],
        "o-erin": [],
        "o-fay": [],
    }
    states = {x["id"]: x for x in view["deliveries"]}
    sent = states["dlv-window"]
    assert sent["state"] == "delivered", sent
    assert sent["progress"] == {"total": 3, "sent": 2, "refused": 1, "refusals": {"o-dan": 45015}}
    left = {w.openid: w.left for w in await store.window("wechat-city", now=time.time(), limit=10)}
    assert left == {"o-alice": 4, "o-bob": 2, "o-dan": 4}  # what was sent (or refused), noted


async def test_a_custom_correction_with_nobody_in_the_window_fails_with_the_reason(
    start_daemon: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No follower wrote: the delivery is failed, saying why, and nobody is messaged."""
    monkeypatch.setenv("T_WX", "wx-secret")
    monkeypatch.setenv("T_WX_CALLBACK", CALLBACK_TOKEN)
    fake = FakeWechat({"wx-app": "wx-secret"})
    async with serve(fake) as url:
        d = await start_daemon(hooks=0, accounts=[_account(url)])
        alert = await (await d.post(incident())).json()
        (original,) = (await d.settled(alert["id"]))["deliveries"]
        view = await _correct(d, alert["id"], original["id"])
    sent = {x["id"]: x for x in view["deliveries"]}["dlv-window"]
    assert sent["state"] == "failed" and "nobody is inside the 48-hour window" in sent["last_error"]
    assert fake.custom_sent == []


async def test_a_retry_after_a_failure_midway_messages_and_counts_everyone_once(
    start_daemon: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """WeChat is busy after 5 of 12 messages: the retry sends to the other 7; each follower
    got one message and the store counts one send each (4 of 5 left), none twice, none lost."""
    monkeypatch.setenv("T_WX", "wx-secret")
    monkeypatch.setenv("T_WX_CALLBACK", CALLBACK_TOKEN)
    followers = [f"o-{n:02d}" for n in range(12)]
    fake = FakeWechat({"wx-app": "wx-secret"}, followers=())
    async with serve(fake) as url:
        d = await start_daemon(hooks=0, accounts=[_account(url)])
        store = d.client.app[STORE]
        alert = await (await d.post(incident())).json()
        (original,) = (await d.settled(alert["id"]))["deliveries"]
        for n, openid in enumerate(followers):
            fake.user_wrote(openid)
            body = text_message("预警", msg_id=f"m-{n}", from_user=openid)
            await _says(d.client, body, openid)
        fake.fail_next(-1, path="/cgi-bin/message/custom/send", after=5)
        view = await _correct(d, alert["id"], original["id"])
    sent = {x["id"]: x for x in view["deliveries"]}["dlv-window"]
    assert sent["state"] == "delivered" and sent["attempts"] == 2, sent
    assert {o: fake.received(o) for o in followers} == {o: [CORRECTION] for o in followers}
    left = {w.openid: w.left for w in await store.window("wechat-city", now=time.time(), limit=20)}
    assert left == dict.fromkeys(followers, 4)
