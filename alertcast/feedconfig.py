"""The ``[[feeds]]`` table: where a feed is polled, how often, and the rules that raise an alert.

A leaf of pydantic tables (like :mod:`alertcast.config`, which embeds it): what the rules *do*
with them is in :mod:`alertcast.feeds.rules`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from alertcast.models import AreaCode, Circle, Latitude, Longitude, Severity, Status

__all__ = [
    "FeedApproval",
    "FeedConfig",
    "FeedType",
    "Reach",
    "Region",
    "Report",
    "SeverityBands",
]

Report = Literal["automatic", "official"]
# Whether a feed's reports wait for a second person: "default" (automatic reports follow
# [approval], official ones never wait), "always" (every report of the feed waits), "never".
FeedApproval = Literal["default", "always", "never"]
FeedType = Literal["usgs", "fdsn", "cenc"]


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


class Reach(_Table):
    """How far a quake's incident reaches: every county within ``radius_km(M)`` of the epicentre.

    ``km_at_m6 · growth^(M − 6)``, at most ``max_km``: by default log10 R = 0.5 M − 1.4, about the
    radius of intensity VI (where damage begins) for shallow quakes in western China: 40 km at
    M6, 100 km at M6.8, 126 km at M7, 400 km at M8. ``max_km = 0`` reaches the epicentre's
    county only (docs/feeds.md).
    """

    km_at_m6: float = Field(default=40.0, ge=0, le=2000)
    growth: float = Field(default=10**0.5, ge=1, le=100)
    max_km: float = Field(default=400.0, ge=0, le=2000)

    def radius_km(self, magnitude: float) -> float:
        return min(self.max_km, self.km_at_m6 * float(self.growth ** (magnitude - 6.0)))


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
    approval: FeedApproval = "default"
    reach: Reach = Reach()

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
