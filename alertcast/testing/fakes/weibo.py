"""A fake Sina Weibo API v2 (``/2/statuses/share.json`` and friends), faithful where it matters.

It checks what Weibo checks: the access token (unknown -> 21332, expired -> 21327), ``rip``,
the safe-domain URL in a shared text (10017 "text not find domain!"), no ``#topic#``, 140
units (20012), identical consecutive posts (20019), that only the author deletes a post (20102),
unknown posts (20101) and, when ``self_repost_allowed`` is false, reposts of one's own post
(20103). It counts calls per user per clock hour as facts §1.6 gives them for the normal tier:
30 posts (shares and reposts; 20016 "Out of limit!" past them), 60 comments (10024, the user's
limit for that API) and 150 calls in all, deletions included (10023, the user's limit).
Errors are ``{"request", "error_code", "error"}`` with a 4xx/5xx status; ``error_code`` is a
number unless ``string_codes`` is set.
"""

from __future__ import annotations

import ipaddress
import math
import re
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from alertcast.testing.fakes._base import FakePlatform, Refusal

__all__ = ["FakeWeibo"]

MESSAGES = {
    10001: "system error!",
    10002: "service unavailable!",
    10009: "too many pending tasks!",
    10014: "Insufficient app permissions!",
    10016: "miss required parameter",
    10017: "text not find domain!",
    10022: "IP requests out of rate limit!",
    10023: "User requests out of rate limit!",
    10024: "User requests for (comments/create) out of rate limit!",
    20008: "content is null!",
    20012: "Text too long, please input text less than 140 characters!",
    20016: "Out of limit!",
    20017: "Repeat content!",
    20019: "repeat content!",
    20032: "update success, while server slow now, please wait 1-2 minutes",
    20101: "target weibo does not exist!",
    20102: "not your own weibo!",
    20103: "can't repost yourself!",
    20111: "Can't post the same content!",
    21301: "auth faild!",
    21327: "expired_token",
    21332: "invalid_access_token",
}
FIRST_ID = 9_100_000_000_000_000  # beyond 2**53, as real ids are
_URL_HOST = re.compile(r"https?://([^/\s?#:]+)")
_TOPIC = re.compile(r"#[^#\s][^#]*#")
_LINK = re.compile(r"https?://[\x21-\x7e]+")  # a link runs to the first space or non-ASCII


def weibo_length(text: str) -> int:
    """The length Weibo gives ``text``, re-derived here from facts §1.7, not from the adapter.

    U+0000–U+00FF weigh half a unit, the rest of the BMP one, astral characters two; a link
    weighs 10 units (20 halves) up to 140 bytes and a half more per byte beyond; ``t.cn``
    links, and ``weibo.com``/``weibo.cn`` links of at most 41 bytes, weigh their characters.
    """
    halves = sum(_char_halves(c) for c in _LINK.sub("", text))
    for link in _LINK.findall(text):
        host = (urlsplit(link).hostname or "").lower()
        face = host == "t.cn" or (host.endswith(("weibo.com", "weibo.cn")) and len(link) <= 41)
        halves += sum(map(_char_halves, link)) if face else 20 + max(0, len(link) - 140)
    return math.ceil(halves / 2)


def _char_halves(char: str) -> int:
    point = ord(char)
    return 1 if point <= 0xFF else 2 if point <= 0xFFFF else 4


def http_status(code: int) -> int:
    """The HTTP status sent with an error code (facts §1.4: the mapping is not documented)."""
    if code in (10001, 10009):
        return 500
    if code == 10002:
        return 503
    if code == 10014 or 10022 <= code <= 10024 or 21300 <= code < 21400:
        return 403
    return 400


