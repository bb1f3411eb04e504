"""USGS real-time GeoJSON summary feeds.

API reference: https://earthquake.usgs.gov/earthquakes/feed/v1.0/geojson.php

- URL ``…/feed/v1.0/summary/{significant|4.5|2.5|1.0|all}_{hour|day|week|month}.geojson``;
  updated every minute, ``Cache-Control: max-age=60`` (month feeds 900): poll every 60 s.
- ``{"type": "FeatureCollection", "metadata": {…}, "features": [...], "bbox"?: [...]}``.
- A feature: ``id`` (current preferred id; it may change), ``geometry.coordinates`` =
  ``[lon, lat, depth_km]`` (depth positive down, may be slightly negative), ``properties`` with
  ``time``/``updated`` in ms since the epoch (UTC), ``mag``, ``magType``, ``place``, ``alert``
  (PAGER green/yellow/orange/red or null), ``tsunami`` 0/1 (a link to tsunami.gov, not a
  warning), ``status`` automatic/reviewed, ``type`` and ``ids`` (``",us7000abcd,at00xyz,"``).
  Any numeric property may be null; ``tz`` is null in current feeds and is not used.
- Deleted events simply vanish; the FDSN service answers 409 for their id (see :mod:`.fdsn`).
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from alertcast.feeds._wire import load_json
from alertcast.feeds.events import (
    PAGER_LEVELS,
    BadEvent,
    MalformedFeed,
    ParseResult,
    QuakeEvent,
    finite_float,
    ms_to_utc,
)

__all__ = [
    "SOURCE",
    "fdsn_base",
    "feed_window",
    "parse_collection",
    "parse_feature",
    "parse_feed",
]

SOURCE = "usgs"
_WINDOWS = {
    "hour": timedelta(hours=1),
    "day": timedelta(days=1),
    "week": timedelta(days=7),
    "month": timedelta(days=30),
}
_SUMMARY_AGE = re.compile(r"/summary/[^/]*_(hour|day|week|month)\.geojsonp?(?:$|\?)")


def parse_feed(body: bytes, *, source: str = SOURCE) -> ParseResult:
    """Every event of a FeatureCollection body; bad features are skipped with their reason."""
    return parse_collection(load_json(body), source=source)


def parse_collection(doc: Any, *, source: str = SOURCE) -> ParseResult:
    """Every event of a decoded FeatureCollection; :class:`MalformedFeed` if it is not one."""
    features = _features(doc)
    events: list[QuakeEvent] = []
    errors: list[tuple[str, str]] = []
    for index, obj in enumerate(features):
        try:
            events.append(parse_feature(obj, source=source))
        except BadEvent as exc:
            errors.append((_label(index, obj), exc.reason))
    return ParseResult(tuple(events), tuple(errors))


def parse_feature(obj: Any, *, source: str = SOURCE) -> QuakeEvent:
    """One GeoJSON feature (also a pushed one) as an event; :class:`BadEvent` says what is wrong."""
    if not isinstance(obj, dict):
        raise BadEvent("feature is not a JSON object")
    event_id = _event_id(obj.get("id"))
    props = obj.get("properties")
    if not isinstance(props, dict):
        raise BadEvent("properties is missing or not an object")
    lon, lat, depth = _coordinates(obj.get("geometry"))
    return QuakeEvent(
        source=source,
        event_id=event_id,
        ids=_ids(props.get("ids"), event_id),
        time=ms_to_utc(props.get("time"), "time"),
        updated=_optional_time(props.get("updated")),
        magnitude=finite_float(props.get("mag"), "mag"),
        magnitude_type=_text(props.get("magType")) or "M",
        depth_km=depth,
        latitude=lat,
        longitude=lon,
        place=_text(props.get("place")) or f"{lat:.2f}, {lon:.2f}",
        report="official" if props.get("status") == "reviewed" else "automatic",
        event_type=(_text(props.get("type")) or "earthquake").lower(),
        pager=_pager(props.get("alert")),
        tsunami=props.get("tsunami") in (1, True),
        url=_text(props.get("url")) or None,
        status=_text(props.get("status")) or None,
    )


def feed_window(url: str) -> timedelta | None:
    """How far back a summary feed reaches (``…_day.geojson`` → 1 day); None if not a summary."""
    match = _SUMMARY_AGE.search(url)
    return _WINDOWS[match.group(1)] if match else None


def fdsn_base(url: str) -> str:
    """The FDSN event service of the host serving ``url``, for deletion checks."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}/fdsnws/event/1/"


def _features(doc: Any) -> list[Any]:
    if not isinstance(doc, dict) or doc.get("type") != "FeatureCollection":
        raise MalformedFeed("not a GeoJSON FeatureCollection")
    features = doc.get("features")
    if not isinstance(features, list):
        raise MalformedFeed("features is missing or not a list")
    return features


def _event_id(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise BadEvent("id is missing or empty")
    return value.strip()


def _coordinates(geometry: Any) -> tuple[float, float, float]:
    coords = geometry.get("coordinates") if isinstance(geometry, dict) else None
    if not isinstance(coords, list) or len(coords) < 3:
        raise BadEvent("geometry.coordinates is not [lon, lat, depth]")
    lon = finite_float(coords[0], "longitude")
    lat = finite_float(coords[1], "latitude")
    depth = finite_float(coords[2], "depth")
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise BadEvent(f"coordinates out of range: lat {lat}, lon {lon}")
    return lon, lat, depth


def _ids(value: Any, event_id: str) -> frozenset[str]:
    found = value.split(",") if isinstance(value, str) else []
    return frozenset({event_id, *(part.strip() for part in found if part.strip())})


def _optional_time(value: Any) -> datetime | None:
    try:
        return None if value is None else ms_to_utc(value, "updated")
    except BadEvent:
        return None


def _pager(value: Any) -> str | None:
    level = value.strip().lower() if isinstance(value, str) else None
    return level if level in PAGER_LEVELS else None


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def _label(index: int, obj: Any) -> str:
    ident = obj.get("id") if isinstance(obj, dict) else None
    return ident if isinstance(ident, str) and ident else f"#{index}"
