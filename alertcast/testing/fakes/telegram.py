"""A fake Telegram Bot API (``/bot<TOKEN>/<method>``), from facts §6.

It checks what the Bot API checks: the token (401 ``Unauthorized``), the chat (400 ``chat not
found``; 403 ``bot was blocked by the user`` for a chat in :attr:`blocked`; a group upgraded to a
supergroup answers 400 with ``parameters.migrate_to_chat_id``), the text: empty, over 4096 UTF-16
units *after entity parsing*, or HTML Telegram cannot parse (an unsupported tag, an unclosed
one, a bare ``<`` or an ``&`` that starts no entity: 400 ``can't parse entities``). A reply
names a message in the chat by ``reply_parameters`` — or by ``reply_to_message_id`` — unless
``allow_sending_without_reply``; a server with ``legacy = True`` (before Bot API 7.0) knows only
``reply_to_message_id`` and ignores ``reply_parameters``, as an old server ignores any unknown
parameter. ``editMessageText`` of an unchanged text answers 400 ``message is not modified``;
``deleteMessage`` deletes only messages younger than 48 hours.

Limits: at most 20 messages a minute per chat and 30 a second per bot; past either the answer is
429 ``Too Many Requests: retry after N`` with ``parameters.retry_after``. The HTTP status always
equals ``error_code``.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Mapping
from html.parser import HTMLParser
from typing import Any

from aiohttp import web

from alertcast.testing.fakes._base import FakePlatform, Refusal, json_body

__all__ = ["FakeTelegram", "parse_html"]

MAX_UNITS = 4096
DELETE_WITHIN_S = 48 * 3600
TAGS = frozenset(
    {"b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "a", "code", "pre"}
    | {"tg-spoiler", "span", "blockquote", "tg-emoji"}
)
_ENTITY = re.compile(r"&(?:lt|gt|amp|quot|#\d+|#x[0-9a-fA-F]+);")


class _Entities(HTMLParser):
    """Telegram's HTML: the supported tags, balanced; the plain text they hold."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.text: list[str] = []
        self.open: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in TAGS:
            raise ValueError(f'unsupported start tag "{tag}"')
        if tag == "a" and not dict(attrs).get("href"):
            raise ValueError("a tag without href")
        self.open.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.open or self.open[-1] != tag:
            raise ValueError(f'unexpected end tag "{tag}"')
        self.open.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse_html(text: str) -> str:
    """The plain text of Telegram HTML, or ``ValueError`` saying what cannot be parsed."""
    for amp in re.finditer("&", text):
        if not _ENTITY.match(text, amp.start()):
            raise ValueError(f"can't find end of the entity starting at byte offset {amp.start()}")
    for lt in re.finditer("<", text):
        if not re.match(r"</?[a-z][a-z-]*(\s[^<>]*)?>", text[lt.start() :]):
            raise ValueError(f"unsupported start tag at byte offset {lt.start()}")
    parser = _Entities()
    parser.feed(text)
    parser.close()
    if parser.open:
        raise ValueError(f'can\'t find end tag corresponding to start tag "{parser.open[-1]}"')
    return "".join(parser.text)


