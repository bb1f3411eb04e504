"""A fake WeChat Official Account API, and the WeChat side of a callback, for rehearsals.

:class:`FakeWechat` serves ``cgi-bin/token``, ``cgi-bin/stable_token``, ``message/mass/sendall``,
``message/mass/delete``, ``draft/add``, ``freepublish/submit`` and ``message/template/send``. Like
the real one it answers HTTP 200 with ``{"errcode", "errmsg"}`` (errmsg carries a ``rid`` suffix,
so only the code can be relied on) and checks: tokens (41001 missing, 40001 unknown or replaced,
42001 expired; a new ``cgi-bin/token`` retires the previous one after ``overlap_s``), app
credentials (40013, 40125), ``\\u``-escaped Chinese (40033), the daily mass quota per app in
Asia/Shanghai (45028), ``clientmsgid`` (≤ 64 bytes, 45067; a repeat answers 45065 with the first
send's ``msgid``; without one, identical content to the same audience counts as a repeat), 60 mass
calls a minute (45011), known drafts (40007), followers (43004), refusals (43101), template ids
(40037) and the 20-character one-line rule for template values (47003).

``message/custom/send`` (customer-service messages, facts §2.6) is admitted only inside a
follower's interaction window, which tests open with :meth:`FakeWechat.user_wrote` (5 messages
within 48 h) and :meth:`FakeWechat.user_clicked` (a menu click, follow or scan: 3 within 1
minute): outside every window 45015, past the allowance of every open one 45047, an openid that
never followed 40003, more than ``custom_per_day`` calls a day 45009. Which window a message
spends when both are open is undocumented; the fake spends both. What each follower got is in
:meth:`FakeWechat.received`.

:func:`callback_query` and :func:`text_message` build what WeChat sends to a callback URL.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import secrets
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web

from alertcast.testing.fakes._base import FakePlatform, Refusal, Window, json_body

__all__ = ["FakeWechat", "callback_query", "event_message", "text_message"]

SHANGHAI = ZoneInfo("Asia/Shanghai")
USER_PAGE = 10_000  # user/get returns at most 10,000 openids per call
# Customer-service windows since 2023-06-12 (facts §2.6): (seconds open, messages allowed).
AFTER_MESSAGE = (48 * 3600.0, 5)
AFTER_EVENT = (60.0, 3)

MESSAGES = {
    -1: "system error",
    40001: "invalid credential, access_token is invalid or not latest",
    40003: "invalid openid",
    40007: "invalid media_id",
    40008: "invalid message type",
    40013: "invalid appid",
    40033: "invalid charset. please check your request, if include \\uxxxx will create fail!",
    40037: "invalid template_id",
    40125: "invalid appsecret",
    40164: "invalid ip, not in whitelist",
    41001: "access_token missing",
    42001: "access_token expired",
    43004: "require subscribe",
    43101: "user refuse to accept the msg",
    44004: "empty content",
    45015: "response out of time limit or subscription is canceled",
    45047: "out of response count limit",
    45009: "reach max api daily quota limit",
    45011: "api minute-quota reach limit",
    45028: "has no masssend quota",
    45065: "clientmsgid exist",
    45066: "clientmsgid retry too fast",
    45067: "clientmsgid size out of limit",
    47003: "argument invalid!",
}
_ESCAPED = re.compile(rb"\\u[0-9a-fA-F]{4}")
TEMPLATE_VALUE_CHARS = 20
SERVICE_PER_FOLLOWER_MONTH = 4  # facts §2.3: a service account's follower gets 4 mass sends a month


@dataclass
class _Token:
    app_id: str
    expires_at: float


@dataclass
class _Allowance:
    """One interaction window of one follower: when it closes, how many messages it takes."""

    closes_at: float
    left: int


class FakeWechat(FakePlatform):
    quiet_paths = frozenset({"/cgi-bin/token", "/cgi-bin/stable_token"})

    def __init__(
        self,
        apps: Mapping[str, str] | None = None,
        *,
        mass_per_day: int = 1,
        token_ttl_s: float = 7200.0,
        overlap_s: float = 300.0,
        followers: Iterable[str] = ("o-alice", "o-bob", "o-carol"),
        refused: Iterable[str] = (),
        templates: Iterable[str] = ("TPL-ALERT",),
        mass_per_minute: int = 60,
        template_dedupe: bool = True,
        template_latency_s: float = 0.0,
        custom_per_day: int = 500_000,
        service_apps: Iterable[str] = (),
        service_mass_per_day: int = 100,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(clock)
        self.apps = dict(apps or {"wx-app": "wx-secret"})
        # Subscription accounts: mass_per_day successful mass sends a day (1 on the platform).
        # Service accounts (facts §2.3): the API takes service_mass_per_day a day, and each
        # follower receives at most SERVICE_PER_FOLLOWER_MONTH a month; extra sends fail for
        # that follower only (the job is accepted; mass_received shows who got what).
        self.mass_per_day = mass_per_day
        self.service_apps = set(service_apps)
        self.service_mass_per_day = service_mass_per_day
        self.mass_received: dict[str, list[int]] = {}
        self._monthly: dict[tuple[str, str, str], int] = {}  # (app, openid, YYYY-MM) -> sends
        self.token_ttl_s = token_ttl_s
        self.overlap_s = overlap_s
        # Followers in the order they followed (what user/get pages through); tags by id.
        self.followers: dict[str, None] = dict.fromkeys(followers)
        self.tags: dict[int, set[str]] = {}
        self.page_size = USER_PAGE
        self.refused = set(refused)
        self.templates = set(templates)
        # Whether template/send drops a repeated client_msg_id: facts §2.5 marks the field
        # UNCONFIRMED, so tests run both readings.
        self.template_dedupe = template_dedupe
        self.template_latency_s = template_latency_s
        self.mass_sent: dict[int, dict[str, Any]] = {}
        self.drafts: dict[str, list[dict[str, Any]]] = {}
        self.published: dict[str, str] = {}
        self.template_sent: list[dict[str, Any]] = []
        self.custom_per_day = custom_per_day
        self.custom_sent: list[dict[str, Any]] = []
        self._windows: dict[tuple[str, str], _Allowance] = {}  # (openid, "message" | "event")
        self._custom_used: dict[tuple[str, date], int] = {}
        self._left: set[str] = set()  # openids that followed once and left
        self._tokens: dict[str, _Token] = {}
        self._current: dict[tuple[str, bool], str] = {}
        self._client_ids: dict[tuple[str, str], int] = {}
        self._template_ids: dict[tuple[str, str], int] = {}
        self._mass_used: dict[tuple[str, date], int] = {}
        self._mass_window = Window(mass_per_minute, 60.0)
        self._next_id = 1_000_000_000

    # -- control ----------------------------------------------------------------------------

    @property
    def token_calls(self) -> int:
        return sum(1 for r in self.requests if r.path in self.quiet_paths)

    def expire_tokens(self) -> None:
        """Every token handed out so far is now expired (42001)."""
        for token in self._tokens.values():
            token.expires_at = min(token.expires_at, self.clock() - 1)

    def fail_next(
        self,
        errcode: int,
        *,
        path: str | None = None,
        times: int = 1,
        after: int = 0,
        **extra: Any,
    ) -> None:
        """Answer the next API call(s) (not token calls, unless ``path`` says) with ``errcode``,
        after letting ``after`` of them through."""
        self.inject(
            Refusal(errcode, MESSAGES.get(errcode, "error"), extra=extra),
            path=path,
            times=times,
            after=after,
        )

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/cgi-bin/token", self._token),
            web.post("/cgi-bin/stable_token", self._stable_token),
            web.post("/cgi-bin/message/mass/sendall", self._sendall),
            web.post("/cgi-bin/message/mass/delete", self._mass_delete),
            web.post("/cgi-bin/draft/add", self._draft_add),
            web.post("/cgi-bin/freepublish/submit", self._freepublish),
            web.post("/cgi-bin/message/template/send", self._template_send),
            web.post("/cgi-bin/message/custom/send", self._custom_send),
            web.get("/cgi-bin/user/get", self._user_get),
            web.post("/cgi-bin/user/tag/get", self._tag_get),
        ]

    def refuse(self, request: web.Request, refusal: Refusal) -> web.Response:
        rid = secrets.token_hex(4)
        return web.json_response(
            {"errcode": refusal.code, "errmsg": f"{refusal.message} rid: {rid}", **refusal.extra}
        )

    # -- tokens -----------------------------------------------------------------------------

    async def _token(self, request: web.Request) -> web.Response:
        q = request.query
        if q.get("grant_type") != "client_credential":
            raise Refusal(40002, "invalid grant_type")
        self._credentials(q.get("appid", ""), q.get("secret", ""))
        return web.json_response(self._issue(q["appid"], stable=False))

    async def _stable_token(self, request: web.Request) -> web.Response:
        body = json_body(await request.read(), Refusal(47001, "data format error"))
        app_id = str(body.get("appid", ""))
        self._credentials(app_id, str(body.get("secret", "")))
        current = self._tokens.get(self._current.get((app_id, True), ""))
        remaining = current.expires_at - self.clock() if current else 0.0
        if current is not None and not body.get("force_refresh") and remaining > self.overlap_s:
            token = self._current[(app_id, True)]
            return web.json_response({"access_token": token, "expires_in": int(remaining)})
        return web.json_response(self._issue(app_id, stable=True))

    def _credentials(self, app_id: str, secret: str) -> None:
        if app_id not in self.apps:
            raise Refusal(40013, MESSAGES[40013])
        if secret != self.apps[app_id]:
            raise Refusal(40125, MESSAGES[40125])

    def _issue(self, app_id: str, *, stable: bool) -> dict[str, Any]:
        now = self.clock()
        old = self._tokens.get(self._current.get((app_id, stable), ""))
        if old is not None:
            old.expires_at = min(old.expires_at, now + self.overlap_s)
        token = secrets.token_urlsafe(64)
        self._tokens[token] = _Token(app_id, now + self.token_ttl_s)
        self._current[(app_id, stable)] = token
        return {"access_token": token, "expires_in": int(self.token_ttl_s)}

    async def _call(self, request: web.Request) -> tuple[str, dict[str, Any]]:
        """The app a call is made for, and its JSON body, after the checks every API makes."""
        app_id = self._authorised(request)
        raw = await request.read()
        if _ESCAPED.search(raw):
            raise Refusal(40033, MESSAGES[40033])
        return app_id, json_body(raw, Refusal(47001, "data format error"))

    def _authorised(self, request: web.Request) -> str:
        """The app whose valid token the call carries."""
        token = request.query.get("access_token")
        if not token:
            raise Refusal(41001, MESSAGES[41001])
        found = self._tokens.get(token)
        if found is None:
            raise Refusal(40001, MESSAGES[40001])
        if found.expires_at <= self.clock():
            raise Refusal(42001, MESSAGES[42001])
        return found.app_id

    # -- mass sends and articles --------------------------------------------------------------

    async def _sendall(self, request: web.Request) -> web.Response:
        app_id, body = await self._call(request)
        content = _mass_content(body, self.drafts)
        key = (app_id, _client_id(body, content))
        if key in self._client_ids:
            return _refusal(45065, msgid=self._client_ids[key])
        if not self._mass_window.admit(app_id, self.clock()):
            raise Refusal(45011, MESSAGES[45011])
        day = datetime.fromtimestamp(self.clock(), SHANGHAI).date()
        today = (app_id, day)
        per_day = self.service_mass_per_day if app_id in self.service_apps else self.mass_per_day
        if self._mass_used.get(today, 0) >= per_day:
            raise Refusal(45028, MESSAGES[45028])
        self._mass_used[today] = self._mass_used.get(today, 0) + 1
        msg_id = self._new_id()
        self._receive(app_id, body.get("filter"), msg_id, day.strftime("%Y-%m"))
        self._client_ids[key] = msg_id
        self.mass_sent[msg_id] = {"app_id": app_id, **body}
        answer: dict[str, Any] = {
            "errcode": 0,
            "errmsg": "send job submission success",
            "msg_id": msg_id,
        }
        if body.get("msgtype") == "mpnews":
            answer["msg_data_id"] = self._new_id()
        return web.json_response(answer)

    def _receive(self, app_id: str, audience: object, msg_id: int, month: str) -> None:
        """Who a mass send reaches: the audience, less (on a service account) the followers
        who already received SERVICE_PER_FOLLOWER_MONTH mass sends this month."""
        tag = audience.get("tag_id") if isinstance(audience, Mapping) else None
        to_all = not isinstance(audience, Mapping) or audience.get("is_to_all", True)
        people = list(self.followers) if to_all else sorted(self.tags.get(_int(tag), set()))
        for openid in people:
            key = (app_id, openid, month)
            if app_id in self.service_apps:
                if self._monthly.get(key, 0) >= SERVICE_PER_FOLLOWER_MONTH:
                    continue
                self._monthly[key] = self._monthly.get(key, 0) + 1
            self.mass_received.setdefault(openid, []).append(msg_id)

    async def _mass_delete(self, request: web.Request) -> web.Response:
        _, body = await self._call(request)
        if self.mass_sent.pop(_int(body.get("msg_id")), None) is None:
            raise Refusal(40007, "invalid msg_id")
        return web.json_response({"errcode": 0, "errmsg": "ok"})

    async def _draft_add(self, request: web.Request) -> web.Response:
        _, body = await self._call(request)
        articles = body.get("articles")
        if not isinstance(articles, list) or not 1 <= len(articles) <= 8:
            raise Refusal(47003, MESSAGES[47003] + " articles")
        for article in articles:
            _check_article(article)
        media_id = secrets.token_hex(16)
        self.drafts[media_id] = articles
        return web.json_response({"media_id": media_id})

    async def _freepublish(self, request: web.Request) -> web.Response:
        _, body = await self._call(request)
        media_id = str(body.get("media_id", ""))
        if media_id not in self.drafts:
            raise Refusal(40007, MESSAGES[40007])
        publish_id = str(self._new_id())
        self.published[publish_id] = media_id
        return web.json_response(
            {
                "errcode": 0,
                "errmsg": "ok",
                "publish_id": publish_id,
                "msg_data_id": str(self._new_id()),
            }
        )

    # -- template messages ------------------------------------------------------------------

    async def _template_send(self, request: web.Request) -> web.Response:
        _, body = await self._call(request)
        touser = str(body.get("touser", ""))
        if touser in self.refused:
            raise Refusal(43101, MESSAGES[43101])
        if touser not in self.followers:
            raise Refusal(43004, MESSAGES[43004])
        if body.get("template_id") not in self.templates:
            raise Refusal(40037, MESSAGES[40037])
        _check_template_data(body.get("data"))
        if self.template_latency_s:
            await asyncio.sleep(self.template_latency_s)
        client_id = body.get("client_msg_id") if self.template_dedupe else None
        key = (touser, str(client_id or secrets.token_hex(8)))
        if key not in self._template_ids:  # client_msg_id dedupe (facts §2.5: unconfirmed)
            self._template_ids[key] = self._new_id()
            self.template_sent.append(body)
        return web.json_response({"errcode": 0, "errmsg": "ok", "msgid": self._template_ids[key]})

    # -- customer-service messages ------------------------------------------------------------

    def user_wrote(self, openid: str, *, at: float | None = None) -> None:
        """``openid`` (a follower from now on) sent the account a message at ``at`` (now)."""
        self._open(openid, "message", AFTER_MESSAGE, at)

    def user_clicked(self, openid: str, *, at: float | None = None) -> None:
        """``openid`` clicked a menu, followed or scanned a QR code at ``at`` (now)."""
        self._open(openid, "event", AFTER_EVENT, at)

    def received(self, openid: str) -> list[str]:
        """The texts ``openid`` got by customer-service message, in order."""
        return [str(b["text"]["content"]) for b in self.custom_sent if b["touser"] == openid]

    def _open(self, openid: str, kind: str, rule: tuple[float, int], at: float | None) -> None:
        self.follow(openid)
        opened = self.clock() if at is None else at
        self._windows[(openid, kind)] = _Allowance(opened + rule[0], rule[1])

    async def _custom_send(self, request: web.Request) -> web.Response:
        app_id, body = await self._call(request)
        content = _custom_text(body)
        touser = str(body.get("touser", ""))
        if touser not in self.followers:
            code = 45015 if touser in self._left else 40003  # 45015: "subscription is canceled"
            raise Refusal(code, MESSAGES[code])
        now = self.clock()
        open_now = [
            w
            for kind in ("message", "event")
            if (w := self._windows.get((touser, kind))) is not None and now < w.closes_at
        ]
        if not open_now:
            raise Refusal(45015, MESSAGES[45015])
        if all(w.left <= 0 for w in open_now):
            raise Refusal(45047, MESSAGES[45047])
        today = (app_id, datetime.fromtimestamp(now, SHANGHAI).date())
        if self._custom_used.get(today, 0) >= self.custom_per_day:
            raise Refusal(45009, MESSAGES[45009])
        self._custom_used[today] = self._custom_used.get(today, 0) + 1
        for w in open_now:
            w.left -= 1
        self.custom_sent.append({"touser": touser, "text": {"content": content}})
        return web.json_response({"errcode": 0, "errmsg": "ok"})

    # -- followers --------------------------------------------------------------------------

    def follow(self, *openids: str, tag: int | None = None) -> None:
        for o in openids:
            self.followers[o] = None
            if tag is not None:
                self.tags.setdefault(tag, set()).add(o)

    def unfollow(self, *openids: str) -> None:
        for o in openids:
            self.followers.pop(o, None)
            self._left.add(o)
            for members in self.tags.values():
                members.discard(o)

    def _page(self, ids: list[str], next_openid: str) -> dict[str, Any]:
        """One page after ``next_openid`` (from the start when empty); the last full page names
        its own last openid as ``next_openid``, and the page after it is empty."""
        start = 0
        if next_openid:
            if next_openid not in ids:  # behaviour for a vanished cursor is undocumented
                raise Refusal(40003, MESSAGES.get(40003, "invalid openid"))
            start = ids.index(next_openid) + 1
        page = ids[start : start + self.page_size]
        return {
            "count": len(page),
            "data": {"openid": page},
            "next_openid": page[-1] if page else "",
        }

    async def _user_get(self, request: web.Request) -> web.Response:
        self._authorised(request)
        ids = list(self.followers)
        answer = self._page(ids, request.query.get("next_openid", ""))
        return web.json_response({"total": len(ids), **answer})

    async def _tag_get(self, request: web.Request) -> web.Response:
        _, body = await self._call(request)
        tag = body.get("tagid")
        if not isinstance(tag, int) or tag not in self.tags:
            raise Refusal(40003, "invalid tagid")  # the documented code is unknown
        ids = [o for o in self.followers if o in self.tags[tag]]
        return web.json_response(self._page(ids, str(body.get("next_openid") or "")))

    def _new_id(self) -> int:
        self._next_id += 1
        return self._next_id


def _refusal(code: int, **extra: Any) -> web.Response:
    return web.json_response({"errcode": code, "errmsg": MESSAGES[code], **extra})


def _int(value: object) -> int:
    try:
        return int(str(value))
    except ValueError:
        return -1


def _mass_content(body: Mapping[str, Any], drafts: Mapping[str, Any]) -> dict[str, Any]:
    audience = body.get("filter")
    if not isinstance(audience, dict) or (
        not audience.get("is_to_all") and "tag_id" not in audience
    ):
        raise Refusal(47003, MESSAGES[47003] + " filter")
    msgtype = body.get("msgtype")
    item = body.get(str(msgtype))
    if msgtype not in ("text", "mpnews") or not isinstance(item, dict):
        raise Refusal(40008, MESSAGES[40008])
    if msgtype == "text" and not str(item.get("content", "")).strip():
        raise Refusal(44004, MESSAGES[44004])
    if msgtype == "mpnews" and item.get("media_id") not in drafts:
        raise Refusal(40007, MESSAGES[40007])
    return {"filter": audience, "msgtype": msgtype, msgtype: item}


def _client_id(body: Mapping[str, Any], content: Mapping[str, Any]) -> str:
    """``clientmsgid`` (≤ 64 bytes), or a digest of audience and content when there is none."""
    given = body.get("clientmsgid")
    if given is not None:
        if len(str(given).encode()) > 64:
            raise Refusal(45067, MESSAGES[45067])
        return str(given)
    return "digest:" + hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()


def _custom_text(body: Mapping[str, Any]) -> str:
    """The text of a custom/send body (only ``text`` messages are modelled)."""
    item = body.get("text")
    if body.get("msgtype") != "text" or not isinstance(item, dict):
        raise Refusal(40008, MESSAGES[40008])
    content = str(item.get("content", ""))
    if not content.strip():
        raise Refusal(44004, MESSAGES[44004])
    return content


def _check_article(article: object) -> None:
    if not isinstance(article, dict) or not article.get("title"):
        raise Refusal(47003, MESSAGES[47003] + " title")
    content = str(article.get("content", ""))
    if not content or len(content) >= 20_000 or len(content.encode()) >= 1 << 20:
        raise Refusal(45002, "content size out of limit")
    if not article.get("thumb_media_id"):
        raise Refusal(40007, MESSAGES[40007] + " thumb_media_id")


def _check_template_data(data: object) -> None:
    if not isinstance(data, dict) or not data:
        raise Refusal(47003, MESSAGES[47003] + " data")
    for key, item in data.items():
        value = str(item.get("value", "")) if isinstance(item, dict) else ""
        if key in ("first", "remark"):
            continue
        if len(value) > TEMPLATE_VALUE_CHARS or "\n" in value:
            raise Refusal(47003, f"{MESSAGES[47003]} data.{key}.value invalid")


def _signature(token: str, timestamp: str, nonce: str) -> str:
    """WeChat's signature, from facts §2.8 (not the adapter's): sort, join, SHA-1 hex."""
    return hashlib.sha1("".join(sorted([token, timestamp, nonce])).encode()).hexdigest()


def callback_query(
    token: str, *, timestamp: str | None = None, nonce: str | None = None, **extra: str
) -> dict[str, str]:
    """The query string WeChat signs a callback request with (``echostr``, ``openid`` …)."""
    timestamp = timestamp or str(int(time.time()))
    nonce = nonce or str(secrets.randbelow(10**9))
    return {
        "signature": _signature(token, timestamp, nonce),
        "timestamp": timestamp,
        "nonce": nonce,
        **extra,
    }


def text_message(
    content: str, *, msg_id: str, to_user: str = "gh_office", from_user: str = "o-alice"
) -> bytes:
    """A user's text message as WeChat posts it to the callback URL."""
    return _xml(
        ("ToUserName", to_user),
        ("FromUserName", from_user),
        ("CreateTime", str(int(time.time()))),
        ("MsgType", "text"),
        ("Content", content),
        ("MsgId", msg_id),
    )


def event_message(
    event: str,
    *,
    to_user: str = "gh_office",
    from_user: str = "o-alice",
    event_key: str = "",
    create_time: int | None = None,
) -> bytes:
    """An event as WeChat posts it (``subscribe``, ``unsubscribe``, ``SCAN``, ``CLICK`` …):
    ``MsgType`` event, no ``MsgId`` (facts §2.8)."""
    return _xml(
        ("ToUserName", to_user),
        ("FromUserName", from_user),
        ("CreateTime", str(int(time.time()) if create_time is None else create_time)),
        ("MsgType", "event"),
        ("Event", event),
        ("EventKey", event_key),
    )


def _xml(*fields: tuple[str, str]) -> bytes:
    root = ET.Element("xml")
    for tag, value in fields:
        ET.SubElement(root, tag).text = value
    return bytes(ET.tostring(root, encoding="utf-8"))
