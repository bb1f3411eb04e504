"""USGS GeoJSON summary feeds: the real files, bad features, bad bodies."""

from __future__ import annotations

import copy
import json
import math
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from alertcast.feeds import usgs
from alertcast.feeds.events import BadEvent, MalformedFeed, QuakeEvent

from ._make import usgs_bytes


def _events(name: str) -> dict[str, QuakeEvent]:
    result = usgs.parse_feed(usgs_bytes(name))
    assert result.errors == ()
    return {ev.event_id: ev for ev in result.events}


def _feature(name: str = "significant_month.geojson", index: int = 0) -> dict[str, Any]:
    feature: dict[str, Any] = json.loads(usgs_bytes(name))["features"][index]
    return copy.deepcopy(feature)


@pytest.mark.parametrize(
    ("name", "count"),
    [("all_hour.geojson", 8), ("significant_month.geojson", 18), ("significant_week.geojson", 4)],
)
def test_real_feed_counts(name: str, count: int) -> None:
    """Every feature of each real feed parses, none skipped."""
    result = usgs.parse_feed(usgs_bytes(name))
    assert (len(result.events), result.errors) == (count, ())
    assert {ev.source for ev in result.events} == {"usgs"}


def test_fields_of_a_reviewed_red_event() -> None:
    """Western Afghanistan M6.3: lon/lat order, ms time in UTC, PAGER red, official."""
    ev = _events("significant_month.geojson")["us6000len8"]
    assert (ev.latitude, ev.longitude, ev.depth_km) == (34.5565, 62.0449, 9)
    assert ev.time == datetime(2023, 10, 11, 0, 41, 56, 160000, tzinfo=UTC)
    assert ev.updated == datetime.fromtimestamp(1697054252.893, tz=UTC)
    assert (ev.magnitude, ev.magnitude_type, ev.place) == (6.3, "mww", "western Afghanistan")
    assert (ev.pager, ev.tsunami, ev.report, ev.status) == ("red", False, "official", "reviewed")
    assert ev.url == "https://earthquake.usgs.gov/earthquakes/eventpage/us6000len8"


def test_merged_ids() -> None:
    """``ids`` with leading and trailing commas becomes the set of every associated id."""
    ev = _events("significant_month.geojson")["uw61965081"]
    assert ev.ids == {"ew1696818070", "at00s28p79", "uw61965081", "us6000le56"}


def test_pager_colours_and_tsunami_flags() -> None:
    """The month file holds all four PAGER levels, nulls, and tsunami 1 on coastal events."""
    events = _events("significant_month.geojson")
    assert {ev.pager for ev in events.values()} == {"red", "orange", "yellow", "green", None}
    assert events["us6000lec2"].pager is None
    tsunami = {i for i, ev in events.items() if ev.tsunami}
    assert tsunami == {"uw61965081", "us6000ldqd", "nc73943821", "nc73938736"}


def test_null_tz_and_automatic_status() -> None:
    """``tz`` null (2023) or set (2017) makes no difference; automatic status is automatic."""
    hour = _events("all_hour.geojson")
    assert hour["nc72934355"].report == "automatic"
    assert hour["us1000bknk"].report == "official"
    assert all(ev.time.tzinfo is UTC for ev in _events("significant_month.geojson").values())


def test_diacritics_survive() -> None:
    """Place names keep their diacritics."""
    assert _events("significant_month.geojson")["us6000ldpv"].place.endswith("Herāt, Afghanistan")


@pytest.mark.parametrize(
    ("path", "value", "reason"),
    [
        (("properties", "mag"), None, "mag is missing"),
        (("properties", "mag"), "big", "not a number"),
        (("properties", "mag"), True, "not a number"),
        (("properties", "mag"), math.nan, "not finite"),
        (("properties", "time"), "2023-10-11", "not epoch milliseconds"),
        (("properties", "time"), 10**20, "out of range"),
        (("id",), "", "id is missing"),
        (("id",), 42, "id is missing"),
        (("geometry", "coordinates"), [62.0, 34.5], "coordinates is not"),
        (("geometry", "coordinates"), [62.0, 95.0, 10], "out of range"),
        (("geometry",), None, "coordinates is not"),
        (("properties",), [], "properties is missing"),
    ],
)
def test_bad_feature(path: tuple[str, ...], value: Any, reason: str) -> None:
    """What an alert depends on is strict: each garbled field is a BadEvent saying which."""
    feature = _feature()
    target = feature
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    with pytest.raises(BadEvent, match=reason):
        usgs.parse_feature(feature)