def _units(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


class FakeTelegram(FakePlatform):
    """``tokens`` maps a bot token to its bot's id; ``chats`` are the chats the bot is in, by
    id (``-100…`` channels and supergroups, negative groups, positive private chats) with
    their ``@usernames`` in ``usernames``."""

    def __init__(
        self,
        tokens: Mapping[str, int] | None = None,
        *,
        chats: set[int] | None = None,
        usernames: Mapping[str, int] | None = None,
        legacy: bool = False,
        per_chat_per_minute: int = 20,
        per_bot_per_second: int = 30,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(clock)
        self.tokens = dict(tokens or {"123:tg-token": 123})
        self.chats = set(chats or {-1001})
        self.usernames = dict(usernames or {})
        self.blocked: set[int] = set()
        self.migrated: dict[int, int] = {}  # group id -> its supergroup's id
        self.legacy = legacy
        self.per_chat_per_minute = per_chat_per_minute
        self.per_bot_per_second = per_bot_per_second
        self.messages: dict[tuple[int, int], dict[str, Any]] = {}
        self.deleted: dict[tuple[int, int], dict[str, Any]] = {}
        self._next: dict[int, int] = {}
        self._sends: dict[str, list[float]] = {}

    def flood(self, retry_after: int, *, times: int = 1) -> None:
        """Answer the next request(s) with 429 and ``parameters.retry_after``."""
        refusal = Refusal(
            429,
            f"Too Many Requests: retry after {retry_after}",
            status=429,
            extra={"retry_after": retry_after},
        )
        self.inject(refusal, times=times)

    def routes(self) -> list[web.RouteDef]:
        return [web.post("/bot{token}/{method}", self._call)]

    def refuse(self, request: web.Request, refusal: Refusal) -> web.Response:
        body: dict[str, Any] = {
            "ok": False,
            "error_code": refusal.code,
            "description": refusal.message,
        }
        if refusal.extra:
            body["parameters"] = dict(refusal.extra)
        return web.json_response(body, status=refusal.code)

    async def _call(self, request: web.Request) -> web.Response:
        bot = self.tokens.get(request.match_info["token"])
        if bot is None:
            raise Refusal(401, "Unauthorized", status=401)
        method = request.match_info["method"]
        handlers = {
            "sendMessage": self._send,
            "editMessageText": self._edit,
            "deleteMessage": self._delete,
        }
        if method not in handlers:
            raise Refusal(404, "Not Found", status=404)
        body = await self._params(request)
        result = handlers[method](request.match_info["token"], body)
        return web.json_response({"ok": True, "result": result})

    async def _params(self, request: web.Request) -> dict[str, Any]:
        raw = await request.read()
        if request.content_type == "application/json":
            return json_body(raw, Refusal(400, "Bad Request: invalid JSON", status=400))
        return dict(await request.post()) if raw else dict(request.query)

    def _send(self, token: str, body: Mapping[str, Any]) -> dict[str, Any]:
        chat = self._chat(body)
        shown = self._text(body)
        reply_to = self._reply_to(chat, body)
        self._admit(token, chat)
        message_id = self._next[chat] = self._next.get(chat, 0) + 1
        message = {
            "message_id": message_id,
            "date": int(self.clock()),
            "chat": {"id": chat, "type": "channel" if chat < -1_000_000 else "group"},
            "text": shown,
            "html": str(body.get("text")),
            "reply_to_message": reply_to,
            "disable_notification": bool(body.get("disable_notification")),
        }
        self.messages[(chat, message_id)] = message
        return {k: v for k, v in message.items() if k != "html" and v is not None}

    def _edit(self, token: str, body: Mapping[str, Any]) -> dict[str, Any]:
        chat = self._chat(body)
        message = self.messages.get((chat, _int(body.get("message_id"))))
        if message is None:
            raise Refusal(400, "Bad Request: message to edit not found", status=400)
        shown = self._text(body)
        if shown == message["text"] and str(body.get("text")) == message["html"]:
            raise Refusal(
                400,
                "Bad Request: message is not modified: specified new message content and reply "
                "markup are exactly the same as a current content and reply markup of the message",
                status=400,
            )
        message.update(text=shown, html=str(body.get("text")), edit_date=int(self.clock()))
        return {k: v for k, v in message.items() if k != "html" and v is not None}

    def _delete(self, token: str, body: Mapping[str, Any]) -> bool:
        chat = self._chat(body)
        key = (chat, _int(body.get("message_id")))
        message = self.messages.get(key)
        if message is None:
            raise Refusal(400, "Bad Request: message to delete not found", status=400)
        if self.clock() - message["date"] >= DELETE_WITHIN_S:
            raise Refusal(400, "Bad Request: message can't be deleted", status=400)
        self.deleted[key] = self.messages.pop(key)
        return True

    def _chat(self, body: Mapping[str, Any]) -> int:
        raw = body.get("chat_id")
        if raw in (None, ""):
            raise Refusal(400, "Bad Request: chat_id is empty", status=400)
        chat = self.usernames.get(str(raw)) if str(raw).startswith("@") else _int(raw)
        if chat in self.migrated:
            raise Refusal(
                400,
                "Bad Request: group chat was upgraded to a supergroup chat",
                status=400,
                extra={"migrate_to_chat_id": self.migrated[chat]},
            )
        if chat is None or chat not in self.chats:
            raise Refusal(400, "Bad Request: chat not found", status=400)
        if chat in self.blocked:
            raise Refusal(403, "Forbidden: bot was blocked by the user", status=403)
        return chat

    def _text(self, body: Mapping[str, Any]) -> str:
        """The text as shown: parsed when ``parse_mode`` is HTML; refused as Telegram would."""
        raw = str(body.get("text") or "")
        mode = str(body.get("parse_mode") or "")
        shown = raw
        if mode == "HTML":
            try:
                shown = parse_html(raw)
            except ValueError as exc:
                raise Refusal(
                    400, f"Bad Request: can't parse entities: {exc}", status=400
                ) from None
        if not shown.strip():
            raise Refusal(400, "Bad Request: message text is empty", status=400)
        if _units(shown) > MAX_UNITS:
            raise Refusal(400, "Bad Request: message is too long", status=400)
        return shown

    def _reply_to(self, chat: int, body: Mapping[str, Any]) -> dict[str, Any] | None:
        """The message replied to, by either parameter; ``None`` for no reply or a missing
        one that may be skipped."""
        params = body.get("reply_parameters")
        if isinstance(params, str):  # form bodies carry it JSON-serialised
            params = json_body(params.encode(), Refusal(400, "Bad Request: bad reply", status=400))
        if self.legacy or not isinstance(params, Mapping):
            params = {
                "message_id": body.get("reply_to_message_id"),
                "allow_sending_without_reply": body.get("allow_sending_without_reply"),
            }
        if params.get("message_id") is None:
            return None
        replied = self.messages.get((chat, _int(params["message_id"])))
        if replied is None and not params.get("allow_sending_without_reply"):
            raise Refusal(400, "Bad Request: message to be replied not found", status=400)
        if replied is None:
            return None
        return {k: v for k, v in replied.items() if k not in ("html", "reply_to_message")}

    def _admit(self, token: str, chat: int) -> None:
        now = self.clock()
        for key, limit, window_s in (
            (f"chat:{chat}", self.per_chat_per_minute, 60.0),
            (f"bot:{token}", self.per_bot_per_second, 1.0),
        ):
            recent = [t for t in self._sends.get(key, []) if now - t < window_s]
            self._sends[key] = recent
            if len(recent) >= limit:
                wait = max(1, math.ceil(recent[0] + window_s - now))
                raise Refusal(
                    429,
                    f"Too Many Requests: retry after {wait}",
                    status=429,
                    extra={"retry_after": wait},
                )
        for key in (f"chat:{chat}", f"bot:{token}"):
            self._sends[key].append(now)


def _int(value: object) -> int:
    try:
        return int(str(value))
    except ValueError:
        raise Refusal(400, "Bad Request: invalid integer", status=400) from None
