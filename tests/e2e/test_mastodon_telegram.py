"""An earthquake through the daemon to the Mastodon and Telegram fakes, then its update and its
cancellation, each threaded to the original as the correction plan says (docs/corrections.md)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from alertcast.testing.fakes import FakeMastodon, FakeTelegram, serve
from tests.conftest import TOKEN, incident

AUTH = {"Authorization": f"Bearer {TOKEN}"}
MASTO_TOKEN = "masto-e2e-token"
TG_TOKEN = "777:tg-e2e-token"
CHAT = -100777


@pytest.fixture
async def mastodon(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[tuple[FakeMastodon, str]]:
    monkeypatch.setenv("T_MASTO", MASTO_TOKEN)
    fake = FakeMastodon({MASTO_TOKEN: "7"})
    async with serve(fake) as url:
        yield fake, url


@pytest.fixture
async def telegram(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[tuple[FakeTelegram, str]]:
    monkeypatch.setenv("T_TG", TG_TOKEN)
    fake = FakeTelegram({TG_TOKEN: 777}, chats={CHAT})
    async with serve(fake) as url:
        yield fake, url


async def _lifecycle(d: Any) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """Post the earthquake, its official update, then its cancellation; each view settled."""
    answer = await (await d.post(incident())).json()
    alert = await d.settled(answer["id"])
    resp = await d.client.post(
        f"/v1/incidents/{answer['id']}/update",
        json={"details": {"report": "official", "magnitude": 6.9}},
        headers=AUTH,
    )
    update = await d.settled((await resp.json())["id"])
    resp = await d.client.post(
        f"/v1/incidents/{answer['id']}/cancel", json={"reason": "误报，已核实无地震"}, headers=AUTH
    )
    cancel = await d.settled((await resp.json())["id"])
    return alert, update, cancel


async def test_mastodon_threads_the_update_and_deletes_after_the_cancellation(
    start_daemon: Any, mastodon: tuple[FakeMastodon, str]
) -> None:
    """The update and the cancellation reply to the original status (in_reply_to_id, path
    timeline); with on_cancel = reply_and_delete the original goes once the reply is out."""
    fake, url = mastodon
    account = {
        "id": "masto-city",
        "channel": "mastodon",
        "base_url": url,
        "access_token_env": "T_MASTO",
        "on_cancel": "reply_and_delete",
    }
    d = await start_daemon(hooks=0, accounts=[account])
    alert, update, cancel = await _lifecycle(d)
    (first,) = alert["deliveries"]
    original = first["remote_id"]
    assert first["state"] == "delivered" and original in fake.deleted
    assert "6.8" in fake.deleted[original]["text"]
    (upd,) = update["deliveries"]
    assert (upd["state"], upd["path"]) == ("delivered", "timeline")
    reply = fake.statuses[upd["remote_id"]]
    assert reply["in_reply_to_id"] == original and "6.9" in reply["text"]
    paths = {x["path"]: x for x in cancel["deliveries"]}
    assert set(paths) == {"timeline", "withdraw"}
    assert all(x["state"] == "delivered" for x in paths.values()), cancel["deliveries"]
    correction = fake.statuses[paths["timeline"]["remote_id"]]
    assert correction["in_reply_to_id"] == original and "误报" in correction["text"]
    posts = [r for r in fake.requests if r.method == "POST"]
    assert len(posts) == 3 and MASTO_TOKEN not in str(cancel)


async def test_telegram_replies_to_the_original_for_the_update_and_the_cancellation(
    start_daemon: Any, telegram: tuple[FakeTelegram, str]
) -> None:
    """The update and the cancellation are new messages in the chat quoting the original."""
    fake, url = telegram
    account = {
        "id": "tg-city",
        "channel": "telegram",
        "base_url": url,
        "token_env": "T_TG",
        "chat_id": CHAT,
    }
    d = await start_daemon(hooks=0, accounts=[account])
    alert, update, cancel = await _lifecycle(d)
    (first,) = alert["deliveries"]
    chat, original, _ = first["remote_id"].split(":")
    assert (first["state"], int(chat)) == ("delivered", CHAT)
    assert "6.8" in fake.messages[(CHAT, int(original))]["text"]
    for view, words in ((update, "6.9"), (cancel, "误报")):
        (delivery,) = view["deliveries"]
        assert (delivery["state"], delivery["path"]) == ("delivered", "timeline"), delivery
        sent = fake.messages[(CHAT, int(delivery["remote_id"].split(":")[1]))]
        assert sent["reply_to_message"]["message_id"] == int(original)
        assert words in sent["text"]
    assert len(fake.messages) == 3 and TG_TOKEN not in str(cancel)
