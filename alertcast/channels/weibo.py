"""``weibo``: Sina Weibo open API v2 — share, repost, comment, delete.

API reference (docs/channels.md, facts §1): form-encoded POSTs to ``{base_url}/2/...``

* post: ``statuses/share.json`` — ``access_token``, ``status`` (≤140 units, must carry an http(s)
  URL on the app's registered *safe domain*, no ``#topic#``), ``rip`` (end-user IP). The renderer
  makes the text so (it links ``safe_domain_url`` when the text has no link on its domain); this
  adapter checks and refuses a text that is not, before calling.
* repost: ``statuses/repost.json`` — ``id``, ``status`` (comment text), ``is_comment``, ``rip``.
* reply: ``comments/create.json`` — ``id``, ``comment``, ``comment_ori``, ``rip``.
* delete: ``statuses/destroy.json`` — ``id``.

Success is the status (or comment) object; its ``idstr`` is the receipt (``id`` overflows 2^53).
Errors are ``{"request", "error_code", "error"}`` with a 4xx/5xx status; ``error_code`` comes as a
number or a string. Rate-limit codes wait for the hourly window, read from
``account/rate_limit_status.json`` when it answers.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from ipaddress import IPv4Address, IPv6Address
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, HttpUrl

from alertcast.channels._vendor import (
    AUTH,
    PERMANENT,
    TRANSIENT,
    EnvName,
    Fate,
    Reply,
    call_json,
    raise_fate,
    seconds_to_next_hour,
    secret,
)
from alertcast.channels.base import (
    Action,
    Budget,
    Channel,
    FieldLimits,
    Limits,
    Outgoing,
    Permanent,
    RateLimited,
    Receipt,
    Transient,
)
from alertcast.channels.http import raise_for_status
from alertcast.lengths import Limit, links_to_domain, weibo_topics

__all__ = ["WeiboChannel", "WeiboOptions"]

WINDOW = Fate(RateLimited)  # wait for the hourly window: asked of rate_limit_status


class WeiboOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    access_token_env: EnvName
    safe_domain_url: HttpUrl
    base_url: HttpUrl = HttpUrl("https://api.weibo.com")
    rip: IPv4Address | IPv6Address = IPv4Address("127.0.0.1")


class WeiboChannel(Channel):
    name = "weibo"
    Options = WeiboOptions
    default_format = "weibo"
    capabilities: ClassVar[frozenset[Action]] = frozenset({"post", "reply", "repost", "delete"})
    limits: ClassVar[Limits] = Limits(concurrency=2)
    # Facts §1.6, normal tier, per user per app: 30 posts/h, 60 comments/h, 150 calls/h in all
    # (a deletion spends only the total).
    budgets: ClassVar[Mapping[str, Budget]] = {
        "post": Budget(30, frozenset({"post", "repost"})),
        "comment": Budget(60, frozenset({"reply"})),
        "total": Budget(150),
    }
    timeout_s = 15.0
    TEXT: ClassVar[Limit] = Limit(140, "weibo")  # a post, a repost's text, a comment
    formats: ClassVar[Mapping[str, FieldLimits]] = {"weibo": {"text": TEXT}}
    link_domain_option = "safe_domain_url"

    ENDPOINTS: ClassVar[Mapping[str, str]] = {
        "post": "/2/statuses/share.json",
        "repost": "/2/statuses/repost.json",
        "reply": "/2/comments/create.json",
        "delete": "/2/statuses/destroy.json",
    }
    DELIVERED_CODES: ClassVar[frozenset[int]] = frozenset({20032})  # posted, shows in 1-2 min
    DUPLICATE_CODES: ClassVar[frozenset[int]] = frozenset({20017, 20019, 20111})
    ERROR_CODES: ClassVar[Mapping[int, Fate]] = {
        10001: TRANSIENT,  # system error
        10002: TRANSIENT,  # service unavailable
        10003: TRANSIENT,  # remote service error
        10009: TRANSIENT,  # too many pending tasks
        10010: TRANSIENT,  # job timeout
        10011: TRANSIENT,  # RPC error
        10022: WINDOW,  # IP requests over the hourly limit
        10023: WINDOW,  # user requests over the limit
        10024: WINDOW,  # user requests over the limit for this API
        20016: WINDOW,  # posting too frequently
        10014: PERMANENT,  # app lacks permission for this API
        10008: PERMANENT,  # invalid parameter
        10016: PERMANENT,  # missing parameter
        10017: PERMANENT,  # invalid parameter / "text not find domain!"
        10018: PERMANENT,  # request body too long
        20008: PERMANENT,  # empty content
        20012: PERMANENT,  # text over 140
        20018: PERMANENT,  # illegal URL
        20020: PERMANENT,  # advertising
        20021: PERMANENT,  # illegal content
        20101: PERMANENT,  # post does not exist
        20102: PERMANENT,  # not your post
        20103: PERMANENT,  # cannot repost your own post
        21301: AUTH,  # authentication failed
        21314: AUTH,  # token used
        21315: AUTH,  # token expired
        21316: AUTH,  # token revoked
        21317: AUTH,  # token rejected
        21318: AUTH,  # token used
        21319: AUTH,  # token rejected
        21327: AUTH,  # expired_token
        21332: AUTH,  # invalid access token (unconfirmed code)
    }

    async def send(self, msg: Outgoing) -> Receipt:
        assert isinstance(self.options, WeiboOptions)
        token = secret(self.secrets, self.options.access_token_env)
        form = {"access_token": token, **self._form(msg)}
        url = self._url(self.ENDPOINTS[msg.action])
        reply = await call_json(self.session, "POST", url, form=form)
        code = _error_code(reply.data)
        if code is None:
            return _receipt(reply)
        return await self._coded(reply, code, token)

    def _form(self, msg: Outgoing) -> dict[str, str]:
        assert isinstance(self.options, WeiboOptions)
        text = str(msg.payload.get("text", ""))
        rip = str(self.options.rip)
        if msg.action == "post":
            self._shareable(text)
            return {"status": text, "rip": rip}
        target = _target(msg)
        if msg.action == "repost":
            return {"id": target, "status": text, "is_comment": "0", "rip": rip}
        if msg.action == "reply":
            return {"id": target, "comment": text, "comment_ori": "0", "rip": rip}
        return {"id": target}

    def _shareable(self, text: str) -> None:
        """Refuse what ``statuses/share`` refuses: no link on the safe domain, a ``#topic#``."""
        assert isinstance(self.options, WeiboOptions)
        safe = str(self.options.safe_domain_url)
        if not links_to_domain(text, safe):
            raise Permanent(
                f"text carries no link on the safe domain of {safe} (share answers 10017)"
            )
        if topics := weibo_topics(text):
            raise Permanent(f"text carries the topic mark {topics[0]!r}, which share refuses")

    def _url(self, path: str) -> str:
        assert isinstance(self.options, WeiboOptions)
        return str(self.options.base_url).rstrip("/") + path

    async def _coded(self, reply: Reply, code: int, token: str) -> Receipt:
        if code in self.DELIVERED_CODES:
            return Receipt(
                remote_id=_idstr(reply.data), http_status=reply.status, detail={"code": code}
            )
        if code in self.DUPLICATE_CODES:
            return Receipt(duplicate=True, http_status=reply.status, detail={"code": code})
        fate = self.ERROR_CODES.get(code) or (TRANSIENT if str(code).startswith("1") else PERMANENT)
        wait = await self._window_s(token) if fate is WINDOW else None
        error = str((reply.data or {}).get("error", ""))[:160]
        raise_fate(
            fate, f"weibo {code}: {error}", code=code, http_status=reply.status, retry_after_s=wait
        )

    async def _window_s(self, token: str) -> float:
        """Seconds until the rate-limit window resets, as the platform tells, else the next hour."""
        try:
            reply = await call_json(
                self.session,
                "GET",
                self._url("/2/account/rate_limit_status.json"),
                params={"access_token": token},
            )
        except Transient:
            reply = None
        reset = (reply.data or {}).get("reset_time_in_seconds") if reply else None
        if isinstance(reset, int | float) and not isinstance(reset, bool) and reset > 0:
            return float(reset)
        return seconds_to_next_hour(time.time())


def _target(msg: Outgoing) -> str:
    if not msg.target_remote_id:
        raise Permanent(f"{msg.action} needs the original post's id")
    return msg.target_remote_id


def _error_code(data: Mapping[str, Any] | None) -> int | None:
    """``error_code`` as an int, whether the platform sent a number or a string."""
    raw = (data or {}).get("error_code")
    if isinstance(raw, bool) or raw is None:
        return None
    try:
        return int(raw)
    except (TypeError, ValueError):
        return None


def _receipt(reply: Reply) -> Receipt:
    raise_for_status(reply.status, reply.text)
    remote_id = _idstr(reply.data)
    if remote_id is None:
        raise Transient("weibo answered without a post id", http_status=reply.status)
    return Receipt(remote_id=remote_id, http_status=reply.status)


def _idstr(data: Mapping[str, Any] | None) -> str | None:
    data = data or {}
    value = data.get("idstr") or data.get("id")
    return str(value) if isinstance(value, str | int) and not isinstance(value, bool) else None
