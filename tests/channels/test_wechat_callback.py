"""The WeChat callback: signature, echostr handshake, safe XML, MsgId dedupe, keyword replies."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from alertcast.channels.wechat import WechatOptions
from alertcast.channels.wechat_callback import REPLY_DEADLINE_S, WechatCallback, parse_inbound
from alertcast.config import AccountConfig
from alertcast.secrets import Secrets
from alertcast.testing.fakes import callback_query, text_message

TOKEN = "callback-token-3f9"
QUAKE = {
    "kind": "earthquake",
    "headline": "泸定县6.8级地震",
    "area": {"name": "泸定县"},
    "occurred_at": "2022-09-05T04:52:18Z",
    "url": "https://alerts.example.gov.cn/i/1",
}
ACCOUNT = AccountConfig(
    id="wx-office",
    channel="wechat_oa",
    regions=["513322"],
    app_id="wx-app",
    app_secret_env="WX_SECRET",
    callback_token_env="WX_CALLBACK",
    help_text="回复“地震”查询",
)


class Lookups:
    """A ``latest`` that records its calls and can be slowed down."""

    def __init__(self, delay_s: float = 0.0) -> None:
        self.calls: list[tuple[str | None, list[str], int]] = []
        self.delay_s = delay_s

    async def __call__(
        self, kind: str | None, regions: list[str], limit: int, language: str | None = None
    ) -> list[dict[str, Any]]:
        self.calls.append((kind, regions, limit))
        await asyncio.sleep(self.delay_s)
        return [QUAKE] if kind in (None, "earthquake") else []


Client = TestClient[web.Request, web.Application]
Start = Callable[..., Awaitable[tuple[Client, Lookups]]]


@pytest.fixture
def start(aiohttp_client: Any) -> Start:
    async def start(delay_s: float = 0.0, **kw: Any) -> tuple[Client, Lookups]:
        lookups = Lookups(delay_s)
        app = web.Application()
        WechatCallback([ACCOUNT], Secrets({"WX_CALLBACK": TOKEN}), lookups, **kw).install(app)
        return await aiohttp_client(app), lookups

    return start


async def post(client: Client, body: bytes, token: str = TOKEN, **query: str) -> Any:
    return await client.post(
        "/wechat/wx-office",
        data=body,
        params=callback_query(token, openid="o-alice", **query),
        headers={"Content-Type": "text/xml"},
    )


async def test_handshake_echoes_echostr(start: Start) -> None:
    """GET with a good signature answers echostr verbatim."""
    client, _ = await start()
    resp = await client.get("/wechat/wx-office", params=callback_query(TOKEN, echostr="e-123"))
    assert resp.status == 200 and await resp.text() == "e-123"


async def test_handshake_with_a_bad_signature_is_forbidden(start: Start) -> None:
    """GET signed with another token gets 403 and no echostr."""
    client, _ = await start()
    resp = await client.get("/wechat/wx-office", params=callback_query("wrong", echostr="e-1"))
    assert resp.status == 403 and "e-1" not in await resp.text()


async def test_bad_signature_processes_nothing(start: Start) -> None:
    """A POST with a bad signature gets 403; no lookup happens."""
    client, lookups = await start()
    resp = await post(client, text_message("地震", msg_id="1"), token="wrong")
    assert resp.status == 403 and not lookups.calls


async def test_unknown_account_is_not_found(start: Start) -> None:
    """Only configured wechat_oa accounts with a callback token have an endpoint."""
    client, _ = await start()
    resp = await client.get("/wechat/nobody", params=callback_query(TOKEN, echostr="e"))
    assert resp.status == 404


async def test_keyword_replies_with_latest_incidents(start: Start) -> None:
    """地震 -> the latest active earthquakes of the account's region, as a passive text reply."""
    client, lookups = await start()
    resp = await post(client, text_message("地震", msg_id="100", from_user="o-bob"))
    reply = parse_inbound(await resp.read())
    assert resp.status == 200 and lookups.calls == [("earthquake", ["513322"], 3)]
    assert reply.to_user == "o-bob" and reply.from_user == "gh_office"
    assert reply.msg_type == "text" and "泸定县6.8级地震" in reply.content
    assert "09-05 12:52" in reply.content  # local time, Asia/Shanghai


