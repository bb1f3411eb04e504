"""``wechat_oa``: WeChat Official Account (公众号) broadcasts and template messages.

API reference (docs/channels.md, facts §2): JSON POSTs to ``{base_url}/cgi-bin/...?access_token=``;
errors come as HTTP 200 with ``{"errcode", "errmsg"}`` and are classified by ``errcode`` only.

* token: ``GET cgi-bin/token`` or ``POST cgi-bin/stable_token``; one cache per app shared by every
  account and use in the process, refreshed before expiry and once on 40001/40014/42001.
* text: ``message/mass/sendall`` (``msgtype: text``) to a tag or to all.
* article: ``draft/add``, then ``message/mass/sendall`` (``mpnews``) or ``freepublish/submit``.
* template: ``message/template/send`` per subscriber; values ≤ 20 characters, one line (refused
  otherwise: the renderer makes them so).
* custom (action ``custom``): ``message/custom/send`` of the payload's text to each of
  ``Outgoing.recipients`` — the followers inside the interaction window, which the dispatcher
  resolves (facts §2.6: 5 messages within 48 h of a follower's message, 3 within 1 minute of a
  click, follow or scan); resumable like template messages; 45015 (out of the window) and
  45047 (its messages spent) are refusals about one person.

Mass sends carry ``clientmsgid`` from the delivery's idempotency key: a retry after a crash gets
45065 with the first send's id and is reported delivered. The mass quota (subscription 1 a
day; service ``mass_per_day`` a day and 4 a month) is counted per app in the store's slots
(:mod:`alertcast.channels._quota`), shared by replicas and kept across restarts; once spent,
sends raise :class:`QuotaExhausted` until it returns, without calling the platform.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from pydantic import ConfigDict, Field, HttpUrl, model_validator

from alertcast.channels._fanout import Page, PageSource, Result, fan_out, one_page
from alertcast.channels._quota import DailyQuota
from alertcast.channels._tokens import Fetched, PerSession, TokenCache
from alertcast.channels._vendor import (
    AUTH,
    NEXT_MINUTE,
    PERMANENT,
    TRANSIENT,
    EnvName,
    Fate,
    Reply,
    call_json,
    next_midnight,
    raise_fate,
    secret,
)
from alertcast.channels.base import (
    Action,
    Channel,
    ChannelError,
    FieldLimits,
    Limits,
    Outgoing,
    Permanent,
    QuotaExhausted,
    Receipt,
    Transient,
)
from alertcast.channels.http import raise_for_status
from alertcast.channels.wechat_callback import CallbackOptions
from alertcast.lengths import Limit

__all__ = ["WechatChannel", "WechatOptions", "client_msg_id", "template_data"]

DAILY = Fate(QuotaExhausted)  # until the next midnight, Asia/Shanghai
FOLLOWER_SEND_TIMEOUT_S = 24 * 3600.0  # a backstop only: every request and page has its own
MAX_CLIENT_MSG_ID_BYTES = 64


class WechatOptions(CallbackOptions):
    """The account's keys; the callback's (keywords, help text, reply template) are inherited."""

    model_config = ConfigDict(extra="forbid")

    app_id: str = Field(min_length=1, max_length=64)
    app_secret_env: EnvName
    account_type: Literal["subscription", "service"] = "subscription"
    mode: Literal["article", "text", "template"] = "text"
    base_url: HttpUrl = HttpUrl("https://api.weixin.qq.com")
    stable_token: bool = False
    tag_id: int | None = None
    mass_per_day: int | None = Field(default=None, ge=1)
    article_publish: Literal["mass", "freepublish"] = "mass"
    thumb_media_id: str | None = None
    template_id: str | None = None
    template_to: list[str] = Field(default_factory=list)
    template_concurrency: int = Field(default=8, ge=1, le=64)
    template_audience: Literal["list", "followers", "tag"] = "list"

    @model_validator(mode="after")
    def _mode_needs(self) -> WechatOptions:
        if self.mode == "article" and not self.thumb_media_id:
            raise ValueError("mode = 'article' needs thumb_media_id (a permanent image material)")
        if self.mode == "template" and not self.template_id:
            raise ValueError("mode = 'template' needs template_id")
        if self.template_audience == "tag" and self.tag_id is None:
            raise ValueError("template_audience = 'tag' needs tag_id")
        return self

    @property
    def daily_mass_quota(self) -> int:
        """Mass sends a day: 1 for subscription accounts, ``mass_per_day`` (default 100) else."""
        if self.account_type == "subscription":
            return 1
        return self.mass_per_day or 100

    @property
    def monthly_mass_quota(self) -> int | None:
        """Mass sends a month each follower receives: 4 on service accounts (facts §2.3)."""
        return 4 if self.account_type == "service" else None


@dataclass
class _App:
    tokens: TokenCache
    quota: DailyQuota


_APPS: PerSession[_App] = PerSession()


class WechatChannel(Channel):
    name = "wechat_oa"
    Options = WechatOptions
    default_format = "wechat_article"
    capabilities: ClassVar[frozenset[Action]] = frozenset({"post", "delete", "custom"})
    limits: ClassVar[Limits] = Limits(concurrency=8)  # mass sends are bounded by the daily quota
    timeout_s = 30.0
    TITLE: ClassVar[Limit] = Limit(64, "bytes")  # 64 characters or bytes: the stricter
    DIGEST: ClassVar[Limit] = Limit(120, "chars")
    CONTENT: ClassVar[Limit] = Limit(19_999, "chars")  # under 20,000 (and so under 1 MB)
    TEXT: ClassVar[Limit] = Limit(600, "chars")  # the editor's rule for a mass-sent text
    TEMPLATE_VALUE: ClassVar[Limit] = Limit(20, "chars")  # since 2023-05-04, one line each
    formats: ClassVar[Mapping[str, FieldLimits]] = {
        "wechat_article": {
            "title": TITLE,
            "digest": DIGEST,
            "content_html": CONTENT,
            "text": TEXT,
        },
        "wechat_template": {"template_data.*.value": TEMPLATE_VALUE, "text": TEXT},
        "text": {"text": TEXT},
    }

    TOKEN_CODES: ClassVar[frozenset[int]] = frozenset({40001, 40014, 42001, 41001})
    ALREADY_SENT = 45065  # same clientmsgid already sent: the reply carries its msgid
    RECIPIENT_CODES: ClassVar[frozenset[int]] = frozenset({40003, 43004, 43019, 43101, 48002})
    WINDOW_CODES: ClassVar[frozenset[int]] = frozenset({45015, 45047})  # custom: one person's
    ERROR_CODES: ClassVar[Mapping[int, Fate]] = {
        -1: TRANSIENT,  # system busy
        40001: AUTH,  # token invalid or not latest (after one refresh)
        40014: AUTH,  # invalid access_token (after one refresh)
        42001: AUTH,  # access_token expired (after one refresh)
        41001: AUTH,  # access_token missing
        40013: AUTH,  # invalid appid
        40125: AUTH,  # invalid appsecret
        40164: AUTH,  # caller IP not in the whitelist
        45028: DAILY,  # no mass-send quota left today
        45009: DAILY,  # API daily call quota reached
        45011: NEXT_MINUTE,  # API minute quota reached
        45066: NEXT_MINUTE,  # same clientmsgid retried within a minute
        48001: PERMANENT,  # API not authorised for this account
        48004: PERMANENT,  # API banned
        40003: PERMANENT,  # invalid openid
        43004: PERMANENT,  # recipient does not follow the account
        43019: PERMANENT,  # recipient blacklisted
        43101: PERMANENT,  # recipient refused template messages
        48002: PERMANENT,  # recipient disabled messages
        40007: PERMANENT,  # invalid media_id
        40008: PERMANENT,  # invalid message type
        40033: PERMANENT,  # invalid characters (\\u escapes)
        40037: PERMANENT,  # invalid template_id
        40130: PERMANENT,  # openid list too short
        44004: PERMANENT,  # empty text
        45001: PERMANENT,  # media too large
        45002: PERMANENT,  # content too long
        45003: PERMANENT,  # title too long
        45004: PERMANENT,  # description too long
        45015: PERMANENT,  # custom: out of the follower's window, or they unfollowed
        45047: PERMANENT,  # custom: the follower's window has taken its messages
        45067: PERMANENT,  # clientmsgid too long
        47003: PERMANENT,  # template data invalid
    }

    async def start(self) -> None:
        await self._app().quota.refresh()  # what was sent before a restart still counts

    def quota_left(self) -> dict[str, int]:
        """Mass sends left today (template messages have no daily count here)."""
        if self._opts.mode == "template":
            return {}
        return {"mass_sends_today": self._app().quota.left}

    def spends_quota(self, action: str) -> bool:
        """Only a mass send (or a template send) spends the day's quota: a withdrawal
        (``mass/delete``) and customer-service messages go while it is spent."""
        return action not in ("delete", "custom")

    async def send(self, msg: Outgoing) -> Receipt:
        opts = self._opts
        if msg.action == "delete":
            return await self._delete(msg)
        if msg.action == "custom":
            return await self._custom(msg)
        if opts.mode == "template":
            return await self._template(msg)
        if opts.mode == "article" and msg.payload.get("content_html"):
            return await self._article(msg)
        return await self._mass(msg, {"msgtype": "text", "text": {"content": _text(msg)}})

    @property
    def _opts(self) -> WechatOptions:
        assert isinstance(self.options, WechatOptions)
        return self.options

    def _app(self) -> _App:
        opts = self._opts
        return _APPS.get(
            self.session,
            (str(opts.base_url), opts.app_id),
            lambda: _App(
                TokenCache(self._fetch_token, remember=self.secrets.remember),
                DailyQuota(
                    opts.daily_mass_quota,
                    per_month=opts.monthly_mass_quota,
                    what="mass-send",
                    slots=self.slots,
                    key=f"{self.name}:{opts.app_id}",
                ),
            ),
        )

    # -- broadcasts -------------------------------------------------------------------------

    async def _mass(self, msg: Outgoing, content: dict[str, Any]) -> Receipt:
        quota, key = self._app().quota, msg.idempotency_key
        await quota.take(key, check=msg.attempt <= 1)  # a retry may be sent: 45065 says so
        body = {
            "filter": _audience(self._opts.tag_id),
            **content,
            "send_ignore_reprint": 1,
            "clientmsgid": client_msg_id(msg.idempotency_key),
        }
        try:
            data = await self._call(
                "/cgi-bin/message/mass/sendall", body, ok=(0, self.ALREADY_SENT)
            )
        except ChannelError as exc:
            if exc.code is not None:  # the platform answered: nothing went out
                await quota.not_sent(key)
            raise  # a timeout may have gone out: it counts (its retry asks the platform)
        await quota.sent(key)
        if _errcode(data) == self.ALREADY_SENT:
            return Receipt(remote_id=_msg_id(data), duplicate=True, detail={"code": 45065})
        return Receipt(remote_id=_msg_id(data), detail={"msg_data_id": data.get("msg_data_id")})

    async def _article(self, msg: Outgoing) -> Receipt:
        media_id = await self._draft(msg.payload)
        if self._opts.article_publish == "freepublish":
            data = await self._call("/cgi-bin/freepublish/submit", {"media_id": media_id})
            return Receipt(
                remote_id=str(data.get("publish_id")),
                detail={"msg_data_id": data.get("msg_data_id"), "media_id": media_id},
            )
        return await self._mass(msg, {"msgtype": "mpnews", "mpnews": {"media_id": media_id}})

    async def _draft(self, payload: Mapping[str, Any]) -> str:
        content = str(payload.get("content_html", ""))
        self.check_length("content_html", content, self.CONTENT)
        article = {
            "title": str(payload.get("title", "")),
            "digest": str(payload.get("digest", "")),
            "content": content,
            "content_source_url": str(payload.get("source_url") or ""),
            "thumb_media_id": self._opts.thumb_media_id,
            "need_open_comment": 0,
            "only_fans_can_comment": 0,
        }
        data = await self._call("/cgi-bin/draft/add", {"articles": [article]})
        return str(data.get("media_id"))

    async def _delete(self, msg: Outgoing) -> Receipt:
        if self._opts.mode == "template" or self._opts.article_publish == "freepublish":
            raise Permanent("only mass-sent articles can be deleted on WeChat")
        if not (msg.target_remote_id or "").isdigit():
            raise Permanent("delete needs the mass send's numeric msg_id")
        assert msg.target_remote_id is not None
        await self._call("/cgi-bin/message/mass/delete", {"msg_id": int(msg.target_remote_id)})
        return Receipt(remote_id=msg.target_remote_id)

    # -- template messages ------------------------------------------------------------------

    async def _template(self, msg: Outgoing) -> Receipt:
        """One ``message/template/send`` per recipient, resumable (see ``_fanout``).

        The audience is the payload's ``touser``, else ``template_audience``: the configured
        ``template_to`` list, every follower (``user/get``) or a tag's followers
        (``user/tag/get``), fetched a page (10,000) at a time. A refusal about one person
        (unfollowed, blocked, refused templates) is recorded and the rest go on; any other error
        stops the delivery after the requests in flight, and the next attempt resumes where this
        one stopped, so nobody is alerted twice.
        """
        values = template_data(msg.payload)  # refused here, before anyone is sent to
        pages = self._audience(msg)
        single = isinstance(msg.payload.get("touser"), str)

        async def send_one(openid: str) -> Result:
            data = await self._call(
                "/cgi-bin/message/template/send",
                self._template_body(msg, openid, values),
                ok=(0,) if single else (0, *self.RECIPIENT_CODES),
            )
            if code := _errcode(data):
                return Result(sent=False, code=code)
            return Result(sent=True, remote_id=_msg_id(data))

        cursor = await fan_out(
            msg,
            pages,
            send_one,
            concurrency=self._opts.template_concurrency,
            timeout_s=self.timeout_s,
        )
        p = cursor.progress
        if not p["sent"]:
            codes = list(p["refusals"].values())
            if not p["refused"]:
                raise Permanent("the template message's audience is empty")
            raise Permanent(
                f"no recipient took the template message: {p['refusals']}",
                code=codes[0] if codes else None,
            )
        return Receipt(
            remote_id=cursor.first_remote_id if single else None,
            detail={"sent": p["sent"], "refused": p["refused"], "refusals": p["refusals"]},
        )

    def _audience(self, msg: Outgoing) -> PageSource:
        opts = self._opts
        if msg.payload.get("touser") or opts.template_audience == "list":
            return one_page(_recipients(msg.payload, opts.template_to))

        async def fetch(token: str) -> Page:
            async with asyncio.timeout(self.timeout_s):
                if opts.template_audience == "tag":
                    body = {"tagid": opts.tag_id, "next_openid": token}
                    data = await self._call("/cgi-bin/user/tag/get", body)
                else:
                    data = await self._call("/cgi-bin/user/get", None, query={"next_openid": token})
            return _follower_page(data, token)

        return fetch

    def send_timeout_s(self, msg: Outgoing) -> float:
        """Template and custom sends time out per request; the whole audience may take as long
        as it needs at ``template_concurrency`` requests in flight, each bounded by
        ``timeout_s``."""
        opts = self._opts
        if msg.action == "custom":
            return self._rounds_s(len(msg.recipients or ()))
        if opts.mode != "template" or msg.action == "delete":
            return self.timeout_s
        if not msg.payload.get("touser") and opts.template_audience != "list":
            return FOLLOWER_SEND_TIMEOUT_S  # unknown size: each request and page is bounded
        try:
            return self._rounds_s(len(_recipients(msg.payload, opts.template_to)))
        except Permanent:
            return self.timeout_s

    def _rounds_s(self, count: int) -> float:
        rounds = -(-count // self._opts.template_concurrency)
        return self.timeout_s * (1 + rounds)

    def _template_body(
        self, msg: Outgoing, openid: str, values: dict[str, dict[str, str]]
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "touser": openid,
            "template_id": self._opts.template_id,
            "data": values,
            "client_msg_id": client_msg_id(f"{msg.idempotency_key}:{openid}", hashed=True),
        }
        if msg.payload.get("url"):
            body["url"] = str(msg.payload["url"])
        return body

    # -- customer-service messages ------------------------------------------------------------

    async def _custom(self, msg: Outgoing) -> Receipt:
        """One ``message/custom/send`` per follower in ``msg.recipients``, resumable (see
        ``_fanout``): a retry never messages anyone twice. A refusal about one person (out of
        the window, its messages spent, unfollowed) is recorded and the rest go on."""
        body = {"msgtype": "text", "text": {"content": _text(msg)}}
        ok = (0, *self.WINDOW_CODES, *self.RECIPIENT_CODES)

        async def send_one(openid: str) -> Result:
            data = await self._call(
                "/cgi-bin/message/custom/send", {"touser": openid, **body}, ok=ok
            )
            code = _errcode(data)
            return Result(sent=not code, code=code or None)

        pages = one_page(list(msg.recipients or ()))
        concurrency = self._opts.template_concurrency
        cursor = await fan_out(
            msg, pages, send_one, concurrency=concurrency, timeout_s=self.timeout_s
        )
        p = cursor.progress
        if not p["sent"]:
            if not p["refused"]:
                raise Permanent("nobody is inside the 48-hour window")
            codes = list(p["refusals"].values())
            raise Permanent(
                f"no follower took the customer-service message: {p['refusals']}",
                code=codes[0] if codes else None,
            )
        return Receipt(detail={"sent": p["sent"], "refused": p["refused"]})

    # -- the call, the token ----------------------------------------------------------------

    async def _call(
        self,
        path: str,
        body: Mapping[str, Any] | None,
        *,
        ok: tuple[int, ...] = (0,),
        query: Mapping[str, str] | None = None,
    ) -> Mapping[str, Any]:
        """POST ``body`` (GET when it is ``None``) with the shared token; refresh the token once
        if the platform rejects it."""
        tokens = self._app().tokens
        token = await tokens.get()
        data = await self._request(path, token, body, query)
        if _errcode(data) in self.TOKEN_CODES:
            data = await self._request(path, await tokens.renew(token), body, query)
        code = _errcode(data)
        if code in ok:
            return data
        until = next_midnight()
        if code == 45028:
            until = self._app().quota.spent()
        fate = self.ERROR_CODES.get(code, PERMANENT)
        raise_fate(
            fate,
            f"wechat {code}: {str(data.get('errmsg', ''))[:160]}",
            code=code,
            http_status=200,
            until=until if fate is DAILY else None,
        )

    async def _request(
        self,
        path: str,
        token: str,
        body: Mapping[str, Any] | None,
        query: Mapping[str, str] | None,
    ) -> Mapping[str, Any]:
        params = {**(query or {}), "access_token": token}
        method = "GET" if body is None else "POST"
        reply = await call_json(
            self.session, method, self._url(path), params=params, json_body=body
        )
        raise_for_status(reply.status, reply.text)
        if reply.data is None:  # a proxy's page, say: retrying is safe, sends carry client ids
            raise Transient(f"wechat answered {path} without JSON", http_status=reply.status)
        return reply.data

    def _url(self, path: str) -> str:
        return str(self._opts.base_url).rstrip("/") + path

    async def _fetch_token(self, rejected: str | None) -> Fetched:
        """A token from ``cgi-bin/token``, or ``stable_token`` (forced only if it repeats one)."""
        opts = self._opts
        app_secret = secret(self.secrets, opts.app_secret_env)
        if not opts.stable_token:
            params = {"grant_type": "client_credential", "appid": opts.app_id, "secret": app_secret}
            return _token(
                await call_json(self.session, "GET", self._url("/cgi-bin/token"), params=params)
            )
        got = await self._stable(app_secret, force=False)
        if rejected is not None and got.token == rejected:
            got = await self._stable(app_secret, force=True)
        return got

    async def _stable(self, app_secret: str, *, force: bool) -> Fetched:
        body = {
            "grant_type": "client_credential",
            "appid": self._opts.app_id,
            "secret": app_secret,
            "force_refresh": force,
        }
        return _token(
            await call_json(
                self.session, "POST", self._url("/cgi-bin/stable_token"), json_body=body
            )
        )


TOKEN_CALL_ERRORS: Mapping[int, Fate] = {
    -1: TRANSIENT,  # system busy
    45009: DAILY,  # 2000 token calls a day spent
    45011: NEXT_MINUTE,  # minute quota
}  # any other code: the credentials or the IP whitelist are wrong -> AuthExpired


def _token(reply: Reply) -> Fetched:
    data = reply.data or {}
    token = data.get("access_token")
    if isinstance(token, str) and token:
        expires_in = data.get("expires_in")
        return Fetched(token, float(expires_in) if isinstance(expires_in, int | float) else 7200.0)
    raise_for_status(reply.status, reply.text)
    code = _errcode(data)
    fate = TOKEN_CALL_ERRORS.get(code, AUTH)
    raise_fate(
        fate,
        f"wechat token {code}: {str(data.get('errmsg', ''))[:160]}",
        code=code,
        http_status=reply.status,
        until=next_midnight() if fate is DAILY else None,
    )


def _errcode(data: Mapping[str, Any]) -> int:
    code = data.get("errcode", 0)
    try:
        return int(code)
    except (TypeError, ValueError):
        return -1


def _msg_id(data: Mapping[str, Any]) -> str | None:
    """The send's id: ``msg_id`` on success, ``msgid`` in 45065 and template replies."""
    value = data.get("msg_id", data.get("msgid"))
    return None if value is None else str(value)


