"""Fake WeCom, DingTalk and Feishu group robots: the webhook, its security and its limits.

* :class:`FakeWecom` — ``POST /cgi-bin/webhook/send?key=``: unknown key 93000, msgtype 40008,
  empty 44004, text > 2048 / markdown > 4096 bytes 40058, news 1–8 articles with a url, 20 a
  minute per robot 45009. Always HTTP 200 ``{"errcode", "errmsg"}``.
* :class:`FakeDingtalk` — ``POST /robot/send?access_token=[&timestamp=&sign=]``: unknown token
  300001, signature (``base64(HMAC-SHA256(key=secret, msg="{ms}\\n{secret}"))``) and timestamp
  within an hour, keywords (all 310000, told apart by errmsg), > 20000 bytes 460101, 20 a minute
  130101. Always HTTP 200.
* :class:`FakeFeishu` — ``POST /open-apis/bot/v2/hook/{id}``: unknown hook 19001, body > 20 KB or
  malformed 9499, signature in the body (``base64(HMAC-SHA256(key="{s}\\n{secret}", msg=b""))``,
  within an hour) 19021, IP 19022, keywords 19024, 100 a minute / 5 a second 11232.

Codes marked unconfirmed in the facts (300001, 460101, 19001, DingTalk's msgtype check) are the
fakes' best guess; the documented ones are exact.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from aiohttp import web

from alertcast.testing.fakes._base import FakePlatform, Refusal, Window, json_body

__all__ = ["FakeDingtalk", "FakeFeishu", "FakeWecom", "RobotSecurity"]

HOUR_S = 3600.0


@dataclass(frozen=True)
class RobotSecurity:
    """A robot's security settings: signing secret, keywords (any one must appear), IPs."""

    secret: str | None = None
    keywords: tuple[str, ...] = ()
    allowed_ips: tuple[str, ...] = ()


