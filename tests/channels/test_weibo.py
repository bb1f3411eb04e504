"""The ``weibo`` adapter against the fake Weibo API."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from pydantic import ValidationError

from alertcast.channels.base import (
    Action,
    AuthExpired,
    ChannelError,
    Outgoing,
    Permanent,
    RateLimited,
    Receipt,
    Transient,
)
from alertcast.channels.weibo import WeiboChannel, WeiboOptions
from alertcast.testing.fakes import FakeWeibo, serve
from tests.channels.conftest import build, outgoing

SAFE = "https://alerts.example.gov.cn/i/1"
ENV = {"WB_TOKEN": "weibo-token"}
TEXT = f"【地震】9月5日12:52四川甘孜州泸定县发生6.8级地震，震源深度16千米。详情：{SAFE}"


def weibo_post(
    text: str = TEXT, *, action: Action = "post", target: str | None = None, attempt: int = 1
) -> Outgoing:
    return outgoing(
        {"format": "weibo", "text": text}, action=action, target=target, attempt=attempt
    )


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


async def test_share_returns_idstr_and_sends_the_text_as_given(
    weibo: WeiboChannel, fake: FakeWeibo
) -> None:
    """A post goes through statuses/share with rip, its text unchanged; idstr is the id."""
    receipt = await weibo.deliver(weibo_post())
    assert receipt.remote_id is not None and int(receipt.remote_id) > 2**53
    (call,) = fake.calls("/2/statuses/share.json")
    form = dict(pair.split("=", 1) for pair in call.body.decode().split("&"))
    assert form["rip"] == "203.0.113.7" and fake.statuses[receipt.remote_id]["text"] == TEXT


async def test_text_linking_a_subdomain_of_the_safe_domain_is_kept(
    weibo: WeiboChannel, fake: FakeWeibo
) -> None:
    """A text that links to a subdomain of the safe domain is sent unchanged."""
    text = f"{TEXT[: TEXT.index('详情')]} https://m.alerts.example.gov.cn/x"
    receipt = await weibo.deliver(weibo_post(text))
    assert fake.statuses[str(receipt.remote_id)]["text"] == text


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("【地震】泸定县6.8级地震", "no link on the safe domain"),
        ("【地震】泸定县6.8级地震 https://example.org/i/1", "no link on the safe domain"),
        (f"#地震# 泸定县6.8级地震 {SAFE}", "topic mark '#地震#'"),
    ],
    ids=["no link", "other domain", "topic"],
)
async def test_a_post_share_would_refuse_is_refused_unsent(
    weibo: WeiboChannel, fake: FakeWeibo, text: str, says: str
) -> None:
    """No safe-domain link or a #topic#: Permanent with the reason, nothing sent, nothing
    rewritten (the renderer puts the link in and the marks out)."""
    with pytest.raises(Permanent, match=says):
        await weibo.deliver(weibo_post(text))
    assert not fake.requests


async def test_a_link_fragment_is_not_a_topic(weibo: WeiboChannel, fake: FakeWeibo) -> None:
    """A '#' inside a link is no topic mark: the post goes."""
    text = "【地震】泸定县6.8级地震 https://alerts.example.gov.cn/a#b"
    receipt = await weibo.deliver(weibo_post(text))
    assert fake.statuses[str(receipt.remote_id)]["text"] == text


async def test_an_over_long_comment_is_refused_unsent(weibo: WeiboChannel, fake: FakeWeibo) -> None:
    """A reply's text is held to 140 units too (comments/create's rule)."""
    with pytest.raises(Permanent, match=r"text is 141 Weibo units; weibo takes at most 140"):
        await weibo.deliver(weibo_post("震" * 141, action="reply", target="1"))
    assert not fake.requests


def test_config_without_safe_domain_is_refused() -> None:
    """safe_domain_url is required: an account without one does not validate."""
    with pytest.raises(ValidationError, match="safe_domain_url"):
        WeiboChannel.Options.model_validate({"access_token_env": "WB_TOKEN"})


async def test_repost_reply_and_delete_thread_to_the_original(
    weibo: WeiboChannel, fake: FakeWeibo
) -> None:
    """Repost, comment and delete address the original post by its idstr."""
    original = await weibo.deliver(weibo_post())
    update = "【更新】正式测定6.8级"
    repost = await weibo.deliver(weibo_post(update, action="repost", target=original.remote_id))
    reply = await weibo.deliver(weibo_post(update, action="reply", target=original.remote_id))
    assert fake.statuses[str(repost.remote_id)]["retweeted_status"]["idstr"] == original.remote_id
    assert fake.comments[str(reply.remote_id)]["status"]["idstr"] == original.remote_id
    await weibo.deliver(outgoing(action="delete", target=original.remote_id))
    assert original.remote_id not in fake.statuses


async def test_deleting_twice_is_permanent(weibo: WeiboChannel) -> None:
    """The second delete of one post gets 20101 (post does not exist): permanent."""
    original = await weibo.deliver(weibo_post())
    await weibo.deliver(outgoing(action="delete", target=original.remote_id))
    with pytest.raises(Permanent) as err:
        await weibo.deliver(outgoing(action="delete", target=original.remote_id))
    assert err.value.code == "20101" and err.value.http_status == 400


async def test_identical_post_is_delivered_as_duplicate(weibo: WeiboChannel) -> None:
    """Weibo refuses the same text twice (20019): the delivery is done, flagged duplicate."""
    await weibo.deliver(weibo_post())
    receipt = await weibo.deliver(weibo_post(attempt=2))
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
        receipt = await weibo.deliver(weibo_post())
        assert isinstance(receipt, Receipt) and receipt.duplicate == (expected == "duplicate")
        return
    with pytest.raises(expected) as err:
        await weibo.deliver(weibo_post())
    assert type(err.value) is expected and err.value.code == str(code)


async def test_rate_limit_waits_for_the_window(weibo: WeiboChannel, fake: FakeWeibo) -> None:
    """Over the hourly post limit: RateLimited until the reset the platform reports."""
    fake.posts_per_hour = 1
    now = time.time()
    fake.clock = lambda: now  # both posts in one clock hour, even if one is about to end
    await weibo.deliver(weibo_post())
    with pytest.raises(RateLimited) as err:
        await weibo.deliver(weibo_post(TEXT + "（续）"))
    assert err.value.code == "20016" and 0 < (err.value.retry_after or 0) <= 3600
    assert fake.calls("/2/account/rate_limit_status.json")


async def test_expired_token_is_auth_expired(weibo: WeiboChannel, fake: FakeWeibo) -> None:
    """A token the platform expired raises AuthExpired (the dispatcher pauses the account)."""
    fake.expired.add("weibo-token")
    with pytest.raises(AuthExpired) as err:
        await weibo.deliver(weibo_post())
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
            await weibo.deliver(weibo_post())
    assert not fake.requests


def fake_url(channel: WeiboChannel) -> str:
    assert isinstance(channel.options, WeiboOptions)
    return str(channel.options.base_url)


async def test_deleting_someone_elses_post_is_permanent(
    weibo: WeiboChannel, fake: FakeWeibo, session: aiohttp.ClientSession
) -> None:
    """Only the author may delete: 20102 is permanent."""
    original = await weibo.deliver(weibo_post())
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
    original = await weibo.deliver(weibo_post())
    with pytest.raises(Permanent) as err:
        await weibo.deliver(weibo_post(action="repost", target=original.remote_id))
    assert err.value.code == "20103"
