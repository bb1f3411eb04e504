"""Template messages to many subscribers: resumable, so no retry or crash alerts anyone twice.

facts §2.5 marks template/send's ``client_msg_id`` UNCONFIRMED, so these run against a fake that
ignores it (``template_dedupe=False``): only the adapter's own cursor stands between a retry and
a second alert on someone's phone.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import aiohttp
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alertcast.channels._fanout import Cursor, Result, fan_out, one_page
from alertcast.channels.base import Permanent, Transient
from alertcast.channels.wechat import WechatChannel
from alertcast.testing.fakes import FakeWechat, serve
from tests.channels.conftest import build, outgoing

ENV = {"WX_SECRET": "wx-secret"}
TEMPLATE_SEND = "/cgi-bin/message/template/send"
FOLLOWERS = [f"o-{n:04d}" for n in range(120)]
TEMPLATE = {
    "format": "wechat_template",
    "url": "https://alerts.example.gov.cn/i/1",
    "text": "地震",
    "template_data": {"first": {"value": "地震预警"}, "keyword1": {"value": "泸定县 6.8级"}},
}


@pytest.fixture
def fake() -> FakeWechat:
    return FakeWechat({"wx-app": "wx-secret"}, followers=FOLLOWERS, template_dedupe=False)


@pytest.fixture
async def base_url(fake: FakeWechat) -> AsyncIterator[str]:
    async with serve(fake) as url:
        yield url


def channel(session: aiohttp.ClientSession, base_url: str, **options: Any) -> WechatChannel:
    options = {
        "app_id": "wx-app",
        "app_secret_env": "WX_SECRET",
        "base_url": base_url,
        "mode": "template",
        "template_id": "TPL-ALERT",
        "template_to": FOLLOWERS,
        **options,
    }
    return build(WechatChannel, session, ENV, **options)


def received(fake: FakeWechat) -> Counter[str]:
    return Counter(str(b["touser"]) for b in fake.template_sent)


@pytest.mark.parametrize("concurrency", [1, 8])
async def test_a_retry_resumes_where_the_failure_stopped(
    fake: FakeWechat, base_url: str, session: aiohttp.ClientSession, concurrency: int
) -> None:
    """System busy after 50 sends: the retry sends only to the other 70, each exactly once."""
    fake.fail_next(-1, path=TEMPLATE_SEND, after=50)
    wx = channel(session, base_url, template_concurrency=concurrency)
    first = outgoing(TEMPLATE)
    with pytest.raises(Transient):
        await wx.deliver(first)
    done_first = sum(received(fake).values())
    assert 50 <= done_first < len(FOLLOWERS)
    assert first.progress["sent"] == done_first  # everything sent is in the cursor
    # The dispatcher stores the cursor and hands it back (as JSON) with the next attempt.
    retry = replace(first, attempt=2, progress=json.loads(json.dumps(first.progress)))
    receipt = await wx.deliver(retry)
    assert received(fake) == Counter(FOLLOWERS)
    assert receipt.detail["sent"] == len(FOLLOWERS) and receipt.detail["refused"] == 0
    assert len(fake.calls(TEMPLATE_SEND)) == len(FOLLOWERS) + 1  # one refused call, no repeat


async def test_refusals_are_counted_once_and_do_not_stop_the_rest(
    fake: FakeWechat, base_url: str, session: aiohttp.ClientSession
) -> None:
    """Someone who refused templates is recorded, not retried; everyone else gets it."""
    fake.refused.update(FOLLOWERS[:3])
    fake.fail_next(-1, path=TEMPLATE_SEND, after=10)
    wx = channel(session, base_url, template_concurrency=1)
    msg = outgoing(TEMPLATE)
    with pytest.raises(Transient):
        await wx.deliver(msg)
    receipt = await wx.deliver(replace(msg, attempt=2))
    assert received(fake) == Counter(FOLLOWERS[3:])
    assert receipt.detail["refused"] == 3
    assert receipt.detail["refusals"] == {o: 43101 for o in FOLLOWERS[:3]}


async def test_a_permanent_error_stops_the_list(
    fake: FakeWechat, base_url: str, session: aiohttp.ClientSession
) -> None:
    """A wrong template id is no one recipient's problem: stop, do not spray 120 errors."""
    wx = channel(session, base_url, template_id="TPL-GONE", template_concurrency=4)
    with pytest.raises(Permanent) as err:
        await wx.deliver(outgoing(TEMPLATE))
    assert str(err.value.code) == "40037"
    assert len(fake.calls(TEMPLATE_SEND)) <= 4


