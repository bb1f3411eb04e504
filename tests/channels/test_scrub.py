"""Tokens that platforms put in URL query strings never reach an error, a log or the API."""

from __future__ import annotations

import aiohttp
import pytest

from alertcast.channels._vendor import _safe
from alertcast.channels.base import Channel, Outgoing, Receipt, Transient
from alertcast.config import AccountConfig
from alertcast.secrets import Secrets

URL = "https://api.weixin.qq.com/cgi-bin/message/mass/sendall?access_token=LIVE_TOKEN_abc123"


class Timeouts(Channel):
    name = "timeouts"

    async def send(self, msg: Outgoing) -> Receipt:
        raise aiohttp.ClientConnectionError(f"Connection timeout to host {URL}")


async def test_connection_errors_lose_their_query_strings() -> None:
    """A connection error quoting a tokened URL keeps host and path, never the token."""
    account = AccountConfig(id="a", channel="timeouts")
    async with aiohttp.ClientSession() as session:
        channel = Timeouts(account, Timeouts.Options(), session, Secrets({}))
        with pytest.raises(Transient) as caught:
            await channel.deliver(Outgoing("d", "i", "k", {"text": "x"}))
    assert "LIVE_TOKEN" not in caught.value.reason
    assert "api.weixin.qq.com/cgi-bin/message/mass/sendall" in caught.value.reason


def test_vendor_errors_lose_their_query_strings() -> None:
    """The adapters' own error wording scrubs query strings too."""
    text = _safe(aiohttp.ClientConnectionError(f"Connection timeout to host {URL}"))
    assert "LIVE_TOKEN" not in text and "sendall" in text
