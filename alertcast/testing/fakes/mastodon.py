"""A fake Mastodon instance (``/api/v1/statuses`` and ``/api/v2/instance``), from facts §5.

It checks what an instance checks: the bearer token (401 ``The access token is invalid``), a
blank text and the instance's character limit (422 ``Validation failed: …``), counted as
Mastodon counts: grapheme clusters, every URL :attr:`url_length`, a mention its ``@user`` part;
``visibility``; that a reply's ``in_reply_to_id`` exists (404) and that only the author edits or
deletes (403 ``This action is not allowed``). An ``Idempotency-Key`` is kept an hour per account:
a repeat answers the original status and posts nothing. Every answer carries
``X-RateLimit-Limit``/``-Remaining``/``-Reset`` for the token's window (300 calls per 5 minutes);
past it, and past 300 statuses in 3 hours or 30 deletions in 30 minutes per account, the answer
is 429 ``Too many requests`` with ``X-RateLimit-Remaining: 0``.
"""

from __future__ import annotations

import re
import time
import unicodedata
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from alertcast.testing.fakes._base import FakePlatform, Refusal, json_body

__all__ = ["FakeMastodon", "status_length"]

VISIBILITIES = frozenset({"public", "unlisted", "private", "direct"})
IDEMPOTENCY_TTL_S = 3600.0
_URL = re.compile(r"https?://\S+")
_MENTION = re.compile(r"@(\w+)@[\w.-]+\w")


def status_length(text: str, url_length: int = 23) -> int:
    """Mastodon's count of ``text`` (facts §5), re-derived here: URLs weigh ``url_length``,
    ``@user@domain`` weighs ``@user``, and the rest counts in grapheme clusters (a base
    character with its marks, variation selectors, skin tones and ZWJ-joined emoji; a flag)."""
    text = _MENTION.sub(lambda m: "@" + m.group(1), text)
    links = _URL.findall(text)
    return _graphemes(_URL.sub("", text)) + url_length * len(links)


def _graphemes(text: str) -> int:
    count, after_zwj, pending_flag = 0, False, False
    for char in text:
        point = ord(char)
        joins = (
            unicodedata.combining(char) > 0
            or unicodedata.category(char) in ("Mn", "Me", "Mc")
            or 0xFE00 <= point <= 0xFE0F
            or 0x1F3FB <= point <= 0x1F3FF
            or 0xE0020 <= point <= 0xE007F
            or char == "\u200d"
        )
        flag = 0x1F1E6 <= point <= 0x1F1FF
        if after_zwj or joins or (flag and pending_flag):
            pending_flag = False
        else:
            count += 1
            pending_flag = flag
        after_zwj = char == "\u200d"
    return count


