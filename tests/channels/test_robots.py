"""The WeCom, DingTalk and Feishu robot adapters against their fakes."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from alertcast.channels.base import (
    AuthExpired,
    ChannelError,
    Permanent,
    RateLimited,
    Transient,
)
from alertcast.channels.dingtalk import DingtalkChannel
from alertcast.channels.feishu import FeishuChannel
from alertcast.channels.wecom import WecomChannel
from alertcast.testing.fakes import FakeDingtalk, FakeFeishu, FakeWecom, RobotSecurity, serve
from tests.channels.conftest import build, outgoing

MARKDOWN = {
    "format": "wecom_markdown",
    "text": "地震",
    "title": "地震速报",
    "markdown": "## 地震速报\n泸定县发生**6.8级**地震",
}
POST = {
    "format": "feishu_post",
    "title": "地震预警",
    "text": "泸定县6.8级地震",
    "post_lines": [
        [
            {"tag": "text", "text": "泸定县发生6.8级地震 "},
            {"tag": "a", "text": "详情", "href": "https://alerts.example.gov.cn/1"},
        ]
    ],
}


# -- WeCom ----------------------------------------------------------------------------------


@pytest.fixture
async def wecom_fake() -> AsyncIterator[tuple[FakeWecom, str]]:
    fake = FakeWecom(keys={"wk"})
    async with serve(fake) as url:
        yield fake, url


def wecom(session: aiohttp.ClientSession, url: str, **options: Any) -> WecomChannel:
    return build(WecomChannel, session, {"WK": "wk"}, key_env="WK", base_url=url, **options)


async def test_wecom_markdown(
    wecom_fake: tuple[FakeWecom, str], session: aiohttp.ClientSession
) -> None:
    """A markdown payload goes out as msgtype markdown (or markdown_v2 when configured)."""
    fake, url = wecom_fake
    await wecom(session, url).deliver(outgoing(MARKDOWN))
    await wecom(session, url, msgtype="markdown_v2").deliver(outgoing(MARKDOWN))
    first, second = fake.received["wk"]
    assert first == {"msgtype": "markdown", "markdown": {"content": MARKDOWN["markdown"]}}
    assert second["msgtype"] == "markdown_v2"


async def test_wecom_text_with_mentions(
    wecom_fake: tuple[FakeWecom, str], session: aiohttp.ClientSession
) -> None:
    """A text payload goes out as text with the configured mentions."""
    fake, url = wecom_fake
    channel = wecom(session, url, mentioned_list=["duty"], mentioned_mobile_list=["@all"])
    await channel.deliver(outgoing({"format": "wecom_text", "text": "地震速报"}))
    text = fake.received["wk"][0]["text"]
    assert text == {
        "content": "地震速报",
        "mentioned_list": ["duty"],
        "mentioned_mobile_list": ["@all"],
    }


async def test_wecom_news(
    wecom_fake: tuple[FakeWecom, str], session: aiohttp.ClientSession
) -> None:
    """msgtype news sends one article linking to the full text."""
    fake, url = wecom_fake
    payload = {
        "format": "text",
        "text": "泸定县6.8级地震",
        "url": "https://alerts.example.gov.cn/1",
    }
    await wecom(session, url, msgtype="news").deliver(outgoing(payload))
    (article,) = fake.received["wk"][0]["news"]["articles"]
    assert article["url"] == payload["url"] and article["title"] == payload["text"]


@pytest.mark.parametrize(
    ("payload", "limit"),
    [
        ({"format": "wecom_text", "text": "地" * 683}, 2048),
        ({"format": "wecom_markdown", "markdown": "地" * 1366}, 4096),
    ],
)
async def test_wecom_oversize_is_refused_before_sending(
    wecom_fake: tuple[FakeWecom, str],
    session: aiohttp.ClientSession,
    payload: dict[str, Any],
    limit: int,
) -> None:
    """Text over 2048 bytes or markdown over 4096 bytes is permanent and never sent."""
    fake, url = wecom_fake
    with pytest.raises(Permanent, match=str(limit)):
        await wecom(session, url).deliver(outgoing(payload))
    assert not fake.requests


WECOM_OUTCOMES: list[tuple[int, type[ChannelError]]] = [
    (45009, RateLimited),
    (93000, AuthExpired),
    (-1, Transient),
    (40008, Permanent),
    (44004, Permanent),
    (12345, Permanent),
]


@pytest.mark.parametrize(("code", "expected"), WECOM_OUTCOMES)
async def test_wecom_error_code_table(
    wecom_fake: tuple[FakeWecom, str],
    session: aiohttp.ClientSession,
    code: int,
    expected: type[ChannelError],
) -> None:
    """Each errcode (HTTP 200) maps to its typed error."""
    fake, url = wecom_fake
    fake.fail_next(code)
    with pytest.raises(expected) as err:
        await wecom(session, url).deliver(outgoing(MARKDOWN))
    assert type(err.value) is expected and err.value.code == str(code)


async def test_wecom_real_refusals(
    wecom_fake: tuple[FakeWecom, str], session: aiohttp.ClientSession
) -> None:
    """A removed key is AuthExpired (93000); the 21st message in a minute waits 60 s (45009)."""
    fake, url = wecom_fake
    with pytest.raises(AuthExpired):
        await build(WecomChannel, session, {"WK": "gone"}, key_env="WK", base_url=url).deliver(
            outgoing(MARKDOWN)
        )
    channel = wecom(session, url)
    for _ in range(20):
        await channel.deliver(outgoing(MARKDOWN))
    with pytest.raises(RateLimited) as err:
        await channel.deliver(outgoing(MARKDOWN))
    assert err.value.retry_after == 60.0 and len(fake.received["wk"]) == 20


# -- DingTalk -------------------------------------------------------------------------------

DING_ENV = {"DK": "ding-token", "DS": "SECding"}


@pytest.fixture
async def ding_fake() -> AsyncIterator[tuple[FakeDingtalk, str]]:
    fake = FakeDingtalk({"ding-token": RobotSecurity(secret="SECding")})
    async with serve(fake) as url:
        yield fake, url


def dingtalk(
    session: aiohttp.ClientSession, url: str, env: dict[str, str] = DING_ENV, **options: Any
) -> DingtalkChannel:
    return build(
        DingtalkChannel, session, env, key_env="DK", secret_env="DS", base_url=url, **options
    )


async def test_dingtalk_signed_markdown(
    ding_fake: tuple[FakeDingtalk, str], session: aiohttp.ClientSession
) -> None:
    """The fake verifies the ms timestamp and HMAC signature in the URL; markdown arrives."""
    fake, url = ding_fake
    payload = {"format": "dingtalk_markdown", "title": "地震速报", "markdown": "### 泸定县6.8级"}
    await dingtalk(session, url, at_all=True).deliver(outgoing(payload))
    (body,) = fake.received["ding-token"]
    assert body["markdown"] == {"title": "地震速报", "text": "### 泸定县6.8级"}
    assert body["at"]["isAtAll"] is True
    assert len(fake.requests[0].query["timestamp"]) == 13


async def test_dingtalk_wrong_secret_is_permanent(
    ding_fake: tuple[FakeDingtalk, str], session: aiohttp.ClientSession
) -> None:
    """A signature that does not match (310000 sign not match) is permanent."""
    fake, url = ding_fake
    with pytest.raises(Permanent) as err:
        await dingtalk(session, url, {"DK": "ding-token", "DS": "SECwrong"}).deliver(outgoing())
    assert err.value.code == "310000" and len(fake.requests) == 1


async def test_dingtalk_keyword_is_checked_never_added(session: aiohttp.ClientSession) -> None:
    """In keyword mode a text without the keyword is refused unsent; one with it goes as is."""
    fake = FakeDingtalk({"ding-token": RobotSecurity(keywords=("预警",))})
    async with serve(fake) as url:
        env = {"DK": "ding-token"}
        keyed = build(DingtalkChannel, session, env, key_env="DK", base_url=url, keyword="预警")
        with pytest.raises(Permanent, match="text lacks the keyword '预警'"):
            await keyed.deliver(outgoing({"format": "text", "text": "演习：地震速报"}))
        assert not fake.requests
        await keyed.deliver(outgoing({"format": "text", "text": "演习：地震速报\n预警"}))
        plain = build(DingtalkChannel, session, env, key_env="DK", base_url=url)
        with pytest.raises(Permanent, match="keywords not in content"):
            await plain.deliver(outgoing({"format": "text", "text": "演习：地震速报"}))
    assert fake.received["ding-token"][0]["text"]["content"] == "演习：地震速报\n预警"


async def test_dingtalk_clock_skew_is_resigned_then_transient(
    ding_fake: tuple[FakeDingtalk, str], session: aiohttp.ClientSession
) -> None:
    """310000 'invalid timestamp': signed anew and sent once more; twice -> transient."""
    fake, url = ding_fake
    fake.fail_next(310000, "invalid timestamp")
    await dingtalk(session, url).deliver(outgoing())
    assert len(fake.requests) == 2 and len(fake.received["ding-token"]) == 1
    fake.fail_next(310000, "invalid timestamp", times=2)
    with pytest.raises(Transient) as err:
        await dingtalk(session, url).deliver(outgoing())
    assert err.value.code == "310000"


DING_OUTCOMES: list[tuple[int, str, type[ChannelError]]] = [
    (130101, "send too fast, exceed 20 times per minute", RateLimited),
    (410100, "发送速度太快而限流", RateLimited),
    (310000, "keywords not in content", Permanent),
    (310000, "ip 1.2.3.4 not in whitelist", Permanent),
    (300001, "token is not exist", AuthExpired),
    (400102, "robot stopped", AuthExpired),
    (-1, "system busy", Transient),
    (460101, "message too long, exceed 20000 bytes", Permanent),
]


@pytest.mark.parametrize(("code", "errmsg", "expected"), DING_OUTCOMES)
async def test_dingtalk_error_code_table(
    ding_fake: tuple[FakeDingtalk, str],
    session: aiohttp.ClientSession,
    code: int,
    errmsg: str,
    expected: type[ChannelError],
) -> None:
    """Each errcode (HTTP 200) maps to its typed error."""
    fake, url = ding_fake
    fake.fail_next(code, errmsg)
    with pytest.raises(expected) as err:
        await dingtalk(session, url).deliver(outgoing())
    assert type(err.value) is expected and err.value.code == str(code)


async def test_dingtalk_oversize_and_rate(
    ding_fake: tuple[FakeDingtalk, str], session: aiohttp.ClientSession
) -> None:
    """Over 19000 bytes is refused before sending; the 21st message a minute is rate-limited."""
    fake, url = ding_fake
    channel = dingtalk(session, url)
    with pytest.raises(Permanent, match="text is 20100 bytes; dingtalk_robot takes at most 19000"):
        await channel.deliver(outgoing({"format": "text", "text": "地" * 6700}))
    assert not fake.requests
    for _ in range(20):
        await channel.deliver(outgoing())
    with pytest.raises(RateLimited) as err:
        await channel.deliver(outgoing())
    assert err.value.code == "130101"


# -- Feishu ---------------------------------------------------------------------------------

FS_ENV = {"FK": "feishu-hook", "FS": "feishu-secret"}


@pytest.fixture
async def feishu_fake() -> AsyncIterator[tuple[FakeFeishu, str]]:
    fake = FakeFeishu({"feishu-hook": RobotSecurity(secret="feishu-secret", keywords=("预警",))})
    async with serve(fake) as url:
        yield fake, url


def feishu(
    session: aiohttp.ClientSession, url: str, env: dict[str, str] = FS_ENV, **options: Any
) -> FeishuChannel:
    options.setdefault("keyword", "预警")
    return build(
        FeishuChannel, session, env, key_env="FK", secret_env="FS", base_url=url, **options
    )


async def test_feishu_signed_post(
    feishu_fake: tuple[FakeFeishu, str], session: aiohttp.ClientSession
) -> None:
    """A post goes out as given, with timestamp and sign in the body."""
    fake, url = feishu_fake
    await feishu(session, url).deliver(outgoing(POST))
    (body,) = fake.received["feishu-hook"]
    post = body["content"]["post"]["zh_cn"]
    assert post == {"title": "地震预警", "content": POST["post_lines"]}
    assert body["timestamp"].isdigit() and len(body["timestamp"]) == 10 and body["sign"]


async def test_feishu_interactive_card(
    feishu_fake: tuple[FakeFeishu, str], session: aiohttp.ClientSession
) -> None:
    """msg_type interactive sends a card (top-level 'card') with a button to the link."""
    fake, url = feishu_fake
    await feishu(session, url, msg_type="interactive").deliver(outgoing(POST))
    card = fake.received["feishu-hook"][0]["card"]
    assert card["header"]["title"]["content"] == "地震预警"
    assert card["elements"][1]["actions"][0]["url"] == "https://alerts.example.gov.cn/1"
    assert "[详情](https://alerts.example.gov.cn/1)" in json.dumps(card, ensure_ascii=False)


async def test_feishu_wrong_secret_and_missing_keyword(
    feishu_fake: tuple[FakeFeishu, str], session: aiohttp.ClientSession
) -> None:
    """A bad signature is 19021 and a message without the keyword 19024: both permanent."""
    fake, url = feishu_fake
    unkeyed = {**POST, "title": "地震速报"}
    with pytest.raises(Permanent) as bad_sign:
        await feishu(session, url, {"FK": "feishu-hook", "FS": "nope"}).deliver(outgoing(POST))
    with pytest.raises(Permanent) as no_keyword:
        await feishu(session, url, keyword=None).deliver(outgoing(unkeyed))
    assert (bad_sign.value.code, no_keyword.value.code) == ("19021", "19024")
    assert not fake.received


FEISHU_OUTCOMES: list[tuple[int, int, type[ChannelError]]] = [
    (11232, 200, RateLimited),
    (19021, 200, Permanent),
    (19022, 200, Permanent),
    (19024, 200, Permanent),
    (9499, 400, Permanent),
    (19021, 400, Permanent),
    (19001, 200, AuthExpired),
]


@pytest.mark.parametrize(("code", "status", "expected"), FEISHU_OUTCOMES)
async def test_feishu_error_code_table(
    feishu_fake: tuple[FakeFeishu, str],
    session: aiohttp.ClientSession,
    code: int,
    status: int,
    expected: type[ChannelError],
) -> None:
    """Each body code maps to its typed error, whether it came with HTTP 200 or 4xx."""
    fake, url = feishu_fake
    fake.fail_next(code, status=status)
    with pytest.raises(expected) as err:
        await feishu(session, url).deliver(outgoing(POST))
    assert type(err.value) is expected and err.value.code == str(code)


async def test_feishu_per_second_limit_and_body_size(
    feishu_fake: tuple[FakeFeishu, str], session: aiohttp.ClientSession
) -> None:
    """The 6th message within a second is throttled (11232); a text over 18000 bytes never
    leaves."""
    fake, url = feishu_fake
    now = time.time()
    fake.clock = lambda: now  # all six land within the same second, however slow the machine
    channel = feishu(session, url)
    results = await asyncio.gather(
        *(channel.deliver(outgoing(POST)) for _ in range(6)), return_exceptions=True
    )
    assert sum(isinstance(r, RateLimited) for r in results) >= 1
    sent = len(fake.requests)
    with pytest.raises(Permanent, match="text is 21000 bytes; feishu_robot takes at most 18000"):
        await channel.deliver(outgoing({"format": "text", "text": "地" * 7000}))
    assert len(fake.requests) == sent


async def test_feishu_plain_text_payload(
    feishu_fake: tuple[FakeFeishu, str], session: aiohttp.ClientSession
) -> None:
    """A plain text payload goes out as msg_type text, as given; without the keyword it is
    refused unsent."""
    fake, url = feishu_fake
    with pytest.raises(Permanent, match="lacks the keyword '预警'"):
        await feishu(session, url).deliver(outgoing({"format": "text", "text": "演习：地震速报"}))
    assert not fake.requests
    text = "演习：地震预警\n\n详情：https://alerts.example.gov.cn/1"
    await feishu(session, url).deliver(outgoing({"format": "text", "text": text}))
    body = fake.received["feishu-hook"][0]
    assert body["msg_type"] == "text" and body["content"] == {"text": text}


@pytest.mark.parametrize(
    "make",
    [
        lambda s, url: build(WecomChannel, s, {"K": "key-0xdeadbeef"}, key_env="K", base_url=url),
        lambda s, url: build(
            DingtalkChannel,
            s,
            {"K": "key-0xdeadbeef", "S": "SECkey-0xfeed"},
            key_env="K",
            secret_env="S",
            base_url=url,
        ),
        lambda s, url: build(FeishuChannel, s, {"K": "key-0xdeadbeef"}, key_env="K", base_url=url),
    ],
    ids=["wecom", "dingtalk", "feishu"],
)
async def test_credentials_in_urls_never_reach_error_reasons(
    session: aiohttp.ClientSession, make: Any, refused_port: int
) -> None:
    """A connection failure is transient and its reason names neither key nor signature."""
    with pytest.raises(Transient) as err:
        await make(session, f"http://127.0.0.1:{refused_port}").deliver(outgoing())
    assert "deadbeef" not in err.value.reason and "feed" not in err.value.reason
