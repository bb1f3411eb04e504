"""The incident and delivery vocabulary: the public contract's field names, validated once.

An :data:`Incident` is a pydantic model discriminated on ``kind``; every kind carries the common
fields of :class:`IncidentBase` and its own ``details``. Parse untrusted input with
:func:`parse_incident`, which raises :class:`pydantic.ValidationError` naming each field path.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    HttpUrl,
    StringConstraints,
    TypeAdapter,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
)
from pydantic_core import PydanticCustomError

__all__ = [
    "Area",
    "Circle",
    "DeliveryState",
    "EarthquakeDetails",
    "EarthquakeIncident",
    "FireDetails",
    "FireIncident",
    "GeneralDetails",
    "GeneralIncident",
    "Incident",
    "IncidentBase",
    "IncidentState",
    "Kind",
    "Moment",
    "MsgType",
    "PoliceDetails",
    "PoliceIncident",
    "Severity",
    "Status",
    "WeatherDetails",
    "WeatherIncident",
    "incident_adapter",
    "incident_json",
    "parse_incident",
    "utc_iso",
]


class Kind(StrEnum):
    earthquake = "earthquake"
    fire = "fire"
    police = "police"
    weather = "weather"
    general = "general"


class Status(StrEnum):
    actual = "actual"
    exercise = "exercise"
    test = "test"

    @property
    def is_drill(self) -> bool:
        """True for messages that must never reach the public."""
        return self is not Status.actual


class Severity(StrEnum):
    extreme = "extreme"
    severe = "severe"
    moderate = "moderate"
    minor = "minor"
    unknown = "unknown"

    @property
    def rank(self) -> int:
        """Orderable weight: extreme 4 … minor 1, unknown 0."""
        return _SEVERITY_RANK[self]


_SEVERITY_RANK = {
    Severity.extreme: 4,
    Severity.severe: 3,
    Severity.moderate: 2,
    Severity.minor: 1,
    Severity.unknown: 0,
}


class MsgType(StrEnum):
    """What a message is to the incident it belongs to (CAP's ``msgType``)."""

    alert = "alert"
    update = "update"
    cancel = "cancel"


class IncidentState(StrEnum):
    awaiting_approval = "awaiting_approval"
    active = "active"
    cancelled = "cancelled"


class DeliveryState(StrEnum):
    pending = "pending"
    sending = "sending"
    delivered = "delivered"
    retrying = "retrying"
    failed = "failed"
    dead = "dead"
    skipped = "skipped"

    @property
    def settled(self) -> bool:
        return self in _SETTLED


_SETTLED = frozenset(
    {DeliveryState.delivered, DeliveryState.failed, DeliveryState.dead, DeliveryState.skipped}
)

Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
ShortText = Annotated[str, StringConstraints(strip_whitespace=True, max_length=200)]
LongText = Annotated[str, StringConstraints(strip_whitespace=True, max_length=4000)]
LanguageTag = Annotated[str, StringConstraints(pattern=r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$")]
_GBT2260 = re.compile(r"[1-9][0-9]{5}")


def _gbt2260_shape(code: str) -> str:
    """A code that starts with a digit is a GB/T 2260 code: exactly six digits (``511826``).
    ``5118``, ``51`` or ``511826x`` would silently match nothing, or the wrong divisions."""
    if code[:1].isdigit() and not _GBT2260.fullmatch(code):
        raise PydanticCustomError(
            "gbt2260",
            "A code starting with a digit should be a six-digit GB/T 2260 code such as "
            "511826 (a county), 511800 (a prefecture) or 510000 (a province)",
        )
    return code


AreaCode = Annotated[
    str,
    StringConstraints(strip_whitespace=True, pattern=r"^[0-9A-Za-z][0-9A-Za-z._-]{0,31}$"),
    AfterValidator(_gbt2260_shape),
]
# Numbers and booleans are strict: ``false``, ``0`` or ``"6.8"`` are never read as another type.
Latitude = Annotated[float, Field(ge=-90, le=90, allow_inf_nan=False, strict=True)]
Longitude = Annotated[float, Field(ge=-180, le=180, allow_inf_nan=False, strict=True)]

_ISO_8601 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}")
EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)


def _iso_8601(value: Any) -> Any:
    """A time is ISO 8601 text (or a datetime from Python callers), never a number of seconds."""
    if isinstance(value, datetime) or (isinstance(value, str) and _ISO_8601.match(value)):
        return value
    raise PydanticCustomError(
        "iso_8601",
        "Input should be an ISO 8601 date and time with an offset, e.g. 2022-09-05T12:52:18+08:00",
    )


def _in_range(moment: datetime) -> datetime:
    """Only times every zone, the renderer and both stores can carry: 1900 to 2199 (UTC)."""
    if not EARLIEST <= moment < LATEST:
        raise PydanticCustomError("time_range", "Input should be a time from 1900 to 2199 (UTC)")
    return moment


MOMENT_SCHEMA = {
    "type": "string",
    "format": "date-time",
    "pattern": "^(19|20|21)[0-9]{2}-",
    "description": "ISO 8601 with an offset, from 1900 to 2199 (UTC)",
}
Moment = Annotated[
    AwareDatetime,
    BeforeValidator(_iso_8601),
    AfterValidator(_in_range),
    WithJsonSchema(MOMENT_SCHEMA),
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, frozen=True)


class Circle(_Strict):
    latitude: Latitude
    longitude: Longitude
    radius_km: float = Field(gt=0, le=20000, allow_inf_nan=False, strict=True)


class Area(_Strict):
    name: Text
    codes: list[AreaCode] = Field(default_factory=list, max_length=500)
    circle: Circle | None = None
    polygon: list[tuple[Latitude, Longitude]] | None = Field(
        default=None, min_length=3, max_length=10000
    )

    @field_validator("polygon")
    @classmethod
    def _close_ring(
        cls, ring: list[tuple[float, float]] | None
    ) -> list[tuple[float, float]] | None:
        if ring is None:
            return None
        if ring and ring[0] != ring[-1]:
            ring = [*ring, ring[0]]
        if len(ring) < 4:
            raise ValueError("a polygon needs at least three distinct points")
        return ring


class EarthquakeDetails(_Strict):
    magnitude: float = Field(ge=0, le=10, allow_inf_nan=False, strict=True)
    magnitude_type: Annotated[str, StringConstraints(max_length=10)] = "M"
    depth_km: float = Field(ge=0, le=1000, allow_inf_nan=False, strict=True)
    latitude: Latitude
    longitude: Longitude
    place: Text
    # The place in each language it has a name in (a feed names it in Chinese and English):
    # an account reads its own language's name; ``place`` (the incident's language) otherwise.
    places: dict[LanguageTag, Text] | None = Field(default=None, max_length=8)
    report: Literal["automatic", "official"] = "official"
    source: ShortText = ""
    event_id: ShortText = ""


class FireDetails(_Strict):
    address: Text
    level: int | None = Field(default=None, ge=1, le=5, strict=True)
    evacuate: bool = Field(default=False, strict=True)
    avoid: list[Text] = Field(default_factory=list, max_length=20)


class PoliceDetails(_Strict):
    alert_type: Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,39}$")]
    subject: ShortText = ""
    contact: ShortText = ""


