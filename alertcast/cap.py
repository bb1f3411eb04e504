"""CAP 1.2 intake: an OASIS ``<alert>`` becomes an :data:`~alertcast.models.Incident`.

Parsing is defensive (defusedxml: no entities, no DTDs, no external references; the body size is
capped by the HTTP layer). The mapping, field by field, is in ``docs/cap.md``; a CAP message that
cannot be mapped raises :class:`CapError` naming the element at fault.
"""

from __future__ import annotations

import re
from typing import Any
from xml.etree.ElementTree import Element

from defusedxml import DefusedXmlException  # type: ignore[import-untyped]
from defusedxml.ElementTree import ParseError, fromstring  # type: ignore[import-untyped]

from alertcast.models import Incident, parse_incident

__all__ = ["CAP_NS", "CapError", "parse_cap"]

CAP_NS = "urn:oasis:names:tc:emergency:cap:1.2"
_NS = {"cap": CAP_NS}
STATUSES = {"Actual": "actual", "Exercise": "exercise", "Test": "test"}
SEVERITIES = {"Extreme", "Severe", "Moderate", "Minor", "Unknown"}
MILES_TO_KM = 1.609344


class CapError(ValueError):
    """The document is not a CAP 1.2 alert alertcast can act on; ``field`` names the element."""

    def __init__(self, message: str, field: str = "(body)") -> None:
        super().__init__(message)
        self.field = field


def _text(node: Element, path: str) -> str | None:
    found = node.find(path, _NS)
    return found.text.strip() if found is not None and found.text else None


def _need(node: Element, path: str) -> str:
    value = _text(node, path)
    if value is None:
        field = path.replace("cap:", "")
        raise CapError(f"{field} is missing", field)
    return value


def _parameters(info: Element) -> dict[str, str]:
    out = {}
    for p in info.findall("cap:parameter", _NS):
        name, value = _text(p, "cap:valueName"), _text(p, "cap:value")
        if name and value is not None:
            out[name.lower()] = value
    return out


def _kind(info: Element) -> str:
    categories = {c.text.strip() for c in info.findall("cap:category", _NS) if c.text}
    event = (_text(info, "cap:event") or "").lower()
    if "earthquake" in event or "地震" in event:
        return "earthquake"
    if "Fire" in categories:
        return "fire"
    if "Met" in categories:
        return "weather"
    if "Security" in categories:
        return "police"
    return "general"


def _area(info: Element) -> dict[str, Any]:
    areas = info.findall("cap:area", _NS)
    if not areas:
        raise CapError("info.area is missing", "info.area")
    names = [_need(a, "cap:areaDesc") for a in areas]
    codes = [
        v for a in areas for g in a.findall("cap:geocode", _NS) if (v := _text(g, "cap:value"))
    ]
    area: dict[str, Any] = {"name": "; ".join(names)[:200], "codes": codes}
    circle = _text(areas[0], "cap:circle")
    if circle:
        lat, lon, radius = _circle(circle)
        if radius > 0:
            area["circle"] = {"latitude": lat, "longitude": lon, "radius_km": radius}
    polygon = _text(areas[0], "cap:polygon")
    if polygon:
        area["polygon"] = [_point(pair, polygon) for pair in polygon.split()]
    return area


_DECIMAL = r"-?\d{1,3}(?:\.\d{1,12})?"  # CAP's WGS 84 decimal degrees


def _point(pair: str, polygon: str) -> list[float]:
    """One ``lat,lon`` pair of a CAP polygon (the model checks the ranges)."""
    match = re.fullmatch(rf"({_DECIMAL}),({_DECIMAL})", pair)
    if match is None:
        raise CapError(
            f"info.area.polygon {polygon[:80]!r}: {pair[:40]!r} is not 'lat,lon'",
            "info.area.polygon",
        )
    return [float(match[1]), float(match[2])]


def _circle(value: str) -> tuple[float, float, float]:
    match = re.fullmatch(
        rf"\s*({_DECIMAL})\s*,\s*({_DECIMAL})\s+(\d{{1,6}}(?:\.\d{{1,12}})?)\s*", value
    )
    if match is None:
        raise CapError(
            f"info.area.circle {value[:80]!r} is not 'lat,lon radius'", "info.area.circle"
        )
    return float(match[1]), float(match[2]), float(match[3])


