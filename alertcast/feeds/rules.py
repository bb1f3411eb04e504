"""Per-feed rules: which events raise an alert, how severe, and as what incident.

One ``[[feeds]]`` entry is a :class:`~alertcast.feedconfig.FeedConfig` (re-exported here).
:func:`matches` says why an event does *not* raise an alert (None when it does), checking event
type, report kind, magnitude, depth and region in that order. :func:`severity` takes the
higher of the magnitude band and the PAGER level. :func:`to_incident` builds the dict
:func:`alertcast.models.parse_incident` accepts.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from alertcast.feedconfig import FeedConfig, Region, SeverityBands
from alertcast.feeds import _text
from alertcast.feeds._geo import distance_km, in_bbox, in_polygon
from alertcast.feeds.cenc import BEIJING
from alertcast.feeds.events import QuakeEvent
from alertcast.models import Circle, Kind, Severity

__all__ = [
    "FeedConfig",
    "Region",
    "SeverityBands",
    "matches",
    "region_miss",
    "severity",
    "to_incident",
]

_ZONES = {"cenc": BEIJING}
_PAGER_SEVERITY = {
    "red": Severity.extreme,
    "orange": Severity.severe,
    "yellow": Severity.moderate,
    "green": Severity.minor,
}


def region_miss(region: Region, ev: QuakeEvent) -> str | None:
    """Why ``ev`` lies outside the region, or None when it lies inside."""
    if region.bbox and not in_bbox(ev.latitude, ev.longitude, region.bbox):
        return f"epicentre {_where(ev)} is outside the region's bbox"
    if region.polygon and not in_polygon(ev.latitude, ev.longitude, region.polygon):
        return f"epicentre {_where(ev)} is outside the region's polygon"
    if region.circle and not _in_circle(ev, region.circle):
        return f"epicentre {_where(ev)} is outside the region's circle"
    if region.codes and not any(_code_covers(r, c) for r in region.codes for c in ev.area_codes):
        codes = ", ".join(ev.area_codes) or "none"
        return f"area codes ({codes}) are outside the region's codes"
    return None


def matches(cfg: FeedConfig, ev: QuakeEvent, *, report: bool = True) -> str | None:
    """None when ``ev`` raises an alert under ``cfg``; otherwise the first reason it does not.

    ``report=False`` skips the report-kind check: it gates raising an alert, and an alerted
    event is never cancelled because its official report arrived on an automatic-only feed.
    """
    for check in _CHECKS:
        if check in _RAISE_ONLY and not report:
            continue
        reason = check(cfg, ev)
        if reason:
            return reason
    return None


def severity(cfg: FeedConfig, ev: QuakeEvent) -> Severity:
    """The magnitude band or the PAGER level, whichever is higher."""
    by_magnitude = cfg.severity_bands.of(round(ev.magnitude, 1))
    by_pager = _PAGER_SEVERITY.get(ev.pager or "", Severity.unknown)
    return max(by_magnitude, by_pager, key=lambda s: s.rank)


def to_incident(cfg: FeedConfig, ev: QuakeEvent) -> dict[str, Any]:
    """The incident ``ev`` raises under ``cfg``, as data ``parse_incident`` accepts."""
    language = cfg.language or ("zh-CN" if ev.source == "cenc" else "en")
    incident: dict[str, Any] = {
        "kind": Kind.earthquake.value,
        "status": cfg.status.value,
        "severity": severity(cfg, ev).value,
        "headline": _text.headline(ev, language),
        # The bulletin is the template's summary, rendered per account: no second copy here.
        "description": "",
        "area": {"name": _text.clip(ev.place), "codes": _codes(cfg, ev)},
        # In the source's own zone: English texts state the time as the source does, with it.
        "occurred_at": ev.time.astimezone(_ZONES.get(ev.source, UTC)).isoformat(),
        "language": language,
        "details": _details(ev),
    }
    if ev.url and ev.url.startswith(("https://", "http://")):
        incident["url"] = ev.url
    return incident


def _details(ev: QuakeEvent) -> dict[str, Any]:
    return {
        "magnitude": min(max(ev.magnitude, 0.0), 10.0),
        "magnitude_type": ev.magnitude_type[:10] or "M",
        # Depth is required by the model; an automatic report without one states 0 km and the
        # description says the depth is not yet determined.
        "depth_km": min(max(ev.depth_km or 0.0, 0.0), 1000.0),
        "latitude": ev.latitude,
        "longitude": ev.longitude,
        "place": _text.clip(ev.place),
        **({"places": {k: _text.clip(v) for k, v in ev.places}} if ev.places else {}),
        "report": ev.report,
        "source": ev.source,
        "event_id": ev.event_id[:200],
    }


def _codes(cfg: FeedConfig, ev: QuakeEvent) -> list[str]:
    return list(dict.fromkeys([*ev.area_codes, *cfg.area_codes]))


def _event_type(cfg: FeedConfig, ev: QuakeEvent) -> str | None:
    if ev.event_type in cfg.event_types:
        return None
    return f"event type {ev.event_type!r} is not one of {', '.join(cfg.event_types)}"


def _report(cfg: FeedConfig, ev: QuakeEvent) -> str | None:
    return None if ev.report in cfg.reports else f"{ev.report} reports do not raise alerts"


def _age(cfg: FeedConfig, ev: QuakeEvent) -> str | None:
    """Old events (a month feed's backlog on the first poll) never raise a new alert."""
    if cfg.max_age_s is None:
        return None
    age_s = (datetime.now(UTC) - ev.time).total_seconds()
    return None if age_s <= cfg.max_age_s else f"older than max_age_s {cfg.max_age_s:g}"


def _magnitude(cfg: FeedConfig, ev: QuakeEvent) -> str | None:
    stated = round(ev.magnitude, 1)
    if stated >= cfg.min_magnitude:
        return None
    return f"magnitude {stated:g} is below min_magnitude {cfg.min_magnitude:g}"


def _depth(cfg: FeedConfig, ev: QuakeEvent) -> str | None:
    if cfg.max_depth_km is None or ev.depth_km is None or ev.depth_km <= cfg.max_depth_km:
        return None
    return f"depth {ev.depth_km:g} km is deeper than max_depth_km {cfg.max_depth_km:g}"


def _region(cfg: FeedConfig, ev: QuakeEvent) -> str | None:
    return region_miss(cfg.region, ev) if cfg.region else None


_RAISE_ONLY = (_report, _age)
_CHECKS: tuple[Callable[[FeedConfig, QuakeEvent], str | None], ...] = (
    _event_type,
    _report,
    _age,
    _magnitude,
    _depth,
    _region,
)


def _in_circle(ev: QuakeEvent, circle: Circle) -> bool:
    return distance_km(ev.latitude, ev.longitude, circle.latitude, circle.longitude) <= (
        circle.radius_km
    )


def _code_covers(rule_code: str, event_code: str) -> bool:
    """``510000`` covers ``510000`` and ``511800``: GB/T 2260 codes nest by trailing zero pairs."""
    if rule_code == event_code:
        return True
    if not (len(rule_code) == len(event_code) == 6 and rule_code.isdigit()):
        return False
    prefix = rule_code
    while prefix.endswith("00"):
        prefix = prefix[:-2]
    return prefix != rule_code and event_code.startswith(prefix)


def _where(ev: QuakeEvent) -> str:
    return f"({ev.latitude:.2f}, {ev.longitude:.2f})"
