"""``telegram``: a Telegram bot's messages to one chat — post, reply, edit, delete.

API reference (docs/channels.md, facts §6): ``POST {base_url}/bot<TOKEN>/<method>`` with a JSON
body; the answer is ``{"ok": true, "result": …}`` or ``{"ok": false, "error_code",
"description", "parameters"}`` with the HTTP status equal to ``error_code``.

* post: ``sendMessage`` — ``chat_id``, ``text`` (1–4096 UTF-16 units after entity parsing),
  ``parse_mode: "HTML"``. A ``telegram`` payload is HTML already (the renderer escapes ``&``,
  ``<``, ``>``); a plain-text payload is escaped so (encoded, not rewritten: it reads the same).
* reply: the same, threaded by ``reply_parameters`` (Bot API 7.0+) or, for an older or
  self-hosted Bot API server, ``reply_to_message_id`` (option ``reply_with``); with
  ``allow_sending_without_reply`` so a correction still goes when the original was deleted.
* edit: ``editMessageText`` — "message is not modified" is success (facts §6).
* delete: ``deleteMessage`` — only messages younger than 48 hours: an older one is refused here
  (:class:`Permanent`, saying why) before any call.

The receipt is ``<chat_id>:<message_id>:<date>``: the chat and the message for replies, edits
and deletes, the date for the 48-hour rule. A 429 waits ``parameters.retry_after`` seconds.
There is no idempotency key: a retry after a lost answer may post twice (docs/channels.md).
"""

from __future__ import annotations

import asyncio
import hashlib
import html
import math
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, HttpUrl

from alertcast.channels._rest import RestReply, call_rest
from alertcast.channels._vendor import AUTH, PERMANENT, TRANSIENT, EnvName, Fate, raise_fate, secret
from alertcast.channels.base import (
    Action,
    Channel,
    FieldLimits,
    Limits,
    Outgoing,
    Permanent,
    RateLimited,
    Receipt,
    Transient,
)
from alertcast.lengths import utf16_len

__all__ = ["TelegramChannel", "TelegramOptions", "telegram_length"]

ChatId = int | str
_TAG = re.compile(r"<[^>]*>")
DELETE_WITHIN_S = 48 * 3600


class TelegramOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    token_env: EnvName
    chat_id: int | str  # a chat's id, or "@channelusername"
    base_url: HttpUrl = HttpUrl("https://api.telegram.org")
    reply_with: Literal["reply_parameters", "reply_to_message_id"] = "reply_parameters"
    disable_notification: bool = False


