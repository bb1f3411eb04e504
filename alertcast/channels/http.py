"""HTTP helpers shared by adapters: ``Retry-After`` parsing and status-to-error mapping."""

from __future__ import annotations

import time
from collections.abc import Mapping
from email.utils import parsedate_to_datetime

from alertcast.channels.base import Permanent, RateLimited, Transient, scrub_urls

__all__ = ["raise_for_status", "retry_after_s", "scrub_urls"]

MAX_RETRY_AFTER_S = 24 * 3600.0


def retry_after_s(headers: Mapping[str, str]) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP date), if any."""
    value = headers.get("Retry-After", "").strip()
    if not value:
        return None
    if value.replace(".", "", 1).isdigit():
        return min(float(value), MAX_RETRY_AFTER_S)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return min(max(0.0, when.timestamp() - time.time()), MAX_RETRY_AFTER_S)


def raise_for_status(status: int, text: str, retry_after: float | None = None) -> None:
    """Raise the typed error an HTTP status means for a plain HTTP receiver; return on 2xx."""
    if 200 <= status < 300:
        return
    reason = f"HTTP {status}: {text[:200]}"
    if status == 429:
        raise RateLimited(reason, retry_after=retry_after, http_status=status)
    if status in (408, 425) or status >= 500:
        raise Transient(reason, retry_after=retry_after, http_status=status)
    raise Permanent(reason, http_status=status)
