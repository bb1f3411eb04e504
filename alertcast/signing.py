"""Webhook signatures, in two schemes a receiver can verify.

``hmac`` (alertcast's own, the default): HMAC-SHA256 over ``"{timestamp}.{body}"`` with the
shared secret's bytes. Headers: ``X-Alertcast-Timestamp`` (Unix seconds) and
``X-Alertcast-Signature`` (``sha256=<hex>``). A receiver recomputes the digest, compares in
constant time, and refuses timestamps older than its tolerance (replay protection).

``standard`` (Standard Webhooks, https://www.standardwebhooks.com, so receivers can use the
ready-made verifiers): the secret is ``whsec_`` + base64 of the key bytes; the signature is
``v1,`` + base64 of HMAC-SHA256 over ``"{id}.{timestamp}.{body}"``. Headers: ``webhook-id``
(the delivery's idempotency key: the same on every retry), ``webhook-timestamp`` (Unix
seconds) and ``webhook-signature``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from collections.abc import Mapping

__all__ = [
    "SIGNATURE_HEADER",
    "STANDARD_ID",
    "STANDARD_SIGNATURE",
    "STANDARD_TIMESTAMP",
    "TIMESTAMP_HEADER",
    "BadSecret",
    "sign",
    "sign_standard",
    "standard_key",
    "verify",
]

TIMESTAMP_HEADER = "X-Alertcast-Timestamp"
SIGNATURE_HEADER = "X-Alertcast-Signature"
STANDARD_ID = "webhook-id"
STANDARD_TIMESTAMP = "webhook-timestamp"
STANDARD_SIGNATURE = "webhook-signature"
STANDARD_PREFIX = "whsec_"


class BadSecret(ValueError):
    """A Standard Webhooks secret that is not ``whsec_`` + base64 (the value is never shown)."""


def sign(secret: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    """The two ``hmac`` signature headers for ``body``."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    digest = hmac.new(secret.encode(), ts.encode() + b"." + body, hashlib.sha256).hexdigest()
    return {TIMESTAMP_HEADER: ts, SIGNATURE_HEADER: f"sha256={digest}"}


def verify(
    secret: str, headers: Mapping[str, str], body: bytes, *, tolerance_s: float = 300.0
) -> bool:
    """True when ``headers`` carry a fresh, valid ``hmac`` signature of ``body``."""
    ts = headers.get(TIMESTAMP_HEADER, "")
    given = headers.get(SIGNATURE_HEADER, "")
    if not ts.isdigit() or abs(time.time() - int(ts)) > tolerance_s:
        return False
    expected = sign(secret, body, int(ts))[SIGNATURE_HEADER]
    return hmac.compare_digest(given.encode(), expected.encode())


def standard_key(secret: str) -> bytes:
    """The key bytes of a ``whsec_<base64>`` secret; :class:`BadSecret` when it is not one."""
    if not secret.startswith(STANDARD_PREFIX):
        raise BadSecret("a Standard Webhooks secret starts with whsec_")
    try:
        key = base64.b64decode(secret[len(STANDARD_PREFIX) :], validate=True)
    except (binascii.Error, ValueError):
        raise BadSecret("a Standard Webhooks secret is whsec_ followed by base64") from None
    if len(key) < 16:
        raise BadSecret("a Standard Webhooks secret holds at least 16 bytes")
    return key


def sign_standard(
    secret: str, msg_id: str, body: bytes, timestamp: int | None = None
) -> dict[str, str]:
    """The three Standard Webhooks headers for ``body`` sent as message ``msg_id``."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    signed = msg_id.encode() + b"." + ts.encode() + b"." + body
    digest = hmac.new(standard_key(secret), signed, hashlib.sha256).digest()
    signature = "v1," + base64.b64encode(digest).decode()
    return {STANDARD_ID: msg_id, STANDARD_TIMESTAMP: ts, STANDARD_SIGNATURE: signature}
