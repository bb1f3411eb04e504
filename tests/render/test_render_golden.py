"""Golden payloads per kind × format × language, and hand-checked CENC-style earthquake texts.

Regenerate the golden files after a reviewed wording change with
``ALERTCAST_UPDATE_GOLDEN=1 .venv/bin/pytest tests/render/test_render_golden.py``; review the diff.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from alertcast.config import AccountConfig
from alertcast.models import MsgType, parse_incident
from alertcast.render import RenderContext, Renderer
from tests.render.conftest import FORMATS

GOLDEN = Path(__file__).parent / "golden"
LINK = "https://alerts.example.org/i/inc_01J9GOLDEN"
KINDS = ["earthquake", "fire", "police", "weather", "general"]
LANGUAGES = ["zh-CN", "en"]

COMMON = {"status": "actual", "severity": "severe", "occurred_at": "2013-04-20T08:02:46+08:00"}
ZH: dict[str, dict[str, Any]] = {
    "earthquake": {
        "headline": "四川芦山发生7.0级地震",
        "area": {"name": "四川省雅安市芦山县"},
        "description": "震中附近多地震感强烈，部分房屋受损。",
        "instruction": "远离危险建筑，注意余震。",
        "details": {
            "magnitude": 7.0,
            "depth_km": 13,
            "latitude": 30.3,
            "longitude": 103.0,
            "place": "四川省雅安市芦山县",
            "report": "official",
            "source": "CENC",
        },
    },
    "fire": {
        "headline": "高层住宅起火",
        "area": {"name": "成都市武侯区"},
        "description": "<script>alert('x')</script>火势已得到控制。",
        "instruction": "请勿围观。",
        "details": {
            "address": "成都市武侯区人民南路四段12号",
            "level": 2,
            "evacuate": True,
            "avoid": ["人民南路四段"],
        },
    },
    "police": {
        "headline": "寻找走失老人",
        "area": {"name": "成都市青羊区"},
        "description": "老人患有阿尔茨海默病。",
        "instruction": "如有发现请拨打110。",
        "details": {"alert_type": "missing_person", "subject": "男，78岁", "contact": "110"},
    },
    "weather": {
        "headline": "成都市气象台发布暴雨红色预警",
        "area": {"name": "成都市"},
        "description": "预计未来3小时降雨量将达100毫米以上。",
        "instruction": "停止户外活动。",
        "expires_at": "2013-04-20T20:00:00+08:00",
        "details": {"hazard": "暴雨", "level": "red"},
    },
    "general": {
        "headline": "地铁1号线部分站点临时封闭",
        "area": {"name": "成都市"},
        "description": "天府广场站至火车南站暂停运营。",
        "instruction": "请改乘公交。",
        "details": {"category": "交通"},
    },
}
EN: dict[str, dict[str, Any]] = {
    "earthquake": {
        "headline": "M6.8 earthquake in Luding",
        "area": {"name": "Luding County, Sichuan"},
        "description": "Strong shaking was felt in Chengdu.",
        "instruction": "Stay away from damaged buildings.",
        "details": {
            "magnitude": 6.8,
            "depth_km": 16,
            "latitude": 29.59,
            "longitude": 102.08,
            "place": "Luding County, Garze, Sichuan",
            "source": "CENC",
        },
    },
    "fire": {
        "headline": "High-rise fire",
        "area": {"name": "Wuhou District"},
        "description": "<b>Crews</b> are on site & working.",
        "instruction": "Keep clear.",
        "details": {"address": "12 Renmin South Road, Chengdu", "level": 2, "evacuate": True},
    },
    "police": {
        "headline": "Missing elderly man",
        "area": {"name": "Qingyang District"},
        "description": "He may be confused.",
        "instruction": "Call 110 if seen.",
        "details": {"alert_type": "missing_person", "subject": "male, 78", "contact": "110"},
    },
    "weather": {
        "headline": "Red rainstorm warning",
        "area": {"name": "Chengdu"},
        "description": "100 mm of rain expected in 3 hours.",
        "instruction": "Stay indoors.",
        "details": {"hazard": "Rainstorm", "level": "red"},
    },
    "general": {
        "headline": "Metro stations closed",
        "area": {"name": "Chengdu"},
        "description": "Line 1 is suspended.",
        "instruction": "Take the bus.",
        "details": {"category": "Transport"},
    },
}


def _incident(language: str, kind: str) -> Any:
    data = (ZH if language == "zh-CN" else EN)[kind]
    return parse_incident({**COMMON, **data, "kind": kind, "language": language})


def _render(renderer: Renderer, language: str, kind: str, fmt: str) -> dict[str, Any]:
    account = AccountConfig(id="golden", channel="console", format=fmt, language=language)
    ctx = RenderContext("inc_01J9GOLDEN", MsgType.alert, LINK)
    return renderer.render(_incident(language, kind), account, ctx)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("language", LANGUAGES)
def test_golden(renderer: Renderer, language: str, kind: str, fmt: str) -> None:
    """The payload is exactly the reviewed one in golden/{language}/{kind}.json."""
    path = GOLDEN / language / f"{kind}.json"
    payload = json.loads(json.dumps(_render(renderer, language, kind, fmt), ensure_ascii=False))
    if os.environ.get("ALERTCAST_UPDATE_GOLDEN"):
        path.parent.mkdir(parents=True, exist_ok=True)
        stored = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
        stored[fmt] = payload
        text = json.dumps(dict(sorted(stored.items())), ensure_ascii=False, indent=2)
        path.write_text(text + "\n", encoding="utf-8")
    assert payload == json.loads(path.read_text(encoding="utf-8"))[fmt]


def _quake(**details: Any) -> dict[str, Any]:
    base = {
        "magnitude": 7.0,
        "depth_km": 13,
        "latitude": 30.3,
        "longitude": 103.0,
        "place": "四川省雅安市芦山县",
        "report": "official",
        "source": "CENC",
    }
    return {
        "kind": "earthquake",
        "headline": "地震",
        "area": {"name": "四川"},
        "occurred_at": "2013-04-20T08:02:46+08:00",
        "details": {**base, **details},
    }


LUDING = {
    "magnitude": 6.8,
    "depth_km": 16,
    "latitude": 29.59,
    "longitude": 102.08,
    "place": "四川甘孜州泸定县",
}
CENC = [
    (
        "Lushan 2013, official",
        _quake(),
        "alert",
        "",
        "中国地震台网正式测定：04月20日08时02分在四川省雅安市芦山县（北纬30.30度，东经103.00度）"
        "发生7.0级地震，震源深度13千米。 详情：https://alerts.example.org/i/q",
    ),
    (
        "Lushan 2013, automatic",
        _quake(magnitude=5.9, latitude=30.1, place="四川省雅安市雨城区", report="automatic"),
        "alert",
        "",
        "中国地震台网自动测定：04月20日08时02分在四川省雅安市雨城区附近（北纬30.10度，东经103.00度）"
        "发生5.9级左右地震，最终结果以正式速报为准。 详情：https://alerts.example.org/i/q",
    ),
    (
        "Luding 2022, official as the update",
        {**_quake(**LUDING), "occurred_at": "2022-09-05T12:52:18+08:00"},
        "update",
        "",
        "【更新】中国地震台网正式测定：09月05日12时52分在四川甘孜州泸定县（北纬29.59度，东经102.08度）"
        "发生6.8级地震，震源深度16千米。 详情：https://alerts.example.org/i/q",
    ),
    (
        "Luding 2022 from UTC, an exercise",
        {**_quake(**LUDING), "status": "exercise", "occurred_at": "2022-09-05T04:52:18+00:00"},
        "alert",
        "",
        "【演习】中国地震台网正式测定：09月05日12时52分在四川甘孜州泸定县（北纬29.59度，东经102.08度）"
        "发生6.8级地震，震源深度16千米。 详情：https://alerts.example.org/i/q",
    ),
    (
        "Luding 2022, cancelled",
        {**_quake(**LUDING), "occurred_at": "2022-09-05T12:52:18+08:00"},
        "cancel",
        "系统误报",
        "【取消】此前发布的09月05日12时52分四川甘孜州泸定县6.8级地震信息已取消。原因：系统误报。"
        " 详情：https://alerts.example.org/i/q",
    ),
    (
        "southern and western hemispheres",
        _quake(latitude=-36.12, longitude=-72.9, place="智利中部沿岸近海", source=""),
        "alert",
        "",
        "正式测定：04月20日08时02分在智利中部沿岸近海（南纬36.12度，西经72.90度）"
        "发生7.0级地震，震源深度13千米。 详情：https://alerts.example.org/i/q",
    ),
]


@pytest.mark.parametrize(
    ("name", "data", "msg_type", "reason", "text"), CENC, ids=[c[0] for c in CENC]
)
def test_cenc_wording(
    renderer: Renderer,
    account: Callable[..., AccountConfig],
    name: str,
    data: dict[str, Any],
    msg_type: str,
    reason: str,
    text: str,
) -> None:
    """Chinese earthquake texts read like CENC quick reports (facts file §2.2)."""
    ctx = RenderContext(
        "inc_q", MsgType(msg_type), "https://alerts.example.org/i/q", reason=reason or None
    )
    payload = renderer.render(parse_incident(data), account("weibo"), ctx)
    assert payload["text"] == text


def test_english_quake_style(renderer: Renderer, account: Callable[..., AccountConfig]) -> None:
    """English uses the "M6.8 – place, depth 16 km" style with coordinates and the source."""
    data = {
        **_quake(**{**LUDING, "place": "Luding County, Garze, Sichuan"}),
        "occurred_at": "2022-09-05T12:52:18+08:00",
        "status": "test",
    }
    ctx = RenderContext("inc_q", MsgType.alert, "https://alerts.example.org/i/q")
    payload = renderer.render(parse_incident(data), account("mastodon", "en"), ctx)
    assert payload["text"] == (
        "[TEST] M6.8 – Luding County, Garze, Sichuan, depth 16 km. Earthquake at 2022-09-05 "
        "12:52 UTC+08:00, 29.59°N 102.08°E. Official CENC report. "
        "More: https://alerts.example.org/i/q #Earthquake"
    )
