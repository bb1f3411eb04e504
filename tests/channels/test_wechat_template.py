"""Template messages to many subscribers: resumable, so no retry or crash alerts anyone twice.

facts §2.5 marks template/send's ``client_msg_id`` UNCONFIRMED, so these run against a fake that
ignores it (``template_dedupe=False``): only the adapter's own cursor stands between a retry and
a second alert on someone's phone.
"""

from __future__ import annotations

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

from alertcast.channels._fanout import Cursor, Result, fingerprint
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
    assert len(saved) == 2 and 0 < saved[0]["next"] < saved[1]["next"] <= 100
    assert sum(received(fake).values()) == saved[1]["next"] < len(FOLLOWERS)


async def test_a_changed_list_is_not_resumed_by_index(
    fake: FakeWechat, base_url: str, session: aiohttp.ClientSession
) -> None:
    """A cursor over another list starts over rather than skipping the wrong people."""
    stale = {"list": fingerprint(["o-x", "o-y"]), "next": 2, "ahead": [], "sent": 2}
    msg = replace(outgoing(TEMPLATE), progress=stale)
    receipt = await channel(session, base_url, template_to=FOLLOWERS[:5]).deliver(msg)
    assert received(fake) == Counter(FOLLOWERS[:5]) and receipt.detail["sent"] == 5


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
)
def test_cursor_resumes_exactly_the_rest(n: int, seed: int, in_flight: int, stop_at: float) -> None:
    """Completions in any order within a window: the cursor, saved as JSON and reloaded, yields
    exactly the recipients not done, and stays as small as the window, whatever the list."""
    people = [f"o-{i}" for i in range(n)]
    rng = random.Random(seed)
    progress: dict[str, Any] = {}
    cursor = Cursor(progress, people)
    window: list[int] = []
    todo = iter(cursor.pending())
    done: set[int] = set()
    stop = int(stop_at * n)
    while len(done) < stop:
        while len(window) < in_flight and (i := next(todo, None)) is not None:
            window.append(i)
        finished = window.pop(rng.randrange(len(window)))
        cursor.mark(finished, Result(sent=rng.random() < 0.9, code=43101))
        done.add(finished)
        assert len(progress["ahead"]) < in_flight
    reloaded = Cursor(json.loads(json.dumps(progress)), people)
    assert sorted(reloaded.pending()) == sorted(set(range(n)) - done)
    assert progress["sent"] + progress["refused"] == len(done)
    assert reloaded.done == (len(done) == n)
