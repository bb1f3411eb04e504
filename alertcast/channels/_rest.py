"""One JSON call to a REST API that answers with real HTTP statuses (Mastodon, Telegram).

Unlike :func:`alertcast.channels._vendor.call_json` it sends headers (``Authorization``,
``Idempotency-Key``) and keeps the response's headers (``X-RateLimit-*``). Network errors become
:class:`~alertcast.channels.base.Transient` without the URL: a Telegram bot token travels in
the path.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp

from alertcast.channels.base import Transient

__all__ = ["RestReply", "call_rest"]


@dataclass(frozen=True, slots=True)
class RestReply:
    """One HTTP answer: status, headers, the JSON object it carried (if any) and the raw text."""

    status: int
    headers: Mapping[str, str]
    data: Mapping[str, Any] | None
    text: str


async def call_rest(
    session: aiohttp.ClientSession,
    method: str,
    url: str,
    *,
    headers: Mapping[str, str] | None = None,
    json_body: Mapping[str, Any] | None = None,
) -> RestReply:
    """One call with a JSON body (if any); the answer parsed when it is a JSON object."""
    sent = dict(headers or {})
    data = None
    if json_body is not None:
        data = json.dumps(json_body, ensure_ascii=False, separators=(",", ":")).encode()
        sent["Content-Type"] = "application/json; charset=utf-8"
    try:
        async with session.request(
            method, url, data=data, headers=sent, allow_redirects=False
        ) as resp:
            text = await resp.text(errors="replace")
            return RestReply(resp.status, dict(resp.headers), _object(text), text)
    except aiohttp.ClientConnectorError as exc:
        raise Transient(f"cannot connect to {exc.host}:{exc.port}") from exc
    except aiohttp.ClientError as exc:
        raise Transient(f"connection error: {type(exc).__name__}") from exc


def _object(text: str) -> Mapping[str, Any] | None:
    try:
        data = json.loads(text) if text else None
    except ValueError:
        return None
    return data if isinstance(data, dict) else None