class WeatherDetails(_Strict):
    hazard: Text
    level: Literal["blue", "yellow", "orange", "red"] | None = None


class GeneralDetails(_Strict):
    category: ShortText = ""


class IncidentBase(_Strict):
    """Fields every kind shares (DESIGN.md, "Incident JSON, the common part")."""

    status: Status = Status.actual
    severity: Severity = Severity.unknown
    headline: Text
    description: LongText = ""
    instruction: Annotated[str, StringConstraints(strip_whitespace=True, max_length=2000)] = ""
    area: Area
    occurred_at: Moment
    expires_at: Moment | None = None
    language: Annotated[str, StringConstraints(pattern=r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$")] = (
        "zh-CN"
    )
    url: HttpUrl | None = None

    @field_validator("expires_at")
    @classmethod
    def _expiry_after_onset(cls, expires: datetime | None, info: ValidationInfo) -> datetime | None:
        onset = info.data.get("occurred_at")  # absent when occurred_at itself was refused
        if expires is not None and onset is not None and expires <= onset:
            raise ValueError("expires_at must be after occurred_at")
        return expires


class EarthquakeIncident(IncidentBase):
    kind: Literal[Kind.earthquake]
    details: EarthquakeDetails


class FireIncident(IncidentBase):
    kind: Literal[Kind.fire]
    details: FireDetails


class PoliceIncident(IncidentBase):
    kind: Literal[Kind.police]
    details: PoliceDetails


class WeatherIncident(IncidentBase):
    kind: Literal[Kind.weather]
    details: WeatherDetails


class GeneralIncident(IncidentBase):
    kind: Literal[Kind.general]
    details: GeneralDetails = GeneralDetails()


Incident = Annotated[
    EarthquakeIncident | FireIncident | PoliceIncident | WeatherIncident | GeneralIncident,
    Field(discriminator="kind"),
]
incident_adapter: TypeAdapter[Incident] = TypeAdapter(Incident)


def parse_incident(data: Any) -> Incident:
    """Validate untrusted JSON-like data into an incident (raises ``ValidationError``)."""
    return incident_adapter.validate_python(data)


def incident_json(incident: IncidentBase) -> dict[str, Any]:
    """The incident as JSON-ready data, exactly the public field names."""
    return incident.model_dump(mode="json", exclude_none=True)


def utc_iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")