async def test_checkpoints_carry_the_cursor_and_a_lost_claim_stops_the_send(
    fake: FakeWechat, base_url: str, session: aiohttp.ClientSession
) -> None:
    """Progress is saved while sending; once the claim is lost nothing more is sent."""
    saved: list[dict[str, Any]] = []

    async def checkpoint() -> bool:
        saved.append(json.loads(json.dumps(msg.progress)))
        return len(saved) < 2  # the second checkpoint finds the lease taken over

    msg = replace(outgoing(TEMPLATE), checkpoint=checkpoint)
    wx = channel(session, base_url, template_concurrency=1)
    with pytest.raises(Transient, match="claim"):
        await wx.deliver(msg)
    # Saved every 50 sends (or each second, on a slow machine), then stopped at the lost claim.
    assert len(saved) == 2 and 0 < saved[0]["sent"] < saved[1]["sent"] <= 100
    assert sum(received(fake).values()) == saved[1]["sent"] < len(FOLLOWERS)
    assert saved[1]["after"] == sorted(FOLLOWERS)[saved[1]["sent"] - 1]


async def test_a_changed_list_resumes_by_id(
    fake: FakeWechat, base_url: str, session: aiohttp.ClientSession
) -> None:
    """Between attempts the list changes (a config reload): nobody done is sent to again, a
    newcomer past the done part is, and someone removed is not."""
    fake.fail_next(-1, path=TEMPLATE_SEND, after=40)
    first = outgoing(TEMPLATE)
    with pytest.raises(Transient):
        await channel(session, base_url, template_concurrency=4).deliver(first)
    done = set(received(fake))
    not_done = sorted(set(FOLLOWERS) - done)
    fake.follow("o-9999")
    changed = [*FOLLOWERS, "o-9999"]
    changed.remove(not_done[-1])
    retry = replace(first, attempt=2, progress=json.loads(json.dumps(first.progress)))
    await channel(session, base_url, template_to=changed).deliver(retry)
    assert received(fake) == Counter(changed)


async def test_followers_audience_pages_through_user_get_and_resumes(
    fake: FakeWechat, base_url: str, session: aiohttp.ClientSession
) -> None:
    """Every follower, 25 a page: a failure on the second page resumes on that page; people
    who follow or leave meanwhile are handled; nobody gets it twice."""
    fake.page_size = 25
    fake.fail_next(-1, path=TEMPLATE_SEND, after=40)
    wx = channel(session, base_url, template_audience="followers", template_concurrency=4)
    first = outgoing(TEMPLATE)
    with pytest.raises(Transient):
        await wx.deliver(first)
    assert first.progress["page"] == FOLLOWERS[24] and first.progress["total"] == 120
    fake.unfollow(FOLLOWERS[-1])  # leaves before their page is reached
    fake.follow("o-late")  # joins at the end of the follower list
    retry = replace(first, attempt=2, progress=json.loads(json.dumps(first.progress)))
    receipt = await wx.deliver(retry)
    assert received(fake) == Counter([*FOLLOWERS[:-1], "o-late"])
    assert receipt.detail["sent"] == 120
    pages = [dict(r.query).get("next_openid", "") for r in fake.calls("/cgi-bin/user/get")]
    # Page 2 fetched again on the retry; the list ends with an empty page.
    assert pages == [
        "",
        FOLLOWERS[24],
        FOLLOWERS[24],
        FOLLOWERS[49],
        FOLLOWERS[74],
        FOLLOWERS[99],
        "o-late",
    ]


async def test_tag_audience_reaches_only_the_tag(
    fake: FakeWechat, base_url: str, session: aiohttp.ClientSession
) -> None:
    """``template_audience = "tag"`` sends to the tag's followers (``user/tag/get``) only."""
    fake.follow(*FOLLOWERS[10:30], tag=7)
    wx = channel(session, base_url, template_audience="tag", tag_id=7)
    receipt = await wx.deliver(outgoing(TEMPLATE))
    assert received(fake) == Counter(FOLLOWERS[10:30]) and receipt.detail["sent"] == 20
    assert json.loads(fake.calls("/cgi-bin/user/tag/get")[0].body) == {
        "tagid": 7,
        "next_openid": "",
    }


