"""The WeChat Official Account callback (server mode): handshake and keyword auto-reply.

``GET /wechat/{account}`` answers WeChat's ``echostr`` handshake; ``POST /wechat/{account}``
receives a user's message and answers in the same response with a passive text reply. Both verify
``signature = sha1(sorted([token, timestamp, nonce]))`` first: a bad one gets 403 and nothing is
read. Then the timestamp must lie within the account's ``callback_window_s`` of now, and the signed
``(timestamp, nonce, signature)`` must be new: a stale or replayed request gets 403 and no work
is done. Bodies are size-capped and parsed with defusedxml (no DTDs, so no entity bombs). WeChat
retries a message it got no answer to within 5 s (3 tries), so each ``MsgId`` is worked on once
and every retry shares that answer; whatever is not ready before the deadline answers
``success``, which WeChat takes as "no reply" without showing the user an error.

Whether WeChat's retries are signed anew or repeat the first request's query is not documented
(facts §2.8): both are answered. A retry signed anew is a new request for a ``MsgId`` already
being worked on; a repeated query is taken only with the same message, only while its answer is
still held, and at most as often as WeChat tries (3 in all) — it shares the first answer and
starts nothing. A repeated handshake, or a repeated query with another body, is refused.

Only plaintext and compatible (明文/兼容) modes are understood; a safe-mode (encrypted-only)
message answers ``success``.

Every follower's message or event that opens WeChat's customer-service window (facts §2.6: a
message; a menu click, follow or scan) is noted through ``interactions`` before the reply is
made, once per ``MsgId``, so a correction can reach the followers inside the window; an unfollow
is noted too. The note is bounded (:data:`NOTE_LIMIT_S`) and a failing store never costs the
follower the reply.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
import xml.etree.ElementTree as ET
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import defusedxml.ElementTree as SafeET  # type: ignore[import-untyped]
import jinja2
import structlog
from aiohttp import web
from jinja2.sandbox import SandboxedEnvironment
from pydantic import BaseModel, ConfigDict, Field, field_validator

from alertcast.channels import channel_class
from alertcast.channels._replay import Nonces, Signed, Use
from alertcast.channels._vendor import SHANGHAI, EnvName
from alertcast.config import AccountConfig
from alertcast.lengths import utf8_len
from alertcast.models import Kind
from alertcast.secrets import MissingSecret, Secrets

__all__ = [
    "DEFAULT_KEYWORDS",
    "DEFAULT_REPLY_TEMPLATE",
    "CallbackOptions",
    "Inbound",
    "Interactions",
    "Latest",
    "WechatCallback",
    "interaction_kind",
    "parse_inbound",
    "signature",
    "text_reply",
    "wechat_routes",
]

Latest = Callable[[str | None, list[str], int, str | None], Awaitable[list[dict[str, Any]]]]
"""``latest(kind or None, regions, limit, language)``: recent active incidents as public JSON
dicts, a feed quake's headline and area in ``language`` (the account's)."""
Interactions = Callable[[str, str, str, float], Awaitable[None]]
"""``note(account, openid, kind, at)``: a follower's interaction (``Store.note_interaction``)."""

