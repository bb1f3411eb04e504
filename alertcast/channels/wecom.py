"""``wecom_robot``: WeCom (企业微信) group robot webhook.

API reference (docs/channels.md, facts §3): ``POST {base_url}/cgi-bin/webhook/send?key=KEY`` with
a JSON body; always HTTP 200, ``{"errcode": 0, "errmsg": "ok"}`` on success. msgtypes used here:
``markdown`` / ``markdown_v2`` (content ≤ 4096 bytes), ``text`` (≤ 2048 bytes, ``mentioned_list``,
``mentioned_mobile_list``) and ``news`` (one article; ``url`` required; title ≤ 128 bytes and
description ≤ 512 bytes, truncated by the platform). Oversize content is refused before sending,
with the field and the limit.
Each robot takes at most 20 messages a minute. The key is the only credential.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, HttpUrl

from alertcast.channels._vendor import (
    AUTH,
    NEXT_MINUTE,
    PERMANENT,
    TRANSIENT,
    EnvName,
    Fate,
    call_json,
    coded_reply,
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
)
from alertcast.lengths import Limit

__all__ = ["WecomChannel", "WecomOptions"]


class WecomOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    key_env: EnvName
    base_url: HttpUrl = HttpUrl("https://qyapi.weixin.qq.com")
    msgtype: Literal["auto", "markdown", "markdown_v2", "text", "news"] = "auto"
    mentioned_list: list[str] = Field(default_factory=list)
    mentioned_mobile_list: list[str] = Field(default_factory=list)


class WecomChannel(Channel):
    name = "wecom_robot"
    Options = WecomOptions
    default_format = "wecom_markdown"
    capabilities: ClassVar[frozenset[Action]] = frozenset({"post"})
    limits: ClassVar[Limits] = Limits(concurrency=1, per_minute=20)

    TEXT: ClassVar[Limit] = Limit(2048, "bytes")
    MARKDOWN: ClassVar[Limit] = Limit(4096, "bytes")  # markdown and markdown_v2
    formats: ClassVar[Mapping[str, FieldLimits]] = {
        "wecom_markdown": {"markdown": MARKDOWN},
        "wecom_text": {"text": TEXT},
        "text": {"text": TEXT},
    }
    ERROR_CODES: ClassVar[Mapping[int, Fate]] = {
        -1: TRANSIENT,  # system busy
        45009: NEXT_MINUTE,  # over 20 messages a minute
        93000: AUTH,  # invalid webhook url: the key was removed
        40008: PERMANENT,  # invalid message type
        40058: PERMANENT,  # invalid parameter (e.g. too long)
        44004: PERMANENT,  # empty content
    }

    async def send(self, msg: Outgoing) -> Receipt:
        assert isinstance(self.options, WecomOptions)
        body = self.body(msg.payload)
        url = str(self.options.base_url).rstrip("/") + "/cgi-bin/webhook/send"
        key = secret(self.secrets, self.options.key_env)
        reply = await call_json(self.session, "POST", url, params={"key": key}, json_body=body)
        coded_reply(reply, self.ERROR_CODES, vendor="wecom")
        return Receipt(http_status=reply.status)

    def body(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        """The webhook body for ``payload``; oversize content raises :class:`Permanent`."""
        assert isinstance(self.options, WecomOptions)
        msgtype = self._msgtype(payload)
        if msgtype == "news":
            return {"msgtype": "news", "news": {"articles": [_article(payload)]}}
        if msgtype != "text":
            content = _content(payload, "markdown")
            self.check_length("markdown", content, self.MARKDOWN)
            return {"msgtype": msgtype, msgtype: {"content": content}}
        key = "text" if payload.get("text") else "markdown"
        content = _content(payload, key)
        self.check_length(key if key == "text" else "markdown (sent as text)", content, self.TEXT)
        return {
            "msgtype": "text",
            "text": {
                "content": content,
                "mentioned_list": self.options.mentioned_list,
                "mentioned_mobile_list": self.options.mentioned_mobile_list,
            },
        }

    def _msgtype(self, payload: Mapping[str, Any]) -> str:
        """The configured msgtype; markdown ones fall back to text for a plain-text payload."""
        assert isinstance(self.options, WecomOptions)
        wanted = self.options.msgtype
        if wanted in ("news", "text") or not payload.get("markdown"):
            return "news" if wanted == "news" else "text"
        return "markdown" if wanted == "auto" else wanted


def _content(payload: Mapping[str, Any], key: str) -> str:
    content = str(payload.get(key) or "")
    if not content.strip():
        raise Permanent("nothing to send: empty content")
    return content


def _article(payload: Mapping[str, Any]) -> dict[str, str]:
    text = str(payload.get("text", ""))
    url = payload.get("url") or payload.get("source_url")
    if not url:
        raise Permanent("a news message needs a url")
    article = {
        "title": str(payload.get("title") or text.split("\n", 1)[0]),
        "description": str(payload.get("digest") or text),
        "url": str(url),
    }
    if payload.get("picurl"):
        article["picurl"] = str(payload["picurl"])
    return article
