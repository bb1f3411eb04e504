"""Plumbing shared by the vendor adapters: error-code tables, JSON calls, clocks.

Each platform module keeps its own table of ``code -> Fate``; :func:`raise_fate` turns a row into
the typed error. :func:`call_json` makes one HTTP call and never lets a credential that travels in
the URL (WeChat and DingTalk tokens, WeCom keys, Feishu hook ids) leak into an error message.
Lengths are counted by :mod:`alertcast.lengths` and checked by :meth:`Channel.check_length`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Any, NoReturn
from zoneinfo import ZoneInfo

import aiohttp
from pydantic import Field

from alertcast.channels.base import (
    AuthExpired,
    ChannelError,
    Permanent,
    QuotaExhausted,
    RateLimited,
    Transient,
)
from alertcast.channels.http import raise_for_status, scrub_urls
from alertcast.secrets import MissingSecret, Secrets

__all__ = [
    "AUTH",
    "NEXT_MINUTE",
    "PERMANENT",
    "SHANGHAI",
    "TRANSIENT",
    "EnvName",
    "Fate",
    "Reply",
    "call_json",
    "coded_reply",
    "next_midnight",
    "raise_fate",
    "result_code",
    "seconds_to_next_hour",
    "secret",
]

SHANGHAI = ZoneInfo("Asia/Shanghai")
EnvName = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]
"""The name of an environment variable that holds a secret (config keys ending in ``_env``)."""


@dataclass(frozen=True, slots=True)
class Fate:
    """What one vendor error code means: the error to raise and how long to wait first."""

    error: type[ChannelError]
    retry_after_s: float | None = None


TRANSIENT = Fate(Transient)
NEXT_MINUTE = Fate(RateLimited, 60.0)
PERMANENT = Fate(Permanent)
AUTH = Fate(AuthExpired)


def raise_fate(
    fate: Fate,
    reason: str,
    *,
    code: int | str | None,
    http_status: int | None,
    retry_after_s: float | None = None,
    until: datetime | None = None,
) -> NoReturn:
    """Raise ``fate``'s error; ``retry_after_s`` overrides the table's wait."""
    wait = fate.retry_after_s if retry_after_s is None else retry_after_s
    kw: dict[str, Any] = {"code": code, "http_status": http_status}
    if issubclass(fate.error, Transient):
        raise fate.error(reason, retry_after=wait, **kw)
    if issubclass(fate.error, QuotaExhausted):
        raise fate.error(reason, until=until, **kw)
    raise fate.error(reason, **kw)


@dataclass(frozen=True, slots=True)
class Reply:
    """One HTTP answer: status, the JSON object it carried (if any) and the raw text."""

    status: int
    data: Mapping[str, Any] | None
    text: str


async def call_json(
    session: aiohttp.ClientSession,
    method: str,
    url: str,
    *,
    params: Mapping[str, str] | None = None,
    json_body: Any = None,
    form: Mapping[str, str] | None = None,
) -> Reply:
    """One call; the body is parsed as a JSON object when it is one. Network errors -> Transient."""
    data = None
    headers = {}
    if json_body is not None:
        data = json.dumps(json_body, ensure_ascii=False, separators=(",", ":")).encode()
        headers["Content-Type"] = "application/json; charset=utf-8"
    try:
        async with session.request(
            method,
            url,
            params=params,
            data=form if form is not None else data,
            headers=headers,
            allow_redirects=False,
        ) as resp:
            text = await resp.text(errors="replace")
            return Reply(resp.status, _json_object(text), text)
    except aiohttp.ClientError as exc:
        raise Transient(f"connection error: {_safe(exc)}") from exc


def coded_reply(
    reply: Reply,
    table: Mapping[int, Fate],
    *,
    vendor: str,
    code_keys: tuple[str, ...] = ("errcode",),
    message_key: str = "errmsg",
) -> Mapping[str, Any]:
    """The reply's JSON when its result code is 0, else the table's error (unknown: permanent).

    The code decides, never the message text; the HTTP status only when there is no code.
    """
    data = reply.data or {}
    key = next((k for k in code_keys if k in data), None)
    if key is None:
        raise_for_status(reply.status, reply.text)
        raise Transient(f"{vendor} answered without a result code", http_status=reply.status)
    code = result_code(data[key])
    if code == 0:
        return data
    reason = f"{vendor} {code}: {str(data.get(message_key, ''))[:160]}"
    raise_fate(table.get(code, PERMANENT), reason, code=code, http_status=reply.status)


def result_code(raw: Any) -> int:
    """A vendor's numeric result code, sent as a number or a string (unreadable: -1)."""
    if isinstance(raw, bool):
        return -1
    try:
        return int(raw)
    except (TypeError, ValueError):
        return -1


def _json_object(text: str) -> Mapping[str, Any] | None:
    try:
        data = json.loads(text) if text else None
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def _safe(exc: aiohttp.ClientError) -> str:
    """The error without any URL (query strings and paths may carry tokens and keys)."""
    if isinstance(exc, aiohttp.ClientResponseError | aiohttp.InvalidURL):
        return type(exc).__name__
    if isinstance(exc, aiohttp.ClientConnectorError):
        return f"{type(exc).__name__}: cannot connect to {exc.host}:{exc.port}"
    return scrub_urls(f"{type(exc).__name__}: {exc}")[:200]


def secret(secrets: Secrets, variable: str) -> str:
    """A credential by variable name; a missing one makes the account unhealthy, not the message."""
    try:
        return secrets.get(variable)
    except MissingSecret as exc:
        raise AuthExpired(str(exc)) from exc


def next_midnight(now: datetime | None = None, tz: ZoneInfo = SHANGHAI) -> datetime:
    """The next local midnight in ``tz`` (daily platform quotas reset then)."""
    local = (now or datetime.now(tz)).astimezone(tz)
    return datetime.combine(local.date() + timedelta(days=1), datetime.min.time(), tzinfo=tz)


def seconds_to_next_hour(now_s: float) -> float:
    """Seconds until the next full hour (hourly rate-limit windows reset then)."""
    return max(1.0, math.ceil(now_s / 3600.0) * 3600.0 - now_s)
