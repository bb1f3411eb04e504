"""When an incident stops being in force: its own ``expires_at``, else its kind's default.

``[expiry]`` gives a default validity per kind, in hours after ``occurred_at`` (an earthquake:
24 h; the other kinds: until cancelled). An expired incident is not "active" anywhere the
public or an operator asks what is in force: the WeChat keyword reply (:mod:`alertcast.latest`),
the public page and the API's ``state``. This is the incident's validity, not a delivery's
staleness (``[dispatch.max_delay_s]``, how long a queued post may still go out).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from alertcast.config import ExpiryConfig

__all__ = ["EXPIRED", "expired", "expires_at"]

EXPIRED = "expired"


def expires_at(body: Mapping[str, Any], rule: ExpiryConfig) -> datetime | None:
    """The end of validity of an incident's stored JSON ``body`` (None: until cancelled)."""
    stated = _moment(body.get("expires_at"))
    if stated is not None:
        return stated
    hours = rule.hours(str(body.get("kind", "")))
    occurred = _moment(body.get("occurred_at"))
    if hours is None or occurred is None:
        return None
    return occurred + timedelta(hours=hours)


def expired(body: Mapping[str, Any], rule: ExpiryConfig, now: float) -> bool:
    """Whether ``body`` is past its validity at Unix time ``now``."""
    end = expires_at(body, rule)
    return end is not None and end.timestamp() <= now


def _moment(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None
