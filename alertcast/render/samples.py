"""Sample incidents, one per kind and language, that ``check`` renders for every account.

They are ordinary, realistic messages (county-level place names, a typical description), so a
check failure means an account's format cannot carry a normal alert, not an extreme one.
"""

from __future__ import annotations

from typing import Any

from alertcast.models import IncidentBase, Kind, Status, parse_incident
from alertcast.render.facts import is_chinese

__all__ = ["SAMPLE_LINK", "sample_incident"]

SAMPLE_LINK = "https://alerts.example.org/i/inc_01J0SAMPLE0000000000000000"

_ZH: dict[str, dict[str, Any]] = {
    "earthquake": {
        "headline": "四川泸定发生6.8级地震",
        "area": {"name": "四川省甘孜藏族自治州泸定县", "codes": ["513322"]},
        "details": {
            "magnitude": 6.8,
            "depth_km": 16,
            "latitude": 29.59,
            "longitude": 102.08,
            "place": "四川甘孜州泸定县",
            "source": "CENC",
        },
    },
    "fire": {
        "headline": "武侯区一高层住宅起火",
        "area": {"name": "成都市武侯区", "codes": ["510107"]},
        "details": {
            "address": "成都市武侯区人民南路四段12号",
            "level": 2,
            "evacuate": True,
            "avoid": ["人民南路四段", "科华北路"],
        },
    },
    "police": {
        "headline": "寻找走失老人",
        "area": {"name": "成都市青羊区", "codes": ["510105"]},
        "details": {
            "alert_type": "missing_person",
            "subject": "男，78岁，身穿蓝色外套",
            "contact": "110",
        },
    },
    "weather": {
        "headline": "成都市气象台发布暴雨红色预警",
        "area": {"name": "成都市", "codes": ["510100"]},
        "details": {"hazard": "暴雨", "level": "red"},
    },
    "general": {
        "headline": "地铁1号线部分站点临时封闭",
        "area": {"name": "成都市", "codes": ["510100"]},
        "details": {"category": "交通"},
    },
}

_EN: dict[str, dict[str, Any]] = {
    "earthquake": {
        "headline": "M6.8 earthquake in Luding, Sichuan",
        "area": {"name": "Luding County, Sichuan", "codes": ["513322"]},
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
        "headline": "High-rise fire in Wuhou District",
        "area": {"name": "Wuhou District, Chengdu", "codes": ["510107"]},
        "details": {
            "address": "12 Renmin South Road Section 4, Chengdu",
            "level": 2,
            "evacuate": True,
            "avoid": ["Renmin South Road", "Kehua North Road"],
        },
    },
    "police": {
        "headline": "Missing elderly man",
        "area": {"name": "Qingyang District, Chengdu", "codes": ["510105"]},
        "details": {
            "alert_type": "missing_person",
            "subject": "male, 78, blue coat",
            "contact": "110",
        },
    },
    "weather": {
        "headline": "Chengdu issues red rainstorm warning",
        "area": {"name": "Chengdu", "codes": ["510100"]},
        "details": {"hazard": "Rainstorm", "level": "red"},
    },
    "general": {
        "headline": "Metro Line 1 stations temporarily closed",
        "area": {"name": "Chengdu", "codes": ["510100"]},
        "details": {"category": "Transport"},
    },
}

_DESCRIPTION = {
    "zh": "请注意防范次生灾害，远离危险建筑，听从现场工作人员指挥。" * 3,
    "en": "Stay away from damaged buildings and follow the instructions of staff on site. " * 3,
}
_INSTRUCTION = {"zh": "请保持冷静，有序撤离。", "en": "Stay calm and leave in an orderly way."}


def sample_incident(kind: Kind | str, language: str, status: Status) -> IncidentBase:
    """A realistic incident of ``kind`` in ``language`` (Chinese or, otherwise, English)."""
    lang = "zh" if is_chinese(language) else "en"
    data = dict((_ZH if lang == "zh" else _EN)[str(kind)])
    data.update(
        kind=str(kind),
        status=status.value,
        severity="severe",
        description=_DESCRIPTION[lang],
        instruction=_INSTRUCTION[lang],
        occurred_at="2022-09-05T12:52:18+08:00",
        language="zh-CN" if lang == "zh" else "en",
    )
    return parse_incident(data)
