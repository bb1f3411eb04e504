"""``feishu_robot``: Feishu / Lark custom bot.

API reference (docs/channels.md, facts §4.2): ``POST {base_url}/open-apis/bot/v2/hook/<KEY>`` with a
JSON body: ``msg_type`` ``post`` (``content.post.zh_cn`` {title, content: lines of tags}),
``interactive`` (top-level ``card``) or ``text``. Signed bots add ``timestamp`` (seconds, a
string) and ``sign = base64(HMAC-SHA256(key="{timestamp}\\n{secret}", msg=b""))`` to the body — the
string to sign is the HMAC *key* and the message is empty. Keyword bots drop a message lacking
their keyword: the renderer puts the configured ``keyword`` in, and a message without it is refused
here. Success is ``code`` 0 (the legacy ``StatusCode`` is read when ``code`` is absent); body
≤ 20 KB (``post_lines`` and ``text`` are held to 18,000 bytes to leave room for the rest); 100 a
minute and 5 a second.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, HttpUrl

from alertcast.channels._vendor import (
    AUTH,
    PERMANENT,
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
    RateLimited,
    Receipt,
)
from alertcast.lengths import Limit

__all__ = ["FeishuChannel", "FeishuOptions", "feishu_sign"]

Line = list[dict[str, str]]


class FeishuOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    key_env: EnvName
    secret_env: EnvName | None = None
    keyword: str | None = Field(default=None, min_length=1)
    base_url: HttpUrl = HttpUrl("https://open.feishu.cn")
    msg_type: Literal["auto", "post", "interactive", "text"] = "auto"
    card_color: str = "red"


def feishu_sign(secret_: str, timestamp_s: int) -> str:
    """Feishu's bot signature: the HMAC key is ``"{timestamp}\\n{secret}"``, the message empty."""
    key = f"{timestamp_s}\n{secret_}".encode()
    return base64.b64encode(hmac.new(key, b"", hashlib.sha256).digest()).decode()


class FeishuChannel(Channel):
    name = "feishu_robot"
    Options = FeishuOptions
    default_format = "feishu_post"
    capabilities: ClassVar[frozenset[Action]] = frozenset({"post"})
    limits: ClassVar[Limits] = Limits(concurrency=1, per_minute=100, per_second=5)

    BODY: ClassVar[Limit] = Limit(20 * 1024, "bytes")  # the request body, as compact JSON
    POST_LINES: ClassVar[Limit] = Limit(18_000, "json-bytes")  # room for title, keyword, sign
    TEXT: ClassVar[Limit] = Limit(18_000, "bytes")
    TITLE: ClassVar[Limit] = Limit(64, "chars")
    formats: ClassVar[Mapping[str, FieldLimits]] = {
        "feishu_post": {"title": TITLE, "post_lines": POST_LINES},
        "text": {"text": TEXT},
    }
    keyword_option = "keyword"
    ERROR_CODES: ClassVar[Mapping[int, Fate]] = {
        11232: Fate(RateLimited, 2.0),  # throttled under system pressure (:00 / :30 peaks)
        9499: PERMANENT,  # bad request body
        19021: PERMANENT,  # signature mismatch or timestamp off by more than an hour
        19022: PERMANENT,  # caller IP not allowed
        19024: PERMANENT,  # keyword not found
        19001: AUTH,  # webhook token invalid (unconfirmed code)
    }

    async def send(self, msg: Outgoing) -> Receipt:
        assert isinstance(self.options, FeishuOptions)
        body = self.body(msg.payload)
        if self.options.secret_env:
            now_s = int(time.time())
            body |= {
                "timestamp": str(now_s),
                "sign": feishu_sign(secret(self.secrets, self.options.secret_env), now_s),
            }
        self.check_length(
            "body", json.dumps(body, ensure_ascii=False, separators=(",", ":")), self.BODY
        )
        key = secret(self.secrets, self.options.key_env)
        url = f"{str(self.options.base_url).rstrip('/')}/open-apis/bot/v2/hook/{key}"
        reply = await call_json(self.session, "POST", url, json_body=body)
        coded_reply(
            reply,
            self.ERROR_CODES,
            vendor="feishu",
            code_keys=("code", "StatusCode"),
            message_key="msg",
        )
        return Receipt(http_status=reply.status)

    def body(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        """The bot body (without signature) for ``payload``; refused without the keyword."""
        assert isinstance(self.options, FeishuOptions)
        title, lines = _title_and_lines(payload)
        if not lines:
            raise Permanent("nothing to send: empty content")
        shown = "\n".join(filter(None, [title, *(_plain(line) for line in lines)]))
        keyword = self.options.keyword
        if keyword and keyword not in shown:
            raise Permanent(f"the message lacks the keyword {keyword!r} the bot requires")
        kind = self.options.msg_type
        if kind == "auto":
            kind = "post" if payload.get("post_lines") else "text"
        if kind == "text":  # a text payload goes as it is; post lines as their plain text
            text = shown if payload.get("post_lines") else str(payload.get("text", ""))
            return {"msg_type": "text", "content": {"text": text}}
        if kind == "interactive":
            return {"msg_type": "interactive", "card": _card(title, lines, self.options.card_color)}
        return {
            "msg_type": "post",
            "content": {"post": {"zh_cn": {"title": title, "content": lines}}},
        }


def _title_and_lines(payload: Mapping[str, Any]) -> tuple[str, list[Line]]:
    raw = payload.get("post_lines")
    if isinstance(raw, list) and raw:
        lines = [[{str(k): str(v) for k, v in tag.items()} for tag in line] for line in raw]
        return str(payload.get("title", "")), lines
    text = str(payload.get("text", ""))
    return str(payload.get("title", "")), [
        [{"tag": "text", "text": part}] for part in text.split("\n") if part.strip()
    ]


def _plain(line: Line) -> str:
    return "".join(tag.get("text", "") for tag in line)


def _markdown(line: Line) -> str:
    return "".join(
        f"[{tag.get('text', '')}]({tag['href']})"
        if tag.get("tag") == "a" and tag.get("href")
        else tag.get("text", "")
        for tag in line
    )


def _card(title: str, lines: list[Line], color: str) -> dict[str, Any]:
    """An interactive card: header, the lines as lark_md, a button to the first link."""
    elements: list[dict[str, Any]] = [
        {"tag": "div", "text": {"tag": "lark_md", "content": "\n".join(map(_markdown, lines))}}
    ]
    link = next(
        (t["href"] for line in lines for t in line if t.get("tag") == "a" and t.get("href")), None
    )
    if link:
        elements.append(
            {
                "tag": "action",
                "actions": [
                    {
                        "tag": "button",
                        "type": "primary",
                        "url": link,
                        "text": {"tag": "plain_text", "content": "查看详情"},
                    }
                ],
            }
        )
    return {
        "config": {"wide_screen_mode": True},
        "header": {"template": color, "title": {"tag": "plain_text", "content": title}},
        "elements": elements,
    }
