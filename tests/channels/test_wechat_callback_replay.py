"""The WeChat callback's replay guard: a timestamp window and a bounded nonce cache, per account.

WeChat's own retries are answered whichever way they come (signed anew, or the same query
again); a stale or replayed request gets 403 and starts no lookup.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from alertcast.channels.wechat_callback import WechatCallback, parse_inbound
from alertcast.config import AccountConfig
from alertcast.secrets import Secrets
from alertcast.testing.fakes import callback_query, text_message

TOKEN = "callback-token-3f9"
ACCOUNT = AccountConfig(
    id="wx-office",
    channel="wechat_oa",
    regions=["513322"],
    app_id="wx-app",
    app_secret_env="WX_SECRET",
    callback_token_env="WX_CALLBACK",
)
TIGHT = AccountConfig(
    id="wx-tight",
    channel="wechat_oa",
    app_id="wx-app",
    app_secret_env="WX_SECRET",
    callback_token_env="WX_CALLBACK",
    callback_window_s=60,
)
A_2001_TIMESTAMP = "978307200"  # 2001-01-01T00:00:00Z
FULLWIDTH = str.maketrans("0123456789", "０１２３４５６７８９")  # int() reads these too

Client = TestClient[web.Request, web.Application]


class Lookups:
    """A ``latest`` that counts its calls (each one is work done)."""

    def __init__(self, delay_s: float = 0.0) -> None:
        self.calls = 0
        self.delay_s = delay_s

    async def __call__(
        self, kind: str | None, regions: list[str], limit: int, language: str | None = None
    ) -> list[Any]:
        self.calls += 1
        await asyncio.sleep(self.delay_s)
        return []


class Clock:
    """A clock the test moves."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


Start = Callable[..., Awaitable[tuple[Client, Lookups, WechatCallback]]]


@pytest.fixture
def start(aiohttp_client: Any) -> Start:
    async def start(delay_s: float = 0.0, **kw: Any) -> tuple[Client, Lookups, WechatCallback]:
        lookups = Lookups(delay_s)
        app = web.Application()
        callback = WechatCallback([ACCOUNT, TIGHT], Secrets({"WX_CALLBACK": TOKEN}), lookups, **kw)
        callback.install(app)
        return await aiohttp_client(app), lookups, callback

    return start


def ago(seconds: float) -> str:
    return str(int(time.time() - seconds))


def signed(timestamp: str, **extra: str) -> dict[str, str]:
    """WeChat's signed query for ``timestamp``, even an empty one (which callback_query fills)."""
    if timestamp:
        return callback_query(TOKEN, timestamp=timestamp, **extra)
    nonce = "n-77"
    digest = hashlib.sha1("".join(sorted([TOKEN, "", nonce])).encode()).hexdigest()
    return {"signature": digest, "timestamp": "", "nonce": nonce, **extra}


async def post(
    client: Client, body: bytes, query: dict[str, str], account: str = "wx-office"
) -> Any:
    headers = {"Content-Type": "text/xml"}
    return await client.post(f"/wechat/{account}", data=body, params=query, headers=headers)


@pytest.mark.parametrize(
    ("account", "stamp"),
    [
        ("wx-office", lambda: A_2001_TIMESTAMP),
        ("wx-office", lambda: ago(301)),
        ("wx-office", lambda: ago(-310)),
        ("wx-tight", lambda: ago(90)),
        ("wx-office", lambda: ago(0).translate(FULLWIDTH)),
        ("wx-office", lambda: ago(0) + ".0"),
        ("wx-office", lambda: ""),
    ],
    ids=[
        "2001",
        "past-window",
        "future-window",
        "past-a-60s-window",
        "fullwidth",
        "not-int",
        "none",
    ],
)
async def test_a_stale_or_malformed_timestamp_is_refused(
    start: Start, account: str, stamp: Callable[[], str]
) -> None:
    """Correctly signed, but outside the window (or no timestamp): 403, nothing looked up.
    (Each timestamp is made when the test runs, not when it is collected: a long suite would
    otherwise carry a future one into the window.)"""
    timestamp = stamp()
    client, lookups, _ = await start()
    message = await post(client, text_message("地震", msg_id="1"), signed(timestamp), account)
    shake = await client.get(f"/wechat/{account}", params=signed(timestamp, echostr="e-1"))
    assert message.status == 403 and shake.status == 403 and lookups.calls == 0
    assert "e-1" not in await shake.text()


