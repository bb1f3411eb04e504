"""A :class:`~alertcast.cap.CapMessage` as incident JSON (the public field names of DESIGN.md).

The first ``<info>`` is the incident; the others (one per language) stay in the message's
record and come out again as CAP. The table, element by element, is in ``docs/cap.md``.
"""

from __future__ import annotations

import re
from typing import Any

from alertcast.cap import CapError, CapMessage

__all__ = ["STATUSES", "cancel_reason", "incident_data"]

STATUSES = {"Actual": "actual", "Exercise": "exercise", "Test": "test"}
SEVERITIES = {"Extreme", "Severe", "Moderate", "Minor", "Unknown"}
MILES_TO_KM = 1.609344
MAX_CODES = 500
_DECIMAL = r"-?\d{1,3}(?:\.\d{1,12})?"  # CAP's WGS 84 decimal degrees
Info = dict[str, Any]


def _kind(info: Info) -> str:
    categories = set(info.get("category", ()))
    event = info.get("event", "").lower()
    if "earthquake" in event or "地震" in event:
        return "earthquake"
    if "Fire" in categories:
        return "fire"
    if "Met" in categories:
        return "weather"
    if "Security" in categories:
        return "police"
    return "general"


def _point(pair: str, polygon: str) -> list[float]:
    """One ``lat,lon`` pair of a CAP polygon (the model checks the ranges)."""
    match = re.fullmatch(rf"({_DECIMAL}),({_DECIMAL})", pair)
    if match is None:
        raise CapError(
            f"info.area.polygon {polygon[:80]!r}: {pair[:40]!r} is not 'lat,lon'",
            "info.area.polygon",
        )
    return [float(match[1]), float(match[2])]


def circle(value: str) -> tuple[float, float, float]:
    """``lat,lon radius`` (radius in km)."""
    match = re.fullmatch(
        rf"\s*({_DECIMAL})\s*,\s*({_DECIMAL})\s+(\d{{1,6}}(?:\.\d{{1,12}})?)\s*", value
    )
    if match is None:
        raise CapError(
            f"info.area.circle {value[:80]!r} is not 'lat,lon radius'", "info.area.circle"
        )
    return float(match[1]), float(match[2]), float(match[3])


def _scheme(name: str) -> str:
    """A geocode's ``valueName`` compared loosely: ``GB/T 2260``, ``GBT2260``, ``gb/t2260``."""
    return re.sub(r"[^0-9a-z]", "", name.lower())


def _codes(areas: list[Info], scheme: str) -> list[str]:
    """The administrative codes (geocodes named ``scheme``), once each, in order; other
    geocodes (``SAME``, CAP-CP's) stay in the message and come out again as CAP."""
    want = _scheme(scheme)
    seen = dict.fromkeys(
        v for a in areas for n, v in a.get("geocode", ()) if v and _scheme(n) == want
    )
    return list(seen)[:MAX_CODES]


def _area(info: Info, scheme: str) -> dict[str, Any]:
    areas: list[Info] = info.get("area", [])
    if not areas:
        raise CapError("info.area is missing", "info.area")
    names = [a.get("areaDesc") or "" for a in areas]
    if not all(names):
        raise CapError("info.area.areaDesc is missing", "info.area.areaDesc")
    area: dict[str, Any] = {"name": "; ".join(names)[:200], "codes": _codes(areas, scheme)}
    area["circle"] = area["polygon"] = None
    circles = [circle(c) for a in areas for c in a.get("circle", ())]
    if wide := [c for c in circles if c[2] > 0]:
        lat, lon, radius = wide[0]
        area["circle"] = {"latitude": lat, "longitude": lon, "radius_km": radius}
    if polygons := [p for a in areas for p in a.get("polygon", ())]:
        area["polygon"] = [_point(pair, polygons[0]) for pair in polygons[0].split()]
    return area


def _parameters(info: Info) -> dict[str, str]:
    return {name.lower(): value for name, value in info.get("parameter", ()) if name}


