"""The ``weibo`` adapter against the fake Weibo API."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from pydantic import ValidationError

from alertcast.channels.base import (
    AuthExpired,
    ChannelError,
    Permanent,
    RateLimited,
    Receipt,
    Transient,
)
from alertcast.channels.weibo import WeiboChannel, WeiboOptions, weibo_units, with_safe_link
from alertcast.testing.fakes import FakeWeibo, serve
from tests.channels.conftest import build, outgoing

SAFE = "https://alerts.example.gov.cn/i/1"
ENV = {"WB_TOKEN": "weibo-token"}
TEXT = "【地震】9月5日12:52四川甘孜州泸定县发生6.8级地震，震源深度16千米。"


@pytest.fixture
def fake() -> FakeWeibo:
    return FakeWeibo({"weibo-token": 1001, "other-token": 2002})


@pytest.fixture
async def weibo(fake: FakeWeibo, session: aiohttp.ClientSession) -> AsyncIterator[WeiboChannel]:
    async with serve(fake) as url:
        yield build(
            WeiboChannel,
            session,
            ENV,
            base_url=url,
            access_token_env="WB_TOKEN",
            safe_domain_url=SAFE,
            rip="203.0.113.7",
        )


async def test_share_returns_idstr_and_carries_the_safe_link(
    weibo: WeiboChannel, fake: FakeWeibo
) -> None:
    """A post goes through statuses/share with rip and the safe-domain link; idstr is the id."""
    receipt = await weibo.deliver(outgoing({"format": "weibo", "text": TEXT}))
    assert receipt.remote_id is not None and int(receipt.remote_id) > 2**53
    (call,) = fake.calls("/2/statuses/share.json")
    form = dict(pair.split("=", 1) for pair in call.body.decode().split("&"))
    assert (
        form["rip"] == "203.0.113.7"
        and "alerts.example.gov.cn" in fake.statuses[receipt.remote_id]["text"]
    )


async def test_text_already_linking_the_safe_domain_is_kept(
    weibo: WeiboChannel, fake: FakeWeibo
) -> None:
    """A text that already links to the safe domain (or a subdomain) is sent unchanged."""
    text = f"{TEXT} https://m.alerts.example.gov.cn/x"
    receipt = await weibo.deliver(outgoing({"format": "weibo", "text": text}))
    assert fake.statuses[str(receipt.remote_id)]["text"] == text


def test_config_without_safe_domain_is_refused() -> None:
    """safe_domain_url is required: an account without one does not validate."""
    with pytest.raises(ValidationError, match="safe_domain_url"):
        WeiboChannel.Options.model_validate({"access_token_env": "WB_TOKEN"})


async def test_repost_reply_and_delete_thread_to_the_original(
    weibo: WeiboChannel, fake: FakeWeibo
) -> None:
    """Repost, comment and delete address the original post by its idstr."""
    original = await weibo.deliver(outgoing({"format": "weibo", "text": TEXT}))
    update = {"format": "weibo", "text": "【更新】正式测定6.8级"}
    repost = await weibo.deliver(outgoing(update, action="repost", target=original.remote_id))
    reply = await weibo.deliver(outgoing(update, action="reply", target=original.remote_id))
    assert fake.statuses[str(repost.remote_id)]["retweeted_status"]["idstr"] == original.remote_id
    assert fake.comments[str(reply.remote_id)]["status"]["idstr"] == original.remote_id
    await weibo.deliver(outgoing(action="delete", target=original.remote_id))
    assert original.remote_id not in fake.statuses


async def test_deleting_twice_is_permanent(weibo: WeiboChannel) -> None:
    """The second delete of one post gets 20101 (post does not exist): permanent."""
    original = await weibo.deliver(outgoing({"format": "weibo", "text": TEXT}))
    await weibo.deliver(outgoing(action="delete", target=original.remote_id))
    with pytest.raises(Permanent) as err:
        await weibo.deliver(outgoing(action="delete", target=original.remote_id))
    assert err.value.code == "20101" and err.value.http_status == 400


async def test_identical_post_is_delivered_as_duplicate(weibo: WeiboChannel) -> None:
    """Weibo refuses the same text twice (20019): the delivery is done, flagged duplicate."""
    await weibo.deliver(outgoing({"format": "weibo", "text": TEXT}))
    receipt = await weibo.deliver(outgoing({"format": "weibo", "text": TEXT}, attempt=2))
    assert receipt.duplicate and receipt.detail == {"code": 20019}


OUTCOMES: list[tuple[int, type[ChannelError] | str]] = [
    (10001, Transient),
    (10002, Transient),
    (10009, Transient),
    (10011, Transient),
    (10022, RateLimited),
    (10023, RateLimited),
    (10024, RateLimited),
    (20016, RateLimited),
    (20017, "duplicate"),
    (20019, "duplicate"),
    (20111, "duplicate"),
    (20032, "delivered"),
    (20012, Permanent),
    (10014, Permanent),
    (10017, Permanent),
    (20021, Permanent),
    (21327, AuthExpired),
    (21301, AuthExpired),
    (21314, AuthExpired),
    (21315, AuthExpired),
    (21316, AuthExpired),
    (21317, AuthExpired),
    (21318, AuthExpired),
    (21319, AuthExpired),
    (21332, AuthExpired),
    (10099, Transient),
    (20999, Permanent),
]


@pytest.mark.parametrize("string_codes", [False, True], ids=["number", "string"])
@pytest.mark.parametrize(("code", "expected"), OUTCOMES)
async def test_error_code_table(
    weibo: WeiboChannel, fake: FakeWeibo, code: int, expected: Any, string_codes: bool
) -> None:
    """Each error_code, sent as a number or a string, maps to its outcome."""
    fake.string_codes = string_codes
    fake.fail_next(code, path="/2/statuses/share.json")
    if isinstance(expected, str):
        receipt = await weibo.deliver(outgoing({"format": "weibo", "text": TEXT}))
        assert isinstance(receipt, Receipt) and receipt.duplicate == (expected == "duplicate")
        return
    with pytest.raises(expected) as err:
        await weibo.deliver(outgoing({"format": "weibo", "text": TEXT}))
    assert type(err.value) is expected and err.value.code == str(code)


async def test_rate_limit_waits_for_the_window(weibo: WeiboChannel, fake: FakeWeibo) -> None:
    """Over the hourly post limit: RateLimited until the reset the platform reports."""
    fake.posts_per_hour = 1
    now = time.time()
    fake.clock = lambda: now  # both posts in one clock hour, even if one is about to end
    await weibo.deliver(outgoing({"format": "weibo", "text": TEXT}))
    with pytest.raises(RateLimited) as err:
        await weibo.deliver(outgoing({"format": "weibo", "text": TEXT + "（续）"}))
    assert err.value.code == "20016" and 0 < (err.value.retry_after or 0) <= 3600
    assert fake.calls("/2/account/rate_limit_status.json")


async def test_expired_token_is_auth_expired(weibo: WeiboChannel, fake: FakeWeibo) -> None:
    """A token the platform expired raises AuthExpired (the dispatcher pauses the account)."""
    fake.expired.add("weibo-token")
    with pytest.raises(AuthExpired) as err:
        await weibo.deliver(outgoing({"format": "weibo", "text": TEXT}))
    assert err.value.code == "21327"


async def test_missing_token_variable_is_auth_expired(
    fake: FakeWeibo, session: aiohttp.ClientSession
) -> None:
    """An unset access_token_env is the account's problem (AuthExpired), not the message's."""
    async with serve(fake) as url:
        weibo = build(
            WeiboChannel,
            session,
            {},
            base_url=url,
            access_token_env="WB_TOKEN",
            safe_domain_url=SAFE,
        )
        with pytest.raises(AuthExpired, match="WB_TOKEN"):
            await weibo.deliver(outgoing())
    assert not fake.requests


def fake_url(channel: WeiboChannel) -> str:
    assert isinstance(channel.options, WeiboOptions)
    return str(channel.options.base_url)


async def test_deleting_someone_elses_post_is_permanent(
    weibo: WeiboChannel, fake: FakeWeibo, session: aiohttp.ClientSession
) -> None:
    """Only the author may delete: 20102 is permanent."""
    original = await weibo.deliver(outgoing({"format": "weibo", "text": TEXT}))
    other = build(
        WeiboChannel,
        session,
        {"WB2": "other-token"},
        base_url=str(fake_url(weibo)),
        access_token_env="WB2",
        safe_domain_url=SAFE,
    )
    with pytest.raises(Permanent) as err:
        await other.deliver(outgoing(action="delete", target=original.remote_id))
    assert err.value.code == "20102"


async def test_self_repost_refusal_is_permanent(weibo: WeiboChannel, fake: FakeWeibo) -> None:
    """Where Weibo forbids reposting one's own post (20103), the repost fails permanently."""
    fake.self_repost_allowed = False
    original = await weibo.deliver(outgoing({"format": "weibo", "text": TEXT}))
    with pytest.raises(Permanent) as err:
        await weibo.deliver(outgoing(action="repost", target=original.remote_id))
    assert err.value.code == "20103"


def test_safe_link_is_appended_within_140_units() -> None:
    """A long text is clipped (with an ellipsis) so that text plus link fit 140 units."""
    long_text = "泸定县" * 60
    sent = with_safe_link(long_text, SAFE)
    assert sent.endswith(" " + SAFE) and "…" in sent and weibo_units(sent) <= 140


def test_topics_are_unmarked_outside_links() -> None:
    """share refuses #topic#: the marks go, a link's fragment stays."""
    sent = with_safe_link("#地震# 速报 https://alerts.example.gov.cn/a#b", SAFE)
    assert sent == "地震 速报 https://alerts.example.gov.cn/a#b"


@pytest.mark.parametrize(
    ("text", "units"),
    [
        ("abcd", 2),
        ("泸定", 2),
        ("a泸", 2),
        ("地震 https://alerts.example.gov.cn/x", 13),
        ("https://t.cn/abc", 8),
    ],
)
def test_weibo_units(text: str, units: int) -> None:
    """CJK counts 1, ASCII ½, a non-t.cn link 10, rounded up."""
    assert weibo_units(text) == units
