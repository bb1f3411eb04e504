"""CAP out: every stored message (alert, update, cancellation) as a CAP 1.2 ``<alert>``, and
an Atom feed of the active public alerts in the way of Google Public Alerts (OASIS "CAP
Feeds" practice: one entry per alert, linking its CAP message).

alertcast signs its messages with its own identity (``[cap] sender``, identifiers in the style
``[cap] identifier`` names); a message that came in as CAP keeps every ``<info>`` it had, one
per language, and names its first sender in ``<source>``. Pure functions of the stored rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from xml.etree.ElementTree import Element, SubElement, tostring

from alertcast.cap import AREA_ORDER, CAP_NS, INFO_ORDER, LISTS, PAIRS, RESOURCE_ORDER
from alertcast.capconfig import CapConfig
from alertcast.models import Incident, parse_incident
from alertcast.store.base import IncidentRow

__all__ = ["ATOM_NS", "Message", "atom_feed", "cap_time", "identity", "message_xml"]

ATOM_NS = "http://www.w3.org/2005/Atom"
CAP_STATUS = {"actual": "Actual", "exercise": "Exercise", "test": "Test"}
MSG_TYPE = {"alert": "Alert", "update": "Update", "cancel": "Cancel"}
CATEGORY = {"earthquake": "Geo", "fire": "Fire", "weather": "Met", "police": "Security"}
EVENT = {"earthquake": "Earthquake", "fire": "Fire", "weather": "Weather", "police": "Police"}


@dataclass(frozen=True, slots=True)
class Message:
    """One stored message and what its CAP needs: the messages before it in its chain (its
    ``<references>``), the root's id (``<incidents>``), the CAP record it came in with."""

    row: IncidentRow
    earlier: Sequence[IncidentRow] = ()
    root_id: str = ""
    record: dict[str, Any] | None = None
    link: str | None = None


def _zone(cfg: CapConfig) -> timezone:
    sign = -1 if cfg.utc_offset[0] == "-" else 1
    hours, minutes = int(cfg.utc_offset[1:3]), int(cfg.utc_offset[4:6])
    return timezone(sign * timedelta(hours=hours, minutes=minutes))


def cap_time(moment: datetime) -> str:
    """CAP's dateTime: seconds, an explicit offset, never ``Z`` (UTC is ``-00:00``)."""
    text = moment.replace(microsecond=0).isoformat()
    return text[:-6] + "-00:00" if text.endswith("+00:00") else text


def _stored_at(row: IncidentRow, cfg: CapConfig) -> datetime:
    return datetime.fromtimestamp(row.created_at, _zone(cfg))


def identity(row: IncidentRow, cfg: CapConfig) -> tuple[str, str, str]:
    """``(sender, identifier, sent)`` of a stored message as alertcast issues it. The
    GB/T 35965.1 style is ``ZZZZZZDDDUUUXX_YYYYMMDDhhmmss_N``: area, agency, unit and extension
    codes, the local time the message was stored, and the tenth of that second."""
    at = _stored_at(row, cfg)
    identifier = row.id
    if cfg.identifier == "gbt35965":
        codes = cfg.area_code + cfg.agency_code + cfg.unit_code + cfg.extension
        identifier = f"{codes}_{at:%Y%m%d%H%M%S}_{int(row.created_at * 10) % 10}"
    return cfg.sender, identifier, cap_time(at)


def _add(parent: Element, tag: str, text: str | None) -> None:
    if text:
        SubElement(parent, tag).text = text


def _pairs(parent: Element, tag: str, pairs: Sequence[Sequence[str]]) -> None:
    for name, value in pairs:
        node = SubElement(parent, tag)
        SubElement(node, "valueName").text = name
        SubElement(node, "value").text = value


def _block(parent: Element, data: dict[str, Any], order: tuple[str, ...]) -> None:
    """Data of :func:`alertcast.cap._children` back as elements, in schema order."""
    for tag in order:
        value = data.get(tag)
        if value is None:
            continue
        if tag in PAIRS or tag == "geocode":
            _pairs(parent, tag, value)
        elif tag in ("resource", "area"):
            for item in value:
                _block(
                    SubElement(parent, tag),
                    item,
                    RESOURCE_ORDER if tag == "resource" else AREA_ORDER,
                )
        elif tag in (*LISTS, "polygon", "circle"):
            for text in value:
                _add(parent, tag, text)
        else:
            _add(parent, tag, str(value))


def _area(incident: Incident, cfg: CapConfig) -> dict[str, Any]:
    area = incident.area
    out: dict[str, Any] = {"areaDesc": area.name}
    if area.polygon:
        out["polygon"] = [" ".join(f"{lat},{lon}" for lat, lon in area.polygon)]
    circles = []
    if area.circle:
        circles.append(f"{area.circle.latitude},{area.circle.longitude} {area.circle.radius_km}")
    details = incident.details
    if incident.kind == "earthquake":  # the epicentre, a point (the spec's own example)
        circles.append(f"{details.latitude},{details.longitude} 0")  # type: ignore[union-attr]
    if circles:
        out["circle"] = circles
    if area.codes:
        out["geocode"] = [[cfg.geocode_name, code] for code in area.codes]
    return out


