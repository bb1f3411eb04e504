"""``mastodon``: statuses on a Mastodon instance — post, reply, edit, delete.

API reference (docs/channels.md, facts §5), JSON bodies, ``Authorization: Bearer TOKEN`` (scope
``write:statuses``), against ``{base_url}``:

* post / reply: ``POST /api/v1/statuses`` — ``status``, ``visibility``, ``language`` (ISO 639-1),
  ``in_reply_to_id`` for a reply; ``Idempotency-Key: <the delivery's key>``: the instance keeps it
  an hour per account and answers a repeat with the original status, so a retry after a lost
  answer posts nothing twice.
* edit: ``PUT /api/v1/statuses/:id`` — ``status``, ``language`` (visibility cannot be edited).
* delete: ``DELETE /api/v1/statuses/:id``; 404 ``Record not found`` means it is gone already.

The text limit is the instance's: ``max_characters`` (default 500) counted over the text in
grapheme clusters, every URL as ``url_length`` (default 23) — the account keys the renderer fits
the text with. Success is the Status (its ``id`` is the receipt); an error is ``{"error": …}``
with a real HTTP status; a 429 waits until ``X-RateLimit-Reset``.
"""

from __future__ import annotations

import re
import time
import unicodedata
from collections.abc import Mapping
from datetime import datetime
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, HttpUrl

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
from alertcast.channels.http import MAX_RETRY_AFTER_S, retry_after_s
from alertcast.lengths import URL_RE

__all__ = ["MastodonChannel", "MastodonOptions", "mastodon_length"]

Visibility = Literal["public", "unlisted", "private", "direct"]
_JOINERS = frozenset({"\u200d"})
_EXTENDERS = frozenset({"Mn", "Me", "Mc"})
_MENTION = re.compile(r"(?<![\w@])(@\w+)@[\w.-]*\w")  # @user@domain counts as @user


class MastodonOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    access_token_env: EnvName
    base_url: HttpUrl
    visibility: Visibility = "public"
    language: str | None = Field(default=None, pattern=r"^[a-z]{2}$")