@pytest.mark.parametrize(
    ("account", "stamp"),
    [
        ("wx-office", lambda: ago(240)),
        ("wx-office", lambda: ago(-240)),
        ("wx-tight", lambda: ago(30)),
    ],
    ids=["four-minutes-old", "four-minutes-ahead", "inside-a-60s-window"],
)
async def test_a_timestamp_inside_the_window_is_taken(
    start: Start, account: str, stamp: Callable[[], str]
) -> None:
    """Clock skew and delay within the account's window are taken."""
    timestamp = stamp()
    client, lookups, _ = await start()
    query = callback_query(TOKEN, timestamp=timestamp, openid="o-alice")
    resp = await post(client, text_message("地震", msg_id="2"), query, account)
    assert resp.status == 200 and lookups.calls == 1


async def test_a_replayed_handshake_is_refused(start: Start) -> None:
    """One signed handshake URL sent 20 times: echoed once, 403 nineteen times."""
    client, _, _ = await start()
    query = callback_query(TOKEN, echostr="e-42")
    answers = [await client.get("/wechat/wx-office", params=query) for _ in range(20)]
    assert [r.status for r in answers] == [200] + [403] * 19
    assert [await r.text() for r in answers].count("e-42") == 1


async def test_a_replayed_message_url_is_worked_on_once_and_refused_past_wechats_tries(
    start: Start,
) -> None:
    """One signed message URL (same body) sent 20 times: WeChat's 3 tries share one answer and
    one lookup; the 17 others get 403."""
    client, lookups, _ = await start()
    query = callback_query(TOKEN, openid="o-alice")
    body = text_message("地震", msg_id="300")
    answers = [await post(client, body, query) for _ in range(20)]
    assert [r.status for r in answers] == [200] * 3 + [403] * 17
    replies = {parse_inbound(await r.read()).content for r in answers[:3]}
    assert len(replies) == 1 and lookups.calls == 1


async def test_a_repeated_query_while_the_first_is_slow_shares_its_answer(start: Start) -> None:
    """WeChat repeating the very query while the first is still being worked on: no second
    lookup, the same answer."""
    client, lookups, _ = await start(delay_s=0.3)
    query = callback_query(TOKEN, openid="o-alice")
    body = text_message("最新", msg_id="301")
    first = asyncio.ensure_future(post(client, body, query))
    while not lookups.calls:  # the first is being worked on
        await asyncio.sleep(0.01)
    again = await post(client, body, query)
    replies = [(await r.text()).split("<CreateTime>")[0] for r in (await first, again)]
    assert (await first).status == again.status == 200 and lookups.calls == 1
    assert replies[0] == replies[1] and "<Content>" in (await again.text())


@pytest.mark.parametrize(
    "other",
    [text_message("火灾", msg_id="999"), b"<xml><MsgType>text</MsgType></xml>"],
    ids=["another-msgid", "another-body"],
)
async def test_a_signed_url_replayed_with_another_body_is_refused(
    start: Start, other: bytes
) -> None:
    """The signature does not cover the body: a captured URL with a new body gets 403."""
    client, lookups, _ = await start()
    query = callback_query(TOKEN, openid="o-alice")
    first = await post(client, text_message("地震", msg_id="302"), query)
    replay = await post(client, other, query)
    assert first.status == 200 and replay.status == 403 and lookups.calls == 1


async def test_a_signed_url_replayed_with_another_held_message_is_refused(start: Start) -> None:
    """Not even a message whose answer is held may ride on another message's query."""
    client, lookups, _ = await start()
    used = callback_query(TOKEN, openid="o-alice")
    other = text_message("火灾", msg_id="310")
    assert (await post(client, text_message("地震", msg_id="309"), used)).status == 200
    assert (await post(client, other, callback_query(TOKEN, openid="o-bob"))).status == 200
    assert (await post(client, other, used)).status == 403 and lookups.calls == 2


async def test_a_handshake_url_replayed_as_a_message_is_refused(start: Start) -> None:
    """A query used for the handshake cannot carry a message afterwards."""
    client, lookups, _ = await start()
    query = callback_query(TOKEN, echostr="e-7")
    assert (await client.get("/wechat/wx-office", params=query)).status == 200
    resp = await post(client, text_message("地震", msg_id="303"), query)
    assert resp.status == 403 and lookups.calls == 0


async def test_a_query_with_an_unreadable_body_cannot_be_replayed(start: Start) -> None:
    """A first use that was refused (400) still spends the query."""
    client, lookups, _ = await start()
    query = callback_query(TOKEN, openid="o-alice")
    assert (await post(client, b"<xml><unclosed></xml>", query)).status == 400
    resp = await post(client, text_message("地震", msg_id="304"), query)
    assert resp.status == 403 and lookups.calls == 0


