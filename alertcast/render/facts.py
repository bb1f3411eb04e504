"""Facts: an incident's values formatted once per language, the atoms every template uses.

Numbers are rounded half-up from their decimal text (``6.85`` → ``6.9``), never through binary
floating point; coordinates to CENC's two decimals. Feed headlines use the same functions, so
one message never states one number two ways. Chinese texts give Beijing time (UTC+8, as CENC
does); English texts keep the offset the issuer used (the source's local time) and say which.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from alertcast.models import IncidentBase, Status

__all__ = [
    "BEIJING",
    "LANGUAGE_DATA",
    "build_facts",
    "decimal",
    "is_chinese",
    "markers",
    "near",
    "place_in",
    "quake_headline",
    "report_words",
]

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
        "source": {
            "cenc": "中国地震台网",
            "usgs": "美国地质调查局",
            "fdsn": "美国地质调查局",
            "emsc": "欧洲地中海地震中心",
        },
        "report": {"automatic": "自动测定", "official": "正式测定", "reviewed": "测定"},
        "category": {"routine": "例行通知"},
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
        "source": {"cenc": "CENC", "usgs": "USGS", "fdsn": "USGS", "emsc": "EMSC"},
        "report": {"automatic": "automatic", "official": "official", "reviewed": "reviewed"},
        "category": {"routine": "routine notice"},
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
    automatic = d.report == "automatic"
    depth = decimal(d.depth_km, 0)
    place = place_in(d, language)
    facts = {
        "place": place,
        "place_near": near(place, language) if automatic else place,
        "magnitude": magnitude,
        "magnitude_type": d.magnitude_type,
        "magnitude_text": f"{magnitude}级" if zh else f"M{magnitude}",
        "depth": depth,
        "lat": decimal(abs(lat), 2),
        "lon": decimal(abs(lon), 2),
        "lat_hemi": ("北纬" if lat >= 0 else "南纬") if zh else ("N" if lat >= 0 else "S"),
        "lon_hemi": ("东经" if lon >= 0 else "西经") if zh else ("E" if lon >= 0 else "W"),
        "automatic": automatic,
        "event_id": d.event_id,
    }
    facts.update(report_words(d.source, automatic, language))
    facts["magnitude_depth"] = _magnitude_depth(magnitude, depth, automatic, language)
    return facts


def place_in(d: Any, language: str) -> str:
    """The quake's place in ``language`` (``details.places``, by tag, then by its primary
    subtag), else ``place`` as the incident states it."""
    places: dict[str, str] = d.places or {}
    primary = language.split("-")[0].lower()
    same = (v for k, v in places.items() if k.split("-")[0].lower() == primary)
    return places.get(language) or next(same, d.place)


def quake_headline(place: str, magnitude: float, source: str, report: str, language: str) -> str:
    """A feed quake's headline: place, magnitude and the report marker (``自动测定``, …)."""
    automatic = report == "automatic"
    stated = near(place, language) if automatic else place
    value = decimal(magnitude, 1)
    marker = report_words(source, automatic, language)["report_marker"]
    if is_chinese(language):
        return f"{stated}发生{value}级{'左右' if automatic else ''}地震（{marker}）"
    return f"M {value} - {stated} ({marker})"


def spoken(incident: Any, language: str) -> dict[str, Any]:
    """A feed quake's ``headline`` and ``area`` name in ``language`` where the feed made them
    from its place (empty for anything else: an office's own words stay as written)."""
    d = getattr(incident, "details", None)
    if d is None or not getattr(d, "places", None):
        return {}
    return _feed_words(incident, place_in(d, language), language)


def _feed_words(incident: Any, place: str, language: str) -> dict[str, Any]:
    """A feed quake's headline and area name in the account's language, where the feed made
    them from its place (an office's own words stay as written)."""
    d = incident.details
    if not d.places:
        return {}
    words: dict[str, Any] = {}
    made = quake_headline(d.place, d.magnitude, d.source, d.report, incident.language)
    if incident.headline == made:
        words["headline"] = quake_headline(place, d.magnitude, d.source, d.report, language)
    if incident.area.name == d.place:
        words["area"] = place
    return words


def near(place: str, language: str) -> str:
    """``place`` said to be approximate, once: never ``附近附近``, never ``near 18 km SSW of``."""
    if is_chinese(language):
        return place if place.endswith("附近") else place + "附近"
    bare = place.strip()
    if bare[:1].isdigit() or bare.lower().startswith(("near ", "off ")) or bare.endswith("附近"):
        return place
    return "near " + place


def report_words(source: str, automatic: bool, language: str) -> dict[str, Any]:
    """Who measured and how: CENC's own words (自动测定 / 正式测定) for CENC, another agency's
    findings named with the agency (美国地质调查局自动测定 / 美国地质调查局测定, never 正式测定)."""
    words = _table(language)
    key = source.strip().lower()
    name = words["source"].get(key, source.strip())
    cenc = key in ("", "cenc")
    how = words["report"]["automatic" if automatic else ("official" if cenc else "reviewed")]
    if is_chinese(language):
        marker = how if cenc else name + how
        by = name + how
        kind = f"{words['kind']['earthquake']}·{marker}"
    else:
        marker = how
        by = f"{how.capitalize()} {name} report" if name else f"{how.capitalize()} report"
        kind = f"Quake, {how}"
    return {
        "source_name": name,
        "cenc_wording": cenc,
        "report_marker": marker,
        "report_by": by,
        "report_kind": kind,
    }


def _magnitude_depth(magnitude: str, depth: str, automatic: bool, language: str) -> str:
    """The magnitude with its depth (an automatic report states no depth), for one keyword."""
    if is_chinese(language):
        return f"{magnitude}级左右" if automatic else f"{magnitude}级，震源深度{depth}千米"
    return f"M{magnitude}" if automatic else f"M{magnitude}, depth {depth} km"


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
    category = d.category or ""
    label = _table(language)["category"].get(category.strip().lower(), category)
    return {"category": category, "category_label": label}


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
    if facts["kind"] == "earthquake":
        facts.update(_feed_words(incident, str(facts["place"]), language))
    return facts
