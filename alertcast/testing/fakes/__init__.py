"""Faithful fakes of the platforms (China's, Mastodon, Telegram, an SMS gateway), to test
adapters and rehearse an office's config.

Each fake is an aiohttp app that checks what the real platform checks (signatures, tokens, the
safe domain, byte and character limits, quotas, rate limits, duplicates), answers in the real
response shapes and codes, and can be told to fail (``fail_next``), or to answer as a gateway in
front of it would, with an error page echoing the request URL (``gateway_error``). Run one with
:func:`serve`::

    async with serve(FakeWecom(keys={"k"})) as base_url:
        ...  # point the account's base_url at base_url

or all of them from a shell: ``python -m alertcast.testing.fakes``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiohttp import web

from alertcast.testing.fakes._base import FakePlatform, GatewayPage, Recorded, Refusal
from alertcast.testing.fakes.mastodon import FakeMastodon
from alertcast.testing.fakes.robots import FakeDingtalk, FakeFeishu, FakeWecom, RobotSecurity
from alertcast.testing.fakes.sms import FakeSms, SmsRefusal
from alertcast.testing.fakes.telegram import FakeTelegram
from alertcast.testing.fakes.wechat import (
    FakeWechat,
    callback_query,
    event_message,
    text_message,
)
from alertcast.testing.fakes.weibo import FakeWeibo

__all__ = [
    "FakeDingtalk",
    "FakeFeishu",
    "FakeMastodon",
    "FakePlatform",
    "FakeSms",
    "FakeTelegram",
    "FakeWechat",
    "FakeWecom",
    "FakeWeibo",
    "GatewayPage",
    "Recorded",
    "Refusal",
    "RobotSecurity",
    "SmsRefusal",
    "callback_query",
    "event_message",
    "serve",
    "text_message",
]


@asynccontextmanager
async def serve(fake: FakePlatform, host: str = "127.0.0.1", port: int = 0) -> AsyncIterator[str]:
    """Run ``fake`` on ``host`` (a free port unless told) and yield its base URL."""
    runner = web.AppRunner(fake.app(), access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound_host, bound_port = runner.addresses[0][:2]
        yield f"http://{bound_host}:{bound_port}"
    finally:
        await runner.cleanup()
