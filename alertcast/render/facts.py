"""Facts: an incident's values formatted once per language, the atoms every template uses.

Numbers are rounded half-up from their decimal text (``6.85`` → ``6.9``), never through binary
floating point. Chinese texts give Beijing time (UTC+8, as CENC does); English texts keep the
offset the issuer used and say which it is.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from alertcast.models import IncidentBase, Status

__all__ = ["BEIJING", "LANGUAGE_DATA", "build_facts", "is_chinese", "markers"]

BEIJING = timezone(timedelta(hours=8))

LANGUAGE_DATA: dict[str, dict[str, dict[str, str]]] = {
    "zh": {
        "kind": {
            "earthquake": "地震",
            "fire": "火灾",
            "police": "警情",
            "weather": "气象预警",
            "general": "突发事件",
        },
        "severity": {
            "extreme": "特别严重",
            "severe": "严重",
            "moderate": "较重",
            "minor": "一般",
            "unknown": "未知",
        },
        "level": {"blue": "蓝色", "yellow": "黄色", "orange": "橙色", "red": "红色"},
        "police": {
            "missing_person": "寻人",
            "wanted": "通缉",
            "traffic": "交通管制",
            "public_safety": "治安预警",
            "terror": "反恐预警",
            "fraud": "防诈骗提醒",
        },
        "source": {"cenc": "中国地震台网", "usgs": "美国地质调查局", "emsc": "欧洲地中海地震中心"},
        "marker": {
            "exercise": "【演习】",
            "test": "【测试】",
            "update": "【更新】",
            "cancel": "【取消】",
        },
    },
    "en": {
        "kind": {
            "earthquake": "Earthquake",
            "fire": "Fire",
            "police": "Police alert",
            "weather": "Weather warning",
            "general": "Alert",
        },
        "severity": {
            "extreme": "extreme",
            "severe": "severe",
            "moderate": "moderate",
            "minor": "minor",
            "unknown": "unknown",
        },
        "level": {"blue": "blue", "yellow": "yellow", "orange": "orange", "red": "red"},
        "police": {
            "missing_person": "Missing person",
            "wanted": "Wanted",
            "traffic": "Traffic",
            "public_safety": "Public safety",
            "terror": "Terror threat",
            "fraud": "Fraud warning",
        },
        "source": {"cenc": "CENC", "usgs": "USGS", "emsc": "EMSC"},
        "marker": {
            "exercise": "[EXERCISE] ",
            "test": "[TEST] ",
            "update": "[UPDATE] ",
            "cancel": "[CANCELLED] ",
        },
    },
}


def is_chinese(language: str) -> bool:
    return language.lower().startswith("zh")


def _table(language: str) -> dict[str, dict[str, str]]:
    return LANGUAGE_DATA["zh" if is_chinese(language) else "en"]


def markers(status: Status, msg_type: str, language: str) -> tuple[str, str]:
    """``(drill marker, message-type marker)`` to begin a text; either may be ``""``."""
    words = _table(language)["marker"]
    return words.get(status.value, ""), words.get(msg_type, "")


def decimal(value: float, places: int) -> str:
    """``value`` rounded half-up to ``places`` decimals, from its shortest decimal text."""
    quantum = Decimal(1).scaleb(-places)
    return str(Decimal(repr(value)).quantize(quantum, rounding=ROUND_HALF_UP))


def format_time(moment: datetime, language: str) -> str:
    if is_chinese(language):
        local = moment.astimezone(BEIJING)
        return f"{local:%m}月{local:%d}日{local:%H}时{local:%M}分"
    offset = moment.strftime("%z")
    zone = "UTC" if offset in ("+0000", "-0000") else f"UTC{offset[:3]}:{offset[3:]}"
    return f"{moment:%Y-%m-%d %H:%M} {zone}"


def _common(incident: IncidentBase, language: str) -> dict[str, Any]:
    words = _table(language)
    kind = str(getattr(incident, "kind", "general"))
    return {
        "kind": kind,
        "kind_label": words["kind"].get(kind, kind),
        "status": incident.status.value,
        "severity": incident.severity.value,
        "severity_label": words["severity"][incident.severity.value],
        "headline": incident.headline,
        "description": incident.description,
        "instruction": incident.instruction,
        "area": incident.area.name,
        "place": incident.area.name,
        "time": format_time(incident.occurred_at, language),
        "time_iso": incident.occurred_at.isoformat(),
        "expires": format_time(incident.expires_at, language) if incident.expires_at else "",
        "url": str(incident.url) if incident.url else "",
        "magnitude_text": "",
    }


def _earthquake(d: Any, language: str) -> dict[str, Any]:
    zh = is_chinese(language)
    lat, lon = d.latitude, d.longitude
    magnitude = decimal(d.magnitude, 1)
    source = d.source.strip()
    return {
        "place": d.place,
        "magnitude": magnitude,
        "magnitude_type": d.magnitude_type,
        "magnitude_text": f"{magnitude}级" if zh else f"M{magnitude}",
        "depth": decimal(d.depth_km, 0),
        "lat": decimal(abs(lat), 2),
        "lon": decimal(abs(lon), 2),
        "lat_hemi": ("北纬" if lat >= 0 else "南纬") if zh else ("N" if lat >= 0 else "S"),
        "lon_hemi": ("东经" if lon >= 0 else "西经") if zh else ("E" if lon >= 0 else "W"),
        "automatic": d.report == "automatic",
        "source_name": _table(language)["source"].get(source.lower(), source),
        "event_id": d.event_id,
    }


def _fire(d: Any, language: str) -> dict[str, Any]:
    joiner = "、" if is_chinese(language) else ", "
    return {
        "place": d.address,
        "address": d.address,
        "level": "" if d.level is None else str(d.level),
        "evacuate": d.evacuate,
        "avoid": joiner.join(d.avoid),
    }


def _police(d: Any, language: str) -> dict[str, Any]:
    labels = _table(language)["police"]
    return {
        "alert_type": d.alert_type,
        "alert_label": labels.get(d.alert_type, d.alert_type.replace("_", " ")),
        "subject": d.subject,
        "contact": d.contact,
    }


def _weather(d: Any, language: str) -> dict[str, Any]:
    level = d.level or ""
    return {
        "hazard": d.hazard,
        "level": level,
        "level_label": _table(language)["level"].get(level, ""),
    }


def _general(d: Any, language: str) -> dict[str, Any]:
    return {"category": d.category}


_KIND_FACTS = {
    "earthquake": _earthquake,
    "fire": _fire,
    "police": _police,
    "weather": _weather,
    "general": _general,
}


def build_facts(incident: IncidentBase, language: str) -> dict[str, Any]:
    """Every named fact of ``incident`` as display text for ``language``."""
    facts = _common(incident, language)
    details = getattr(incident, "details", None)
    if details is not None:
        facts.update(_KIND_FACTS[facts["kind"]](details, language))
    return facts
