"""``webhook``: POSTs the incident and every rendered text as JSON to a receiver's URL.

Each request carries an ``Idempotency-Key`` (the delivery's, stable across retries) and an
HMAC-SHA256 signature (see :mod:`alertcast.signing`). 2xx is delivered; 408, 429, 5xx, timeouts and
connection errors are transient (``Retry-After`` honoured); any other status is permanent.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar

from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field

from alertcast.channels.base import Action, Channel, Outgoing, Permanent, Receipt
from alertcast.channels.http import raise_for_status, retry_after_s
from alertcast.signing import sign

TRANSIENT_STATUSES = frozenset({408, 425, 429})


class WebhookOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: AnyHttpUrl
    secret_env: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")


class WebhookChannel(Channel):
    name = "webhook"
    Options = WebhookOptions
    default_format = "webhook"
    capabilities: ClassVar[frozenset[Action]] = frozenset(
        {"post", "reply", "repost", "edit", "delete"}
    )

    async def send(self, msg: Outgoing) -> Receipt:
        assert isinstance(self.options, WebhookOptions)
        body = json.dumps(_envelope(msg), ensure_ascii=False, separators=(",", ":")).encode()
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "Idempotency-Key": msg.idempotency_key,
            **sign(self.secrets.get(self.options.secret_env), body),
        }
        async with self.session.post(
            str(self.options.url), data=body, headers=headers, allow_redirects=False
        ) as resp:
            text = await resp.text(errors="replace")
            if resp.status in TRANSIENT_STATUSES or resp.status >= 500:
                raise_for_status(resp.status, text, retry_after_s(resp.headers))
            if not 200 <= resp.status < 300:
                raise Permanent(f"HTTP {resp.status}: {text[:200]}", http_status=resp.status)
            return Receipt(remote_id=_remote_id(text, resp.headers), http_status=resp.status)


def _envelope(msg: Outgoing) -> dict[str, Any]:
    return {
        **msg.payload,
        "delivery_id": msg.delivery_id,
        "idempotency_key": msg.idempotency_key,
        "action": msg.action,
        "in_reply_to": msg.target_remote_id,
    }


def _remote_id(text: str, headers: Any) -> str | None:
    try:
        data = json.loads(text) if text else None
    except ValueError:
        data = None
    if isinstance(data, dict) and isinstance(data.get("id"), str | int):
        return str(data["id"])
    request_id = headers.get("X-Request-Id")
    return str(request_id) if request_id else None
