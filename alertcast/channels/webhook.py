"""``webhook``: POSTs the incident and every rendered text as JSON to a receiver's URL.

Each request carries an ``Idempotency-Key`` (the delivery's, stable across retries) and a
signature (:mod:`alertcast.signing`): alertcast's own HMAC-SHA256 (``signature = "hmac"``, the
default) or the Standard Webhooks scheme (``signature = "standard"``: ``webhook-id``,
``webhook-timestamp``, ``webhook-signature``, with a ``whsec_`` secret), so a receiver can use a
ready-made verifier. Options: extra ``headers`` (no credentials: those go by ``auth`` and
``auth_env``, ``basic`` with ``user:password`` in the variable or ``bearer`` with the token) and
a per-account ``timeout_s``. With ``per_recipient = true`` the account sends one POST per
recipient of its recipients file (``alertcast recipients import``), the body carrying
``recipient`` (its ``id``, ``region`` and the file's other columns) and the key
``<delivery's key>:<recipient id>``.

2xx is delivered; 408, 429, 5xx, timeouts and connection errors are transient (``Retry-After``
honoured); any other status is permanent.
"""

from __future__ import annotations

import base64
import functools
import json
import re
from collections.abc import Mapping
from json.encoder import encode_basestring
from typing import Any, ClassVar, Literal

import aiohttp
from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field, field_validator, model_validator

from alertcast.channels._vendor import EnvName, secret
from alertcast.channels.base import Action, AuthExpired, Channel, Outgoing, Permanent, Receipt
from alertcast.channels.http import raise_for_status, retry_after_s
from alertcast.signing import BadSecret, sign, sign_standard

__all__ = ["RESERVED_HEADERS", "WebhookChannel", "WebhookOptions"]

TRANSIENT_STATUSES = frozenset({408, 425, 429})
_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,64}$")  # an HTTP header name (RFC 9110)
RESERVED_HEADERS = frozenset(
    {
        "content-type",
        "content-length",
        "host",
        "transfer-encoding",
        "connection",
        "idempotency-key",
        "x-alertcast-timestamp",
        "x-alertcast-signature",
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
    }
)
CREDENTIAL_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie"})


class WebhookOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: AnyHttpUrl
    secret_env: EnvName
    signature: Literal["hmac", "standard"] = "hmac"
    headers: dict[str, str] = Field(default_factory=dict)
    auth: Literal["basic", "bearer"] | None = None
    auth_env: EnvName | None = None
    timeout_s: float = Field(default=10.0, gt=0, le=300)
    # One POST per recipient of the account (alertcast recipients import), each carrying its
    # ``recipient`` and its own idempotency key (alertcast.bulk).
    per_recipient: bool = False

    @field_validator("headers")
    @classmethod
    def _plain_headers(cls, headers: dict[str, str]) -> dict[str, str]:
        for name, value in headers.items():
            lower = name.lower()
            if not _TOKEN.match(name):
                raise ValueError(f"{name!r} is not an HTTP header name")
            if lower in CREDENTIAL_HEADERS:
                raise ValueError(f"{name} carries a credential: set auth and auth_env instead")
            if lower in RESERVED_HEADERS:
                raise ValueError(f"{name} is set by alertcast itself")
            if any(ch in value for ch in "\r\n\0"):
                raise ValueError(f"the value of {name} holds a line break")
        return headers

    @model_validator(mode="after")
    def _auth_with_its_variable(self) -> WebhookOptions:
        if (self.auth is None) != (self.auth_env is None):
            raise ValueError("auth and auth_env go together: the scheme and the variable")
        return self


