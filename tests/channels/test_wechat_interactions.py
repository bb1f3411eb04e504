"""The WeChat callback notes who opened a customer-service window (facts §2.6), before it replies.

Driven like WeChat drives it: signed POSTs of a follower's message or event to the endpoint.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from alertcast.channels.wechat_callback import NOTE_LIMIT_S, WechatCallback, parse_inbound
from alertcast.secrets import Secrets
from alertcast.testing.fakes import callback_query, event_message, text_message
from tests.channels.test_wechat_callback import ACCOUNT, TOKEN, Lookups

Client = TestClient[web.Request, web.Application]
NOW = 1_800_000_000.0


class Notes:
    """An ``interactions`` callable that records its calls, and can fail or stall."""

    def __init__(self, fail: BaseException | None = None, delay_s: float = 0.0) -> None:
        self.calls: list[tuple[str, str, str, float]] = []
        self.fail, self.delay_s = fail, delay_s

    async def __call__(self, account: str, openid: str, kind: str, at: float) -> None:
        await asyncio.sleep(self.delay_s)
        if self.fail is not None:
            raise self.fail
        self.calls.append((account, openid, kind, at))


Start = Callable[..., Awaitable[Client]]


@pytest.fixture
def start(aiohttp_client: Any) -> Start:
    async def start(notes: Notes) -> Client:
        app = web.Application()
        callback = WechatCallback(
            [ACCOUNT],
            Secrets({"WX_CALLBACK": TOKEN}),
            Lookups(),
            interactions=notes,
            wall_clock=lambda: NOW,
        )
        callback.install(app)
        client: Client = await aiohttp_client(app)
        return client

    return start


async def post(client: Client, body: bytes, token: str = TOKEN) -> Any:
    query = callback_query(token, timestamp=str(int(NOW)), openid="o-bob")
    headers = {"Content-Type": "text/xml"}
    return await client.post("/wechat/wx-office", data=body, params=query, headers=headers)


async def test_a_message_is_noted_once_per_msgid_before_the_reply(start: Start) -> None:
    """A follower's text is noted as a message, at the callback's clock; WeChat's retry is not."""
    notes = Notes()
    client = await start(notes)
    body = text_message("地震", msg_id="7001", from_user="o-bob")
    first = await post(client, body)
    await post(client, body)
    assert "泸定县" in parse_inbound(await first.read()).content
    assert notes.calls == [("wx-office", "o-bob", "message", NOW)]


@pytest.mark.parametrize(
    ("event", "kind"),
    [
        ("subscribe", "event"),
        ("SCAN", "event"),
        ("CLICK", "event"),
        ("VIEW", "event"),
        ("unsubscribe", "gone"),
        ("LOCATION", None),  # reported by the client, not the follower's doing
        ("MASSSENDJOBFINISH", None),
    ],
)
async def test_events_that_open_a_window_are_noted(
    start: Start, event: str, kind: str | None
) -> None:
    """Follow, scan and menu clicks open the 1-minute window; an unfollow closes every one."""
    notes = Notes()
    client = await start(notes)
    resp = await post(client, event_message(event, from_user="o-bob", create_time=int(NOW)))
    assert resp.status == 200
    assert notes.calls == ([("wx-office", "o-bob", kind, NOW)] if kind else [])


async def test_a_bad_signature_notes_nothing(start: Start) -> None:
    """Only authenticated requests are interactions."""
    notes = Notes()
    client = await start(notes)
    resp = await post(client, text_message("地震", msg_id="7002", from_user="o-bob"), "wrong")
    assert resp.status == 403 and notes.calls == []


async def test_a_failing_store_never_costs_the_reply(start: Start) -> None:
    """The note raises: the follower still gets the keyword's answer."""
    client = await start(Notes(fail=RuntimeError("database is locked")))
    resp = await post(client, text_message("地震", msg_id="7003", from_user="o-bob"))
    reply = parse_inbound(await resp.read())
    assert reply.to_user == "o-bob" and "泸定县6.8级地震" in reply.content


async def test_a_stalled_store_is_given_up_inside_the_budget(start: Start) -> None:
    """A note that would take 30 s is cut at NOTE_LIMIT_S; the reply comes, well within 5 s."""
    assert NOTE_LIMIT_S <= 1.0
    client = await start(Notes(delay_s=30.0))
    started = time.monotonic()
    resp = await post(client, text_message("地震", msg_id="7004", from_user="o-bob"))
    assert "泸定县6.8级地震" in parse_inbound(await resp.read()).content
    assert time.monotonic() - started < NOTE_LIMIT_S + 2.0