class MastodonChannel(Channel):
    name = "mastodon"
    Options = MastodonOptions
    default_format = "mastodon"
    capabilities: ClassVar[frozenset[Action]] = frozenset({"post", "reply", "edit", "delete"})
    # Facts §5: 300 calls per 5 minutes per token (any minute of 60 keeps every 5 minutes under
    # it); statuses 300 per 3 hours and deletions 30 per 30 minutes per account, met by the
    # instance's 429 and X-RateLimit-Reset.
    limits: ClassVar[Limits] = Limits(concurrency=2, per_minute=60)
    STATUSES_PER_3_HOURS: ClassVar[int] = 300
    DELETES_PER_30_MINUTES: ClassVar[int] = 30
    MAX_CHARACTERS: ClassVar[int] = 500  # the default; the account's max_characters says more
    URL_LENGTH: ClassVar[int] = 23  # characters_reserved_per_url; the account's url_length
    # The text limit is per instance (account keys), counted in graphemes: no static limit.
    formats: ClassVar[Mapping[str, FieldLimits]] = {"mastodon": {}}

    ERRORS: ClassVar[Mapping[int, Fate]] = {
        401: AUTH,  # "The access token is invalid"
        403: PERMANENT,  # "This action is not allowed" (not the account's status)
        404: PERMANENT,  # "Record not found"
        410: PERMANENT,  # gone (account suspended or deleted)
        422: PERMANENT,  # "Validation failed: …" (blank, too long, bad visibility)
        429: Fate(RateLimited),  # "Too many requests": wait until X-RateLimit-Reset
        500: TRANSIENT,
        502: TRANSIENT,
        503: TRANSIENT,
        504: TRANSIENT,
    }

    async def send(self, msg: Outgoing) -> Receipt:
        if msg.action == "delete":
            return await self._delete(_target(msg))
        text = self._text(msg.payload)
        if msg.action == "edit":
            body = {"status": text, "language": self._language()}
            return self._status(await self._call("PUT", f"/{_target(msg)}", body))
        return await self._post(msg, text)

    async def _post(self, msg: Outgoing, text: str) -> Receipt:
        assert isinstance(self.options, MastodonOptions)
        body: dict[str, Any] = {
            "status": text,
            "visibility": self.options.visibility,
            "language": self._language(),
        }
        if msg.action == "reply":
            body["in_reply_to_id"] = _target(msg)
        key = {"Idempotency-Key": msg.idempotency_key}
        reply = await self._call("POST", "", body, key)
        if reply.status == 404 and "in_reply_to_id" in body:
            # The original is gone (deleted by hand): the correction still reaches the
            # followers, standing alone.
            del body["in_reply_to_id"]
            receipt = self._status(await self._call("POST", "", body, key))
            return Receipt(receipt.remote_id, http_status=receipt.http_status, detail=_ALONE)
        return self._status(reply)

    async def _delete(self, status_id: str) -> Receipt:
        reply = await self._call("DELETE", f"/{status_id}")
        if reply.status == 404:  # a retry after a lost answer: the status is gone already
            return Receipt(remote_id=status_id, duplicate=True, http_status=404)
        return self._status(reply)

    def _text(self, payload: Mapping[str, Any]) -> str:
        """The payload's text, refused when the instance would refuse it (blank, too long)."""
        text = str(payload.get("text") or "")
        if not text.strip():
            raise Permanent("nothing to post: the text is blank")
        most = _int_option(self.account.options, "max_characters", self.MAX_CHARACTERS)
        url = _int_option(self.account.options, "url_length", self.URL_LENGTH)
        used = mastodon_length(text, url_length=url)
        if used > most:
            raise Permanent(
                f"text is {used} characters as Mastodon counts them (links {url}); "
                f"the instance takes at most {most} (max_characters)"
            )
        return text

    def _language(self) -> str:
        """The configured ISO 639-1 code, else the account's language's primary subtag."""
        assert isinstance(self.options, MastodonOptions)
        return self.options.language or self.account.language.split("-")[0].lower()

    async def _call(
        self,
        method: str,
        path: str,
        body: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> RestReply:
        assert isinstance(self.options, MastodonOptions)
        token = secret(self.secrets, self.options.access_token_env)
        url = str(self.options.base_url).rstrip("/") + "/api/v1/statuses" + path
        auth = {"Authorization": f"Bearer {token}", **(headers or {})}
        return await call_rest(self.session, method, url, headers=auth, json_body=body)

    def _status(self, reply: RestReply) -> Receipt:
        """The receipt of a Status answer, or the typed error the answer means."""
        data = reply.data or {}
        if 200 <= reply.status < 300:
            status_id = data.get("id")
            if not isinstance(status_id, str | int) or isinstance(status_id, bool):
                raise Transient("mastodon answered without a status id", http_status=reply.status)
            return Receipt(remote_id=str(status_id), http_status=reply.status)
        fate = self.ERRORS.get(reply.status) or (TRANSIENT if reply.status >= 500 else PERMANENT)
        error = str(data.get("error") or reply.text)[:200]
        raise_fate(
            fate,
            f"mastodon HTTP {reply.status}: {error}",
            code=reply.status,
            http_status=reply.status,
            retry_after_s=_wait_s(reply.headers) if reply.status == 429 else None,
        )


_ALONE = {"threaded": False, "why": "the original is gone (404); posted standalone"}


def mastodon_length(text: str, *, url_length: int = 23) -> int:
    """The length Mastodon gives ``text`` (facts §5): grapheme clusters, every URL
    ``url_length``. A cluster here is a character with the combining marks, variation
    selectors, emoji modifiers and zero-width-joined characters after it, and a flag pair:
    it never counts more clusters than the renderer's fuller rules (so what the renderer
    fitted is never refused here), while the instance stays the judge of the rest. A mention
    counts its ``@user`` part only."""
    parts = URL_RE.split(text)
    return sum(_clusters(_MENTION.sub(r"\1", p)) for p in parts) + url_length * (len(parts) - 1)


def _clusters(text: str) -> int:
    count, joined, flag = 0, False, False
    for char in text:
        if joined or _extends(char):
            joined = char in _JOINERS
            continue
        if _regional(char):
            flag = not flag
            if not flag:
                continue
        else:
            flag = False
        joined = char in _JOINERS
        count += 1
    return count


def _extends(char: str) -> bool:
    point = ord(char)
    return (
        unicodedata.category(char) in _EXTENDERS
        or char in _JOINERS
        or 0xFE00 <= point <= 0xFE0F
        or 0x1F3FB <= point <= 0x1F3FF
        or 0xE0020 <= point <= 0xE007F
    )


def _regional(char: str) -> bool:
    return 0x1F1E6 <= ord(char) <= 0x1F1FF


def _wait_s(headers: Mapping[str, str]) -> float | None:
    """Seconds until ``X-RateLimit-Reset`` (ISO 8601), else ``Retry-After``'s word."""
    raw = headers.get("X-RateLimit-Reset", "").strip()
    try:
        reset = datetime.fromisoformat(raw.replace("Z", "+00:00")) if raw else None
    except ValueError:
        reset = None
    if reset is None or reset.tzinfo is None:
        return retry_after_s(headers)
    return min(max(1.0, reset.timestamp() - time.time()), MAX_RETRY_AFTER_S)


def _int_option(options: Mapping[str, Any], key: str, default: int) -> int:
    value = options.get(key, default)
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def _target(msg: Outgoing) -> str:
    if not msg.target_remote_id:
        raise Permanent(f"{msg.action} needs the original status's id")
    return msg.target_remote_id
