"""Weibo's hourly budgets per user: declared by the adapter, enforced by the fake (facts §1.6)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from alertcast.channels.base import Budget, RateLimited, Receipt
from alertcast.channels.weibo import WeiboChannel
from alertcast.testing.fakes import FakeWeibo, serve
from tests.channels.conftest import build
from tests.channels.test_weibo import ENV, SAFE, TEXT, weibo_post

HOUR_START = 1_757_000_000 // 3600 * 3600.0  # the first second of a clock hour


def test_weibo_declares_the_normal_tier_budgets() -> None:
    """30 posts (shares and reposts), 60 comments, 150 calls in all, per user per hour."""
    assert dict(WeiboChannel.budgets) == {
        "post": Budget(30, frozenset({"post", "repost"})),
        "comment": Budget(60, frozenset({"reply"})),
        "total": Budget(150),
    }
    assert WeiboChannel.limits.per_minute is None  # no one window for every action any more


@pytest.fixture
def fake() -> FakeWeibo:
    now = HOUR_START + 60
    return FakeWeibo({"weibo-token": 1001}, clock=lambda: now)


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
        )


async def post(weibo: WeiboChannel, n: int) -> str:
    receipt = await weibo.deliver(weibo_post(f"{TEXT}（第{n}报）"))
    assert receipt.remote_id is not None
    return receipt.remote_id


async def comment(weibo: WeiboChannel, target: str, n: int = 0) -> Receipt:
    return await weibo.deliver(weibo_post(f"更正{n}：误报。{SAFE}", action="reply", target=target))


async def test_thirty_posts_spend_the_post_budget_not_the_comments(
    weibo: WeiboChannel, fake: FakeWeibo
) -> None:
    """The 31st post of the hour (a repost too) answers 20016; a comment still goes out."""
    first = await post(weibo, 0)
    for n in range(1, 29):
        await post(weibo, n)
    await weibo.deliver(weibo_post(action="repost", target=first))  # the 30th post
    for refused in (weibo_post(f"{TEXT}（第31报）"), weibo_post(action="repost", target=first)):
        with pytest.raises(RateLimited) as err:
            await weibo.deliver(refused)
        assert err.value.code == "20016" and err.value.http_status == 400
    assert (await comment(weibo, first)).remote_id in fake.comments


async def test_sixty_comments_spend_the_comment_budget_not_the_posts(
    weibo: WeiboChannel, fake: FakeWeibo
) -> None:
    """The 61st comment of the hour answers 10024 (403); a post still goes out."""
    fake.requests_per_hour = 1000
    first = await post(weibo, 0)
    for n in range(60):
        await comment(weibo, first, n)
    with pytest.raises(RateLimited) as err:
        await comment(weibo, first, 60)
    assert err.value.code == "10024" and err.value.http_status == 403
    assert len(fake.comments) == 60
    await post(weibo, 1)


async def test_every_call_counts_in_the_total_deletions_too(
    weibo: WeiboChannel, fake: FakeWeibo
) -> None:
    """Five calls an hour in all: posts, a comment and a deletion spend them; then 10023."""
    fake.requests_per_hour = 5
    first, second, _ = [await post(weibo, n) for n in range(3)]
    await comment(weibo, first)
    await weibo.deliver(weibo_post(action="delete", target=second))
    with pytest.raises(RateLimited) as err:
        await comment(weibo, first, 1)
    assert err.value.code == "10023" and err.value.http_status == 403
    assert 0 < (err.value.retry_after or 0) <= 3600  # the reset rate_limit_status reports


async def test_the_budgets_return_with_the_next_hour(weibo: WeiboChannel, fake: FakeWeibo) -> None:
    """A spent post budget is whole again in the next clock hour."""
    fake.posts_per_hour = 1
    await post(weibo, 0)
    with pytest.raises(RateLimited):
        await post(weibo, 1)
    fake.clock = lambda: HOUR_START + 3600.0 + 1
    await post(weibo, 2)
