"""Feed quakes per format: the report marker in every text (titles and keywords included), one
rounding of every number, no doubled 附近, and what gives way first when room runs out."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from alertcast.config import AccountConfig
from alertcast.models import MsgType, parse_incident
from alertcast.render import RenderContext, Renderer
from alertcast.render.facts import build_facts
from tests.render.conftest import FORMATS

LINK = "https://alerts.example.org/p/inc_feed"
Account = Callable[..., AccountConfig]


def quake(source: str, report: str, place: str = "青海果洛州玛多县", **details: Any) -> Any:
    """A feed-like quake: no description (the template states the bulletin)."""
    return parse_incident(
        {
            "kind": "earthquake",
            "severity": "extreme",
            "headline": "x",
            "instruction": "远离危险建筑，注意余震。",
            "area": {"name": place},
            "occurred_at": "2021-05-21T18:04:11+00:00",
            "details": {
                "magnitude": 7.35,
                "depth_km": 17,
                "latitude": 34.585,
                "longitude": 98.345,
                "place": place,
                "report": report,
                "source": source,
                **details,
            },
        }
    )


CASES = [
    ("cenc", "automatic", "zh-CN", "自动测定"),
    ("cenc", "official", "zh-CN", "正式测定"),
    ("usgs", "automatic", "zh-CN", "美国地质调查局自动测定"),
    ("usgs", "official", "zh-CN", "美国地质调查局测定"),
    ("cenc", "official", "en", "official"),
    ("usgs", "official", "en", "reviewed"),
    ("usgs", "automatic", "en", "automatic"),
]


def strings(payload: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """Every public text of a payload, by key (template keywords one by one)."""
    for key, value in payload.items():
        if key in ("title", "digest", "text", "markdown", "content_html"):
            yield key, str(value)
        if key == "template_data":
            data = {k: v["value"] for k, v in value.items() if k.startswith("keyword")}
            yield "keywords", " ".join(data.values())


@pytest.mark.parametrize("fmt", [f for f in FORMATS if f != "webhook"])
@pytest.mark.parametrize(("source", "report", "language", "marker"), CASES)
def test_marker_in_every_text(
    renderer: Renderer,
    account: Account,
    fmt: str,
    source: str,
    report: str,
    language: str,
    marker: str,
) -> None:
    """Every text of every format says how the quake was measured, and never CENC's 正式测定
    for another agency's finding."""
    ctx = RenderContext("inc_feed", MsgType.alert, LINK)
    payload = renderer.render(quake(source, report), account(fmt, language), ctx)
    for key, text in strings(payload):
        assert marker.lower() in text.lower(), (key, text)
        if source != "cenc":
            assert "正式测定" not in text, (key, text)
        assert "附近附近" not in text and "7.3" not in text  # 7.35 is 7.4, everywhere


def test_one_rounding_and_beijing_time() -> None:
    """Half-up from the decimal text: 7.35 → 7.4, 34.585 → 34.59; 18:04 UTC is 02:04 the
    next day in Beijing; English keeps the issuer's offset."""
    facts = build_facts(quake("cenc", "official"), "zh-CN")
    assert (facts["magnitude"], facts["lat"], facts["lon"]) == ("7.4", "34.59", "98.35")
    assert facts["time"] == "05月22日02时04分"
    assert build_facts(quake("usgs", "official"), "en")["time"] == "2021-05-21 18:04 UTC"


@pytest.mark.parametrize(
    ("place", "language", "near"),
    [
        ("青海果洛州玛多县", "zh-CN", "青海果洛州玛多县附近"),
        ("青海果洛州玛多县附近", "zh-CN", "青海果洛州玛多县附近"),
        ("Herat, Afghanistan", "en", "near Herat, Afghanistan"),
        ("35 km NNW of Herat, Afghanistan", "en", "35 km NNW of Herat, Afghanistan"),
        ("near the coast of Peru", "en", "near the coast of Peru"),
    ],
)
def test_near_once(place: str, language: str, near: str) -> None:
    """An automatic report's place is said to be approximate exactly once."""
    assert build_facts(quake("cenc", "automatic", place), language)["place_near"] == near


def test_template_keywords_carry_marker_magnitude_and_depth(
    renderer: Renderer, account: Account
) -> None:
    """Only keywords show since 2023: the report, the place, the time, magnitude and depth."""
    ctx = RenderContext("inc_feed", MsgType.update, LINK)
    payload = renderer.render(quake("cenc", "official"), account("wechat_template"), ctx)
    values = {k: v["value"] for k, v in payload["template_data"].items()}
    assert values["keyword1"] == "【更新】地震·正式测定"
    assert values["keyword4"] == "7.4级，震源深度17千米"
    assert all(len(v) <= 20 for v in values.values())