class FakeWecom(FakePlatform):
    LIMITS: ClassVar[Mapping[str, int]] = {"text": 2048, "markdown": 4096, "markdown_v2": 4096}
    MSGTYPES = frozenset(
        {"text", "markdown", "markdown_v2", "image", "news", "file", "voice", "template_card"}
    )

    def __init__(
        self,
        keys: Iterable[str] = ("wecom-key",),
        *,
        per_minute: int = 20,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(clock)
        self.keys = set(keys)
        self.received: dict[str, list[dict[str, Any]]] = {}
        self._window = Window(per_minute, 60.0)

    def fail_next(self, errcode: int, errmsg: str = "error", *, times: int = 1) -> None:
        """Answer the next request(s) with ``errcode`` (always HTTP 200, as the platform does)."""
        self.inject(Refusal(errcode, errmsg), times=times)

    def routes(self) -> list[web.RouteDef]:
        return [web.post("/cgi-bin/webhook/send", self._send)]

    def refuse(self, request: web.Request, refusal: Refusal) -> web.Response:
        return web.json_response({"errcode": refusal.code, "errmsg": refusal.message})

    async def _send(self, request: web.Request) -> web.Response:
        key = request.query.get("key", "")
        if key not in self.keys:
            raise Refusal(
                93000,
                f"invalid webhook url, hint: [{int(self.clock())}], from ip: "
                f"{request.remote}, more info at "
                "https://open.work.weixin.qq.com/devtool/query?e=93000",
            )
        body = json_body(await request.read(), Refusal(40058, "invalid json"))
        _wecom_check(body, self.MSGTYPES, self.LIMITS)
        if not self._window.admit(key, self.clock()):
            raise Refusal(45009, "api freq out of limit")
        self.received.setdefault(key, []).append(body)
        return web.json_response({"errcode": 0, "errmsg": "ok"})


def _wecom_check(
    body: Mapping[str, Any], msgtypes: frozenset[str], limits: Mapping[str, int]
) -> None:
    msgtype = str(body.get("msgtype"))
    item = body.get(msgtype)
    if msgtype not in msgtypes or not isinstance(item, dict):
        raise Refusal(40008, "invalid message type")
    if msgtype == "news":
        articles = item.get("articles")
        if (
            not isinstance(articles, list)
            or not 1 <= len(articles) <= 8
            or not all(isinstance(a, dict) and a.get("url") and a.get("title") for a in articles)
        ):
            raise Refusal(40058, "invalid news articles")
        return
    if msgtype in limits:
        content = str(item.get("content", ""))
        if not content.strip():
            raise Refusal(44004, "empty content")
        size = len(content.encode())
        if size > limits[msgtype]:
            raise Refusal(40058, f"content exceed max length {limits[msgtype]}, size {size}")


class FakeDingtalk(FakePlatform):
    MAX_BYTES = 20_000
    MSGTYPES = frozenset({"text", "link", "markdown", "actionCard", "feedCard"})

    def __init__(
        self,
        robots: Mapping[str, RobotSecurity] | None = None,
        *,
        per_minute: int = 20,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(clock)
        self.robots = dict(robots or {"ding-token": RobotSecurity(secret="SECding")})
        self.received: dict[str, list[dict[str, Any]]] = {}
        self._window = Window(per_minute, 60.0)

    def fail_next(self, errcode: int, errmsg: str = "error", *, times: int = 1) -> None:
        """Answer the next request(s) with ``errcode`` (always HTTP 200, as the platform does)."""
        self.inject(Refusal(errcode, errmsg), times=times)

    def routes(self) -> list[web.RouteDef]:
        return [web.post("/robot/send", self._send)]

    def refuse(self, request: web.Request, refusal: Refusal) -> web.Response:
        return web.json_response({"errcode": refusal.code, "errmsg": refusal.message})

    async def _send(self, request: web.Request) -> web.Response:
        token = request.query.get("access_token", "")
        robot = self.robots.get(token)
        if robot is None:
            raise Refusal(300001, "token is not exist")
        if robot.secret:
            self._signed(request.query, robot.secret)
        raw = await request.read()
        body = json_body(raw, Refusal(40035, "缺少参数 json"))
        text = _dingtalk_text(body, self.MSGTYPES)
        if len(text.encode()) > self.MAX_BYTES:
            raise Refusal(460101, "message too long, exceed 20000 bytes")
        if robot.keywords and not any(k in text for k in robot.keywords):
            raise Refusal(310000, "keywords not in content")
        if robot.allowed_ips and request.remote not in robot.allowed_ips:
            raise Refusal(310000, f"ip {request.remote} not in whitelist")
        if not self._window.admit(token, self.clock()):
            raise Refusal(130101, "send too fast, exceed 20 times per minute")
        self.received.setdefault(token, []).append(body)
        return web.json_response({"errcode": 0, "errmsg": "ok"})

    def _signed(self, query: Mapping[str, str], secret: str) -> None:
        stamp = query.get("timestamp", "")
        if not stamp.isdigit() or abs(self.clock() * 1000 - int(stamp)) > HOUR_S * 1000:
            raise Refusal(310000, "invalid timestamp")
        digest = hmac.new(secret.encode(), f"{stamp}\n{secret}".encode(), hashlib.sha256).digest()
        if not hmac.compare_digest(base64.b64encode(digest).decode(), query.get("sign", "")):
            raise Refusal(310000, "sign not match")


def _dingtalk_text(body: Mapping[str, Any], msgtypes: frozenset[str]) -> str:
    msgtype = str(body.get("msgtype"))
    item = body.get(msgtype)
    if msgtype not in msgtypes or not isinstance(item, dict):
        raise Refusal(40035, "invalid msgtype")
    if msgtype == "markdown" and not (item.get("title") and item.get("text")):
        raise Refusal(40035, "缺少参数 markdown.title/text")
    text = json.dumps(item, ensure_ascii=False)
    if msgtype == "text" and not str(item.get("content", "")).strip():
        raise Refusal(40035, "缺少参数 text.content")
    return text


class FakeFeishu(FakePlatform):
    MAX_BODY_BYTES = 20 * 1024
    MSG_TYPES = frozenset({"text", "post", "image", "share_chat", "interactive"})
    OK: ClassVar[Mapping[str, Any]] = {
        "StatusCode": 0,
        "StatusMessage": "success",
        "code": 0,
        "data": {},
        "msg": "success",
    }

    def __init__(
        self,
        hooks: Mapping[str, RobotSecurity] | None = None,
        *,
        per_minute: int = 100,
        per_second: int = 5,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(clock)
        self.hooks = dict(hooks or {"feishu-hook": RobotSecurity(secret="feishu-secret")})
        self.received: dict[str, list[dict[str, Any]]] = {}
        self._windows = [Window(per_minute, 60.0), Window(per_second, 1.0)]

    def fail_next(
        self, code: int, msg: str = "error", *, status: int = 200, times: int = 1
    ) -> None:
        """Answer the next request(s) with ``code`` and HTTP ``status`` (facts leave it open)."""
        self.inject(Refusal(code, msg, status=status), times=times)

    def routes(self) -> list[web.RouteDef]:
        return [web.post("/open-apis/bot/v2/hook/{hook}", self._send)]

    def refuse(self, request: web.Request, refusal: Refusal) -> web.Response:
        return web.json_response(
            {"code": refusal.code, "msg": refusal.message, "data": {}}, status=refusal.status
        )

    async def _send(self, request: web.Request) -> web.Response:
        hook_id = request.match_info["hook"]
        hook = self.hooks.get(hook_id)
        if hook is None:
            raise Refusal(19001, "param invalid: incoming webhook access token invalid")
        raw = await request.read()
        if len(raw) > self.MAX_BODY_BYTES:
            raise Refusal(9499, "Bad Request", status=400)
        body = json_body(raw, Refusal(9499, "Bad Request", status=400))
        if hook.secret:
            self._signed(body, hook.secret)
        if hook.allowed_ips and request.remote not in hook.allowed_ips:
            raise Refusal(19022, "Ip Not Allowed")
        shown = _feishu_content(body, self.MSG_TYPES)
        if hook.keywords and not any(k in shown for k in hook.keywords):
            raise Refusal(19024, "Key Words Not Found")
        now = self.clock()
        if not all(w.admit(hook_id, now) for w in self._windows):
            raise Refusal(11232, "frequency limited psm[lark.oapi.app_platform_runtime]")
        self.received.setdefault(hook_id, []).append(body)
        return web.json_response(dict(self.OK))

    def _signed(self, body: Mapping[str, Any], secret: str) -> None:
        stamp = str(body.get("timestamp", ""))
        key = f"{stamp}\n{secret}".encode()
        expected = base64.b64encode(hmac.new(key, b"", hashlib.sha256).digest()).decode()
        fresh = stamp.isdigit() and abs(self.clock() - int(stamp)) <= HOUR_S
        if not fresh or not hmac.compare_digest(expected, str(body.get("sign", ""))):
            raise Refusal(
                19021, "sign match fail or timestamp is not within one hour from current time"
            )


def _feishu_content(body: Mapping[str, Any], msg_types: frozenset[str]) -> str:
    msg_type = body.get("msg_type")
    item = body.get("card") if msg_type == "interactive" else body.get("content")
    if msg_type not in msg_types or not isinstance(item, dict) or not item:
        raise Refusal(9499, "Bad Request", status=400)
    if msg_type == "post" and not isinstance(item.get("post"), dict):
        raise Refusal(9499, "Bad Request", status=400)
    return json.dumps(item, ensure_ascii=False)