async def test_keyword_inside_a_sentence_and_no_incidents(start: Start) -> None:
    """A keyword within the text matches; no active incident says so."""
    client, lookups = await start()
    resp = await post(client, text_message("有火灾吗", msg_id="101"))
    assert lookups.calls[0][0] == "fire"
    assert "目前没有生效中的「火灾」" in parse_inbound(await resp.read()).content


async def test_unknown_word_gets_the_help_text(start: Start) -> None:
    """A word that is no keyword gets the account's help text; nothing is looked up."""
    client, lookups = await start()
    resp = await post(client, text_message("你好", msg_id="102"))
    assert parse_inbound(await resp.read()).content == "回复“地震”查询" and not lookups.calls


async def test_retried_msgid_is_worked_on_once(start: Start) -> None:
    """WeChat's retry of one MsgId shares the first answer; the lookup runs once."""
    client, lookups = await start(delay_s=0.2)
    body = text_message("最新", msg_id="200")
    first, second = await asyncio.gather(post(client, body), post(client, body))
    third = await post(client, body)
    replies = {(await r.text()).split("<CreateTime>")[0] for r in (first, second, third)}
    assert len(lookups.calls) == 1 and lookups.calls[0][0] is None and len(replies) == 1


async def test_slow_lookup_answers_success_within_5_seconds(start: Start) -> None:
    """A lookup that would take too long: 'success' at the server's reply deadline, which
    leaves a margin under WeChat's 5 seconds. (The test's deadline is shortened so that a
    loaded machine cannot eat the margin; the shipped one is checked against WeChat's.)"""
    assert REPLY_DEADLINE_S <= 4.0
    client, _ = await start(delay_s=30.0, reply_deadline_s=0.3)
    started = time.monotonic()
    resp = await post(client, text_message("地震", msg_id="300"))
    assert await resp.text() == "success" and time.monotonic() - started < 5.0


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<xml><ToUserName>gh</ToUserName><FromUserName>o</FromUserName><MsgType>text</MsgType>
<Content>&lol3;</Content><MsgId>1</MsgId></xml>"""
EXTERNAL = b"""<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>
<xml><MsgType>text</MsgType><Content>&e;</Content></xml>"""


@pytest.mark.parametrize(
    "body",
    [BILLION_LAUGHS, EXTERNAL, b"<xml><unclosed></xml>", b"{}"],
    ids=["entity-bomb", "external-entity", "malformed", "not-xml"],
)
async def test_hostile_or_broken_xml_is_refused(start: Start, body: bytes) -> None:
    """Entity bombs, external entities and malformed XML get 400, even when signed."""
    client, lookups = await start()
    resp = await post(client, body)
    assert resp.status == 400 and not lookups.calls


async def test_oversize_body_is_refused(start: Start) -> None:
    """A body over the cap gets 413 without being parsed."""
    client, lookups = await start()
    resp = await post(client, text_message("地" * 40_000, msg_id="400"))
    assert resp.status == 413 and not lookups.calls


async def test_subscribe_event_gets_the_help_text(start: Start) -> None:
    """A new follower is greeted with the help text; other events answer success."""
    client, _ = await start()
    event = (
        b"<xml><ToUserName>gh</ToUserName><FromUserName>o-new</FromUserName>"
        b"<CreateTime>1</CreateTime><MsgType>event</MsgType><Event>%s</Event></xml>"
    )
    greeted = await post(client, event % b"subscribe")
    other = await post(client, event % b"unsubscribe")
    assert parse_inbound(await greeted.read()).content == "回复“地震”查询"
    assert await other.text() == "success"


def test_keywords_must_name_a_kind() -> None:
    """A keyword mapped to an unknown kind is a configuration error."""
    with pytest.raises(ValueError, match="keywords"):
        WechatOptions.model_validate(
            {"app_id": "a", "app_secret_env": "S", "keywords": {"台风": "typhoon"}}
        )