@pytest.mark.parametrize(
    ("msg_type", "title"),
    [
        (MsgType.alert, "西藏日…7.4级地震（美国地质调查局自动测定）"),
        (MsgType.update, "【更新】7.4级地震（美国地质调查局自动测定）"),  # the body names the place
    ],
)
def test_a_long_title_keeps_its_facts(
    renderer: Renderer, account: Account, msg_type: MsgType, title: str
) -> None:
    """A 64-byte WeChat title gives up letters of the place, never the magnitude or marker."""
    place = "西藏日喀则市定日县以北二十千米处"
    ctx = RenderContext("inc_feed", msg_type, LINK)
    payload = renderer.render(quake("usgs", "automatic", place), account("wechat_article"), ctx)
    assert payload["title"] == title and len(title.encode()) <= 64
    assert place in payload["digest"] or place[:6] in payload["digest"]


def test_description_gives_way_before_the_instruction(renderer: Renderer, account: Account) -> None:
    """Short of room, the description is shortened or dropped while the instruction stays."""
    incident = quake("cenc", "official").model_copy(update={"description": "震感强烈。" * 30})
    ctx = RenderContext("inc_feed", MsgType.alert, LINK)
    payload = renderer.render(incident, account("weibo"), ctx)
    assert "远离危险建筑，注意余震。" in payload["text"]
    assert payload["lengths"]["text"]["fitted"][0] == "description"


@pytest.mark.parametrize(
    ("language", "label"), [("zh-CN", "【突发事件·例行通知】"), ("en", "Alert (routine notice)")]
)
def test_routine_category_is_translated(
    renderer: Renderer, account: Account, language: str, label: str
) -> None:
    """A schedule's routine broadcast is labelled in the account's language."""
    incident = parse_incident(
        {
            "kind": "general",
            "severity": "minor",
            "headline": "防空警报试鸣",
            "area": {"name": "成都市"},
            "occurred_at": "2024-05-12T14:28:00+08:00",
            "details": {"category": "routine"},
        }
    )
    ctx = RenderContext("inc_routine", MsgType.alert, LINK)
    text = renderer.render(incident, account("text", language), ctx)["text"]
    assert label in text and "routine" not in text.replace("routine notice", "")


PLACES = {"zh-CN": "阿富汗", "en": "36 km NNW of Herāt, Afghanistan"}


@pytest.mark.parametrize(
    ("headline", "language", "shown"),
    [
        (
            "M 5.9 - 36 km NNW of Herāt, Afghanistan (automatic)",
            "zh-CN",
            "阿富汗附近发生5.9级左右地",
        ),
        ("M 5.9 - 36 km NNW of Herāt, Afghanistan (automatic)", "en", "M 5.9 - 36 km NNW o…"),
        ("Quake near Herat", "zh-CN", "Quake near Herat"),  # an office's words stay
    ],
)
def test_a_feed_place_and_headline_in_the_accounts_language(
    renderer: Renderer, account: Account, headline: str, language: str, shown: str
) -> None:
    """``details.places`` names the place in the account's language; a headline the feed made
    from its place follows it, an office's own headline is kept as written."""
    place = PLACES["en"]
    incident = quake("usgs", "automatic", place, magnitude=5.9, places=PLACES)
    incident = incident.model_copy(update={"headline": headline, "language": "en"})
    mapping = {"keyword1": "place", "keyword2": "area", "keyword3": "headline"}
    ctx = RenderContext("inc_feed", MsgType.alert, LINK)
    payload = renderer.render(
        incident, account("wechat_template", language, template_fields=mapping), ctx
    )
    values = {k: v["value"] for k, v in payload["template_data"].items()}
    ours = PLACES["zh-CN" if language == "zh-CN" else "en"]
    assert values["keyword1"].rstrip("…") in ours and values["keyword2"] == values["keyword1"]
    assert values["keyword3"].startswith(shown.rstrip("…"))


def test_an_office_place_without_places_stays_as_written() -> None:
    """An API incident names one place: every language reads it as the office wrote it."""
    for language in ("zh-CN", "en"):
        assert (
            build_facts(quake("cenc", "official", "雅安市芦山县"), language)["place"]
            == "雅安市芦山县"
        )
