"""Properties over generated incidents: within every limit, facts intact, deterministic.

Places and texts mix very long Chinese, Latin, right-to-left scripts, combining marks, emoji
sequences, numbers and URLs. A render may only fail with a RenderError caused by the mandatory
facts themselves: the same incident without its optional parts then fails too.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alertcast.config import AccountConfig
from alertcast.models import IncidentBase, MsgType, parse_incident
from alertcast.render import RenderContext, Renderer, RenderError
from alertcast.render.templates import html_escape, md_escape
from tests.render.conftest import FORMATS

KIND_WORDS = {
    "zh-CN": {
        "earthquake": "地震",
        "fire": "火灾",
        "police": "警情",
        "weather": "气象预警",
        "general": "突发事件",
    },
    "en": {
        "earthquake": "earthquake",
        "fire": "fire",
        "police": "police alert",
        "weather": "weather warning",
        "general": "alert",
    },
}
PIECES = [
    "四川省",
    "甘孜藏族自治州",
    "泸定县",
    "雅安市",
    "Luding",
    "County",
    " ",
    "，",
    "。",
    "-",
    "6.8",
    "30.30",
    "08:02",
    "مرحبا",
    "שלום",
    "\u200f",
    "\u202b",
    "é",
    "e\u0301",
    "नमस्ते",
    "👨\u200d👩\u200d👧\u200d👦",
    "🇨🇳",
    "1\ufe0f\u20e3",
    "🙋🏽",
    "😷",
    "*",
    "_",
    "<b>",
    "&",
    "#",
    "https://x.example.org/a?b=1",
    "t.cn",
    "\n",
    "[",
    "]",
]
texts = st.lists(st.sampled_from(PIECES) | st.text(max_size=3), max_size=40).map("".join)
cjk = st.text(alphabet=st.characters(min_codepoint=0x4E00, max_codepoint=0x9FFF), max_size=200)
long_cjk = st.text(
    alphabet=st.characters(min_codepoint=0x4E00, max_codepoint=0x9FFF), min_size=60, max_size=200
)
names = (texts | cjk | long_cjk).map(str.strip).filter(lambda s: 0 < len(s) <= 200)
long_texts = st.one_of(
    texts, cjk, st.builds(lambda s, n: (s * n)[:4000], texts, st.integers(1, 200))
)


@st.composite
def incidents(draw: st.DrawFn) -> tuple[IncidentBase, str]:
    kind = draw(st.sampled_from(list(KIND_WORDS["en"])))
    language = draw(st.sampled_from(["zh-CN", "en"]))
    details: dict[str, Any] = {
        "earthquake": {
            "magnitude": draw(st.floats(0, 10)),
            "depth_km": draw(st.floats(0, 700)),
            "latitude": draw(st.floats(-90, 90)),
            "longitude": draw(st.floats(-180, 180)),
            "place": draw(names),
            "report": draw(st.sampled_from(["automatic", "official"])),
            "source": draw(st.sampled_from(["CENC", "USGS", ""])),
        },
        "fire": {
            "address": draw(names),
            "level": draw(st.none() | st.integers(1, 5)),
            "evacuate": draw(st.booleans()),
            "avoid": draw(st.lists(names, max_size=3)),
        },
        "police": {
            "alert_type": draw(st.sampled_from(["missing_person", "wanted", "odd_one"])),
            "subject": draw(texts.map(lambda s: s.strip()[:200])),
            "contact": draw(st.sampled_from(["110", ""])),
        },
        "weather": {"hazard": draw(names), "level": draw(st.sampled_from(["red", "blue", None]))},
        "general": {"category": draw(st.sampled_from(["", "交通", "Transport"]))},
    }[kind]
    offset = timezone(timedelta(minutes=draw(st.integers(-12 * 60, 14 * 60))))
    moment = draw(st.datetimes(datetime(2000, 1, 1), datetime(2090, 1, 1)))
    data = {
        "kind": kind,
        "language": language,
        "details": details,
        "status": draw(st.sampled_from(["actual", "exercise", "test"])),
        "headline": draw(names),
        "area": {"name": draw(names)},
        "description": draw(long_texts).strip(),
        "instruction": draw(texts).strip()[:2000],
        "occurred_at": moment.replace(tzinfo=offset).isoformat(),
    }
    return parse_incident(data), language


def _time(incident: IncidentBase, language: str) -> str:
    moment = incident.occurred_at
    if language == "zh-CN":
        local = moment.astimezone(timezone(timedelta(hours=8)))
        return f"{local:%m}月{local:%d}日{local:%H}时{local:%M}分"
    return f"{moment:%Y-%m-%d %H:%M}"


def _facts(incident: IncidentBase, language: str, link: str) -> list[str]:
    details: Any = getattr(incident, "details", None)
    kind = str(getattr(incident, "kind", ""))
    place = {"earthquake": "place", "fire": "address"}.get(kind)
    wanted = [getattr(details, place) if place else incident.area.name, _time(incident, language)]
    if kind == "earthquake":
        magnitude = Decimal(repr(details.magnitude)).quantize(Decimal("0.1"), ROUND_HALF_UP)
        wanted.append(str(magnitude))
    return [*wanted, link]


def _escaped(fmt: str, value: str) -> str:
    if fmt in ("telegram",):
        return html_escape(value)
    if fmt == "weibo" and not value.startswith("https://"):
        return value.replace("#", "＃")  # no #topic# marks on Weibo
    return md_escape(value) if fmt.endswith("markdown") else value


def _check(payload: dict[str, Any], incident: IncidentBase, language: str, link: str) -> None:
    fmt = payload["format"]
    for length in payload["lengths"].values():
        assert length["used"] <= length["limit"], (fmt, length)
    text = payload["text"]
    if incident.status.is_drill:
        marker = {"exercise": ("【演习】", "[EXERCISE]"), "test": ("【测试】", "[TEST]")}
        assert text.startswith(marker[incident.status.value][language == "en"])
    for fact in _facts(incident, language, link):
        assert _escaped(fmt, fact) in text, (fmt, fact, text)
    words = KIND_WORDS[language][str(getattr(incident, "kind", ""))]
    assert words in text.lower(), (fmt, words, text)


def _minimal(incident: IncidentBase) -> IncidentBase:
    return incident.model_copy(update={"description": "", "instruction": "", "headline": "·"})


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    case=incidents(),
    msg_type=st.sampled_from(list(MsgType)),
    link_id=st.text(alphabet="abcdefghjkmnpqrstvwxyz0123456789", min_size=1, max_size=40),
)
def test_every_format_fits_and_keeps_the_facts(
    renderer: Renderer, case: tuple[IncidentBase, str], msg_type: MsgType, link_id: str
) -> None:
    """Within every limit, marker first, facts present, deterministic; or a mandatory overflow."""
    incident, language = case
    link = f"https://alerts.example.org/i/{link_id}"
    ctx = RenderContext("inc_p", msg_type, link, reason="误报")
    for fmt in FORMATS:
        account = AccountConfig(id="p", channel="console", format=fmt, language=language)
        try:
            payload = renderer.render(incident, account, ctx)
        except RenderError as exc:
            match = re.search(r"need (\d+) .*the limit is (\d+)", str(exc))
            assert match and int(match[1]) > int(match[2]), str(exc)
            with pytest.raises(RenderError):
                renderer.render(_minimal(incident), account, ctx)
            continue
        _check(payload, incident, language, link)
        assert renderer.render(incident, account, ctx) == payload


def test_realistic_long_place_still_fits(renderer: Renderer) -> None:
    """A long but real county-level place name fits even a Weibo post with a long link."""
    place = "新疆维吾尔自治区克孜勒苏柯尔克孜自治州阿克陶县"
    incident = parse_incident(
        {
            "kind": "earthquake",
            "headline": "地震",
            "area": {"name": place},
            "description": "震" * 3000,
            "occurred_at": datetime(2016, 11, 25, 14, 24, tzinfo=UTC),
            "details": {
                "magnitude": 6.7,
                "depth_km": 10,
                "latitude": 39.27,
                "longitude": 74.04,
                "place": place,
                "source": "CENC",
            },
        }
    )
    account = AccountConfig(id="w", channel="console", format="weibo")
    ctx = RenderContext("i", MsgType.alert, "https://alerts.example.org/i/" + "x" * 100)
    payload = renderer.render(incident, account, ctx)
    assert place in payload["text"] and payload["lengths"]["text"]["used"] <= 140