MAX_BODY_BYTES = 64 * 1024
MAX_REPLY_BYTES = 2048
REPLY_DEADLINE_S = 4.0  # WeChat gives up after 5 s
LOOKUP_LIMIT_S = 30.0  # a lookup nobody waits for any more is cancelled then
NOTE_LIMIT_S = 1.0  # noting an interaction may take this much of the 5 s, no more
# Events that open the 1-minute window: follow, QR scan, menu click (VIEW, a menu's link, is
# taken as a click: facts §2.6 says "menu click"; a wrong guess costs one recorded 45015).
WINDOW_EVENTS = frozenset({"subscribe", "scan", "click", "view"})
SEEN_TTL_S = 60.0  # WeChat's retries come within ~15 s
SEEN_MAX = 10_000
WINDOW_S = 300  # WeChat documents no window; five minutes of clock skew and delay is generous
NONCES_MAX = 50_000  # signed requests remembered per account (a few MB at most)
WECHAT_TRIES = 3  # WeChat sends one message at most three times
SUCCESS = "success"
CHANNEL = "wechat_oa"
DEFAULT_KEYWORDS: Mapping[str, str] = {
    "地震": "earthquake",
    "火灾": "fire",
    "警情": "police",
    "天气": "weather",
    "气象": "weather",
    "预警": "latest",
    "最新": "latest",
}
DEFAULT_REPLY_TEMPLATE = (
    "{% if incidents %}{{ word }}：生效中的预警\n"
    "{% for i in incidents %}{{ loop.index }}. {{ i.headline }}"
    "（{{ i.area.name }}，{{ i.occurred_at | local_time }}）"
    "{% if i.url %} {{ i.url }}{% endif %}\n{% endfor %}"
    "{% else %}目前没有生效中的「{{ word }}」预警信息。{% endif %}"
)

log = structlog.get_logger("alertcast.channels.wechat_callback")


class CallbackOptions(BaseModel):
    """A ``wechat_oa`` account's callback keys (the account's options inherit them)."""

    model_config = ConfigDict(extra="forbid")

    callback_token_env: EnvName | None = None
    callback_window_s: int = Field(default=WINDOW_S, ge=30, le=3600)
    keywords: dict[str, str] = Field(default_factory=lambda: dict(DEFAULT_KEYWORDS))
    help_text: str | None = None
    reply_template: str = DEFAULT_REPLY_TEMPLATE
    reply_limit: int = Field(default=3, ge=1, le=10)

    @field_validator("keywords")
    @classmethod
    def _known_kinds(cls, keywords: dict[str, str]) -> dict[str, str]:
        known = {k.value for k in Kind} | {"latest"}
        wrong = sorted(w for w, kind in keywords.items() if kind not in known or not w.strip())
        if wrong:
            raise ValueError(f"keywords {wrong} must map to one of {sorted(known)}")
        return keywords

    @field_validator("reply_template")
    @classmethod
    def _compiles(cls, source: str) -> str:
        try:
            SandboxedEnvironment().parse(source)
        except jinja2.TemplateSyntaxError as exc:
            raise ValueError(f"reply_template: {exc.message} (line {exc.lineno})") from exc
        return source


