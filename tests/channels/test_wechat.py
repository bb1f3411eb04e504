"""The ``wechat_oa`` adapter against the fake WeChat API: broadcasts, tokens, quota, templates."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import aiohttp
import pytest

from alertcast.channels._vendor import SHANGHAI, next_midnight
from alertcast.channels.base import (
    AuthExpired,
    ChannelError,
    Permanent,
    QuotaExhausted,
    RateLimited,
    Transient,
)
from alertcast.channels.wechat import WechatChannel, client_msg_id, template_data
from alertcast.testing.fakes import FakeWechat, serve
from tests.channels.conftest import build, outgoing

ENV = {"WX_SECRET": "wx-secret"}
SENDALL = "/cgi-bin/message/mass/sendall"
TEXT = {"format": "text", "text": "【地震预警】泸定县发生6.8级地震，请远离危险建筑。"}
ARTICLE = {
    "format": "wechat_article",
    "title": "泸定县6.8级地震",
    "digest": "中国地震台网正式测定",
    "content_html": "<p>中国地震台网正式测定：泸定县发生6.8级地震。</p>",
    "source_url": "https://alerts.example.gov.cn/i/1",
    "text": "泸定县6.8级地震",
}
TEMPLATE = {
    "format": "wechat_template",
    "url": "https://alerts.example.gov.cn/i/1",
    "text": "地震",
    "template_data": {
        "first": {"value": "地震预警 请注意"},
        "keyword1": {"value": "四川省甘孜藏族自治州泸定县磨西镇附近"},
        "keyword2": {"value": "6.8级"},
    },
}


@pytest.fixture
def fake() -> FakeWechat:
    return FakeWechat({"wx-app": "wx-secret"}, mass_per_day=1)


@pytest.fixture
async def base_url(fake: FakeWechat) -> AsyncIterator[str]:
    async with serve(fake) as url:
        yield url


def wechat(session: aiohttp.ClientSession, base_url: str, **options: Any) -> WechatChannel:
    options = {"app_id": "wx-app", "app_secret_env": "WX_SECRET", "base_url": base_url, **options}
    return build(WechatChannel, session, ENV, **options)


async def test_text_broadcast_to_all(
    fake: FakeWechat, base_url: str, session: aiohttp.ClientSession
) -> None:
    """Text mode: one mass/sendall to all, clientmsgid from the idempotency key, msg_id back."""
    receipt = await wechat(session, base_url).deliver(outgoing(TEXT, key="inc-1:wx"))
    (call,) = fake.calls(SENDALL)
    body = call.json()
    assert body["filter"] == {"is_to_all": True} and body["clientmsgid"] == "inc-1:wx"
    assert body["text"]["content"] == TEXT["text"] and "泸定" in call.body.decode()
    assert receipt.remote_id is not None and int(receipt.remote_id) in fake.mass_sent


async def test_broadcast_to_a_tag(
    fake: FakeWechat, base_url: str, session: aiohttp.ClientSession
) -> None:
    """tag_id sends to that tag only."""
    await wechat(session, base_url, tag_id=7).deliver(outgoing(TEXT))
    assert fake.calls(SENDALL)[0].json()["filter"] == {"is_to_all": False, "tag_id": 7}


async def test_article_by_mass_send(
    fake: FakeWechat, base_url: str, session: aiohttp.ClientSession
) -> None:
    """Article mode: draft/add, then mass/sendall of that draft as mpnews."""
    channel = wechat(session, base_url, mode="article", thumb_media_id="thumb-1")
    receipt = await channel.deliver(outgoing(ARTICLE))
    (media_id,) = fake.drafts
    sent = fake.mass_sent[int(str(receipt.remote_id))]
    assert sent["mpnews"] == {"media_id": media_id} and receipt.detail["msg_data_id"]
    article = fake.drafts[media_id][0]
    assert article["content_source_url"] == ARTICLE["source_url"]
    assert article["thumb_media_id"] == "thumb-1"


async def test_article_by_free_publish(
    fake: FakeWechat, base_url: str, session: aiohttp.ClientSession
) -> None:
    """article_publish = freepublish submits the draft; the publish_id is the receipt."""
    channel = wechat(
        session, base_url, mode="article", thumb_media_id="thumb-1", article_publish="freepublish"
    )
    receipt = await channel.deliver(outgoing(ARTICLE))
    assert fake.published[str(receipt.remote_id)] in fake.drafts and not fake.mass_sent


async def test_article_mode_needs_a_thumb() -> None:
    """An article account without thumb_media_id is a configuration error."""
    with pytest.raises(ValueError, match="thumb_media_id"):
        WechatChannel.Options.model_validate(
            {"app_id": "a", "app_secret_env": "S", "mode": "article"}
        )


async def test_clientmsgid_prevents_a_double_send_across_a_crash(
    fake: FakeWechat, base_url: str
) -> None:
    """Same idempotency key after a restart: 45065, delivered with the first msg id."""
    async with aiohttp.ClientSession() as first_life:
        first = await wechat(first_life, base_url).deliver(outgoing(TEXT, key="inc-9:wx"))
    async with aiohttp.ClientSession() as second_life:
        again = await wechat(second_life, base_url).deliver(
            outgoing(TEXT, key="inc-9:wx", attempt=2)
        )
    assert again.duplicate and again.remote_id == first.remote_id
    assert len(fake.mass_sent) == 1 and len(fake.calls(SENDALL)) == 2


async def test_long_idempotency_key_is_hashed_to_64_bytes() -> None:
    """clientmsgid is limited to 64 bytes: longer keys are hashed, stably."""
    key = "incident-" + "x" * 80
    assert len(client_msg_id(key)) == 64 and client_msg_id(key) == client_msg_id(key)
    assert client_msg_id("short") == "short"


async def test_spent_quota_raises_before_calling(
    fake: FakeWechat, base_url: str, session: aiohttp.ClientSession
) -> None:
    """Subscription account: the second mass send of the day is refused without a call."""
    channel = wechat(session, base_url)
    await channel.deliver(outgoing(TEXT, key="a"))
    with pytest.raises(QuotaExhausted) as err:
        await channel.deliver(outgoing(TEXT, key="b"))
    assert len(fake.calls(SENDALL)) == 1
    assert err.value.until == next_midnight(datetime.now(SHANGHAI))


async def test_platform_quota_refusal_is_remembered(
    fake: FakeWechat, base_url: str, session: aiohttp.ClientSession
) -> None:
    """45028 from the platform -> QuotaExhausted until midnight, and no more calls today."""
    fake.fail_next(45028, path=SENDALL)
    channel = wechat(session, base_url, account_type="service", mass_per_day=5)
    with pytest.raises(QuotaExhausted) as err:
        await channel.deliver(outgoing(TEXT, key="a"))
    assert err.value.code == "45028" and err.value.until == next_midnight()
    with pytest.raises(QuotaExhausted):
        await channel.deliver(outgoing(TEXT, key="b"))
    assert len(fake.calls(SENDALL)) == 1


async def test_service_account_quota_is_configurable(
    fake: FakeWechat, base_url: str, session: aiohttp.ClientSession
) -> None:
    """Service accounts take mass_per_day sends a day before the adapter stops them."""
    fake.mass_per_day = 10
    channel = wechat(session, base_url, account_type="service", mass_per_day=2)
    for key in ("a", "b"):
        await channel.deliver(outgoing(TEXT, key=key))
    with pytest.raises(QuotaExhausted):
        await channel.deliver(outgoing(TEXT, key="c"))
    assert len(fake.calls(SENDALL)) == 2


async def test_retry_checks_with_the_platform_despite_the_quota(
    fake: FakeWechat, base_url: str, session: aiohttp.ClientSession
) -> None:
    """A retry (attempt 2) may already be sent: it asks the platform, which answers 45065."""
    channel = wechat(session, base_url)
    first = await channel.deliver(outgoing(TEXT, key="a"))
    again = await channel.deliver(outgoing(TEXT, key="a", attempt=2))
    assert again.duplicate and again.remote_id == first.remote_id


@pytest.mark.parametrize("code", [40001, 40014, 42001])
async def test_rejected_token_is_refreshed_once(
    fake: FakeWechat, base_url: str, session: aiohttp.ClientSession, code: int
) -> None:
    """40001/40014/42001: one new token, the call repeated once, delivered."""
    channel = wechat(session, base_url)
    fake.fail_next(code, path=SENDALL)
    receipt = await channel.deliver(outgoing(TEXT))
    assert receipt.remote_id and fake.token_calls == 2 and len(fake.calls(SENDALL)) == 2


async def test_token_rejected_twice_is_auth_expired(
    fake: FakeWechat, base_url: str, session: aiohttp.ClientSession
) -> None:
    """If the new token is refused too, the account's credentials are at fault."""
    fake.fail_next(40001, path=SENDALL, times=2)
    with pytest.raises(AuthExpired) as err:
        await wechat(session, base_url).deliver(outgoing(TEXT))
    assert err.value.code == "40001" and fake.token_calls == 2