class FakeMastodon(FakePlatform):
    """``tokens`` maps an access token to its account's id."""

    def __init__(
        self,
        tokens: Mapping[str, str] | None = None,
        *,
        max_characters: int = 500,
        url_length: int = 23,
        per_5_minutes: int = 300,
        statuses_per_3_hours: int = 300,
        deletes_per_30_minutes: int = 30,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(clock)
        self.tokens = dict(tokens or {"masto-token": "1"})
        self.max_characters = max_characters
        self.url_length = url_length
        self.statuses: dict[str, dict[str, Any]] = {}
        self.deleted: dict[str, dict[str, Any]] = {}
        self.history: dict[str, list[str]] = {}  # status id -> its earlier texts
        self._keys: dict[tuple[str, str], tuple[str, float]] = {}
        self._next_id = 110_000_000_000_000_000
        self.per_5_minutes = per_5_minutes
        self._api_calls: dict[tuple[str, int], int] = {}  # (token, 5-minute period) -> calls
        self._families = {
            "statuses": (statuses_per_3_hours, 3 * 3600.0),
            "deletes": (deletes_per_30_minutes, 1800.0),
        }
        self._recent: dict[tuple[str, str], list[float]] = {}

    def fail_next(self, status: int, error: str = "error", *, times: int = 1) -> None:
        """Answer the next request(s) with HTTP ``status`` and ``{"error": error}``."""
        self.inject(Refusal(status, error, status=status), times=times)

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/api/v2/instance", self._instance),
            web.post("/api/v1/statuses", self._create),
            web.put("/api/v1/statuses/{id}", self._edit),
            web.delete("/api/v1/statuses/{id}", self._delete),
        ]

    def refuse(self, request: web.Request, refusal: Refusal) -> web.Response:
        resp = web.json_response({"error": refusal.message}, status=refusal.status)
        resp.headers.update({k: str(v) for k, v in refusal.extra.items()})
        return resp

    async def _instance(self, request: web.Request) -> web.Response:
        statuses = {
            "max_characters": self.max_characters,
            "characters_reserved_per_url": self.url_length,
        }
        return web.json_response({"configuration": {"statuses": statuses}})

    async def _create(self, request: web.Request) -> web.Response:
        account, token = self._authorised(request)
        body = json_body(
            await request.read(), Refusal(422, "Validation failed: bad body", status=422)
        )
        key = request.headers.get("Idempotency-Key")
        if key and (kept := self._kept(account, key)) is not None:
            return self._answer(token, self.statuses.get(kept) or self.deleted[kept])
        text = self._valid_text(body)
        visibility = str(body.get("visibility") or "public")
        if visibility not in VISIBILITIES:
            raise Refusal(
                422, "Validation failed: Visibility is not included in the list", status=422
            )
        reply_to = body.get("in_reply_to_id")
        if reply_to is not None and str(reply_to) not in self.statuses:
            raise Refusal(
                404, "The status you are trying to reply to does not appear to exist.", status=404
            )
        self._spend("statuses", account, token)
        status = self._new_status(account, text, visibility, body, reply_to)
        if key:
            self._keys[(account, key)] = (status["id"], self.clock())
        return self._answer(token, status)

    async def _edit(self, request: web.Request) -> web.Response:
        account, token = self._authorised(request)
        status = self._own(request, account)
        body = json_body(
            await request.read(), Refusal(422, "Validation failed: bad body", status=422)
        )
        text = self._valid_text(body)
        self.history.setdefault(status["id"], []).append(status["text"])
        status.update(text=text, content=f"<p>{text}</p>", edited_at=self._now_iso())
        if body.get("language"):
            status["language"] = str(body["language"])
        return self._answer(token, status)

    async def _delete(self, request: web.Request) -> web.Response:
        account, token = self._authorised(request)
        status = self._own(request, account)
        self._spend("deletes", account, token)
        self.deleted[status["id"]] = self.statuses.pop(status["id"])
        return self._answer(token, status)

    def _authorised(self, request: web.Request) -> tuple[str, str]:
        auth = request.headers.get("Authorization", "")
        token = auth.removeprefix("Bearer ").strip() if auth.startswith("Bearer ") else ""
        account = self.tokens.get(token)
        if account is None:
            raise Refusal(401, "The access token is invalid", status=401)
        calls = self._api_calls.get((token, self._period()), 0)
        if calls >= self.per_5_minutes:
            raise self._too_many(token, self._reset())
        self._api_calls[(token, self._period())] = calls + 1
        return account, token

    def _period(self) -> int:
        """rack-attack's fixed 5-minute periods."""
        return int(self.clock() // 300)

    def _reset(self) -> float:
        return (self._period() + 1) * 300.0

    def _spend(self, family: str, account: str, token: str) -> None:
        """One call of a per-account family (RateLimiter), or 429 until its oldest call ages."""
        limit, period_s = self._families[family]
        now = self.clock()
        recent = [t for t in self._recent.get((family, account), []) if now - t < period_s]
        if len(recent) >= limit:
            raise self._too_many(token, recent[0] + period_s)
        self._recent[(family, account)] = [*recent, now]

    def _own(self, request: web.Request, account: str) -> dict[str, Any]:
        status = self.statuses.get(request.match_info["id"])
        if status is None:
            raise Refusal(404, "Record not found", status=404)
        if status["account"]["id"] != account:
            raise Refusal(403, "This action is not allowed", status=403)
        return status

    def _valid_text(self, body: Mapping[str, Any]) -> str:
        text = str(body.get("status") or "")
        if not text.strip():
            raise Refusal(422, "Validation failed: Text can't be blank", status=422)
        used = status_length(str(body.get("spoiler_text") or "") + text, self.url_length)
        if used > self.max_characters:
            raise Refusal(
                422,
                f"Validation failed: Text character limit of {self.max_characters} exceeded",
                status=422,
            )
        return text

    def _kept(self, account: str, key: str) -> str | None:
        kept = self._keys.get((account, key))
        if kept is None or self.clock() - kept[1] >= IDEMPOTENCY_TTL_S:
            return None
        return kept[0]

    def _new_status(
        self,
        account: str,
        text: str,
        visibility: str,
        body: Mapping[str, Any],
        reply_to: object,
    ) -> dict[str, Any]:
        self._next_id += 1
        status_id = str(self._next_id)
        status = {
            "id": status_id,
            "created_at": self._now_iso(),
            "in_reply_to_id": None if reply_to is None else str(reply_to),
            "visibility": visibility,
            "language": body.get("language"),
            "text": text,
            "content": f"<p>{text}</p>",
            "url": f"https://mastodon.example/@alerts/{status_id}",
            "uri": f"https://mastodon.example/users/alerts/statuses/{status_id}",
            "edited_at": None,
            "account": {"id": account},
        }
        self.statuses[status_id] = status
        return status

    def _headers(self, token: str, reset: float | None = None) -> dict[str, str]:
        calls = self._api_calls.get((token, self._period()), 0)
        return {
            "X-RateLimit-Limit": str(self.per_5_minutes),
            "X-RateLimit-Remaining": str(max(0, self.per_5_minutes - calls)),
            "X-RateLimit-Reset": _iso(self._reset() if reset is None else reset),
        }

    def _answer(self, token: str, status: Mapping[str, Any]) -> web.Response:
        return web.json_response(dict(status), headers=self._headers(token))

    def _too_many(self, token: str, reset: float) -> Refusal:
        headers = {**self._headers(token, reset), "X-RateLimit-Remaining": "0"}
        return Refusal(429, "Too many requests", status=429, extra=headers)

    def _now_iso(self) -> str:
        return _iso(self.clock(), "milliseconds")


def _iso(moment: float, timespec: str = "microseconds") -> str:
    """A UTC time as Mastodon writes it (``2024-05-01T10:00:00.000000Z``)."""
    return datetime.fromtimestamp(moment, UTC).isoformat(timespec=timespec).replace("+00:00", "Z")