class TelegramChannel(Channel):
    name = "telegram"
    Options = TelegramOptions
    default_format = "telegram"
    capabilities: ClassVar[frozenset[Action]] = frozenset({"post", "reply", "edit", "delete"})
    # Facts §6, per chat (one account is one chat): at most 1 message a second and 20 a minute
    # to a group; a bot sends at most GLOBAL_PER_SECOND in all, which accounts sharing its
    # token keep together here (see _pace).
    limits: ClassVar[Limits] = Limits(concurrency=1, per_minute=20, per_second=1)
    GLOBAL_PER_SECOND: ClassVar[int] = 30
    TEXT_UNITS: ClassVar[int] = 4096  # UTF-16 units after entity parsing
    # The text limit is counted after HTML entity parsing, in UTF-16 units: checked in send.
    formats: ClassVar[Mapping[str, FieldLimits]] = {"telegram": {}}

    ERRORS: ClassVar[Mapping[int, Fate]] = {
        400: PERMANENT,  # "Bad Request: chat not found", "… can't parse entities …", too long
        401: AUTH,  # "Unauthorized": the token was revoked
        403: AUTH,  # "Forbidden: bot was blocked by the user" / kicked: the chat is out of reach
        404: AUTH,  # "Not Found": the token is malformed
        409: PERMANENT,  # "Conflict"
        429: Fate(RateLimited),  # "Too Many Requests: retry after N", parameters.retry_after
        500: TRANSIENT,
        502: TRANSIENT,
        503: TRANSIENT,
        504: TRANSIENT,
    }
    NOT_MODIFIED: ClassVar[str] = "message is not modified"  # an edit that changes nothing
    GONE: ClassVar[str] = "message to delete not found"  # a retried delete

    _sent: ClassVar[dict[str, list[list[float]]]] = {}  # per bot: its sends' finish times

    async def send(self, msg: Outgoing) -> Receipt:
        if msg.action == "delete":
            return await self._delete(self._original(msg))
        text = _html(msg.payload)
        if msg.action == "edit":
            return await self._edit(self._original(msg), text)
        body = self._message(text)
        if msg.action == "reply":
            body.update(self._reply_to(self._original(msg)))
        return self._sent_receipt(await self._call("sendMessage", body))

    def _original(self, msg: Outgoing) -> _Sent:
        assert isinstance(self.options, TelegramOptions)
        return _Sent.parse(msg, str(self.options.chat_id))

    def _message(self, text: str) -> dict[str, Any]:
        assert isinstance(self.options, TelegramOptions)
        body: dict[str, Any] = {"chat_id": self.options.chat_id, "text": text, "parse_mode": "HTML"}
        if self.options.disable_notification:
            body["disable_notification"] = True
        return body

    def _reply_to(self, original: _Sent) -> dict[str, Any]:
        """The reply's threading, as the configured Bot API takes it; none when the account's
        chat changed since the original (it is in another chat)."""
        assert isinstance(self.options, TelegramOptions)
        if original.chat != str(self.options.chat_id):
            return {}
        if self.options.reply_with == "reply_to_message_id":
            return {"reply_to_message_id": original.message, "allow_sending_without_reply": True}
        return {
            "reply_parameters": {
                "message_id": original.message,
                "allow_sending_without_reply": True,
            }
        }

    async def _edit(self, original: _Sent, text: str) -> Receipt:
        body = {"chat_id": original.chat, "message_id": original.message, "text": text}
        reply = await self._call("editMessageText", {**body, "parse_mode": "HTML"})
        if _said(reply, self.NOT_MODIFIED):
            return Receipt(remote_id=original.remote_id, duplicate=True, http_status=reply.status)
        return self._sent_receipt(reply)

    async def _delete(self, original: _Sent) -> Receipt:
        age_s = time.time() - original.date if original.date else 0.0
        if age_s >= DELETE_WITHIN_S:
            raise Permanent(
                f"Telegram deletes a message only within 48 hours; this one was sent "
                f"{age_s / 3600:.0f} hours ago, so it stays (the correction stands beside it)"
            )
        body = {"chat_id": original.chat, "message_id": original.message}
        reply = await self._call("deleteMessage", body)
        if _said(reply, self.GONE):
            return Receipt(remote_id=original.remote_id, duplicate=True, http_status=reply.status)
        self._result(reply)
        return Receipt(remote_id=original.remote_id, http_status=reply.status)

    async def _call(self, method: str, body: Mapping[str, Any]) -> RestReply:
        assert isinstance(self.options, TelegramOptions)
        token = secret(self.secrets, self.options.token_env)
        url = f"{str(self.options.base_url).rstrip('/')}/bot{token}/{method}"
        send = await self._pace(hashlib.sha256(token.encode()).hexdigest())
        try:
            return await call_rest(self.session, "POST", url, json_body=body)
        finally:
            send[0] = time.monotonic()  # it counts from when it finished: the API saw it by then

    async def _pace(self, bot: str) -> list[float]:
        """Wait until this bot has fewer than GLOBAL_PER_SECOND sends in flight or finished in
        the last second; the new send's slot (in flight: ``inf``)."""
        while True:
            now = time.monotonic()
            held = [s for s in self._sent.get(bot, []) if now - s[0] < 1.0]
            self._sent[bot] = held
            if len(held) < self.GLOBAL_PER_SECOND:
                held.append(slot := [math.inf])
                return slot
            done = [s[0] for s in held if s[0] != math.inf]
            await asyncio.sleep(1.0 - (now - min(done)) if done else 0.05)

    def _sent_receipt(self, reply: RestReply) -> Receipt:
        message = self._result(reply)
        if not isinstance(message, Mapping):
            raise Transient("telegram answered without a message", http_status=reply.status)
        chat, message_id = (message.get("chat") or {}).get("id"), message.get("message_id")
        if chat is None or not isinstance(message_id, int):
            raise Transient("telegram answered without a message id", http_status=reply.status)
        remote_id = f"{chat}:{message_id}:{int(message.get('date') or time.time())}"
        return Receipt(remote_id=remote_id, http_status=reply.status)

    def _result(self, reply: RestReply) -> Any:
        """``result`` of an ``ok`` answer, or the typed error the answer means."""
        data = reply.data or {}
        if data.get("ok") is True:
            return data.get("result")
        raw_code = data.get("error_code")
        code = raw_code if isinstance(raw_code, int) else reply.status
        raw_params = data.get("parameters")
        params: Mapping[str, Any] = raw_params if isinstance(raw_params, Mapping) else {}
        reason = f"telegram {code}: {str(data.get('description') or reply.text)[:200]}"
        if "migrate_to_chat_id" in params:
            moved = params["migrate_to_chat_id"]
            reason += f"; the group is now the supergroup {moved}: set chat_id to it"
        fate = self.ERRORS.get(code) or (TRANSIENT if code >= 500 else PERMANENT)
        wait = params.get("retry_after")
        raise_fate(
            fate,
            reason,
            code=code,
            http_status=reply.status,
            retry_after_s=float(wait) if isinstance(wait, int | float) else None,
        )


@dataclass(frozen=True, slots=True)
class _Sent:
    """A message this channel sent, read from its receipt ``<chat>:<message>:<date>``."""

    remote_id: str
    chat: str
    message: int
    date: int  # 0: unknown (a bare message id, taken as one in the account's chat)

    @classmethod
    def parse(cls, msg: Outgoing, chat: str) -> _Sent:
        remote_id = msg.target_remote_id or ""
        parts = remote_id.rsplit(":", 2)
        try:
            if len(parts) == 3:
                return cls(remote_id, parts[0], int(parts[1]), int(parts[2]))
            return cls(remote_id, chat, int(remote_id), 0)
        except ValueError:
            raise Permanent(
                f"{msg.action} needs the original message's id, not {remote_id!r}"
            ) from None


def telegram_length(text: str) -> int:
    """UTF-16 units of an HTML text after entity parsing: tags gone, entities decoded."""
    return utf16_len(html.unescape(_TAG.sub("", text)))


def _html(payload: Mapping[str, Any]) -> str:
    """The payload's text as Telegram HTML, refused when empty or over 4096 units."""
    text = str(payload.get("text") or "")
    if str(payload.get("parse_mode") or "").upper() != "HTML":
        text = html.escape(text, quote=False)
    used = telegram_length(text)
    if not text.strip() or used == 0:
        raise Permanent("nothing to send: the text is empty")
    if used > TelegramChannel.TEXT_UNITS:
        raise Permanent(
            f"text is {used} UTF-16 units after entity parsing; "
            f"telegram takes at most {TelegramChannel.TEXT_UNITS}"
        )
    return text


def _said(reply: RestReply, words: str) -> bool:
    return reply.status == 400 and words in str((reply.data or {}).get("description", ""))