def _number(value: str, what: str) -> tuple[float, str]:
    match = re.match(r"\s*(-?\d+(?:\.\d+)?)\s*(.*)$", value)
    if match is None:
        raise CapError(
            f"info.parameter {what} {value[:80]!r} is not a number", f"info.parameter.{what}"
        )
    return float(match[1]), match[2].strip()


def _earthquake(msg: CapMessage, info: Info, area: dict[str, Any]) -> dict[str, Any]:
    params = _parameters(info)
    if "magnitude" not in params:
        raise CapError(
            "info.parameter Magnitude is missing for an earthquake", "info.parameter.Magnitude"
        )
    magnitude, mtype = _number(params["magnitude"], "Magnitude")
    depth, unit = _number(params.get("depth", "0 km"), "Depth")
    if unit.lower().startswith("mi"):
        depth *= MILES_TO_KM
    circles = [c for a in info.get("area", ()) for c in a.get("circle", ())]
    if not circles:
        raise CapError(
            "info.area.circle (the epicentre) is missing for an earthquake", "info.area.circle"
        )
    lat, lon, _ = circle(circles[0])
    return {
        "magnitude": magnitude,
        "magnitude_type": (mtype or "M")[:10],
        "depth_km": round(depth, 1),
        "latitude": lat,
        "longitude": lon,
        "place": area["name"].split(";")[0][:200],
        "report": "official",
        "source": sender_of(msg, info)[:200],
        "event_id": params.get("eventid", "")[:200],
    }


def sender_of(msg: CapMessage, info: Info) -> str:
    """Who measured or warns, named as the sender names itself: a ``Source`` parameter, else
    ``senderName``, else ``sender``."""
    return _parameters(info).get("source") or info.get("senderName") or msg.sender


def _details(msg: CapMessage, kind: str, info: Info, area: dict[str, Any]) -> dict[str, Any]:
    event = info.get("event", "")[:200]
    if kind == "earthquake":
        return _earthquake(msg, info, area)
    if kind == "fire":
        return {"address": area["name"]}
    if kind == "weather":
        return {"hazard": event or "weather"}
    if kind == "police":
        return {"alert_type": "public_safety", "subject": event}
    return {"category": event}


def _when(msg: CapMessage, info: Info) -> str | None:
    """The event's time: ``onset``, else ``effective``; an alert without either is effective
    when sent (CAP 1.2, 3.2.2 ``effective``); an update or cancellation keeps its incident's."""
    found = info.get("onset") or info.get("effective")
    if found is None and msg.msg_type == "Alert":
        return msg.sent
    return found if isinstance(found, str) else None


def incident_data(msg: CapMessage, scheme: str = "GB/T 2260") -> dict[str, Any]:
    """The first ``<info>`` as incident JSON, before validation (``occurred_at`` absent from
    an update that names no time: it keeps its incident's); ``scheme`` is the ``valueName``
    of the geocodes that are administrative codes (``[cap] geocode_name``)."""
    info = msg.infos[0]
    kind, area = _kind(info), _area(info, scheme)
    severity = info.get("severity", "Unknown")
    headline = info.get("headline") or info.get("event")
    if not headline:
        raise CapError("info.event is missing", "info.event")
    data: dict[str, Any] = {
        "kind": kind,
        "status": STATUSES[msg.status],
        "severity": severity.lower() if severity in SEVERITIES else "unknown",
        "headline": headline,
        "description": info.get("description", ""),
        "instruction": info.get("instruction", ""),
        "area": area,
        "language": info.get("language", "en-US"),
        "expires_at": info.get("expires"),
        "url": info.get("web"),
        "details": _details(msg, kind, info, area),
    }
    if (when := _when(msg, info)) is not None:
        data["occurred_at"] = when
    return data


def cancel_reason(msg: CapMessage) -> str:
    """Why: the message's ``note``, else its first headline or description, else its name."""
    info = msg.infos[0] if msg.infos else {}
    why = msg.note or info.get("headline") or info.get("description")
    return (why or f"cancelled by CAP {msg.identifier}")[:500]