async def test_token_expiring_mid_run_causes_one_refresh_under_concurrency(
    base_url: str, session: aiohttp.ClientSession
) -> None:
    """20 concurrent sends after the token expired: exactly one token call, all delivered."""
    fake = FakeWechat({"wx-app": "wx-secret"}, followers=[f"o-{i}" for i in range(20)])
    async with serve(fake) as url:
        channel = wechat(session, url, mode="template", template_id="TPL-ALERT")
        await channel.deliver(outgoing({**TEMPLATE, "touser": "o-0"}, key="warm"))
        fake.expire_tokens()
        sends = [
            channel.deliver(outgoing({**TEMPLATE, "touser": f"o-{i}"}, key=f"k{i}"))
            for i in range(20)
        ]
        receipts = await asyncio.gather(*sends)
    assert fake.token_calls == 2 and all(r.remote_id for r in receipts)


async def test_one_token_cache_per_app_across_accounts(
    fake: FakeWechat, base_url: str, session: aiohttp.ClientSession
) -> None:
    """Two accounts of one app share one token: a single token call for both."""
    fake.mass_per_day = 5
    text = wechat(session, base_url, id="wx-text", account_type="service")
    tagged = wechat(session, base_url, id="wx-tag", account_type="service", tag_id=3)
    await asyncio.gather(
        text.deliver(outgoing(TEXT, key="a")), tagged.deliver(outgoing(TEXT, key="b"))
    )
    assert fake.token_calls == 1


