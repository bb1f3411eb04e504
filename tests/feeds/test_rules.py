"""Feed rules: configuration, which events alert, how severe, and the incident they raise."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from pydantic import ValidationError

from alertcast.feeds import cenc, usgs
from alertcast.feeds.rules import FeedConfig, matches, severity, to_incident
from alertcast.models import EarthquakeIncident, Severity, parse_incident

from ._make import USGS_FILES, cenc_bytes, quake, usgs_bytes
from .test_cenc import NOW

MakeConfig = Callable[..., FeedConfig]

# Hualien 2024 is at (23.82, 121.56); Taipei at (25.03, 121.57).
TAIWAN_BBOX = [119.0, 21.5, 122.5, 25.5]
TAIWAN_RING = [[21.5, 119.0], [21.5, 122.5], [25.5, 122.5], [25.5, 119.0]]


def test_defaults(feed_config: MakeConfig) -> None:
    """A minimal entry polls every 60 s, alerts on earthquakes of both report kinds."""
    cfg = feed_config()
    assert (cfg.interval_s, cfg.timeout_s, cfg.min_magnitude, cfg.max_depth_km) == (
        60.0,
        10.0,
        0.0,
        None,
    )
    assert (cfg.event_types, cfg.reports, cfg.region) == (
        ["earthquake"],
        ["automatic", "official"],
        None,
    )


@pytest.mark.parametrize(
    ("overrides", "problem"),
    [
        ({"surprise": 1}, "Extra inputs are not permitted"),
        ({"token": "s3cret"}, "Extra inputs are not permitted"),
        ({"type": "rss"}, "'usgs', 'fdsn' or 'cenc'"),
        ({"url": "ftp://x"}, "pattern"),
        ({"interval_s": 0}, "greater than or equal to 1"),
        ({"min_magnitude": 11}, "less than or equal to 10"),
        ({"region": {}}, "needs one of bbox, polygon, circle or codes"),
        ({"region": {"bbox": [100, 40, 110, 30]}}, "min_lat > max_lat"),
        ({"region": {"bbox": [100, 30, 110]}}, "bbox"),
        ({"region": {"polygon": [[0, 0], [1, 1]]}}, "at least 3"),
        ({"region": {"circle": {"latitude": 1, "longitude": 2}}}, "radius_km"),
        ({"region": {"codes": []}}, "at least 1"),
        ({"severity_bands": {"extreme": 5, "severe": 6}}, "extreme >= severe >= moderate"),
        ({"reports": ["draft"]}, "'automatic' or 'official'"),
        ({"token_env": "not a var"}, "pattern"),
    ],
)
def test_config_mistakes(feed_config: MakeConfig, overrides: dict[str, Any], problem: str) -> None:
    """Every mistake in a ``[[feeds]]`` entry is refused with a readable message."""
    with pytest.raises(ValidationError, match=problem):
        feed_config(**overrides)


@pytest.mark.parametrize(
    ("rule", "changes", "reason"),
    [
        ({"min_magnitude": 7.0}, {}, None),
        ({"min_magnitude": 7.5}, {}, "magnitude 7.4 is below min_magnitude 7.5"),
        ({"min_magnitude": 5.0}, {"magnitude": 4.96}, None),  # states M5.0
        ({"max_depth_km": 40}, {}, None),
        ({"max_depth_km": 30}, {}, "depth 34.8 km is deeper than max_depth_km 30"),
        ({"max_depth_km": 30}, {"depth_km": None}, None),
        ({"event_types": ["earthquake"]}, {"event_type": "quarry blast"}, "'quarry blast'"),
        ({"event_types": [" Quarry Blast"]}, {"event_type": "quarry blast"}, None),
        ({"reports": ["official"]}, {}, "automatic reports do not raise alerts"),
        ({"region": {"bbox": TAIWAN_BBOX}}, {}, None),
        ({"region": {"bbox": TAIWAN_BBOX}}, {"latitude": 35.0}, "outside the region's bbox"),
        ({"region": {"bbox": [170, -50, -170, -30]}}, {"latitude": -40, "longitude": 178}, None),
        ({"region": {"bbox": [170, -50, -170, -30]}}, {"latitude": -40, "longitude": -175}, None),
        (
            {"region": {"bbox": [170, -50, -170, -30]}},
            {"latitude": -40, "longitude": 0},
            "outside the region's bbox",
        ),
        ({"region": {"polygon": TAIWAN_RING}}, {}, None),
        (
            {"region": {"polygon": TAIWAN_RING}},
            {"longitude": 118.0},
            "outside the region's polygon",
        ),
        (
            {"region": {"circle": {"latitude": 25.03, "longitude": 121.57, "radius_km": 150}}},
            {},
            None,
        ),
        (
            {"region": {"circle": {"latitude": 25.03, "longitude": 121.57, "radius_km": 100}}},
            {},
            "outside the region's circle",
        ),
        ({"region": {"codes": ["710000"]}}, {"area_codes": ("710000",)}, None),
        ({"region": {"codes": ["510000"]}}, {"area_codes": ("511800",)}, None),
        (
            {"region": {"codes": ["511800"]}},
            {"area_codes": ("510000",)},
            "outside the region's codes",
        ),
        ({"region": {"codes": ["510000"]}}, {}, "area codes (none)"),
        (
            {"region": {"bbox": TAIWAN_BBOX, "codes": ["710000"]}},
            {"area_codes": ("350000",)},
            "outside the region's codes",
        ),
    ],
)
def test_matches(
    feed_config: MakeConfig, rule: dict[str, Any], changes: dict[str, Any], reason: str | None
) -> None:
    """Each rule key admits or refuses an event, refusals saying why."""
    found = matches(feed_config(**rule), quake(**changes))
    if reason is None:
        assert found is None
    else:
        assert found is not None and reason in found


@pytest.mark.parametrize(
    ("magnitude", "pager", "expected"),
    [
        (7.4, None, Severity.extreme),
        (6.95, None, Severity.extreme),
        (6.3, None, Severity.severe),
        (5.0, None, Severity.moderate),
        (4.9, None, Severity.minor),
        (4.2, "orange", Severity.severe),
        (6.3, "green", Severity.severe),
        (5.5, "red", Severity.extreme),
        (5.5, "yellow", Severity.moderate),
    ],
)
def test_severity(
    feed_config: MakeConfig, magnitude: float, pager: str | None, expected: Severity
) -> None:
    """Magnitude bands and PAGER levels: the higher of the two wins."""
    assert severity(feed_config(), quake(magnitude=magnitude, pager=pager)) is expected


def test_custom_severity_bands(feed_config: MakeConfig) -> None:
    """Bands are configurable per feed."""
    cfg = feed_config(severity_bands={"extreme": 6.0, "severe": 5.0, "moderate": 4.0})
    assert severity(cfg, quake(magnitude=5.2)) is Severity.severe


@pytest.mark.parametrize("name", USGS_FILES)
def test_every_real_event_makes_a_valid_incident(feed_config: MakeConfig, name: str) -> None:
    """Every event of the real feeds becomes an incident ``parse_incident`` accepts."""
    cfg = feed_config(area_codes=["US"])
    for ev in usgs.parse_feed(usgs_bytes(name)).events:
        incident = parse_incident(to_incident(cfg, ev))
        assert isinstance(incident, EarthquakeIncident)
        assert (incident.details.event_id, incident.area.codes) == (ev.event_id, ["US"])


def test_usgs_incident(feed_config: MakeConfig) -> None:
    """The USGS incident carries the event's facts, an English headline and the event page."""
    ev = quake(pager="yellow", report="official")
    incident = parse_incident(to_incident(feed_config(), ev))
    assert isinstance(incident, EarthquakeIncident)
    assert incident.headline == "M 7.4 - 18 km SSW of Hualien City, Taiwan (reviewed)"
    assert (incident.severity, incident.language) == (Severity.extreme, "en")
    assert incident.occurred_at == ev.time
    details = incident.details
    assert (details.magnitude, details.magnitude_type, details.depth_km) == (7.4, "mww", 34.8)
    assert (details.latitude, details.longitude, details.report) == (23.82, 121.56, "official")
    assert (details.source, details.event_id) == ("usgs", "us7000abcd")
    assert incident.description == ""  # the bulletin is the template's summary, stated once


