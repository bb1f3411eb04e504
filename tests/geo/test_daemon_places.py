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
