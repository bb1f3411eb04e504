"""Per-feed configuration and rules: which events raise an alert, how severe, and as what incident.

One ``[[feeds]]`` entry is a :class:`FeedConfig`. :func:`matches` says why an event does *not*
raise an alert (None when it does), checking event type, report kind, magnitude, depth and region
in that order. :func:`severity` takes the higher of the magnitude band and the PAGER level.
:func:`to_incident` builds the dict :func:`alertcast.models.parse_incident` accepts.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from alertcast.feeds import _text
from alertcast.feeds._geo import distance_km, in_bbox, in_polygon
from alertcast.feeds.events import QuakeEvent, Report
from alertcast.models import AreaCode, Circle, Kind, Latitude, Longitude, Severity, Status

__all__ = ["FeedConfig", "Region", "SeverityBands", "matches", "severity", "to_incident"]

FeedType = Literal["usgs", "fdsn", "cenc"]
_PAGER_SEVERITY = {
    "red": Severity.extreme,
    "orange": Severity.severe,
    "yellow": Severity.moderate,
    "green": Severity.minor,
}


class _Table(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Region(_Table):
    """Where events must lie; every key given must hold (``bbox`` and ``codes`` = both)."""

    bbox: tuple[Longitude, Latitude, Longitude, Latitude] | None = None
    polygon: list[tuple[Latitude, Longitude]] | None = Field(default=None, min_length=3)
    circle: Circle | None = None
    codes: list[AreaCode] | None = Field(default=None, min_length=1)

    @model_validator(mode="after")
    def _something_given(self) -> Region:
        if not (self.bbox or self.polygon or self.circle or self.codes):
            raise ValueError("region needs one of bbox, polygon, circle or codes")
        if self.bbox and self.bbox[1] > self.bbox[3]:
            raise ValueError("bbox is [min_lon, min_lat, max_lon, max_lat]: min_lat > max_lat")
        return self

    def miss(self, ev: QuakeEvent) -> str | None:
        """Why ``ev`` lies outside the region, or None when it lies inside."""
        if self.bbox and not in_bbox(ev.latitude, ev.longitude, self.bbox):
            return f"epicentre {_where(ev)} is outside the region's bbox"
        if self.polygon and not in_polygon(ev.latitude, ev.longitude, self.polygon):
            return f"epicentre {_where(ev)} is outside the region's polygon"
        if self.circle and not _in_circle(ev, self.circle):
            return f"epicentre {_where(ev)} is outside the region's circle"
        if self.codes and not any(_code_covers(r, c) for r in self.codes for c in ev.area_codes):
            codes = ", ".join(ev.area_codes) or "none"
            return f"area codes ({codes}) are outside the region's codes"
        return None


class SeverityBands(_Table):
    """Lowest magnitude of each severity; below ``moderate`` is minor."""

    extreme: float = Field(default=7.0, ge=0, le=10)
    severe: float = Field(default=6.0, ge=0, le=10)
    moderate: float = Field(default=5.0, ge=0, le=10)

    @model_validator(mode="after")
    def _descending(self) -> SeverityBands:
        if not self.extreme >= self.severe >= self.moderate:
            raise ValueError("bands must satisfy extreme >= severe >= moderate")
        return self

    def of(self, magnitude: float) -> Severity:
        for level in (Severity.extreme, Severity.severe, Severity.moderate):
            if magnitude >= getattr(self, level.value):
                return level
        return Severity.minor


def _both_reports() -> list[Report]:
    return ["automatic", "official"]


class FeedConfig(_Table):
    """One ``[[feeds]]`` entry: where to poll, how often, and the rules that raise an alert."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    type: FeedType
    url: str | None = Field(default=None, pattern=r"^https?://\S+$")
    interval_s: float = Field(default=60.0, ge=1, le=86400)
    timeout_s: float = Field(default=10.0, gt=0, le=300)
    max_backoff_s: float = Field(default=900.0, ge=1, le=86400)
    max_body_bytes: int = Field(default=32 * 1024 * 1024, ge=1024)
    min_magnitude: float = Field(default=0.0, ge=0, le=10)
    max_depth_km: float | None = Field(default=None, ge=0)
    region: Region | None = None
    event_types: list[str] = Field(default_factory=lambda: ["earthquake"], min_length=1)
    reports: list[Report] = Field(default_factory=_both_reports, min_length=1)
    severity_bands: SeverityBands = SeverityBands()
    area_codes: list[AreaCode] = Field(default_factory=list)
    language: str | None = Field(default=None, pattern=r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$")
    status: Status = Status.actual
    token_env: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    max_age_s: float | None = Field(default=3600.0, gt=0)
    # Association across feeds (alertcast.feeds.association): feeds naming one group share
    # events; the window and distance are the group's (every feed that states them agrees).
    associate: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    associate_window_s: float | None = Field(default=None, gt=0, le=3600)
    associate_distance_km: float | None = Field(default=None, gt=0, le=1000)
    priority: int = Field(default=0, ge=-1000, le=1000)

    @model_validator(mode="after")
    def _association_keys(self) -> FeedConfig:
        if self.associate is None:
            given = [
                key
                for key, value in (
                    ("associate_window_s", self.associate_window_s),
                    ("associate_distance_km", self.associate_distance_km),
                    ("priority", self.priority or None),
                )
                if value is not None
            ]
            if given:
                raise ValueError(f"{', '.join(given)} only apply to a feed that sets associate")
        return self

    @field_validator("event_types")
    @classmethod
    def _lower_types(cls, types: list[str]) -> list[str]:
        return [t.strip().lower() for t in types]


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
        "description": _text.description(ev, language),
        "area": {"name": _text.clip(ev.place), "codes": _codes(cfg, ev)},
        "occurred_at": ev.time.isoformat(),
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
    return cfg.region.miss(ev) if cfg.region else None


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
