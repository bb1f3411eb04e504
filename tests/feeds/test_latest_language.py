"""The WeChat keyword reply names a feed quake in the account's language: a USGS quake raised
by an English feed reaches a Chinese account's followers as 阿富汗, not as "Herāt"."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from alertcast.latest import Latest
from alertcast.models import incident_json, parse_incident
from alertcast.regions import Hierarchy
from alertcast.render.facts import quake_headline
from alertcast.store import open_store
from alertcast.store.base import IncidentRow, Write

PLACES = {"zh-CN": "阿富汗", "en": "36 km NNW of Herāt, Afghanistan"}


def _feed_quake(**changes: Any) -> dict[str, Any]:
    place = PLACES["en"]
    body = {
        "kind": "earthquake",
        "severity": "moderate",
        "language": "en",
        "headline": quake_headline(place, 5.9, "usgs", "automatic", "en"),
        "area": {"name": place},
        "occurred_at": time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime()),
        "details": {
            "magnitude": 5.9,
            "depth_km": 10,
            "latitude": 34.64,
            "longitude": 62.03,
            "place": place,
            "places": PLACES,
            "report": "automatic",
            "source": "usgs",
        },
        **changes,
    }
    return incident_json(parse_incident(body))


async def _latest(tmp_path: Path, body: dict[str, Any], language: str | None) -> dict[str, Any]:
    store = open_store(f"sqlite:///{tmp_path / 'l.db'}")
    await store.open()
    try:
        row = IncidentRow(
            id="inc_herat",
            kind="earthquake",
            status="actual",
            severity="moderate",
            msg_type="alert",
            state="active",
            issuer="feed:usgs",
            source="feed:usgs",
            body=body,
            created_at=time.time(),
        )
        await store.apply(Write(incident=row))
        (found,) = await Latest(store, Hierarchy({}))("earthquake", [], 3, language)
        return found
    finally:
        await store.close()


async def test_a_chinese_account_reads_the_feeds_place_in_chinese(tmp_path: Path) -> None:
    found = await _latest(tmp_path, _feed_quake(), "zh-CN")
    assert found["headline"].startswith("阿富汗附近发生5.9级左右地震")
    assert found["area"]["name"] == "阿富汗"


async def test_an_english_account_and_an_offices_own_words_stay(tmp_path: Path) -> None:
    english = await _latest(tmp_path, _feed_quake(), "en")
    assert english["headline"] == quake_headline(PLACES["en"], 5.9, "usgs", "automatic", "en")
    (tmp_path / "o").mkdir()
    office = await _latest(tmp_path / "o", _feed_quake(headline="赫拉特附近地震"), "zh-CN")
    assert office["headline"] == "赫拉特附近地震" and office["area"]["name"] == "阿富汗"