async def test_the_same_query_twice_at_once_is_worked_on_once(start: Start) -> None:
    """Two identical requests in flight together: one lookup, both answered alike."""
    client, lookups, _ = await start(delay_s=0.2)
    query = callback_query(TOKEN, openid="o-alice")
    body = text_message("最新", msg_id="307")
    answers = await asyncio.gather(*(post(client, body, query) for _ in range(2)))
    texts = [(await r.text()).split("<CreateTime>")[0] for r in answers]
    assert [r.status for r in answers] == [200, 200] and lookups.calls == 1
    assert texts[0] == texts[1]


async def test_a_query_with_an_oversize_body_cannot_be_replayed(start: Start) -> None:
    """A first use refused as too large (413) spends the query too."""
    client, lookups, _ = await start()
    query = callback_query(TOKEN, openid="o-alice")
    assert (await post(client, text_message("地" * 40_000, msg_id="308"), query)).status == 413
    resp = await post(client, text_message("地震", msg_id="308"), query)
    assert resp.status == 403 and lookups.calls == 0


async def test_a_repeat_after_the_answer_is_forgotten_is_refused(start: Start) -> None:
    """A repeated query after the shared answer is dropped (60 s) gets 403, not a new lookup."""
    monotonic = Clock(1000.0)
    client, lookups, _ = await start(clock=monotonic)
    query = callback_query(TOKEN, openid="o-alice")
    body = text_message("地震", msg_id="305")
    assert (await post(client, body, query)).status == 200
    monotonic.now += 61
    assert (await post(client, body, query)).status == 403 and lookups.calls == 1


async def test_retries_signed_anew_still_share_the_answer(start: Start) -> None:
    """WeChat's retries with fresh nonces (the other reading) pass the guard and share one
    lookup by MsgId."""
    client, lookups, _ = await start(delay_s=0.2)
    body = text_message("最新", msg_id="306")
    queries = [callback_query(TOKEN, openid="o-alice") for _ in range(3)]
    answers = await asyncio.gather(*(post(client, body, q) for q in queries))
    assert [r.status for r in answers] == [200] * 3 and lookups.calls == 1


async def test_the_guard_forgets_what_left_the_window(start: Start) -> None:
    """Entries go with their window; the replay stays refused, now as stale."""
    wall = Clock(time.time())
    client, _, callback = await start(wall_clock=wall)
    query = callback_query(TOKEN, timestamp=str(int(wall.now)), echostr="e")
    assert (await client.get("/wechat/wx-office", params=query)).status == 200
    assert callback.remembered("wx-office") == 1
    wall.now += 301
    fresh = callback_query(TOKEN, timestamp=str(int(wall.now)), echostr="e")
    assert (await client.get("/wechat/wx-office", params=fresh)).status == 200
    assert callback.remembered("wx-office") == 1
    assert (await client.get("/wechat/wx-office", params=query)).status == 403


async def test_the_guard_is_bounded_and_a_forgotten_query_stays_refused(start: Start) -> None:
    """Past the limit the oldest entries go, and so do their timestamps: never a replay."""
    wall = Clock(time.time())
    client, lookups, callback = await start(wall_clock=wall, nonce_limit=4)
    queries = []
    for i in range(10):
        wall.now += 1
        queries.append(callback_query(TOKEN, timestamp=str(int(wall.now)), openid="o"))
        assert (await post(client, text_message("你好", msg_id=str(i)), queries[-1])).status == 200
    assert callback.remembered("wx-office") == 4
    replayed = await post(client, text_message("地震", msg_id="x"), queries[0])
    assert replayed.status == 403 and lookups.calls == 0


async def test_accounts_have_their_own_guard(start: Start) -> None:
    """A query seen by one account is not spent for another (each has its own cache)."""
    client, _, callback = await start()
    query = callback_query(TOKEN, echostr="e")
    assert (await client.get("/wechat/wx-office", params=query)).status == 200
    assert (await client.get("/wechat/wx-tight", params=query)).status == 200
    assert callback.remembered("wx-office") == callback.remembered("wx-tight") == 1


def test_the_window_is_an_account_option() -> None:
    """callback_window_s is validated with the account (30 s to an hour)."""
    from alertcast.channels.wechat import WechatOptions

    base = {"app_id": "a", "app_secret_env": "S"}
    assert WechatOptions.model_validate(base).callback_window_s == 300
    with pytest.raises(ValueError, match="callback_window_s"):
        WechatOptions.model_validate({**base, "callback_window_s": 5})