def _parameters(incident: Incident) -> list[list[str]]:
    if incident.kind != "earthquake":
        return []
    d = incident.details
    found = [
        ["EventID", d.event_id],  # type: ignore[union-attr]
        ["Magnitude", f"{d.magnitude} {d.magnitude_type}"],  # type: ignore[union-attr]
        ["Depth", f"{d.depth_km} km"],  # type: ignore[union-attr]
        ["Source", d.source],  # type: ignore[union-attr]
    ]
    return [p for p in found if p[1]]


def _info(incident: Incident, msg: Message, cfg: CapConfig) -> dict[str, Any]:
    """One ``<info>`` from an incident raised as JSON or by a feed."""
    kind = str(incident.kind)
    info: dict[str, Any] = {
        "language": incident.language,
        "category": [CATEGORY.get(kind, "Other")],
        "event": EVENT.get(kind, "Alert"),
        "urgency": "Past" if msg.row.msg_type == "cancel" else "Immediate",
        "severity": incident.severity.value.capitalize(),
        "certainty": "Observed" if kind == "earthquake" else "Unknown",
        "onset": cap_time(incident.occurred_at),
        "expires": cap_time(incident.expires_at) if incident.expires_at else None,
        "senderName": cfg.sender_name or msg.row.issuer,
        "headline": incident.headline,
        "description": incident.description or None,
        "instruction": incident.instruction or None,
        "web": str(incident.url) if incident.url else msg.link,
        "parameter": _parameters(incident) or None,
        "area": [_area(incident, cfg)],
    }
    return info


def _infos(msg: Message, cfg: CapConfig) -> list[dict[str, Any]]:
    row = msg.row
    if msg.record is not None:  # as it came in; the severity as alertcast holds it
        infos = [dict(i) for i in msg.record.get("infos", ())]
        if infos and row.msg_type != "cancel":
            infos[0]["severity"] = row.severity.capitalize()
        return infos
    if row.msg_type == "cancel":
        return []
    return [_info(parse_incident(dict(row.body)), msg, cfg)]


def _note(msg: Message) -> str | None:
    row = msg.row
    parts = [msg.record.get("note", "") if msg.record else ""]
    if row.msg_type == "cancel" and row.reason and row.reason not in parts[0]:
        parts.append(row.reason)
    if row.status != "actual":
        parts.append(f"{CAP_STATUS[row.status]}: not for the public")
    return " | ".join(p for p in parts if p) or None


def message_xml(msg: Message, cfg: CapConfig) -> bytes:
    """The CAP 1.2 document of one stored message (UTF-8, with its XML declaration)."""
    row = msg.row
    sender, identifier, sent = identity(row, cfg)
    alert = Element("alert", {"xmlns": CAP_NS})
    _add(alert, "identifier", identifier)
    _add(alert, "sender", sender)
    _add(alert, "sent", sent)
    _add(alert, "status", CAP_STATUS[row.status])
    _add(alert, "msgType", MSG_TYPE[row.msg_type])
    _add(alert, "source", msg.record.get("sender") if msg.record else None)
    _add(alert, "scope", "Public")
    _add(alert, "note", _note(msg))
    refs = [",".join(identity(r, cfg)) for r in msg.earlier]
    _add(alert, "references", " ".join(refs))
    _add(alert, "incidents", msg.root_id or row.id)
    for info in _infos(msg, cfg):
        _block(SubElement(alert, "info"), info, INFO_ORDER)
    return bytes(tostring(alert, encoding="utf-8", xml_declaration=True))


def _atom_time(moment: datetime) -> str:
    return moment.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def atom_feed(
    entries: Sequence[tuple[Message, str]], cfg: CapConfig, self_url: str, now: datetime
) -> bytes:
    """An Atom 1.0 feed: one entry per active alert, its latest message, linked as CAP."""
    feed = Element("feed", {"xmlns": ATOM_NS})
    _add(feed, "id", self_url)
    _add(feed, "title", f"{cfg.sender_name or cfg.sender}: active alerts")
    times = [datetime.fromtimestamp(m.row.created_at, UTC) for m, _ in entries]
    _add(feed, "updated", _atom_time(max(times, default=now)))
    SubElement(SubElement(feed, "author"), "name").text = cfg.sender_name or cfg.sender
    SubElement(feed, "link", {"rel": "self", "href": self_url})
    for msg, cap_url in entries:
        _entry(feed, msg, cap_url, cfg)
    return bytes(tostring(feed, encoding="utf-8", xml_declaration=True))


def _entry(feed: Element, msg: Message, cap_url: str, cfg: CapConfig) -> None:
    row, body = msg.row, msg.row.body
    entry = SubElement(feed, "entry")
    _add(entry, "id", cap_url)
    _add(entry, "title", str(body.get("headline", row.id)))
    _add(entry, "updated", _atom_time(datetime.fromtimestamp(row.created_at, UTC)))
    SubElement(SubElement(entry, "author"), "name").text = cfg.sender_name or cfg.sender
    _add(entry, "summary", str(body.get("description") or body.get("headline", ""))[:500])
    link = {"rel": "alternate", "type": "application/cap+xml", "href": cap_url}
    SubElement(entry, "link", link)
