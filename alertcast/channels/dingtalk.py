"""``dingtalk_robot``: DingTalk custom group robot.

API reference (docs/channels.md, facts §4.1): ``POST {base_url}/robot/send?access_token=TOKEN``
with a JSON body (``markdown`` {title, text} or ``text`` {content}, mentions in ``at``). Signed
robots add ``&timestamp=<ms>&sign=<base64(HMAC-SHA256(key=secret, msg="{ms}\\n{secret}"))>`` to the
URL; keyword robots drop a message that lacks one of their keywords: the renderer puts the
configured ``keyword`` in, and a text without it is refused here. Always HTTP 200 with
``errcode``. 20 messages a minute. A message over 20,000 bytes is refused (facts §4.1, whether the
whole body counts is UNCONFIRMED: the text is held to 19,000 to leave room for the rest).
310000 is the security check (signature, keyword, IP) and is permanent, except when it says the
timestamp is off: then the message is signed anew and sent once more, then left to a retry.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Mapping
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, HttpUrl

from alertcast.channels._vendor import (
    AUTH,
    NEXT_MINUTE,
    PERMANENT,
    TRANSIENT,
    EnvName,
    Fate,
    Reply,
    call_json,
    coded_reply,
    result_code,
    secret,
)
from alertcast.channels.base import (
    Action,
    Channel,
    FieldLimits,
    Limits,
    Outgoing,
    Permanent,
    Receipt,
    Transient,
)
from alertcast.lengths import Limit

__all__ = ["DingtalkChannel", "DingtalkOptions", "dingtalk_sign"]


class DingtalkOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    key_env: EnvName
    secret_env: EnvName | None = None
    keyword: str | None = Field(default=None, min_length=1)
    base_url: HttpUrl = HttpUrl("https://oapi.dingtalk.com")
    at_mobiles: list[str] = Field(default_factory=list)
    at_user_ids: list[str] = Field(default_factory=list)
    at_all: bool = False


def dingtalk_sign(secret_: str, timestamp_ms: int) -> str:
    """DingTalk's robot signature (base64; the caller URL-encodes it as a query value)."""
    message = f"{timestamp_ms}\n{secret_}".encode()
    return base64.b64encode(hmac.new(secret_.encode(), message, hashlib.sha256).digest()).decode()


class DingtalkChannel(Channel):
    name = "dingtalk_robot"
    Options = DingtalkOptions
    default_format = "dingtalk_markdown"
    capabilities: ClassVar[frozenset[Action]] = frozenset({"post"})
    limits: ClassVar[Limits] = Limits(concurrency=1, per_minute=20)

    MESSAGE_BYTES = 20_000
    TEXT: ClassVar[Limit] = Limit(MESSAGE_BYTES - 1_000, "bytes")  # room for title, JSON, at
    TITLE: ClassVar[Limit] = Limit(64, "chars")
    formats: ClassVar[Mapping[str, FieldLimits]] = {
        "dingtalk_markdown": {"title": TITLE, "markdown": TEXT},
        "text": {"text": TEXT},
    }
    keyword_option = "keyword"
    SECURITY_CHECK = 310000  # keyword / signature / IP / timestamp
    ERROR_CODES: ClassVar[Mapping[int, Fate]] = {
        -1: TRANSIENT,  # system busy
        130101: NEXT_MINUTE,  # send too fast, over 20 a minute
        410100: NEXT_MINUTE,  # rate-limited
        310000: PERMANENT,  # security check failed (clock skew handled apart)
        460101: PERMANENT,  # message too long
        300001: AUTH,  # token does not exist
        300005: AUTH,  # token does not exist
        400101: AUTH,  # token does not exist
        400102: AUTH,  # robot stopped
        400013: AUTH,  # group dissolved
        400106: AUTH,  # robot not found
    }

    async def send(self, msg: Outgoing) -> Receipt:
        body = self.body(msg.payload)
        reply = await self._post(body)
        if _clock_skew(reply):
            reply = await self._post(body)  # signed anew
            if _clock_skew(reply):
                raise Transient(
                    "dingtalk 310000: timestamp refused twice (clock skew?)",
                    code=self.SECURITY_CHECK,
                    http_status=reply.status,
                )
        coded_reply(reply, self.ERROR_CODES, vendor="dingtalk")
        return Receipt(http_status=reply.status)

    def body(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        """The robot body for ``payload``; refused if empty, oversize or without the keyword."""
        assert isinstance(self.options, DingtalkOptions)
        at = {
            "atMobiles": self.options.at_mobiles,
            "atUserIds": self.options.at_user_ids,
            "isAtAll": self.options.at_all,
        }
        key = "markdown" if payload.get("markdown") else "text"
        text = str(payload.get(key) or "")
        if not text.strip():
            raise Permanent("nothing to send: empty content")
        self.check_length(key, text, self.TEXT)
        if self.options.keyword and self.options.keyword not in text:
            raise Permanent(f"{key} lacks the keyword {self.options.keyword!r} the robot requires")
        if key == "text":
            return {"msgtype": "text", "text": {"content": text}, "at": at}
        title = str(payload.get("title") or text.split("\n", 1)[0])
        self.check_length("title", title, self.TITLE)
        return {"msgtype": "markdown", "markdown": {"title": title, "text": text}, "at": at}

    async def _post(self, body: Mapping[str, Any]) -> Reply:
        assert isinstance(self.options, DingtalkOptions)
        params = {"access_token": secret(self.secrets, self.options.key_env)}
        if self.options.secret_env:
            now_ms = int(time.time() * 1000)
            params |= {
                "timestamp": str(now_ms),
                "sign": dingtalk_sign(secret(self.secrets, self.options.secret_env), now_ms),
            }
        url = str(self.options.base_url).rstrip("/") + "/robot/send"
        return await call_json(self.session, "POST", url, params=params, json_body=body)


def _clock_skew(reply: Reply) -> bool:
    data = reply.data or {}
    if result_code(data.get("errcode", 0)) != DingtalkChannel.SECURITY_CHECK:
        return False
    message = str(data.get("errmsg", "")).lower()
    return "timestamp" in message or "时间戳" in message
