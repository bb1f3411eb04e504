"""A USGS feed through a real daemon: Chinese and English places, and the counties it reaches."""

from __future__ import annotations

import re
from typing import Any

import pytest

from alertcast.keys import FEEDS
from tests.conftest import DaemonFactory
from tests.feeds.feed_server import (
    FeedServer,
    collection,
    server_fixture,  # noqa: F401
    until,
)
from tests.feeds.test_daemon_feeds import herat

# Luding, 2022-09-05 04:52:18 UTC, as CENC located it; USGS's own place string in English.
LUDING = {
    "type": "Feature",
    "id": "us7000hj3u",
    "properties": {
        "mag": 6.8,
        "place": "2022 Luding earthquake sequence",
        "time": 1662353538000,
        "updated": 1662353938000,
        "status": "reviewed",
        "type": "earthquake",
        "magType": "mww",
        "alert": "orange",
        "tsunami": 0,
        "ids": ",us7000hj3u,",
    },
    "geometry": {"type": "Point", "coordinates": [102.08, 29.59, 16.0]},
}
ACCOUNTS = [
    {"id": "yaan", "channel": "webhook", "url": "{sink}", "secret_env": "T_HOOK_SECRET",
     "regions": ["511800"]},
    {"id": "wuhou", "channel": "webhook", "url": "{sink}", "secret_env": "T_HOOK_SECRET",
     "regions": ["510107"]},
]  # fmt: skip


async def start(start_daemon: DaemonFactory, server: FeedServer, language: str) -> Any:
    feed = {
        "name": "usgs",
        "type": "usgs",
        "url": server.feed_url(),
        "interval_s": 3600,
        "timeout_s": 30,
        "min_magnitude": 5.0,
        "max_age_s": None,
        "language": language,
    }
    d = await start_daemon(feeds=[feed], accounts=ACCOUNTS, approval={"severities": []})
    polled = d.client.app[FEEDS].feeds["usgs"]
    await until(lambda: polled.poller.health.polls >= 1 and not polled.poll_lock.locked())
    return d


async def the_incident(d: Any) -> dict[str, Any]:
    status, answer = await d.get("/v1/incidents?limit=10")
    assert status == 200
    (incident,) = answer["incidents"]
    view: dict[str, Any] = await d.settled(incident["id"])
    return view


@pytest.mark.parametrize("language", ["zh-CN", "en"])
async def test_luding_reaches_yaan_and_is_named_in_the_feeds_language(
    start_daemon: DaemonFactory, server: FeedServer, language: str
) -> None:
    """The M6.8 reaches the Ya'an account (100 km), not a Chengdu district; the place is CENC's
    in Chinese (no Latin letters) and a town's in English, never USGS's sequence name."""
    server.serve(collection(LUDING))
    d = await start(start_daemon, server, language)
    view = await the_incident(d)
    incident = view["incident"]
    codes = incident["area"]["codes"]
    assert codes[0] == "513322" and "511824" in codes  # Luding, then Shimian (Ya'an)
    reached = {x["account"] for x in view["deliveries"]}
    assert {"hook-0", "yaan"} <= reached and "wuhou" not in reached
    place = incident["details"]["place"]
    if language == "zh-CN":
        assert place == "四川甘孜州泸定县" and not re.search(r"[A-Za-z]", incident["headline"])
    else:
        assert place.endswith(", China") and "sequence" not in place
        assert incident["area"]["name"] == place


LATIN = re.compile(r"[A-Za-z]")
# Each language's account shows the place, the area and the headline the feed made as keywords.
SHOWN = {"keyword1": "place", "keyword2": "area", "keyword3": "headline"}
BOTH = [
    {"id": "zh-weibo", "channel": "console", "format": "weibo"},
    {"id": "zh-keys", "channel": "console", "format": "wechat_template", "template_fields": SHOWN},
    {"id": "en-text", "channel": "console", "format": "text", "language": "en"},
    {"id": "en-keys", "channel": "console", "format": "wechat_template", "language": "en",
     "template_fields": SHOWN},
]  # fmt: skip


async def test_a_usgs_quake_is_named_in_every_accounts_language(
    start_daemon: DaemonFactory, server: FeedServer
) -> None:
    """Herat (real USGS feature, an English feed) at once into Chinese and English accounts:
    the Chinese read 阿富汗 (no Latin letter in place or headline), the English USGS's style."""
    server.serve(collection(herat()))
    feed = {"name": "usgs", "type": "usgs", "url": server.feed_url(), "interval_s": 3600,
            "timeout_s": 30, "min_magnitude": 5.0, "max_age_s": None}  # fmt: skip
    d = await start_daemon(feeds=[feed], accounts=BOTH, approval={"severities": []})
    polled = d.client.app[FEEDS].feeds["usgs"]
    await until(lambda: polled.poller.health.polls >= 1 and not polled.poll_lock.locked())
    view = await the_incident(d)
    details = view["incident"]["details"]
    assert details["place"] == "36 km NNW of Herāt, Afghanistan"  # the incident's language
    assert details["places"] == {"zh-CN": "阿富汗", "en": "36 km NNW of Herāt, Afghanistan"}
    sent = {x["account"]: x["payload"] for x in view["deliveries"]}
    zh = {k: v["value"] for k, v in sent["zh-keys"]["template_data"].items()}
    assert (zh["keyword1"], zh["keyword2"]) == ("阿富汗", "阿富汗")
    assert zh["keyword3"].startswith("阿富汗附近发生5.9级左右地") and not LATIN.search(
        zh["keyword3"]
    )
    assert "在阿富汗附近（北纬34.64度，东经62.03度）发生5.9级左右地震" in sent["zh-weibo"]["text"]
    assert "Herāt" not in sent["zh-weibo"]["text"]
    en = {k: v["value"] for k, v in sent["en-keys"]["template_data"].items()}
    assert en["keyword1"].startswith("36 km NNW of Her") and en["keyword3"].startswith("M 5.9 -")
    assert "M5.9 earthquake – 36 km NNW of Herāt, Afghanistan" in sent["en-text"]["text"]
    assert "阿富汗" not in sent["en-text"]["text"]
