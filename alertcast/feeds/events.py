"""The normalised earthquake event every feed parser produces, and what an alert states of it.

A :class:`QuakeEvent` is one revision of one real event as one source saw it. Parsers are strict
about what an alert depends on (id, time, coordinates, magnitude) and tolerant of nulls elsewhere;
they raise :class:`BadEvent` for one bad entry and :class:`MalformedFeed` for a body that is not a
feed at all. :func:`alert_facts` reduces an event to the facts an alert states, at the precision it
states them, so a revision that changes nothing a reader would see is not an update.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple

from alertcast.feedconfig import Report

__all__ = [
    "AlertFacts",
    "BadEvent",
    "FeedError",
    "MalformedFeed",
    "ParseResult",
    "QuakeEvent",
    "Report",
    "alert_facts",
    "finite_float",
    "ms_to_utc",
]

PAGER_LEVELS = ("green", "yellow", "orange", "red")


class FeedError(ValueError):
    """Base of the parse errors; ``reason`` is what a log line or a 400 answer says."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class MalformedFeed(FeedError):
    """The whole body is unusable (not JSON, wrong shape): nothing in it can be trusted."""


class BadEvent(FeedError):
    """One entry lacks or garbles something an alert depends on; the rest of the feed stands."""


@dataclass(frozen=True)
class QuakeEvent:
    """One revision of one earthquake as one source reported it (times aware, in UTC)."""

    source: str
    event_id: str
    ids: frozenset[str]
    time: datetime
    magnitude: float
    depth_km: float | None
    latitude: float
    longitude: float
    place: str
    report: Report
    magnitude_type: str = "M"
    updated: datetime | None = None
    event_type: str = "earthquake"
    pager: str | None = None
    tsunami: bool = False
    url: str | None = None
    area_codes: tuple[str, ...] = ()
    status: str | None = None
    places: tuple[tuple[str, str], ...] = ()  # (language, place): the place in every language


@dataclass(frozen=True)
class ParseResult:
    """The events of one feed body, and every entry skipped with ``(index or id, reason)``."""

    events: tuple[QuakeEvent, ...] = ()
    errors: tuple[tuple[str, str], ...] = ()


class AlertFacts(NamedTuple):
    """What an alert states, at the precision it states it; JSON-storable as a list."""

    magnitude: float
    depth_km: int | None
    time: str
    place: str
    pager: str | None
    report: str


def alert_facts(ev: QuakeEvent) -> AlertFacts:
    """The facts of ``ev`` an alert states: M to 0.1, depth to the km, time to the minute."""
    return AlertFacts(
        magnitude=round(ev.magnitude, 1),
        depth_km=None if ev.depth_km is None else round(ev.depth_km),
        time=ev.time.astimezone(UTC).replace(second=0, microsecond=0).isoformat(),
        place=" ".join(ev.place.split()),
        pager=ev.pager,
        report=ev.report,
    )


def finite_float(value: Any, what: str) -> float:
    """``value`` as a finite float (numbers or numeric strings); :class:`BadEvent` otherwise."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise BadEvent(f"{what} is {_describe(value)}, not a number")
    try:
        number = float(value)
    except ValueError:
        raise BadEvent(f"{what} is {value!r}, not a number") from None
    if not math.isfinite(number):
        raise BadEvent(f"{what} is not finite")
    return number


def ms_to_utc(value: Any, what: str) -> datetime:
    """Milliseconds since the epoch as an aware UTC datetime; :class:`BadEvent` otherwise."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BadEvent(f"{what} is {_describe(value)}, not epoch milliseconds")
    try:
        return datetime.fromtimestamp(value / 1000, tz=UTC)
    except (OverflowError, OSError, ValueError):
        raise BadEvent(f"{what} {value!r} is out of range") from None


def _describe(value: Any) -> str:
    return "missing" if value is None else f"{type(value).__name__} {value!r}"[:60]
