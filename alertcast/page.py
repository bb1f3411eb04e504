"""``GET /p/{id}``: the public full text of an incident, the link every short post carries.

Public by design (no token): it shows what was broadcast — headline, time, place, the latest
facts, what to do — and, once cancelled or past its validity (:mod:`alertcast.expiry`), says so
first. Never the deliveries, issuers or errors. Every label is in the incident's language (the
fields are named as the public reads them, never by their JSON keys) and every value is escaped
by the template engine.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from jinja2 import Environment, select_autoescape

from alertcast.config import ExpiryConfig
from alertcast.expiry import expires_at
from alertcast.render.facts import BEIJING, LANGUAGE_DATA, decimal
from alertcast.store.base import IncidentRow

__all__ = ["render_page"]

_ENV = Environment(autoescape=select_autoescape(default=True), trim_blocks=True, lstrip_blocks=True)
_PAGE = _ENV.from_string("""<!doctype html>
<html lang="{{ i.language or 'zh-CN' }}"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ marker }}{{ i.headline }}</title>
<style>body{font:16px/1.6 system-ui,sans-serif;max-width:40em;margin:1em auto;padding:0 1em}
.banner{padding:.5em 1em;border-radius:4px;background:#fde2e1;font-weight:bold}
.drill{background:#fff4cc}dt{font-weight:bold}</style></head><body>
{% if cancelled %}
<p class="banner">{{ w.cancelled }}{{ w.colon }}{{ cancelled }}</p>
{% elif expired %}
<p class="banner">{{ w.expired }}{{ w.colon }}{{ expired }}</p>
{% endif %}
{% if marker %}<p class="banner drill">{{ marker }}</p>{% endif %}
<h1>{{ i.headline }}</h1>
<dl>
<dt>{{ w.time }}</dt><dd>{{ time }}</dd>
<dt>{{ w.area }}</dt><dd>{{ i.area.name }}</dd>
{% for key, value in details %}<dt>{{ key }}</dt><dd>{{ value }}</dd>{% endfor %}
</dl>
{% if i.description %}<p>{{ i.description }}</p>{% endif %}
{% if i.instruction %}<p><strong>{{ i.instruction }}</strong></p>{% endif %}
{% if updated %}<p><small>{{ w.updated }} {{ updated }}</small></p>{% endif %}
</body></html>
""")
DRILL = {"exercise": ("【演习】", "[EXERCISE]"), "test": ("【测试】", "[TEST]")}

_WORDS = {
    "zh": {
        "cancelled": "已撤销",
        "expired": "已过有效期",
        "colon": "：",
        "time": "时间",
        "area": "地区",
        "updated": "已更新",
        "yes": "是",
        "no": "否",
    },
    "en": {
        "cancelled": "CANCELLED",
        "expired": "No longer in force",
        "colon": ": ",
        "time": "Time",
        "area": "Area",
        "updated": "Updated",
        "yes": "yes",
        "no": "no",
    },
}
# Each kind's ``details`` as the public reads them; a key not named here is not shown.
_LABELS = {
    "zh": {
        "magnitude": "震级",
        "magnitude_type": "震级类型",
        "depth_km": "震源深度",
        "latitude": "纬度",
        "longitude": "经度",
        "place": "震中",
        "report": "测定方式",
        "source": "发布机构",
        "event_id": "事件编号",
        "address": "地址",
        "level": "等级",
        "evacuate": "疏散",
        "avoid": "请避开",
        "alert_type": "类别",
        "subject": "对象",
        "contact": "联系方式",
        "hazard": "灾种",
        "category": "类别",
    },
    "en": {
        "magnitude": "Magnitude",
        "magnitude_type": "Magnitude type",
        "depth_km": "Depth",
        "latitude": "Latitude",
        "longitude": "Longitude",
        "place": "Epicentre",
        "report": "Report",
        "source": "Source",
        "event_id": "Event id",
        "address": "Address",
        "level": "Level",
        "evacuate": "Evacuate",
        "avoid": "Avoid",
        "alert_type": "Type",
        "subject": "Subject",
        "contact": "Contact",
        "hazard": "Hazard",
        "category": "Category",
    },
}


def render_page(
    root: IncidentRow,
    follow_ups: list[IncidentRow],
    expiry: ExpiryConfig | None = None,
    now: float | None = None,
) -> str:
    """The page for ``root`` with the facts of its latest update, any cancellation, and whether
    it is past its validity at ``now`` (Unix seconds) under ``expiry``."""
    updates = [f for f in follow_ups if f.msg_type == "update"]
    cancels = [f for f in follow_ups if f.msg_type == "cancel"]
    body: dict[str, Any] = dict(updates[-1].body if updates else root.body)
    lang = "zh" if str(body.get("language", "zh-CN")).startswith("zh") else "en"
    end = expires_at(body, expiry) if expiry is not None else None
    lapsed = end is not None and now is not None and end.timestamp() <= now
    return _PAGE.render(
        i=body,
        w=_WORDS[lang],
        marker=DRILL.get(root.status, ("", ""))[0 if lang == "zh" else 1],
        time=_time(body.get("occurred_at"), lang),
        details=_details(dict(body.get("details") or {}), lang),
        cancelled=cancels[-1].reason if cancels else None,
        expired=_time(end.isoformat(), lang) if lapsed and end is not None else None,
        updated=_time(updates[-1].body.get("occurred_at"), lang) if updates else None,
    )


def _details(details: dict[str, Any], lang: str) -> list[tuple[str, str]]:
    labels = _LABELS[lang]
    return [
        (labels[key], _value(key, value, lang))
        for key, value in details.items()
        if key in labels and value not in ("", None, [], False)
    ]


def _value(key: str, value: Any, lang: str) -> str:
    """A detail as the public reads it: units, hemispheres, translated codes."""
    words, table = _WORDS[lang], LANGUAGE_DATA[lang]
    zh = lang == "zh"
    if isinstance(value, bool):
        return words["yes"] if value else words["no"]
    if key == "magnitude" and isinstance(value, int | float):
        return decimal(float(value), 1) + ("级" if zh else "")
    if key == "depth_km" and isinstance(value, int | float):
        return decimal(float(value), 0) + (" 千米" if zh else " km")
    if key in ("latitude", "longitude") and isinstance(value, int | float):
        return _coordinate(key, float(value), zh)
    if key == "report":
        return table["report"].get(str(value), str(value))
    if key == "source":
        return table["source"].get(str(value).strip().lower(), str(value))
    if key == "alert_type":
        return table["police"].get(str(value), str(value).replace("_", " "))
    if key == "level":
        return table["level"].get(str(value), str(value))
    if key == "category":
        return table["category"].get(str(value).strip().lower(), str(value))
    return "、".join(map(str, value)) if zh and isinstance(value, list) else _plain(value)


def _coordinate(key: str, value: float, zh: bool) -> str:
    hemi = {"latitude": ("北纬", "南纬", "N", "S"), "longitude": ("东经", "西经", "E", "W")}[key]
    text = decimal(abs(value), 2)
    if zh:
        return f"{hemi[0] if value >= 0 else hemi[1]}{text}度"
    return f"{text}°{hemi[2] if value >= 0 else hemi[3]}"


def _plain(value: Any) -> str:
    return ", ".join(map(str, value)) if isinstance(value, list) else str(value)


def _time(value: Any, lang: str) -> str:
    """Beijing time in Chinese, as CENC states it; the issuer's own offset in English."""
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError:
        return str(value or "")
    if moment.tzinfo is None:
        return str(value)
    if lang == "zh":
        local = moment.astimezone(BEIJING)
        return f"{local:%Y}年{local:%m}月{local:%d}日{local:%H}时{local:%M}分（北京时间）"
    offset = moment.strftime("%z")
    zone = "UTC" if offset in ("+0000", "-0000") else f"UTC{offset[:3]}:{offset[3:]}"
    return f"{moment:%Y-%m-%d %H:%M} {zone}"