async def test_an_empty_audience_fails_and_says_so(
    fake: FakeWechat, base_url: str, session: aiohttp.ClientSession
) -> None:
    fake.tags[8] = set()
    wx = channel(session, base_url, template_audience="tag", tag_id=8)
    with pytest.raises(Permanent, match="audience is empty"):
        await wx.deliver(outgoing(TEMPLATE))


def test_tag_audience_needs_a_tag() -> None:
    with pytest.raises(ValueError, match="tag_id"):
        WechatChannel.Options.model_validate(
            {
                "app_id": "wx-app",
                "app_secret_env": "WX_SECRET",
                "mode": "template",
                "template_id": "T",
                "template_audience": "tag",
            }
        )


async def test_send_timeout_grows_with_the_list(session: aiohttp.ClientSession) -> None:
    """The whole list may take as long as its requests need; each request keeps its own."""
    wx = channel(session, "http://127.0.0.1:9", template_concurrency=8)
    many = wx.send_timeout_s(outgoing(TEMPLATE))
    one = wx.send_timeout_s(outgoing({**TEMPLATE, "touser": "o-1"}))
    assert one == 2 * wx.timeout_s and many == wx.timeout_s * (1 + 15)


# -- the cursor -----------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(
    n=st.integers(min_value=0, max_value=300),
    seed=st.integers(min_value=0, max_value=2**32 - 1),
    in_flight=st.integers(min_value=1, max_value=16),
    stop_at=st.floats(min_value=0, max_value=1),
    churn=st.integers(min_value=0, max_value=20),
)
def test_cursor_resumes_exactly_the_rest(
    n: int, seed: int, in_flight: int, stop_at: float, churn: int
) -> None:
    """Completions in any order within a window; the cursor, saved as JSON, reloaded over a
    list that changed meanwhile: nobody done is due again, everybody not done who is still on
    the list is, and the cursor stays as small as the window, whatever the list."""
    rng = random.Random(seed)
    people = [f"o-{rng.randrange(10**6):06d}" for _ in range(n)]
    progress: dict[str, Any] = {}
    cursor = Cursor(progress, people)
    window: list[int] = []
    todo = iter(cursor.pending())
    done: set[str] = set()
    stop = int(stop_at * len(cursor.ids))
    while len(done) < stop:
        while len(window) < in_flight and (i := next(todo, None)) is not None:
            window.append(i)
        finished = window.pop(rng.randrange(len(window)))
        cursor.mark(finished, Result(sent=rng.random() < 0.9, code=43101))
        done.add(cursor.ids[finished])
        assert len(progress["ahead"]) < in_flight
    assert progress["sent"] + progress["refused"] == len(done)
    # The list changes: some leave, some join.
    changed = set(people)
    for _ in range(churn):
        if changed and rng.random() < 0.5:
            changed.discard(rng.choice(sorted(changed)))
        else:
            changed.add(f"o-{rng.randrange(10**6):06d}")
    reloaded = Cursor(json.loads(json.dumps(progress)), sorted(changed))
    due = {reloaded.ids[i] for i in reloaded.pending()}
    assert not due & done
    assert (set(people) - done) & changed <= due
    assert reloaded.done == (not due)


async def test_a_checkpoint_that_raises_stops_every_request() -> None:
    """A checkpoint that cannot be stored (the database is briefly unreachable) stops the
    fan-out like a lost claim: every request in flight is finished and recorded before it
    returns, and no request is sent after it, whose recipient the next attempt would alert a
    second time."""
    sent: list[str] = []
    returned = False

    async def send_one(openid: str) -> Result:
        await asyncio.sleep(0.002)
        assert not returned, f"{openid} sent after the fan-out returned"
        sent.append(openid)
        return Result(sent=True, remote_id=f"m-{openid}")

    async def checkpoint() -> bool:
        raise ConnectionError("the store is unreachable")

    msg = replace(outgoing(TEMPLATE), checkpoint=checkpoint)
    with pytest.raises(Transient):
        await fan_out(msg, one_page(FOLLOWERS), send_one, concurrency=4, timeout_s=5, every=5)
    returned = True
    await asyncio.sleep(0.1)  # any worker left running would send meanwhile
    assert msg.progress["sent"] == len(sent) < len(FOLLOWERS)
    done = Cursor(json.loads(json.dumps(msg.progress)), FOLLOWERS)
    assert {done.ids[i] for i in done.pending()} == set(FOLLOWERS) - set(sent)