class WebhookChannel(Channel):
    name = "webhook"
    Options = WebhookOptions
    default_format = "webhook"
    capabilities: ClassVar[frozenset[Action]] = frozenset(
        {"post", "reply", "repost", "edit", "delete"}
    )

    @property
    def _opts(self) -> WebhookOptions:
        assert isinstance(self.options, WebhookOptions)
        return self.options

    @classmethod
    def per_recipient(cls, options: BaseModel) -> bool:
        return isinstance(options, WebhookOptions) and options.per_recipient

    times_itself = True  # aiohttp's timeout, not a second timer around it

    def send_timeout_s(self, msg: Outgoing) -> float:
        return self._opts.timeout_s

    @functools.cached_property
    def _timeout(self) -> aiohttp.ClientTimeout:
        """The whole request, answer read included, within ``timeout_s`` (connecting within
        10 s of it, as every session's request)."""
        total = self._opts.timeout_s
        return aiohttp.ClientTimeout(total=total, connect=min(10.0, total))

    async def send(self, msg: Outgoing) -> Receipt:
        body = _body(msg)
        headers = {
            **self._opts.headers,
            "Content-Type": "application/json; charset=utf-8",
            "Idempotency-Key": msg.idempotency_key,
            **self._signature(msg, body),
            **self._authorization(),
        }
        async with self.session.post(
            str(self._opts.url),
            data=body,
            headers=headers,
            allow_redirects=False,
            timeout=self._timeout,
        ) as resp:
            text = await resp.text(errors="replace")
            if resp.status in TRANSIENT_STATUSES or resp.status >= 500:
                raise_for_status(resp.status, text, retry_after_s(resp.headers))
            if not 200 <= resp.status < 300:
                raise Permanent(f"HTTP {resp.status}: {text[:200]}", http_status=resp.status)
            return Receipt(remote_id=_remote_id(text, resp.headers), http_status=resp.status)

    def _signature(self, msg: Outgoing, body: bytes) -> dict[str, str]:
        key = secret(self.secrets, self._opts.secret_env)
        if self._opts.signature == "hmac":
            return sign(key, body)
        try:
            return sign_standard(key, msg.idempotency_key, body)
        except BadSecret as exc:
            raise AuthExpired(f"{self._opts.secret_env}: {exc}") from None

    def _authorization(self) -> dict[str, str]:
        """The ``Authorization`` header the account's ``auth`` names (none without it); the
        encoded form is scrubbed from errors like the variable's value."""
        opts = self._opts
        if opts.auth is None or opts.auth_env is None:
            return {}
        value = secret(self.secrets, opts.auth_env)
        if opts.auth == "bearer":
            return {"Authorization": f"Bearer {value}"}
        if ":" not in value:
            raise AuthExpired(f"{opts.auth_env} must hold user:password for basic auth")
        encoded = self.secrets.remember(base64.b64encode(value.encode()).decode())
        return {"Authorization": f"Basic {encoded}"}


ENVELOPE = ("delivery_id", "idempotency_key", "action", "in_reply_to", "recipient")
_ENCODED: dict[int, tuple[Mapping[str, Any], bytes]] = {}  # id(payload) -> (payload, its JSON)
_ENCODED_MOST = 64


def _body(msg: Outgoing) -> bytes:
    """The JSON body: the payload's fields, then the delivery's own (:data:`ENVELOPE`; the
    ``recipient`` of a per-recipient send).

    A payload rendered once for many accounts (alike ones share it) is encoded once: its JSON,
    kept by identity for the last :data:`_ENCODED_MOST` payloads (the entry holds the payload,
    so its id is not reused meanwhile), is joined with the delivery's fields — the same bytes
    ``json.dumps`` of the merged dict would give. A payload holding one of those fields itself
    is merged and encoded whole, the delivery's value winning, as a dict merge would.
    """
    payload = msg.payload
    own: dict[str, Any] = {
        "delivery_id": msg.delivery_id,
        "idempotency_key": msg.idempotency_key,
        "action": msg.action,
        "in_reply_to": msg.target_remote_id,
    }
    if msg.recipient is not None:
        own["recipient"] = dict(msg.recipient)
    if not payload or any(key in payload for key in ENVELOPE):
        return _dumps({**payload, **own})
    kept = _ENCODED.get(id(payload))
    if kept is None or kept[0] is not payload:
        if len(_ENCODED) >= _ENCODED_MOST:
            del _ENCODED[next(iter(_ENCODED))]
        kept = _ENCODED[id(payload)] = (payload, _dumps(dict(payload)))
    tail = ",".join(f"{_string(k)}:{_value(v)}" for k, v in own.items())
    return kept[1][:-1] + b"," + tail.encode() + b"}"


_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))  # one, not one per call


def _dumps(value: Mapping[str, Any]) -> bytes:
    return _ENCODER.encode(value).encode()


_string = encode_basestring  # a JSON string as json.dumps(ensure_ascii=False) writes it


def _value(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, str):
        return _string(value)
    return _ENCODER.encode(value)


def _remote_id(text: str, headers: Mapping[str, str]) -> str | None:
    try:
        data = json.loads(text) if text.lstrip().startswith("{") else None
    except ValueError:
        data = None
    if isinstance(data, dict) and isinstance(data.get("id"), str | int):
        return str(data["id"])
    request_id = headers.get("X-Request-Id")
    return str(request_id) if request_id else None