class FakeWeibo(FakePlatform):
    def __init__(
        self,
        tokens: Mapping[str, int] | None = None,
        *,
        safe_domains: Iterable[str] = ("alerts.example.gov.cn",),
        posts_per_hour: int = 30,
        comments_per_hour: int = 60,
        requests_per_hour: int = 150,
        self_repost_allowed: bool = True,
        string_codes: bool = False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(clock)
        self.tokens = dict(tokens or {"weibo-token": 1001})
        self.expired: set[str] = set()
        self.safe_domains = [d.lower() for d in safe_domains]
        self.posts_per_hour = posts_per_hour
        self.comments_per_hour = comments_per_hour
        self.requests_per_hour = requests_per_hour
        self.self_repost_allowed = self_repost_allowed
        self.string_codes = string_codes
        self.statuses: dict[str, dict[str, Any]] = {}
        self.comments: dict[str, dict[str, Any]] = {}
        self._next_id = FIRST_ID
        self._hourly: dict[tuple[str, int, int], int] = {}  # (budget, uid, hour) -> calls

    def fail_next(
        self, code: int, *, message: str | None = None, path: str | None = None, times: int = 1
    ) -> None:
        """Answer the next request(s) with Weibo error ``code``."""
        refusal = Refusal(code, message or MESSAGES.get(code, "error"), status=http_status(code))
        self.inject(refusal, path=path, times=times)

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post("/2/statuses/share.json", self._share),
            web.post("/2/statuses/repost.json", self._repost),
            web.post("/2/comments/create.json", self._comment),
            web.post("/2/statuses/destroy.json", self._destroy),
            web.get("/2/account/rate_limit_status.json", self._rate_limit_status),
        ]

    def refuse(self, request: web.Request, refusal: Refusal) -> web.Response:
        code: int | str = str(refusal.code) if self.string_codes else refusal.code
        body = {"request": request.path, "error_code": code, "error": refusal.message}
        return web.json_response(body, status=refusal.status)

    # -- endpoints --------------------------------------------------------------------------

    async def _share(self, request: web.Request) -> web.Response:
        form = await request.post()
        uid = self._user(form.get("access_token"))
        _require_rip(form.get("rip"))
        text = self._text(form.get("status"))
        if not any(self._safe(host) for host in _URL_HOST.findall(text)):
            raise Refusal(10017, MESSAGES[10017], status=400)
        if _TOPIC.search(_URL_HOST.sub("", text)):
            raise Refusal(10017, "topic is not allowed in shared text", status=400)
        self._not_repeated(uid, text)
        self._spend(uid, "post")
        return web.json_response(self._create(uid, text))

    async def _repost(self, request: web.Request) -> web.Response:
        form = await request.post()
        uid = self._user(form.get("access_token"))
        _require_rip(form.get("rip"))
        original = self._status(form.get("id"))
        if original["user"]["id"] == uid and not self.self_repost_allowed:
            raise Refusal(20103, MESSAGES[20103], status=400)
        text = str(form.get("status") or "转发微博")
        self._within_140(text)
        self._spend(uid, "post")
        return web.json_response(self._create(uid, text, retweeted=original))

    async def _comment(self, request: web.Request) -> web.Response:
        form = await request.post()
        uid = self._user(form.get("access_token"))
        _require_rip(form.get("rip"))
        original = self._status(form.get("id"))
        text = self._text(form.get("comment"))
        self._spend(uid, "comment")
        comment = {**self._object(uid, text), "status": original}
        self.comments[comment["idstr"]] = comment
        return web.json_response(comment)

    async def _destroy(self, request: web.Request) -> web.Response:
        form = await request.post()
        uid = self._user(form.get("access_token"))
        status = self._status(form.get("id"))
        if status["user"]["id"] != uid:
            raise Refusal(20102, MESSAGES[20102], status=400)
        self._spend(uid, "total")
        return web.json_response(self.statuses.pop(status["idstr"]))

    async def _rate_limit_status(self, request: web.Request) -> web.Response:
        uid = self._user(request.query.get("access_token"))
        now = self.clock()
        used = self._hourly.get(("total", uid, int(now // 3600)), 0)
        reset_s = math.ceil(now / 3600) * 3600 - now
        return web.json_response(
            {
                "ip_limit": 10000,
                "limit_time_unit": "HOURS",
                "remaining_ip_hits": 10000,
                "remaining_user_hits": max(0, self.requests_per_hour - used),
                "reset_time": datetime.fromtimestamp(now + reset_s, UTC).strftime(
                    "%Y-%m-%d %H:%M:%S"
                ),
                "reset_time_in_seconds": max(1, int(reset_s)),
                "user_limit": self.requests_per_hour,
            }
        )

    # -- checks -----------------------------------------------------------------------------

    def _user(self, token: object) -> int:
        if not token:
            raise Refusal(21301, MESSAGES[21301], status=403)
        if token in self.expired:
            raise Refusal(21327, MESSAGES[21327], status=403)
        if str(token) not in self.tokens:
            raise Refusal(21332, MESSAGES[21332], status=403)
        return self.tokens[str(token)]

    def _text(self, raw: object) -> str:
        text = str(raw or "").strip()
        if not text:
            raise Refusal(20008, MESSAGES[20008], status=400)
        self._within_140(text)
        return text

    @staticmethod
    def _within_140(text: str) -> None:
        if weibo_length(text) > 140:
            raise Refusal(20012, MESSAGES[20012], status=400)

    def _safe(self, host: str) -> bool:
        host = host.lower()
        return any(host == d or host.endswith("." + d) for d in self.safe_domains)

    def _not_repeated(self, uid: int, text: str) -> None:
        mine = [s for s in self.statuses.values() if s["user"]["id"] == uid]
        if mine and mine[-1]["text"] == text:
            raise Refusal(20019, MESSAGES[20019], status=400)

    def _spend(self, uid: int, budget: str) -> None:
        """Count one call in ``budget`` (``post``, ``comment`` or only ``total``) and in the
        total, or refuse it as Weibo does once the hour's budget is spent."""
        hour = int(self.clock() // 3600)
        limits = {
            "total": (self.requests_per_hour, 10023),
            "post": (self.posts_per_hour, 20016),
            "comment": (self.comments_per_hour, 10024),
        }
        spends = {"total", budget}
        for name in sorted(spends, key=lambda n: n != "total"):  # the total first
            limit, code = limits[name]
            if self._hourly.get((name, uid, hour), 0) >= limit:
                raise Refusal(code, MESSAGES[code], status=http_status(code))
        for name in spends:
            self._hourly[(name, uid, hour)] = self._hourly.get((name, uid, hour), 0) + 1

    def _status(self, raw: object) -> dict[str, Any]:
        if not raw:
            raise Refusal(10016, MESSAGES[10016] + ": id", status=400)
        status = self.statuses.get(str(raw))
        if status is None:
            raise Refusal(20101, MESSAGES[20101], status=400)
        return status

    # -- objects ----------------------------------------------------------------------------

    def _object(self, uid: int, text: str) -> dict[str, Any]:
        self._next_id += 1
        created = datetime.fromtimestamp(self.clock()).astimezone()
        return {
            "created_at": created.strftime("%a %b %d %H:%M:%S %z %Y"),
            "id": self._next_id,
            "idstr": str(self._next_id),
            "mid": str(self._next_id),
            "text": text,
            "source": '<a href="https://alerts.example.gov.cn">alertcast</a>',
            "user": {"id": uid, "idstr": str(uid), "screen_name": f"user{uid}"},
        }

    def _create(
        self, uid: int, text: str, retweeted: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        status = {
            **self._object(uid, text),
            "favorited": False,
            "truncated": False,
            "in_reply_to_status_id": "",
            "in_reply_to_user_id": "",
            "in_reply_to_screen_name": "",
            "geo": None,
            "reposts_count": 0,
            "comments_count": 0,
            "annotations": [],
        }
        if retweeted is not None:
            status["retweeted_status"] = retweeted
        self.statuses[status["idstr"]] = status
        return status


def _require_rip(raw: object) -> None:
    try:
        ipaddress.ip_address(str(raw or ""))
    except ValueError:
        raise Refusal(10016, MESSAGES[10016] + ": rip", status=400) from None