def signature(token: str, timestamp: str, nonce: str) -> str:
    """WeChat's callback signature: SHA-1 hex of the three values sorted and joined."""
    return hashlib.sha1("".join(sorted([token, timestamp, nonce])).encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Inbound:
    """One message or event a user sent to the account."""

    to_user: str
    from_user: str
    create_time: str
    msg_type: str
    content: str = ""
    event: str = ""
    msg_id: str = ""

    @property
    def dedupe_key(self) -> str:
        """``MsgId`` for messages; ``FromUserName`` + ``CreateTime`` for events (no MsgId)."""
        return self.msg_id or f"{self.from_user}:{self.create_time}:{self.event}"


def parse_inbound(body: bytes) -> Inbound:
    """The message in ``body``; ``ValueError`` for malformed XML, DTDs and entities."""
    try:
        root = SafeET.fromstring(body, forbid_dtd=True)
    except (ET.ParseError, ValueError) as exc:  # defusedxml's errors are ValueErrors
        raise ValueError(f"not acceptable XML: {type(exc).__name__}") from exc
    if root.tag != "xml":
        raise ValueError("the root element is not <xml>")

    def field(tag: str) -> str:
        return (root.findtext(tag) or "").strip()

    return Inbound(
        to_user=field("ToUserName"),
        from_user=field("FromUserName"),
        create_time=field("CreateTime"),
        msg_type=field("MsgType"),
        content=field("Content"),
        event=field("Event"),
        msg_id=field("MsgId"),
    )


def text_reply(inbound: Inbound, content: str, now: float | None = None) -> str:
    """A passive text reply to ``inbound`` (sender and receiver swapped)."""
    root = ET.Element("xml")
    for tag, value in (
        ("ToUserName", inbound.from_user),
        ("FromUserName", inbound.to_user),
        ("CreateTime", str(int(time.time() if now is None else now))),
        ("MsgType", "text"),
        ("Content", _fit(content, MAX_REPLY_BYTES)),
    ):
        ET.SubElement(root, tag).text = value
    return ET.tostring(root, encoding="unicode")


def _fit(text: str, max_bytes: int) -> str:
    """``text`` cut at a line (else a character) so that it fits ``max_bytes``."""
    if utf8_len(text) <= max_bytes:
        return text
    lines = text.splitlines()
    while len(lines) > 1 and utf8_len("\n".join(lines)) > max_bytes:
        lines.pop()
    text = "\n".join(lines)
    while utf8_len(text) > max_bytes:
        text = text[:-1]
    return text


def interaction_kind(inbound: Inbound) -> str | None:
    """What ``inbound`` tells of the follower's window: ``message`` (any message they sent),
    ``event`` (a follow, scan or menu click), ``gone`` (unfollowed), or None (nothing)."""
    if not inbound.from_user or not inbound.msg_type:
        return None
    if inbound.msg_type != "event":
        return "message"
    event = inbound.event.lower()
    if event == "unsubscribe":
        return "gone"
    return "event" if event in WINDOW_EVENTS else None


def _local_time(value: Any) -> str:
    try:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return str(value)
    return moment.astimezone(SHANGHAI).strftime("%m-%d %H:%M")


class _Responder:
    """One account's keyword table, template and help text."""

    def __init__(
        self,
        account: AccountConfig,
        options: CallbackOptions,
        latest: Latest,
        interactions: Interactions | None = None,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        env = SandboxedEnvironment(undefined=jinja2.ChainableUndefined)
        env.filters["local_time"] = _local_time
        self.account = account
        self.options = options
        self.latest = latest
        self.interactions = interactions
        self.wall_clock = wall_clock
        self.template = env.from_string(options.reply_template)
        self.help_text = options.help_text or (
            "回复关键词查询本地生效中的预警：" + "、".join(options.keywords)
        )

    def match(self, content: str) -> str | None:
        """The keyword ``content`` is (or, failing that, the longest one it contains)."""
        text = content.strip()
        if text in self.options.keywords:
            return text
        found = [w for w in self.options.keywords if w in text]
        return max(found, key=len) if found else None

    async def answer(self, inbound: Inbound) -> str:
        await self._note(inbound)
        if inbound.msg_type == "event":
            return text_reply(inbound, self.help_text) if inbound.event == "subscribe" else SUCCESS
        if not inbound.msg_type or not inbound.from_user:
            return SUCCESS  # encrypted-only (safe mode) or not a message at all
        word = self.match(inbound.content) if inbound.msg_type == "text" else None
        if word is None:
            return text_reply(inbound, self.help_text)
        return text_reply(inbound, await self._incidents_text(word))

    async def _note(self, inbound: Inbound) -> None:
        """Note the follower's interaction, within :data:`NOTE_LIMIT_S`; never raises."""
        kind = interaction_kind(inbound)
        if self.interactions is None or kind is None:
            return
        try:
            async with asyncio.timeout(NOTE_LIMIT_S):
                await self.interactions(self.account.id, inbound.from_user, kind, self.wall_clock())
        except Exception as exc:  # the reply matters more than the note
            log.warning(
                "wechat.interaction.not_noted",
                account=self.account.id,
                kind=kind,
                error=type(exc).__name__,
            )

    async def _incidents_text(self, word: str) -> str:
        kind = self.options.keywords[word]
        incidents = await self.latest(
            None if kind == "latest" else kind,
            list(self.account.regions),
            self.options.reply_limit,
            self.account.language,
        )
        return self.template.render(incidents=incidents, word=word, kind=kind).strip()


class _Seen:
    """Recent messages and their (shared) answers, so WeChat's retries are worked on once."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._tasks: OrderedDict[tuple[str, str], tuple[float, asyncio.Task[str]]] = OrderedDict()

    def answer(
        self, key: tuple[str, str], work: Callable[[], Coroutine[Any, Any, str]]
    ) -> asyncio.Task[str]:
        self._forget_old()
        if key in self._tasks:
            return self._tasks[key][1]
        task = asyncio.create_task(work(), name=f"wechat-reply-{key[0]}")
        self._tasks[key] = (self._clock() + SEEN_TTL_S, task)
        return task

    def get(self, key: tuple[str, str]) -> asyncio.Task[str] | None:
        """The answer being worked on (or held) for ``key``, if it is still kept."""
        self._forget_old()
        held = self._tasks.get(key)
        return None if held is None else held[1]

    def _forget_old(self) -> None:
        now = self._clock()
        while self._tasks:
            expires_at, task = next(iter(self._tasks.values()))
            if len(self._tasks) <= SEEN_MAX and expires_at >= now:
                return
            self._tasks.popitem(last=False)
            task.cancel()

    async def close(self) -> None:
        tasks = [task for _, task in self._tasks.values()]
        self._tasks.clear()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


@dataclass(frozen=True, slots=True)
class _Came:
    """A request whose signature and timestamp passed: its account and signed query."""

    responder: _Responder
    nonces: Nonces
    signed: Signed
    timestamp: int

    def spend(self, now: float, key: tuple[str, str] | None = None) -> tuple[Use, bool]:
        """Record the query (carrying ``key``) unless known; its use and whether it is new."""
        return self.nonces.use(self.signed, self.timestamp, now, key)


class WechatCallback:
    """The callback endpoints of every ``wechat_oa`` account with a ``callback_token_env``."""

    def __init__(
        self,
        accounts: Sequence[AccountConfig],
        secrets: Secrets,
        latest: Latest,
        *,
        interactions: Interactions | None = None,
        reply_deadline_s: float = REPLY_DEADLINE_S,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        nonce_limit: int = NONCES_MAX,
    ) -> None:
        self.secrets = secrets
        self.reply_deadline_s = reply_deadline_s
        self.wall_clock = wall_clock
        self._responders: dict[str, _Responder] = {}
        self._nonces: dict[str, Nonces] = {}
        for account in accounts:
            if account.channel != CHANNEL:
                continue
            options = channel_class(CHANNEL).Options.model_validate(account.channel_options)
            assert isinstance(options, CallbackOptions)
            if options.callback_token_env:
                self._responders[account.id] = _Responder(
                    account, options, latest, interactions, wall_clock
                )
                self._nonces[account.id] = Nonces(options.callback_window_s, nonce_limit)
        self._seen = _Seen(clock)

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/wechat/{account}", self.handshake),
            web.post("/wechat/{account}", self.message),
        ]

    def install(self, app: web.Application) -> None:
        """Add the routes to ``app`` and cancel unfinished lookups when it shuts down."""
        app.add_routes(self.routes())
        app.on_cleanup.append(lambda _app: self.close())

    async def close(self) -> None:
        await self._seen.close()

    def remembered(self, account_id: str) -> int:
        """How many signed requests the account's replay guard holds now."""
        return len(self._nonces[account_id])

    async def handshake(self, request: web.Request) -> web.Response:
        came = self._verified(request)
        _, first = came.spend(self.wall_clock())
        if not first:
            raise web.HTTPForbidden(text="replayed request")
        return web.Response(text=request.query.get("echostr", ""), content_type="text/plain")

    async def message(self, request: web.Request) -> web.Response:
        deadline = asyncio.get_running_loop().time() + self.reply_deadline_s
        came = self._verified(request)
        known = came.nonces.get(came.signed)
        if known is not None and (known.key is None or known.times >= WECHAT_TRIES):
            raise web.HTTPForbidden(text="replayed request")  # refused before the body is read
        inbound = await self._inbound(request, came)
        responder = came.responder
        key = (responder.account.id, inbound.dedupe_key)
        task = self._answer(came, key, lambda: _bounded(responder.answer(inbound)))
        try:
            async with asyncio.timeout_at(deadline):
                reply = await asyncio.shield(task)
        except TimeoutError:
            log.info("wechat.reply.late", account=key[0], msg_type=inbound.msg_type)
            reply = SUCCESS
        kind = "text/plain" if reply == SUCCESS else "application/xml"
        return web.Response(text=reply, content_type=kind)

    async def _inbound(self, request: web.Request, came: _Came) -> Inbound:
        """The posted message; a body too large or unreadable spends the query all the same."""
        try:
            return parse_inbound(await _read_capped(request, MAX_BODY_BYTES))
        except ValueError as exc:
            came.spend(self.wall_clock())
            raise web.HTTPBadRequest(text=str(exc)) from exc
        except web.HTTPRequestEntityTooLarge:
            came.spend(self.wall_clock())
            raise

    def _answer(
        self, came: _Came, key: tuple[str, str], work: Callable[[], Coroutine[Any, Any, str]]
    ) -> asyncio.Task[str]:
        """The answer to ``key``: worked on (or shared, by MsgId) for a new query; for a
        repeated one, the first one's answer if it carried the same message, is still held and
        has not come WeChat's number of tries yet; else 403."""
        use, first = came.spend(self.wall_clock(), key)
        if first:
            return self._seen.answer(key, work)
        held = self._seen.get(key) if use.key == key and use.times < WECHAT_TRIES else None
        if held is None:
            raise web.HTTPForbidden(text="replayed request")
        use.times += 1
        return held

    def _verified(self, request: web.Request) -> _Came:
        """The request's account and signed query: 404 for no such account, 403 for a bad
        signature or a timestamp outside the window."""
        account_id = request.match_info["account"]
        responder = self._responders.get(account_id)
        if responder is None:
            raise web.HTTPNotFound(text="no WeChat callback for this account")
        q = request.query
        signed = (q.get("timestamp", ""), q.get("nonce", ""), q.get("signature", ""))
        self._check_signature(responder, signed)
        nonces = self._nonces[account_id]
        timestamp = _timestamp(signed[0])
        if timestamp is None or not nonces.fresh(timestamp, self.wall_clock()):
            raise web.HTTPForbidden(text="timestamp outside the accepted window")
        return _Came(responder, nonces, signed, timestamp)

    def _check_signature(self, responder: _Responder, signed: Signed) -> None:
        assert responder.options.callback_token_env is not None
        try:
            token = self.secrets.get(responder.options.callback_token_env)
        except MissingSecret as exc:
            raise web.HTTPServiceUnavailable(text="callback token is not configured") from exc
        timestamp, nonce, given = signed
        expected = signature(token, timestamp, nonce)
        if not hmac.compare_digest(expected.encode(), given.encode()):
            raise web.HTTPForbidden(text="bad signature")


def _timestamp(raw: str) -> int | None:
    """WeChat's Unix timestamp (ASCII digits only), or ``None``."""
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 12:
        return None
    return int(raw)


async def _bounded(work: Awaitable[str]) -> str:
    """``work``'s reply; ``success`` if it fails or outlives :data:`LOOKUP_LIMIT_S`."""
    try:
        async with asyncio.timeout(LOOKUP_LIMIT_S):
            return await work
    except Exception:
        log.exception("wechat.reply.failed")
        return SUCCESS


async def _read_capped(request: web.Request, cap: int) -> bytes:
    if request.content_length is not None and request.content_length > cap:
        raise web.HTTPRequestEntityTooLarge(max_size=cap, actual_size=request.content_length)
    body = bytearray()
    async for chunk in request.content.iter_chunked(16 * 1024):
        body += chunk
        if len(body) > cap:
            raise web.HTTPRequestEntityTooLarge(max_size=cap, actual_size=len(body))
    return bytes(body)


def wechat_routes(
    accounts: Sequence[AccountConfig], secrets: Secrets, latest: Latest
) -> list[web.RouteDef]:
    """The callback's route handlers (use :meth:`WechatCallback.install` to also clean up)."""
    return WechatCallback(accounts, secrets, latest).routes()
