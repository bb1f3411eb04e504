"""Through the daemon: the WeChat access token fetched at run time, echoed back by a gateway's
error page, never reaches the store, the status API, the stream or the logs."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import AsyncIterator
from typing import Any, Literal

import pytest
from structlog.testing import capture_logs

from alertcast.testing.fakes import FakeWechat, serve
from tests.conftest import TOKEN, incident

AUTH = {"Authorization": f"Bearer {TOKEN}"}
SENDALL = "/cgi-bin/message/mass/sendall"


@pytest.fixture
async def wechat(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[tuple[FakeWechat, str]]:
    monkeypatch.setenv("T_WX", "wx-secret-4e1")
    fake = FakeWechat({"wx-app": "wx-secret-4e1"})
    async with serve(fake) as url:
        yield fake, url


def _account(url: str) -> dict[str, Any]:
    return {
        "id": "wechat-city",
        "channel": "wechat_oa",
        "base_url": url,
        "app_id": "wx-app",
        "app_secret_env": "T_WX",
        "mode": "text",
        "format": "text",
    }


async def _events_until_dead(resp: Any) -> list[str]:
    """The stream's data lines until the delivery is dead."""
    lines: list[str] = []
    async with asyncio.timeout(30):
        while not any('"state": "dead"' in line for line in lines):
            line = (await resp.content.readline()).decode()
            if line.startswith("data: "):
                lines.append(line)
    return lines


def _dump(db: Any) -> str:
    with sqlite3.connect(db) as conn:
        return "\n".join(conn.iterdump())


def _leaks(token: str, text: str) -> bool:
    return any(part in text for part in (token, token[:12], token[-12:]))


@pytest.mark.parametrize("style", ["html", "json"])
async def test_a_fetched_token_echoed_by_a_gateway_is_nowhere(
    start_daemon: Any, wechat: tuple[FakeWechat, str], style: Literal["html", "json"]
) -> None:
    """Every send gets a 502 page echoing its URL: the delivery dies of it, and the token
    appears in no stored error, API answer, stream event or log line."""
    fake, url = wechat
    fake.gateway_error(502, style=style, path=SENDALL, times=100)
    with capture_logs() as logs:
        d = await start_daemon(hooks=0, accounts=[_account(url)])
        stream = await d.client.get("/v1/stream", headers=AUTH)
        await stream.content.readline()  # ": connected"
        answer = await (await d.post(incident())).json()
        events = await _events_until_dead(stream)
        stream.close()
        view = await d.settled(answer["id"])
    token = fake.calls(SENDALL)[0].query["access_token"]
    (delivery,) = view["deliveries"]
    assert delivery["state"] == "dead" and "HTTP 502" in delivery["last_error"]
    answers = [view]
    for path in (f"/v1/deliveries/{delivery['id']}", "/v1/deliveries", "/v1/channels"):
        status, body = await d.get(path)
        assert status == 200
        answers.append(body)
    seen = {
        "api": json.dumps(answers, ensure_ascii=False),
        "stream": "".join(events),
        "store": _dump(d.db),
        "logs": repr(logs),
    }
    assert [where for where, text in seen.items() if _leaks(token, text)] == []
    assert "access_token=***" in seen["store"]  # the page was stored, scrubbed