def _audience(tag_id: int | None) -> dict[str, Any]:
    return {"is_to_all": True} if tag_id is None else {"is_to_all": False, "tag_id": tag_id}


def _text(msg: Outgoing) -> str:
    text = str(msg.payload.get("text", "")).strip()
    if not text:
        raise Permanent("nothing to send: the payload has no text")
    return text


def _recipients(payload: Mapping[str, Any], configured: list[str]) -> list[str]:
    touser = payload.get("touser")
    recipients = [touser] if isinstance(touser, str) else list(touser or configured)
    if not recipients:
        raise Permanent("template message without recipients (payload touser or template_to)")
    return [str(r) for r in recipients]


def _follower_page(data: Mapping[str, Any], token: str) -> Page:
    """A ``user/get`` or ``user/tag/get`` answer as a page.

    The list ends with an empty page; its last full page names its own last openid as
    ``next_openid`` (or an empty one, as some documents say: both end the list).
    """
    found = data.get("data")
    ids = found.get("openid") if isinstance(found, Mapping) else None
    recipients = [str(o) for o in ids or [] if o]
    nxt = str(data.get("next_openid") or "")
    total = data.get("total")
    return Page(
        recipients,
        next_token=nxt if recipients and nxt and nxt != token else None,
        total=int(total) if isinstance(total, int) else None,
    )


def client_msg_id(key: str, *, hashed: bool = False) -> str:
    """The idempotency key as WeChat's ``clientmsgid`` (≤ 64 bytes; hashed when longer)."""
    if not hashed and len(key.encode()) <= MAX_CLIENT_MSG_ID_BYTES:
        return key
    return hashlib.sha256(key.encode()).hexdigest()[:MAX_CLIENT_MSG_ID_BYTES]


def template_data(payload: Mapping[str, Any]) -> dict[str, dict[str, str]]:
    """``template_data`` as sent (a text payload fills ``first`` and ``keyword1``); a value on
    more than one line or over 20 characters is refused, never cut."""
    raw = payload.get("template_data")
    if not isinstance(raw, Mapping) or not raw:
        text = str(payload.get("text", ""))
        raw = {"first": text, "keyword1": text}
    data = {}
    for key, item in raw.items():
        value = str(item.get("value", "") if isinstance(item, Mapping) else item)
        where = f"template_data.{key}.value"
        if "\n" in value or "\r" in value:
            raise Permanent(f"{where} has a line break; WeChat templates take one line")
        WechatChannel.check_length(where, value, WechatChannel.TEMPLATE_VALUE)
        data[str(key)] = {"value": value}
    return data