def test_cenc_incidents(feed_config: MakeConfig) -> None:
    """CENC incidents speak Chinese, carry province codes plus the feed's, and mark automatic."""
    cfg = feed_config(type="cenc", area_codes=["CN"])
    auto, official = cenc.parse_feed(cenc_bytes("cenc_google.json"), now=NOW).events
    first = parse_incident(to_incident(cfg, auto))
    second = parse_incident(to_incident(cfg, official))
    assert first.headline == "四川雅安市雨城区附近发生5.9级左右地震（自动测定）"
    assert second.headline == "四川省雅安市芦山县发生7.0级地震（正式测定）"
    assert (first.description, second.description) == ("", "")
    assert second.occurred_at.isoformat() == "2013-04-20T08:02:46+08:00"
    assert (second.area.codes, second.language) == (["510000", "CN"], "zh-CN")
    assert str(second.url) == "https://news.ceic.ac.cn/CC20130420080246.html"


@pytest.mark.parametrize(
    ("changes", "field", "expected"),
    [
        ({"depth_km": -0.8}, "depth_km", 0.0),
        ({"depth_km": None}, "depth_km", 0.0),
        ({"magnitude_type": "mww_extralong"}, "magnitude_type", "mww_extral"),
        ({"place": "x" * 500}, "place", "x" * 199 + "…"),
    ],
)
def test_incident_edges(
    feed_config: MakeConfig, changes: dict[str, Any], field: str, expected: Any
) -> None:
    """Values the incident model bounds are clamped or clipped, never refused."""
    incident = parse_incident(to_incident(feed_config(), quake(**changes)))
    assert isinstance(incident, EarthquakeIncident)
    assert getattr(incident.details, field) == expected


def test_incident_without_usable_url(feed_config: MakeConfig) -> None:
    """A url that is not http(s) is left out rather than failing validation."""
    incident = parse_incident(to_incident(feed_config(), quake(url="eventpage/x")))
    assert incident.url is None


def test_language_and_status_from_config(feed_config: MakeConfig) -> None:
    """A feed may set the incident language and mark its incidents as an exercise."""
    data = to_incident(feed_config(language="zh-CN", status="exercise"), quake())
    assert (data["language"], data["status"]) == ("zh-CN", "exercise")
    assert data["headline"].endswith("发生7.4级左右地震（美国地质调查局自动测定）")


def test_old_events_never_raise_but_are_never_cancelled_for_age(
    feed_config: MakeConfig,
) -> None:
    """A month feed's backlog raises nothing; an alerted event does not fall out by ageing."""
    from datetime import UTC, datetime, timedelta

    cfg = feed_config(max_age_s=3600)
    fresh = quake(time=datetime.now(UTC) - timedelta(minutes=5))
    old = quake(time=datetime.now(UTC) - timedelta(hours=3))
    assert matches(cfg, fresh) is None
    assert matches(cfg, old) == "older than max_age_s 3600"
    assert matches(cfg, old, report=False) is None
    assert FeedConfig(name="x", type="usgs").max_age_s == 3600
