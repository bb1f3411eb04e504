"""Customer-service messages to the followers inside WeChat's interaction window (facts §2.6).

Against the fake's window rules (5 messages within 48 h of a follower's message, 3 within a
minute of a click, follow or scan): one text per recipient, refusals about one person recorded
while the rest go on, and a retry that resumes where the failure stopped.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from dataclasses import replace
from typing import Any

import aiohttp
import pytest

from alertcast.channels.base import Outgoing, Permanent, Transient
from alertcast.channels.wechat import WechatChannel
from alertcast.testing.fakes import FakeWechat, serve
from tests.channels.conftest import build, outgoing

ENV = {"WX_SECRET": "wx-secret"}
CUSTOM_SEND = "/cgi-bin/message/custom/send"
TEXT = {"format": "text", "text": "【更正】泸定县地震为演练信息，请勿惊慌。"}


@pytest.fixture
def fake() -> FakeWechat:
    return FakeWechat({"wx-app": "wx-secret"}, followers=())


@pytest.fixture
async def wx(fake: FakeWechat, session: aiohttp.ClientSession) -> AsyncIterator[WechatChannel]:
    async with serve(fake) as url:
        yield build(
            WechatChannel,
            session,
            ENV,
            app_id="wx-app",
            app_secret_env="WX_SECRET",
            base_url=url,
            mode="text",
        )


def custom(recipients: Sequence[str], key: str = "corr-1", **payload: Any) -> Outgoing:
    return replace(
        outgoing({**TEXT, **payload}, action="custom", key=key), recipients=list(recipients)
    )


async def test_one_text_per_follower_inside_the_window(fake: FakeWechat, wx: WechatChannel) -> None:
    """Each recipient gets the payload's text once, as a custom/send text message."""
    fake.user_wrote("o-alice")
    fake.user_clicked("o-bob")
    msg = custom(["o-bob", "o-alice"])
    receipt = await wx.deliver(msg)
    assert fake.received("o-alice") == fake.received("o-bob") == [TEXT["text"]]
    (body, *_) = [call.json() for call in fake.calls(CUSTOM_SEND)]
    assert body["msgtype"] == "text" and set(body) == {"touser", "msgtype", "text"}
    assert receipt.detail == {"sent": 2, "refused": 0}
    assert msg.progress["sent"] == 2 and msg.progress["total"] == 2


@pytest.mark.parametrize(
    ("setup", "code"),
    [
        ("never", 40003),  # no such follower
        ("closed", 45015),  # wrote 49 hours ago
        ("clicked_long_ago", 45015),  # clicked 61 seconds ago
        ("left", 45015),  # followed once, unfollowed
        ("spent", 45047),  # five messages since they wrote
    ],
)
async def test_a_refusal_about_one_follower_is_recorded_and_the_rest_go_on(
    fake: FakeWechat, wx: WechatChannel, setup: str, code: int
) -> None:
    """45015, 45047 and 40003 concern one person: recorded by openid, the others still sent."""
    now = time.time()
    fake.user_wrote("o-alice")
    if setup == "closed":
        fake.user_wrote("o-zed", at=now - 49 * 3600)
    elif setup == "clicked_long_ago":
        fake.user_clicked("o-zed", at=now - 61)
    elif setup == "left":
        fake.user_wrote("o-zed")
        fake.unfollow("o-zed")
    elif setup == "spent":
        fake.user_wrote("o-zed")
        for n in range(5):
            await wx.deliver(custom(["o-zed"], key=f"earlier-{n}"))
    msg = custom(["o-alice", "o-zed"])
    receipt = await wx.deliver(msg)
    assert fake.received("o-alice") == [TEXT["text"]]
    assert receipt.detail == {"sent": 1, "refused": 1}
    assert msg.progress["refusals"] == {"o-zed": code}


async def test_a_click_window_takes_three_messages(fake: FakeWechat, wx: WechatChannel) -> None:
    """After a click, follow or scan: three messages go through, the fourth is refused."""
    fake.user_clicked("o-bob")
    for n in range(3):
        await wx.deliver(custom(["o-bob"], key=f"k-{n}"))
    with pytest.raises(Permanent, match="no follower took") as caught:
        await wx.deliver(custom(["o-bob"], key="k-3"))
    assert caught.value.code == "45047" and len(fake.received("o-bob")) == 3


async def test_nobody_in_the_window_is_permanent_without_a_request(
    fake: FakeWechat, wx: WechatChannel
) -> None:
    """No recipient at all: failed with the reason; WeChat is not called."""
    with pytest.raises(Permanent, match="nobody is inside the 48-hour window"):
        await wx.deliver(custom([]))
    with pytest.raises(Permanent, match="nobody is inside the 48-hour window"):
        await wx.deliver(replace(custom([]), recipients=None))
    assert fake.calls(CUSTOM_SEND) == []


async def test_everyone_refused_is_permanent_with_the_code(
    fake: FakeWechat, wx: WechatChannel
) -> None:
    """Every recipient out of the window: failed, naming the refusal."""
    fake.follow("o-alice", "o-bob")  # followers who never wrote
    with pytest.raises(Permanent, match="no follower took") as caught:
        await wx.deliver(custom(["o-alice", "o-bob"]))
    assert caught.value.code == "45015" and fake.custom_sent == []


async def test_a_text_over_the_limit_is_refused_before_anyone_is_sent_to(
    fake: FakeWechat, wx: WechatChannel
) -> None:
    """The channel's 600-character text rule holds for custom messages too; nothing is cut."""
    fake.user_wrote("o-alice")
    with pytest.raises(Permanent, match="600"):
        await wx.deliver(custom(["o-alice"], text="警" * 601))
    assert fake.calls(CUSTOM_SEND) == []


@pytest.mark.parametrize("concurrency", [1, 8])
async def test_a_retry_resumes_and_messages_nobody_twice(
    fake: FakeWechat, session: aiohttp.ClientSession, concurrency: int
) -> None:
    """System busy after 10 of 30 sends: the retry messages only the rest, each once."""
    followers = [f"o-{n:03d}" for n in range(30)]
    for openid in followers:
        fake.user_wrote(openid)
    fake.fail_next(-1, path=CUSTOM_SEND, after=10)
    async with serve(fake) as url:
        wx = build(
            WechatChannel,
            session,
            ENV,
            app_id="wx-app",
            app_secret_env="WX_SECRET",
            base_url=url,
            template_concurrency=concurrency,
        )
        first = custom(followers)
        with pytest.raises(Transient):
            await wx.deliver(first)
        assert 10 <= first.progress["sent"] < 30
        retry = replace(custom(list(reversed(followers))), progress=first.progress, attempt=2)
        receipt = await wx.deliver(retry)
    got = Counter(str(b["touser"]) for b in fake.custom_sent)
    assert got == Counter(followers) and receipt.detail["sent"] == 30