def _number(value: str, what: str) -> tuple[float, str]:
    match = re.match(r"\s*(-?\d+(?:\.\d+)?)\s*(.*)$", value)
    if match is None:
        raise CapError(
            f"info.parameter {what} {value[:80]!r} is not a number", f"info.parameter.{what}"
        )
    return float(match[1]), match[2].strip()


def _earthquake(info: Element, params: dict[str, str], area: dict[str, Any]) -> dict[str, Any]:
    if "magnitude" not in params:
        raise CapError(
            "info.parameter Magnitude is missing for an earthquake", "info.parameter.Magnitude"
        )
    magnitude, mtype = _number(params["magnitude"], "Magnitude")
    depth, unit = _number(params.get("depth", "0 km"), "Depth")
    if unit.lower().startswith("mi"):
        depth *= MILES_TO_KM
    first_area = info.find("cap:area", _NS)
    circle = None if first_area is None else _text(first_area, "cap:circle")
    if circle is None:
        raise CapError(
            "info.area.circle (the epicentre) is missing for an earthquake", "info.area.circle"
        )
    lat, lon, _ = _circle(circle)
    return {
        "magnitude": magnitude,
        "magnitude_type": (mtype or "M")[:10],
        "depth_km": round(depth, 1),
        "latitude": lat,
        "longitude": lon,
        "place": area["name"].split(";")[0][:200],
        "report": "official",
        "source": params.get("source", "CAP")[:200],
        "event_id": params.get("eventid", "")[:200],
    }


def _details(
    kind: str, info: Element, params: dict[str, str], area: dict[str, Any]
) -> dict[str, Any]:
    if kind == "earthquake":
        return _earthquake(info, params, area)
    if kind == "fire":
        return {"address": area["name"]}
    if kind == "weather":
        return {"hazard": (_text(info, "cap:event") or "weather")[:200]}
    if kind == "police":
        return {"alert_type": "public_safety", "subject": (_text(info, "cap:event") or "")[:200]}
    return {"category": (_text(info, "cap:event") or "")[:200]}


def _root(body: bytes) -> Element:
    try:
        root = fromstring(body, forbid_dtd=True)
    except (ParseError, DefusedXmlException) as exc:
        raise CapError(f"not well-formed or unsafe XML: {exc}") from None
    if not isinstance(root, Element) or root.tag != f"{{{CAP_NS}}}alert":
        raise CapError(f"root element is {root.tag!r}, not a CAP 1.2 alert ({CAP_NS})")
    return root


def to_incident_data(body: bytes) -> dict[str, Any]:
    """The CAP document as incident JSON (public field names), before validation."""
    root = _root(body)
    status = _need(root, "cap:status")
    if status not in STATUSES:
        raise CapError(
            f"status {status[:40]!r} is not for broadcast (Actual, Exercise or Test)", "status"
        )
    msg_type = _need(root, "cap:msgType")
    if msg_type != "Alert":
        raise CapError(
            f"msgType {msg_type[:40]}: post updates and cancellations to "
            "/v1/incidents/{id}/update or /cancel",
            "msgType",
        )
    info = root.find("cap:info", _NS)
    if info is None:
        raise CapError("info is missing", "info")
    kind, params, area = _kind(info), _parameters(info), _area(info)
    severity = _need(info, "cap:severity")
    data: dict[str, Any] = {
        "kind": kind,
        "status": STATUSES[status],
        "severity": severity.lower() if severity in SEVERITIES else "unknown",
        "headline": _text(info, "cap:headline") or _need(info, "cap:event"),
        "description": _text(info, "cap:description") or "",
        "instruction": _text(info, "cap:instruction") or "",
        "area": area,
        "occurred_at": _text(info, "cap:onset")
        or _text(info, "cap:effective")
        or _need(root, "cap:sent"),
        "language": _text(info, "cap:language") or "en-US",
        "details": _details(kind, info, params, area),
    }
    for key, path in (("expires_at", "cap:expires"), ("url", "cap:web")):
        if (value := _text(info, path)) is not None:
            data[key] = value
    return data


def parse_cap(body: bytes) -> Incident:
    """Parse and validate; raises :class:`CapError` or ``pydantic.ValidationError``."""
    return parse_incident(to_incident_data(body))
