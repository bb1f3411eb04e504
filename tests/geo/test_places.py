"""Offline reverse geocoding: known events by their published epicentres, and the USGS files."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from alertcast.geo import divisions, known_codes, province_short, short_name
from alertcast.geoplace import where

USGS = Path(__file__).resolve().parents[3] / "shared" / "data" / "usgs"
LATIN = re.compile(r"[A-Za-z]")

# (event, lat, lon, CENC's place, the county's GB/T 2260 code): epicentres as CENC and USGS
# published them (CENC quick reports; the USGS event pages).
KNOWN = [
    ("Luding M6.8 2022-09-05 (CENC)", 29.59, 102.08, "四川甘孜州泸定县", "513322"),
    ("Jiuzhaigou M7.0 2017-08-08 (CENC)", 33.20, 103.82, "四川阿坝州九寨沟县", "513225"),
    ("Lushan M7.0 2013-04-20 (CENC)", 30.30, 103.00, "四川雅安市芦山县", "511826"),
    ("Maduo M7.4 2021-05-22 (CENC)", 34.59, 98.34, "青海果洛州玛多县", "632626"),
    ("Jishishan M6.2 2023-12-18 (CENC)", 35.70, 102.79, "甘肃临夏州积石山县", "622927"),
    ("Dingri M6.8 2025-01-07 (CENC)", 28.50, 87.45, "西藏日喀则市定日县", "540223"),
    ("Hualien M7.3 2024-04-03 (CENC)", 23.81, 121.74, "台湾花莲县海域", None),
    ("Myanmar M7.9 2025-03-28 (CENC)", 21.85, 95.98, "缅甸", None),
    ("Noto M7.5 2024-01-01 (USGS)", 37.498, 137.242, "日本", None),
    ("Tohoku M9.1 2011-03-11 (USGS)", 38.297, 142.373, "日本附近海域", None),
    ("Gorkha M7.8 2015-04-25 (USGS)", 28.231, 84.731, "尼泊尔", None),
]


@pytest.mark.parametrize(("event", "lat", "lon", "zh", "code"), KNOWN, ids=[k[0] for k in KNOWN])
def test_known_events_are_named_as_cenc_names_them(
    event: str, lat: float, lon: float, zh: str, code: str | None
) -> None:
    """Each published epicentre gets CENC's place and the county's code."""
    spot = where(lat, lon)
    assert (spot.zh, spot.code) == (zh, code), event
    assert spot.en and not re.search(r"[\u4e00-\u9fff]", spot.en)


def test_a_quake_in_tibet_is_named_after_a_chinese_town_in_english() -> None:
    """English names a Chinese town for a point in China, never a neighbour's (Nepal)."""
    spot = where(28.50, 87.45)
    assert spot.en is not None and spot.en.endswith(", China")


@pytest.mark.parametrize(
    ("name", "short"),
    [
        ("甘孜藏族自治州", "甘孜州"),
        ("阿坝藏族羌族自治州", "阿坝州"),
        ("克孜勒苏柯尔克孜自治州", "克孜勒苏州"),
        ("积石山保安族东乡族撒拉族自治县", "积石山县"),
        ("雅安市", "雅安市"),
        ("阿里地区", "阿里地区"),
    ],
)
def test_autonomous_names_are_shortened_as_cenc_writes_them(name: str, short: str) -> None:
    """Autonomous prefectures and counties drop their peoples' names."""
    assert short_name(name) == short


@pytest.mark.parametrize(
    ("name", "short"),
    [
        ("四川省", "四川"),
        ("广西壮族自治区", "广西"),
        ("香港特别行政区", "香港"),
        ("北京市", "北京"),
    ],
)
def test_province_names_are_shortened(name: str, short: str) -> None:
    """Provinces as CENC's places begin."""
    assert province_short(name) == short


def test_reach_of_luding_includes_yaan_counties() -> None:
    """Within 100 km of the Luding epicentre lie Ya'an's Shimian and Hanyuan, not Chengdu."""
    codes = {d.code for d in divisions().within(29.59, 102.08, 100)}
    assert {"513322", "511824", "511823"} <= codes
    assert not any(c.startswith("5101") for c in codes)


def test_known_codes_hold_every_level_and_refuse_made_up_ones() -> None:
    """Counties, prefectures, provinces are known; 999999 is not."""
    assert {"513322", "511800", "510000", "710000"} <= known_codes()
    assert "999999" not in known_codes()


@pytest.mark.parametrize("name", ["significant_month.geojson", "all_hour.geojson"])
def test_every_usgs_event_gets_a_chinese_place_without_latin_letters(name: str) -> None:
    """Every real USGS event is named in Chinese, and in English."""
    path = USGS / name
    if not path.exists():
        pytest.skip(f"{path} is absent (the shared data folder is not beside the repository)")
    for feature in json.loads(path.read_bytes())["features"]:
        lon, lat = feature["geometry"]["coordinates"][:2]
        spot = where(lat, lon)
        assert spot.zh and not LATIN.search(spot.zh), (feature["id"], spot)
