"""Where an epicentre is, in words an office publishes: CENC's Chinese style, and English.

In China (the boundaries of :mod:`alertcast.geo`): province, prefecture and county as CENC
writes them, ``四川甘孜州泸定县``, with the county's GB/T 2260 code. At sea within
:data:`COAST_KM` of a county and nearer Chinese towns than foreign ones: ``台湾花莲县海域``.
Farther off, the sea as CENC names it (``黄海海域``, rough boxes). Abroad
(:mod:`alertcast.geoworld`): the country of the nearest town, ``缅甸``; offshore (no town near,
and the towns around all on one side), its sea: ``日本附近海域``; far from any town, the
coordinates in Chinese words. No package ships Flinn–Engdahl regions in Chinese, so CENC's
finer sea names (``日本本州东海岸附近海域``) are not produced. English is USGS's style,
``12 km SSW of Sagaing, Myanmar``, for every point with a
town within :data:`FAR_KM`; beyond, None (the caller falls back to the source's own words).
"""

from __future__ import annotations

from dataclasses import dataclass

from alertcast.geo import divisions
from alertcast.geoworld import country_zh, english_near, towns

__all__ = ["COAST_KM", "FAR_KM", "Where", "where"]

COAST_KM = 60.0
"""How far off China's coast a point is still named after the nearest county (``…海域``)."""
FAR_KM = 1000.0
"""Beyond this from every town a point has no town to be named after."""
_CHINA = frozenset({"CN", "TW", "HK", "MO"})
# CENC names the seas off China; rough boxes [min_lon, min_lat, max_lon, max_lat], first match.
_SEAS = (
    ("台湾海峡", (117.5, 22.5, 120.2, 25.6)),
    ("渤海海域", (117.5, 37.0, 122.2, 41.0)),
    ("黄海海域", (119.0, 32.0, 126.5, 39.8)),
    ("东海海域", (117.0, 23.0, 131.0, 32.0)),
    ("南海海域", (105.0, 3.0, 121.0, 23.0)),
)


@dataclass(frozen=True, slots=True)
class Where:
    """A point in words: Chinese (never Latin letters), English when a town is near enough."""

    zh: str
    en: str | None
    code: str | None  # the county's GB/T 2260 code; None abroad and at sea
    in_china: bool


def where(lat: float, lon: float) -> Where:
    """The epicentre at ``(lat, lon)`` in words and code."""
    county = divisions().locate(lat, lon)
    if county is not None:
        return Where(county.place, _english(lat, lon, "CN"), county.code, True)
    town = towns().nearest(lat, lon, FAR_KM)
    en = english_near(town[0], town[1], lat, lon) if town else None
    coast = divisions().nearest(lat, lon, COAST_KM)
    if coast is not None and (town is None or town[0].country in _CHINA):
        return Where(coast[0].place + "海域", en, None, True)
    sea = _china_sea(lat, lon)
    if sea is not None and (town is None or town[0].country in _CHINA):
        return Where(sea, en, None, True)
    country = country_zh(town[0].country) if town else None
    if town is None or country is None:
        return Where(_coordinates_zh(lat, lon) + "附近海域", en, None, False)
    return Where(country + "附近海域" if towns().offshore(lat, lon) else country, en, None, False)


def _english(lat: float, lon: float, country: str) -> str | None:
    """English for a point in China, after a Chinese town (never a neighbour's: USGS's
    ``… of Lobuche, Nepal`` for a quake in Tibet)."""
    town = towns().nearest(lat, lon, FAR_KM, country={country, "TW", "HK", "MO"})
    return english_near(town[0], town[1], lat, lon) if town else None


def _china_sea(lat: float, lon: float) -> str | None:
    """The sea off China a point lies in, by rough boxes (the first that holds it)."""
    for name, (min_lon, min_lat, max_lon, max_lat) in _SEAS:
        if min_lon <= lon <= max_lon and min_lat <= lat <= max_lat:
            return name
    return None


def _coordinates_zh(lat: float, lon: float) -> str:
    """``南纬15.2度、西经173.1度``: the point where no town or county names it."""
    ns = "北纬" if lat >= 0 else "南纬"
    ew = "东经" if lon >= 0 else "西经"
    return f"{ns}{abs(lat):.1f}度、{ew}{abs(lon):.1f}度"