@pytest.mark.parametrize(
    ("key", "value", "field", "expected"),
    [
        ("place", None, "place", "34.56, 62.04"),
        ("updated", None, "updated", None),
        ("updated", "soon", "updated", None),
        ("alert", "purple", "pager", None),
        ("alert", "RED", "pager", "red"),
        ("magType", None, "magnitude_type", "M"),
        ("type", None, "event_type", "earthquake"),
        ("type", "Quarry Blast", "event_type", "quarry blast"),
        ("ids", None, "ids", frozenset({"us6000len8"})),
        ("url", None, "url", None),
        ("tsunami", None, "tsunami", False),
        ("status", None, "report", "automatic"),
    ],
)
def test_nulls_elsewhere_tolerated(key: str, value: Any, field: str, expected: Any) -> None:
    """Nulls and odd values outside id/time/coordinates/magnitude fall back sensibly."""
    feature = _feature()
    feature["properties"][key] = value
    assert getattr(usgs.parse_feature(feature), field) == expected


def test_bad_entries_are_skipped_with_reason() -> None:
    """One bad feature is reported by id, one non-object by index; the good ones stand."""
    doc = json.loads(usgs_bytes("significant_week.geojson"))
    doc["features"][1]["properties"]["mag"] = None
    doc["features"].append("not a feature")
    result = usgs.parse_feed(json.dumps(doc).encode())
    assert len(result.events) == 3
    assert result.errors == (
        ("us2000c1wt", "mag is missing, not a number"),
        ("#4", "feature is not a JSON object"),
    )


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"", "empty"),
        (b"   \n", "empty"),
        (b"<html>503 Service Unavailable</html>", "not JSON"),
        (b'{"type": "FeatureCollection", "features": [', "not JSON"),
        (b"\xff\xfe{}", "not UTF-8"),
        (b"[]", "not a GeoJSON FeatureCollection"),
        (b'{"type": "Feature"}', "not a GeoJSON FeatureCollection"),
        (b'{"type": "FeatureCollection"}', "features is missing"),
        (b'{"type": "FeatureCollection", "features": {}}', "features is missing"),
        (b'{"type": "FeatureCollection", "features": [NaN]}', "not JSON"),
    ],
)
def test_malformed_feed(body: bytes, reason: str) -> None:
    """A body that is not a feed raises MalformedFeed with the reason."""
    with pytest.raises(MalformedFeed, match=reason):
        usgs.parse_feed(body)


def test_empty_feed() -> None:
    """An empty FeatureCollection is a valid feed with no events."""
    result = usgs.parse_feed(b'{"type":"FeatureCollection","metadata":{},"features":[]}')
    assert (result.events, result.errors) == ((), ())


def test_jsonp_variant() -> None:
    """The ``.geojsonp`` form ``eqfeed_callback({...});`` parses like the plain one."""
    body = b"eqfeed_callback(" + usgs_bytes("all_hour.geojson") + b");"
    assert len(usgs.parse_feed(body).events) == 8


@pytest.mark.parametrize(
    ("url", "window"),
    [
        ("https://earthquake.usgs.gov/earthquakes/feed/v1.0/summary/all_hour.geojson", 1 / 24),
        ("https://earthquake.usgs.gov/earthquakes/feed/v1.0/summary/4.5_day.geojson", 1),
        ("https://earthquake.usgs.gov/earthquakes/feed/v1.0/summary/2.5_week.geojson?x=1", 7),
        (
            "https://earthquake.usgs.gov/earthquakes/feed/v1.0/summary/significant_month.geojsonp",
            30,
        ),
        ("https://earthquake.usgs.gov/fdsnws/event/1/query?format=geojson", None),
    ],
)
def test_feed_window(url: str, window: float | None) -> None:
    """A summary feed's age window comes from its URL; other URLs have none."""
    expected = None if window is None else timedelta(days=window)
    assert usgs.feed_window(url) == expected


def test_fdsn_base() -> None:
    """Deletion checks go to the FDSN service of the feed's host."""
    url = "https://earthquake.usgs.gov/earthquakes/feed/v1.0/summary/4.5_day.geojson"
    assert usgs.fdsn_base(url) == "https://earthquake.usgs.gov/fdsnws/event/1/"
