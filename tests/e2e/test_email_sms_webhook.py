"""An earthquake through the daemon to an SMTP server, the SMS gateway fake and a Standard
Webhooks receiver; the update and the cancellation follow as the correction plan says
(docs/corrections.md): threaded mails, new texts to the same numbers."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from standardwebhooks.webhooks import Webhook
from structlog.testing import capture_logs

from alertcast.testing.fakes import FakeSms, serve
from tests.channels.smtp_server import smtp_server
from tests.conftest import TOKEN, incident

AUTH = {"Authorization": f"Bearer {TOKEN}"}
WHSEC = "whsec_" + base64.b64encode(b"e2e-standard-webhooks-key-0001").decode()
NUMBERS = [f"+86139{i:08d}" for i in range(150)]


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


def _one(view: dict[str, Any]) -> dict[str, Any]:
    (delivery,) = view["deliveries"]
    assert delivery["state"] == "delivered", delivery
    return delivery


async def test_email_threads_the_update_and_the_cancellation(start_daemon: Any) -> None:
    """Three mails to the duty desk: text and HTML; the update and the cancellation name the
    alert's Message-ID in In-Reply-To (path timeline)."""
    with smtp_server() as box:
        account = {
            "id": "mail-duty",
            "channel": "email",
            "host": box.host,
            "port": box.port,
            "security": "none",
            "mail_from": "alerts@office.example.org",
            "to": ["duty@office.example.org"],
        }
        d = await start_daemon(hooks=0, accounts=[account])
        alert, update, cancel = await _lifecycle(d)
    original = _one(alert)["remote_id"]
    mails = [m for _, _, m in box.messages]
    assert len(mails) == 3 and mails[0]["Message-ID"] == original
    assert "6.8" in mails[0]["Subject"] and mails[0].get_body(("html",)) is not None
    for view, mail in ((update, mails[1]), (cancel, mails[2])):
        assert _one(view)["path"] == "timeline"
        assert mail["In-Reply-To"] == mail["References"] == original
    assert "6.9" in mails[1]["Subject"]


async def test_sms_texts_every_number_again_for_the_cancellation(
    start_daemon: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """150 numbers: the alert in two batches, the cancellation as a new text to each; the
    preview shows the segments; no number is logged whole."""
    monkeypatch.setenv("T_AK", "LTAI-e2e")
    monkeypatch.setenv("T_SK", "sms-e2e-secret-90ab")
    sms = FakeSms(
        {"LTAI-e2e": "sms-e2e-secret-90ab"}, signs={"成都应急"}, templates={"SMS_9": "${content}"}
    )
    async with serve(sms) as url:
        account = {
            "id": "sms-city",
            "channel": "sms",
            "base_url": url,
            "access_key_id_env": "T_AK",
            "access_key_secret_env": "T_SK",
            "sign_name": "成都应急",
            "template_code": "SMS_9",
            "recipients": NUMBERS,
        }
        d = await start_daemon(hooks=0, accounts=[account])
        resp = await d.client.post("/v1/render", json=incident(), headers=AUTH)
        (preview,) = (await resp.json())["accounts"]
        with capture_logs() as logs:
            alert, _update, cancel = await _lifecycle(d)
    assert preview["payload"]["segments"] >= 1 and preview["payload"]["lengths"]["text"]
    assert _one(alert)["state"] == _one(cancel)["state"] == "delivered"
    assert _one(cancel)["path"] == "timeline"
    assert len(sms.batches) == 6  # alert, update, cancellation: 100 + 50 each
    texts = sms.inbox[NUMBERS[0][3:]]
    assert len(texts) == 3 and all(t.startswith("【成都应急】") for t in texts)
    assert "误报" in texts[2]
    shown = json.dumps(logs, ensure_ascii=False, default=str)
    assert not any(n[3:] in shown for n in NUMBERS) and "sms.batch" in shown


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[list[tuple[bytes, dict[str, str]]], str]]:
    """A receiver that checks the Standard Webhooks signature with the package's verifier and
    the bearer token, answering 401 when either is wrong."""
    seen: list[tuple[bytes, dict[str, str]]] = []

    async def handle(request: web.Request) -> web.Response:
        body, headers = await request.read(), dict(request.headers)
        seen.append((body, headers))
        Webhook(WHSEC).verify(body, headers)
        if headers.get("Authorization") != "Bearer hook-bearer-55aa" or "X-Office" not in headers:
            return web.json_response({"error": "unauthorised"}, status=401)
        return web.json_response({"id": f"r-{len(seen)}"})

    app = web.Application()
    app.router.add_post("/in", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    yield seen, f"http://{host}:{port}/in"
    await runner.cleanup()


async def test_a_standard_webhooks_receiver_takes_the_lifecycle(
    start_daemon: Any,
    monkeypatch: pytest.MonkeyPatch,
    receiver: tuple[list[tuple[bytes, dict[str, str]]], str],
) -> None:
    """signature = "standard", bearer auth by env, an extra header: all three deliveries are
    verified and delivered, each with its own webhook-id."""
    seen, url = receiver
    monkeypatch.setenv("T_WHSEC", WHSEC)
    monkeypatch.setenv("T_BEARER", "hook-bearer-55aa")
    account = {
        "id": "hook-std",
        "channel": "webhook",
        "url": url,
        "secret_env": "T_WHSEC",
        "signature": "standard",
        "auth": "bearer",
        "auth_env": "T_BEARER",
        "headers": {"X-Office": "chengdu"},
        "timeout_s": 5,
    }
    d = await start_daemon(hooks=0, accounts=[account])
    views = await _lifecycle(d)
    assert all(_one(v)["state"] == "delivered" for v in views)
    assert len({h["webhook-id"] for _, h in seen}) == 3
