"""Account pauses survive a restart; a spent account's alerts go to its fallback at once; no
alert waits past its kind's max_delay_s. Through the daemon, against the WeChat, WeCom and
Weibo fakes, on every engine."""

from __future__ import annotations

import asyncio
import hashlib
import sqlite3
import time
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import pytest

from alertcast.store import open_store
from alertcast.store.base import AccountState
from alertcast.testing.fakes import FakeWechat, FakeWecom, FakeWeibo, serve
from tests.conftest import TOKEN, incident, until
from tests.store.test_contract import store_url

__all__ = ["store_url"]  # the engine fixture (SQLite, and PostgreSQL when reachable)

SENDALL = "/cgi-bin/message/mass/sendall"
SHARE = "/2/statuses/share.json"
SETTLE_S = 1.0  # several claim loops (poll_interval_s 0.2): time to send what would be sent
DISPATCH = {"backoff_initial_s": 0.05, "backoff_max_s": 0.2, "max_attempts": 5}


@pytest.fixture
async def fakes(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[dict[str, Any]]:
    monkeypatch.setenv("T_WX", "wx-secret")
    monkeypatch.setenv("T_WECOM", "wecom-key")
    monkeypatch.setenv("T_WEIBO", "weibo-token")
    now = time.time()
    made: dict[str, Any] = {
        "wechat": FakeWechat({"wx-app": "wx-secret"}, clock=lambda: now),  # one day, all test
        "wecom": FakeWecom({"wecom-key"}),
        "weibo": FakeWeibo({"weibo-token": 1001, "weibo-token-2": 1001}),
    }
    async with serve(made["wechat"]) as wx, serve(made["wecom"]) as wc, serve(made["weibo"]) as wb:
        yield {**made, "urls": {"wechat": wx, "wecom": wc, "weibo": wb}}


def _wechat(fakes: dict[str, Any], **keys: Any) -> dict[str, Any]:
    return {
        "id": "wechat-city",
        "channel": "wechat_oa",
        "base_url": fakes["urls"]["wechat"],
        "app_id": "wx-app",
        "app_secret_env": "T_WX",
        "mode": "text",
        "format": "text",
        **keys,
    }


def _wecom(fakes: dict[str, Any]) -> dict[str, Any]:
    """A duty robot that gets nothing routed to it: only what falls back to it."""
    return {
        "id": "wecom-duty",
        "channel": "wecom_robot",
        "base_url": fakes["urls"]["wecom"],
        "key_env": "T_WECOM",
        "kinds": ["fire"],
    }


def _weibo(fakes: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": "weibo-city",
        "channel": "weibo",
        "base_url": fakes["urls"]["weibo"],
        "access_token_env": "T_WEIBO",
        "safe_domain_url": "https://alerts.example.gov.cn/",
    }


async def _account(d: Any, account_id: str) -> dict[str, Any]:
    _, channels = await d.get("/v1/channels")
    return next(a for a in channels["accounts"] if a["id"] == account_id)


async def _deliveries(d: Any, incident_id: str) -> dict[str, dict[str, Any]]:
    _, view = await d.get(f"/v1/incidents/{incident_id}")
    return {x["account"]: x for x in view["deliveries"]}


async def _post(d: Any, body: dict[str, Any]) -> str:
    resp = await d.post(body)
    assert resp.status == 202, await resp.text()
    return str((await resp.json())["id"])


async def _follow_up(d: Any, incident_id: str, what: str, body: dict[str, Any]) -> str:
    resp = await d.client.post(
        f"/v1/incidents/{incident_id}/{what}",
        json=body,
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    assert resp.status == 202, await resp.text()
    return str((await resp.json())["id"])


async def _restart(d: Any, start_daemon: Any, **kw: Any) -> Any:
    """Stop the daemon (its resources close in order) and start another on the same store."""
    await d.client.close()
    return await start_daemon(hooks=0, **kw)


async def test_a_spent_quota_survives_a_restart(
    start_daemon: Any, fakes: dict[str, Any], store_url: str
) -> None:
    """WeChat said 45028; after a restart the account is still paused with the same until,
    and nothing goes to WeChat for it meanwhile."""
    config = {"accounts": [_wechat(fakes)], "store": {"url": store_url}}
    fakes["wechat"].fail_next(45028, path=SENDALL)
    d = await start_daemon(hooks=0, **config)
    await d.settled(await _post(d, incident()))
    before = await _account(d, "wechat-city")
    assert before["paused"].startswith("quota exhausted: wechat 45028"), before
    assert before["paused_until"] > time.time()
    d = await _restart(d, start_daemon, **config)
    after = await _account(d, "wechat-city")
    assert (after["paused"], after["paused_until"]) == (before["paused"], before["paused_until"])
    assert after["healthy"] is False
    second = await _post(d, incident(headline="余震"))
    await asyncio.sleep(SETTLE_S)
    assert (await _deliveries(d, second))["wechat-city"]["state"] == "pending"
    assert fakes["wechat"].mass_sent == {}  # the platform never got the second alert
    assert len(fakes["wechat"].calls(SENDALL)) == 1  # only the one that was refused


async def test_a_restored_pause_lifts_at_its_until(
    start_daemon: Any, fakes: dict[str, Any], store_url: str
) -> None:
    """A stored quota pause holds the account after a start until its time, then it sends."""
    until_at = time.time() + 1.5
    store = open_store(store_url)
    await store.open()
    await store.put_account_state(
        AccountState(
            "wechat-city",
            paused_for="quota",
            paused_reason="quota exhausted: wechat 45028: has no masssend quota",
            paused_until=until_at,
            updated_at=time.time(),
        )
    )
    await store.close()
    d = await start_daemon(hooks=0, accounts=[_wechat(fakes)], store={"url": store_url})
    assert (await _account(d, "wechat-city"))["paused_until"] == until_at
    first = await _post(d, incident())
    view = await d.settled(first, timeout_s=30)
    (delivery,) = view["deliveries"]
    assert delivery["state"] == "delivered"
    assert datetime.fromisoformat(delivery["delivered_at"]).timestamp() >= until_at - 0.01
    assert (await _account(d, "wechat-city"))["paused"] is None


async def test_rejected_credentials_stay_paused_over_a_restart_until_replaced(
    start_daemon: Any,
    fakes: dict[str, Any],
    store_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A token Weibo rejected keeps the account paused after a restart (no new call); a
    daemon started with a new token sends at once. The store holds no token nor its digest."""
    config = {"accounts": [_weibo(fakes)], "store": {"url": store_url}}
    fakes["weibo"].expired.add("weibo-token")
    d = await start_daemon(hooks=0, **config)
    first = await _post(d, incident())
    await until(lambda: bool(fakes["weibo"].calls(SHARE)), what="the first try")
    await until(
        lambda: _paused_in_store(store_url, "credentials"), what="the pause written through"
    )
    d = await _restart(d, start_daemon, **config)
    assert (await _account(d, "weibo-city"))["paused"].startswith("credentials rejected")
    await asyncio.sleep(SETTLE_S)
    assert len(fakes["weibo"].calls(SHARE)) == 1  # not tried again with the rejected token
    states = await _states(store_url)
    fingerprint = hashlib.sha256(b"weibo-token\0").hexdigest()
    assert "weibo-token" not in str(states) and fingerprint not in str(states)
    monkeypatch.setenv("T_WEIBO", "weibo-token-2")
    d = await _restart(d, start_daemon, **config)
    view = await d.settled(first)
    assert view["deliveries"][0]["state"] == "delivered"
    assert (await _account(d, "weibo-city"))["paused"] is None


async def test_an_operators_resume_outlives_a_restart(
    start_daemon: Any, fakes: dict[str, Any], store_url: str
) -> None:
    """Resumed through the API: the store hears of it, and a restart does not pause it again."""
    config = {"accounts": [_wechat(fakes)], "store": {"url": store_url}}
    fakes["wechat"].fail_next(45028, path=SENDALL)
    d = await start_daemon(hooks=0, **config)
    await d.settled(await _post(d, incident()))
    await until(lambda: _paused_in_store(store_url, "quota"), what="the pause written through")
    resp = await d.client.post(
        "/v1/channels/wechat-city/resume", headers={"Authorization": f"Bearer {TOKEN}"}
    )
    assert resp.status == 200 and (await resp.json())["paused"] is None

    async def resumed_in_store() -> bool:
        return not await _paused_in_store(store_url, "quota")

    await until(resumed_in_store, what="the resume written through")
    d = await _restart(d, start_daemon, **config)
    assert (await _account(d, "wechat-city"))["paused"] is None
    view = await d.settled(await _post(d, incident(description="余震")))
    assert view["deliveries"][0]["state"] == "delivered"


async def _states(store_url: str) -> dict[str, AccountState]:
    """The stored states, read beside the daemon (SQLite: as a plain reader of its file)."""
    if store_url.startswith("sqlite:///"):
        with sqlite3.connect(store_url.removeprefix("sqlite:///")) as conn:
            conn.row_factory = sqlite3.Row
            rows = conn.execute("SELECT * FROM account_state").fetchall()
        return {r["account"]: AccountState(**dict(r)) for r in rows}
    store = open_store(store_url)
    await store.open()
    try:
        return await store.account_states()
    finally:
        await store.close()


async def _paused_in_store(store_url: str, paused_for: str) -> bool:
    return any(s.paused_for == paused_for for s in (await _states(store_url)).values())


async def test_alerts_to_a_spent_account_go_to_its_fallback_at_once(
    start_daemon: Any, fakes: dict[str, Any], store_url: str
) -> None:
    """The day's one mass send is spent: every later alert is handed to WeCom at once and
    ends skipped naming the pause and the fallback; an update keeps waiting for the quota."""
    accounts = [_wechat(fakes, fallback=["wecom-duty"]), _wecom(fakes)]
    d = await start_daemon(hooks=0, accounts=accounts, store={"url": store_url})
    first = await _post(d, incident())
    await d.settled(first)
    second = await _post(d, incident(description="余震一"))  # spends the quota: falls back
    await d.settled(second)
    assert (await _account(d, "wechat-city"))["paused"].startswith("quota exhausted")
    started = time.monotonic()
    third = await _post(d, incident(description="余震二"))
    view = await d.settled(third, timeout_s=30)
    assert time.monotonic() - started < 10  # at once, not at midnight
    rows = {x["account"]: x for x in view["deliveries"]}
    spent = rows["wechat-city"]
    assert spent["state"] == "skipped", spent
    assert spent["reason"].startswith("account paused until ")
    assert "Z (quota exhausted: " in spent["reason"]  # until when, and why
    assert spent["reason"].endswith("handed at once to its fallback: wecom-duty")
    assert rows["wecom-duty"]["state"] == "delivered"
    assert "delivery.fallback" in [a["action"] for a in view["audit"]]
    assert len(fakes["wechat"].mass_sent) == 1  # only the first alert reached WeChat
    wecom = [str(m) for msgs in fakes["wecom"].received.values() for m in msgs]
    assert [("余震一" in m, "余震二" in m) for m in wecom] == [(True, False), (False, True)]
    update = await _follow_up(d, first, "update", {"headline": "更正：震级6.6"})
    await asyncio.sleep(SETTLE_S)
    held = (await _deliveries(d, update)).get("wechat-city")
    assert held is None or held["state"] in ("pending", "retrying"), held
    assert held is None or "fallback" not in (held["reason"] or "")


async def test_an_alert_waiting_on_a_paused_account_dies_at_max_delay(
    start_daemon: Any, fakes: dict[str, Any], store_url: str
) -> None:
    """No fallback: an alert held by a spent quota ends dead at its kind's max_delay_s with
    that reason, never sent late; a correction waiting on the account does not lapse."""
    dispatch = {**DISPATCH, "poll_interval_s": 0.2, "max_delay_s": {"earthquake": 1.0}}
    fakes["wechat"].fail_next(45028, path=SENDALL)
    d = await start_daemon(
        hooks=0, accounts=[_wechat(fakes)], store={"url": store_url}, dispatch=dispatch
    )
    first = await _post(d, incident())
    await d.settled(first)
    posted = time.monotonic()
    second = await _post(d, incident(headline="余震"))
    view = await d.settled(second, timeout_s=30)
    (late,) = view["deliveries"]
    assert time.monotonic() - posted >= 1.0
    assert (late["state"], late["reason"]) == (
        "dead",
        "too late: not sent within max_delay_s for earthquake (1 s) of being queued",
    )
    assert fakes["wechat"].mass_sent == {}
    update = await _follow_up(d, first, "update", {"headline": "更正：震级6.6"})
    await asyncio.sleep(1.0 + SETTLE_S)
    assert all(x["state"] != "dead" for x in (await _deliveries(d, update)).values())
