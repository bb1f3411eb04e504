"""Webhook signatures: HMAC-SHA256 over ``"{timestamp}.{body}"``, so a receiver can verify us.

Headers sent: ``X-Alertcast-Timestamp`` (Unix seconds) and ``X-Alertcast-Signature``
(``sha256=<hex>``). A receiver recomputes the digest with the shared secret, compares in constant
time, and refuses timestamps older than its tolerance (replay protection).
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Mapping

__all__ = ["SIGNATURE_HEADER", "TIMESTAMP_HEADER", "sign", "verify"]

TIMESTAMP_HEADER = "X-Alertcast-Timestamp"
SIGNATURE_HEADER = "X-Alertcast-Signature"


def sign(secret: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    """The two signature headers for ``body``."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    digest = hmac.new(secret.encode(), ts.encode() + b"." + body, hashlib.sha256).hexdigest()
    return {TIMESTAMP_HEADER: ts, SIGNATURE_HEADER: f"sha256={digest}"}


def verify(
    secret: str, headers: Mapping[str, str], body: bytes, *, tolerance_s: float = 300.0
) -> bool:
    """True when ``headers`` carry a fresh, valid signature of ``body`` under ``secret``."""
    ts = headers.get(TIMESTAMP_HEADER, "")
    given = headers.get(SIGNATURE_HEADER, "")
    if not ts.isdigit() or abs(time.time() - int(ts)) > tolerance_s:
        return False
    expected = sign(secret, body, int(ts))[SIGNATURE_HEADER]
    return hmac.compare_digest(given.encode(), expected.encode())
