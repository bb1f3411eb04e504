"""Credentials a channel puts in a URL — fetched tokens, robot keys, signatures — never reach an
error or a log, even when a gateway's error page echoes the request URL back."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import quote

import aiohttp
import pytest
from structlog.testing import capture_logs

from alertcast.channels.base import Channel, ChannelError, Transient
from alertcast.channels.dingtalk import DingtalkChannel
from alertcast.channels.feishu import FeishuChannel
from alertcast.channels.wechat import WechatChannel
from alertcast.channels.wecom import WecomChannel
from alertcast.testing.fakes import (
    FakeDingtalk,
    FakeFeishu,
    FakePlatform,
    FakeWechat,
    FakeWecom,
    Recorded,
    RobotSecurity,
    serve,
)
from tests.channels.conftest import build, outgoing


@dataclass(frozen=True)
class Case:
    """A platform, the adapter for it, and where its credentials sat in the request."""

    fake: Callable[[], FakePlatform]
    adapter: Callable[[aiohttp.ClientSession, str], Channel]
    credentials: Callable[[Recorded], list[str]]
    payload: dict[str, Any]


TEXT = {"format": "text", "text": "【地震预警】泸定县发生6.8级地震"}
CASES = {
    "wechat-access-token": Case(
        lambda: FakeWechat({"wx-app": "wx-secret-9c1"}),
        lambda s, url: build(
            WechatChannel,
            s,
            {"WX_SECRET": "wx-secret-9c1"},
            app_id="wx-app",
            app_secret_env="WX_SECRET",
            base_url=url,
            mode="text",
        ),
        lambda r: [r.query["access_token"]],
        TEXT,
    ),
    "dingtalk-token-and-sign": Case(
        lambda: FakeDingtalk({"ding-token-41f": RobotSecurity(secret="SECding-77")}),
        lambda s, url: build(
            DingtalkChannel,
            s,
            {"DK": "ding-token-41f", "DS": "SECding-77"},
            key_env="DK",
            secret_env="DS",
            base_url=url,
        ),
        lambda r: [r.query["access_token"], r.query["sign"], quote(r.query["sign"], safe="")],
        TEXT,
    ),
    "wecom-key": Case(
        lambda: FakeWecom({"wecom-key-5d2"}),
        lambda s, url: build(WecomChannel, s, {"WK": "wecom-key-5d2"}, key_env="WK", base_url=url),
        lambda r: [r.query["key"]],
        TEXT,
    ),
    "feishu-hook-and-sign": Case(
        lambda: FakeFeishu({"feishu-hook-3a8": RobotSecurity(secret="feishu-secret-6b")}),
        lambda s, url: build(
            FeishuChannel,
            s,
            {"FK": "feishu-hook-3a8", "FS": "feishu-secret-6b"},
            key_env="FK",
            secret_env="FS",
            base_url=url,
        ),
        lambda r: [r.path.rsplit("/", 1)[-1], json.loads(r.body)["sign"]],
        TEXT,
    ),
}


def leaked(credential: str, text: str) -> bool:
    """The credential, or a telling piece of it (its first or last ten characters), is in text."""
    return any(part in text for part in (credential, credential[:10], credential[-10:]))


@pytest.mark.parametrize("style", ["html", "json"])
@pytest.mark.parametrize("name", list(CASES))
async def test_a_gateway_page_echoing_the_url_leaks_no_credential(
    session: aiohttp.ClientSession, name: str, style: Literal["html", "json"]
) -> None:
    """502 with the request URL echoed: the error says 502, never the credentials in the URL."""
    case = CASES[name]
    fake = case.fake()
    fake.gateway_error(502, style=style, times=5)
    async with serve(fake) as url:
        channel = case.adapter(session, url)
        with capture_logs() as logs, pytest.raises(ChannelError) as caught:
            await channel.deliver(outgoing(case.payload))
    sent = fake.requests[-1]
    credentials = case.credentials(sent)
    assert isinstance(caught.value, Transient) and "502" in caught.value.reason
    told = [caught.value.reason, str(caught.value), repr(logs)]
    assert not [c for c in credentials for text in told if leaked(c, text)]


@pytest.mark.parametrize(
    ("style", "shown"),
    [
        ("html", "/hook?access_token=tok-1&amp;sign=a%2Bb"),
        ("json", "\\/hook?access_token=tok-1&sign=a%2Bb"),
    ],
)
async def test_the_gateway_page_echoes_the_request_url(
    session: aiohttp.ClientSession, style: Literal["html", "json"], shown: str
) -> None:
    """The fake's gateway page (what the tests above rely on) shows the query string as sent."""
    fake = FakeWecom()
    fake.gateway_error(504, style=style)
    async with serve(fake) as url, session.post(f"{url}/hook?access_token=tok-1&sign=a%2Bb") as r:
        status, page = r.status, await r.text()
    assert status == 504 and shown in page


async def test_a_fetched_wechat_token_is_remembered_by_the_redactor(
    session: aiohttp.ClientSession,
) -> None:
    """The token the adapter fetched is scrubbed wherever it shows, even with no name before it."""
    case = CASES["wechat-access-token"]
    fake = case.fake()
    async with serve(fake) as url:
        channel = case.adapter(session, url)
        await channel.deliver(outgoing(case.payload))
    token = fake.requests[-1].query["access_token"]
    assert channel.secrets.redact(f"upstream said: {token}.") == "upstream said: ***."