async def test_token_is_refreshed_before_it_expires(session: aiohttp.ClientSession) -> None:
    """A token near its end is replaced before use: the platform never sees an expired one."""
    fake = FakeWechat({"wx-app": "wx-secret"}, token_ttl_s=2, overlap_s=0.0, mass_per_day=9)
    async with serve(fake) as url:
        channel = wechat(session, url, account_type="service")
        await channel.deliver(outgoing(TEXT, key="a"))
        await asyncio.sleep(1.1)  # past the refresh point (half of a 2 s life)
        await channel.deliver(outgoing(TEXT, key="b"))
    assert fake.token_calls == 2 and len(fake.calls(SENDALL)) == 2


async def test_stable_token_is_supported(
    fake: FakeWechat, base_url: str, session: aiohttp.ClientSession
) -> None:
    """stable_token = true uses cgi-bin/stable_token, and refreshes it after expiry."""
    fake.mass_per_day = 5
    channel = wechat(session, base_url, stable_token=True, account_type="service")
    await channel.deliver(outgoing(TEXT, key="a"))
    fake.expire_tokens()
    await channel.deliver(outgoing(TEXT, key="b"))
    stable = fake.calls("/cgi-bin/stable_token")
    assert len(stable) == 2 and not fake.calls("/cgi-bin/token")
    assert [c.json()["force_refresh"] for c in stable] == [False, False]


async def test_wrong_app_secret_is_auth_expired(
    fake: FakeWechat, base_url: str, session: aiohttp.ClientSession
) -> None:
    """The token call refusing the credentials (40125) makes the account unhealthy."""
    channel = build(
        WechatChannel,
        session,
        {"WX_SECRET": "nope"},
        app_id="wx-app",
        app_secret_env="WX_SECRET",
        base_url=base_url,
    )
    with pytest.raises(AuthExpired) as err:
        await channel.deliver(outgoing(TEXT))
    assert err.value.code == "40125" and not fake.calls(SENDALL)


OUTCOMES: list[tuple[int, type[ChannelError]]] = [
    (-1, Transient),
    (45009, QuotaExhausted),
    (45011, RateLimited),
    (45066, RateLimited),
    (40164, AuthExpired),
    (40013, AuthExpired),
    (48001, Permanent),
    (45002, Permanent),
    (44004, Permanent),
    (40007, Permanent),
    (45067, Permanent),
    (99999, Permanent),
]


@pytest.mark.parametrize(("code", "expected"), OUTCOMES)
async def test_error_code_table(
    fake: FakeWechat, base_url: str, session: aiohttp.ClientSession, code: int, expected: Any
) -> None:
    """Each errcode (always with HTTP 200) maps to its typed error."""
    fake.fail_next(code, path=SENDALL)
    with pytest.raises(expected) as err:
        await wechat(session, base_url).deliver(outgoing(TEXT))
    assert type(err.value) is expected and err.value.code == str(code)
    assert err.value.http_status == 200


async def test_classified_by_code_never_by_message(
    fake: FakeWechat, base_url: str, session: aiohttp.ClientSession
) -> None:
    """A busy code whose message talks of tokens stays transient."""
    fake.fail_next(-1, path=SENDALL, errmsg="access_token expired rid: 1")
    with pytest.raises(Transient):
        await wechat(session, base_url).deliver(outgoing(TEXT))
    assert fake.token_calls == 1


async def test_template_message_per_subscriber(
    fake: FakeWechat, base_url: str, session: aiohttp.ClientSession
) -> None:
    """Template mode sends one message/template/send per recipient, the values as given."""
    channel = wechat(
        session,
        base_url,
        mode="template",
        template_id="TPL-ALERT",
        template_to=["o-alice", "o-bob"],
    )
    receipt = await channel.deliver(outgoing(TEMPLATE))
    assert receipt.detail["sent"] == 2
    assert sorted(b["touser"] for b in fake.template_sent) == ["o-alice", "o-bob"]
    sent = fake.template_sent[0]
    assert sent["url"] == TEMPLATE["url"] and sent["data"] == TEMPLATE["template_data"]


async def test_template_retry_does_not_repeat_to_recipients(
    fake: FakeWechat, base_url: str, session: aiohttp.ClientSession
) -> None:
    """A retried template delivery reuses client_msg_id per recipient: nobody gets it twice."""
    channel = wechat(
        session,
        base_url,
        mode="template",
        template_id="TPL-ALERT",
        template_to=["o-alice", "o-bob"],
    )
    await channel.deliver(outgoing(TEMPLATE))
    await channel.deliver(outgoing(TEMPLATE, attempt=2))
    assert len(fake.template_sent) == 2


async def test_template_refusals(
    fake: FakeWechat, base_url: str, session: aiohttp.ClientSession
) -> None:
    """A refusing recipient among many is noted; alone, it makes the delivery permanent."""
    fake.refused.add("o-carol")
    many = wechat(
        session,
        base_url,
        mode="template",
        template_id="TPL-ALERT",
        template_to=["o-alice", "o-carol"],
    )
    receipt = await many.deliver(outgoing(TEMPLATE))
    assert receipt.detail["refusals"] == {"o-carol": 43101}
    assert (receipt.detail["sent"], receipt.detail["refused"]) == (1, 1)
    with pytest.raises(Permanent) as err:
        await many.deliver(outgoing({**TEMPLATE, "touser": "o-stranger"}))
    assert err.value.code == "43004"


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("第一行\n第二行", "template_data.keyword1.value has a line break"),
        ("长" * 21, "template_data.keyword1.value is 21 characters; wechat_oa takes at most 20"),
    ],
    ids=["line break", "21 characters"],
)
async def test_template_values_over_the_rule_are_refused_unsent(
    fake: FakeWechat, base_url: str, session: aiohttp.ClientSession, value: str, says: str
) -> None:
    """A value on two lines or over 20 characters is refused before anyone is sent to."""
    channel = wechat(
        session, base_url, mode="template", template_id="TPL-ALERT", template_to=["o-alice"]
    )
    payload = {**TEMPLATE, "template_data": {"keyword1": {"value": value}}}
    with pytest.raises(Permanent, match=says):
        await channel.deliver(outgoing(payload))
    assert not fake.template_sent


def test_a_text_payload_fills_first_and_keyword1() -> None:
    """Without template_data, a short text fills first and keyword1; a long one is refused."""
    assert template_data({"text": "地震"}) == {
        "first": {"value": "地震"},
        "keyword1": {"value": "地震"},
    }
    with pytest.raises(Permanent, match=r"template_data\.first\.value is 21 characters"):
        template_data({"text": "长" * 21})


async def test_delete_a_mass_sent_article(
    fake: FakeWechat, base_url: str, session: aiohttp.ClientSession
) -> None:
    """delete removes a mass-sent article by its msg_id."""
    channel = wechat(session, base_url, mode="article", thumb_media_id="thumb-1")
    receipt = await channel.deliver(outgoing(ARTICLE))
    await channel.deliver(outgoing(action="delete", target=receipt.remote_id))
    assert not fake.mass_sent


async def test_article_account_takes_a_plain_text_payload(
    fake: FakeWechat, base_url: str, session: aiohttp.ClientSession
) -> None:
    """Article mode with a text payload falls back to a text mass send."""
    channel = wechat(session, base_url, mode="article", thumb_media_id="thumb-1")
    await channel.deliver(outgoing(TEXT))
    assert not fake.drafts and fake.calls(SENDALL)[0].json()["msgtype"] == "text"
