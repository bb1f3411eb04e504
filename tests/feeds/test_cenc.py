"""CENC quick-report lists: both wire forms, Beijing time, report kinds, places to codes."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from alertcast.feeds import cenc
from alertcast.feeds.events import BadEvent, MalformedFeed, QuakeEvent

from ._make import cenc_bytes

NOW = datetime(2019, 12, 12, 3, 0, tzinfo=UTC)


def _speedsearch() -> dict[str, QuakeEvent]:
    result = cenc.parse_feed(cenc_bytes("cenc_speedsearch.json"), now=NOW)
    assert result.errors == ()
    return {ev.event_id: ev for ev in result.events}


def _row(**changes: Any) -> dict[str, Any]:
    body = cenc_bytes("cenc_speedsearch.json")
    row: dict[str, Any] = json.loads(body[1:-1])["shuju"][0]
    return row | changes


def test_speedsearch_form() -> None:
    """The parenthesis-wrapped object parses, every row, newest first as served."""
    events = _speedsearch()
    assert list(events) == [
        "CC20191212100824",
        "AU20191212093015",
        "CD20191212051207",
        "CC20191211201518",
        "CC20191211010460",
    ]
    assert {ev.source for ev in events.values()} == {"cenc"}


def test_official_row_fields() -> None:
    """Beijing time becomes UTC, string coordinates floats, the page URL from NEW_DID."""
    ev = _speedsearch()["CC20191212100824"]
    assert ev.time == datetime(2019, 12, 12, 2, 8, 23, tzinfo=UTC)
    assert ev.updated == datetime(2019, 12, 12, 2, 17, 41, tzinfo=UTC)
    assert (ev.latitude, ev.longitude, ev.depth_km, ev.magnitude) == (33.06, 121.37, 10.0, 3.5)
    assert (ev.place, ev.area_codes, ev.report) == ("江苏盐城市东台市海域", ("320000",), "official")
    assert ev.url == "https://news.ceic.ac.cn/CC20191212100824.html"
    assert (ev.magnitude_type, ev.event_type, ev.status) == ("M", "earthquake", "CC")


@pytest.mark.parametrize(
    ("event_id", "report", "depth_km", "codes", "event_type"),
    [
        ("AU20191212093015", "automatic", None, ("510000",), "earthquake"),
        ("CD20191212051207", "official", 8.0, ("530000",), "earthquake"),
        ("CC20191211201518", "official", 20.0, (), "earthquake"),
        ("CC20191211010460", "official", 0.0, ("110000",), "collapse"),
    ],
)
def test_rows_by_kind(
    event_id: str, report: str, depth_km: float | None, codes: tuple[str, ...], event_type: str
) -> None:
    """AU is automatic, CC/CD official; blank depth is unknown; foreign places have no code."""
    ev = _speedsearch()[event_id]
    assert (ev.report, ev.depth_km, ev.area_codes, ev.event_type) == (
        report,
        depth_km,
        codes,
        event_type,
    )


def test_plain_array_form() -> None:
    """The bare array (oldest first) parses: Lushan 2013, automatic M5.9 then official M7.0."""
    auto, official = cenc.parse_feed(cenc_bytes("cenc_google.json"), now=NOW).events
    assert (auto.report, auto.magnitude, auto.place) == ("automatic", 5.9, "四川雅安市雨城区")
    assert (official.report, official.magnitude, official.place) == (
        "official",
        7.0,
        "四川省雅安市芦山县",
    )
    assert auto.time == official.time == datetime(2013, 4, 20, 0, 2, 46, tzinfo=UTC)
    assert auto.ids.isdisjoint(official.ids)


@pytest.mark.parametrize(
    ("text", "now", "expected"),
    [
        ("2019-12-12 10:08:23", NOW, datetime(2019, 12, 12, 2, 8, 23)),
        ("12-12 10:08:23", NOW, datetime(2019, 12, 12, 2, 8, 23)),
        ("12月12日10时08分", NOW, datetime(2019, 12, 12, 2, 8)),
        ("5月16日06时08分", datetime(2020, 5, 16, 0, tzinfo=UTC), datetime(2020, 5, 15, 22, 8)),
        ("2019年12月23日01时43分16秒", NOW, datetime(2019, 12, 22, 17, 43, 16)),
        # Seen on 1 January: a 31 December quake belongs to last year.
        ("12-31 23:58:00", datetime(2020, 1, 1, 0, 5, tzinfo=UTC), datetime(2019, 12, 31, 15, 58)),
        # Seen on 31 December with a clock slightly behind: a 1 January quake is next year's.
        (
            "01-01 00:01:00",
            datetime(2019, 12, 31, 15, 59, tzinfo=UTC),
            datetime(2019, 12, 31, 16, 1),
        ),
        # 29 February seen in a leap year's March, and a year later still that leap year.
        ("02-29 12:00:00", datetime(2020, 3, 1, tzinfo=UTC), datetime(2020, 2, 29, 4, 0)),
        ("02-29 12:00:00", datetime(2021, 2, 1, tzinfo=UTC), datetime(2020, 2, 29, 4, 0)),
    ],
)
def test_beijing_time(text: str, now: datetime, expected: datetime) -> None:
    """Beijing wall-clock times, with or without a year, land on the right UTC instant."""
    assert cenc.parse_beijing_time(text, now) == expected.replace(tzinfo=UTC)


@pytest.mark.parametrize("text", ["yesterday", "13-40 10:00:00", "2019-02-30 10:00:00", ""])
def test_bad_beijing_time(text: str) -> None:
    """Anything that is not a Beijing time is a ValueError."""
    with pytest.raises(ValueError, match="time"):
        cenc.parse_beijing_time(text, NOW)


def test_origin_time_from_cata_id_with_60_seconds() -> None:
    """Without O_TIME the id's timestamp is used; its rounded ``60`` seconds roll over."""
    ev = cenc.parse_record(_row(O_TIME="", CATA_ID="CC20191211010460.00", NEW_DID=""), now=NOW)
    assert (ev.event_id, ev.time) == ("CC20191211010460", datetime(2019, 12, 10, 17, 5, tzinfo=UTC))


@pytest.mark.parametrize(
    ("prefix", "auto_flag", "report"),
    [
        ("AU", "M", "automatic"),
        ("CC", "", "official"),
        ("CD", "", "official"),
        ("FJ", "M", "official"),
        ("FJ", "", "automatic"),
    ],
)
def test_report_kind(prefix: str, auto_flag: str, report: str) -> None:
    """CATA_ID's prefix decides; an unknown prefix falls back to AUTO_FLAG, else automatic."""
    row = _row(CATA_ID=f"{prefix}20191212100824.00", NEW_DID="", AUTO_FLAG=auto_flag)
    assert cenc.parse_record(row, now=NOW).report == report


@pytest.mark.parametrize(
    ("place", "codes"),
    [
        ("四川甘孜州理塘县", ("510000",)),
        ("四川省雅安市芦山县", ("510000",)),
        ("新疆喀什地区伽师县", ("650000",)),
        ("内蒙古阿拉善盟阿拉善左旗", ("150000",)),
        ("云南昭通市永善县、四川凉山州雷波县交界", ("530000", "510000")),
        ("台湾花莲县海域", ("710000",)),
        ("台湾海峡南部", ()),
        ("黄海南部", ()),
        ("日本本州东南海域", ()),
        ("北京房山区(塌陷)", ("110000",)),
    ],
)
def test_province_codes(place: str, codes: tuple[str, ...]) -> None:
    """Places map to GB/T 2260 province codes by their leading name, borders to both."""
    assert cenc.province_codes(place) == codes


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"EPI_LAT": ""}, "EPI_LAT"),
        ({"EPI_LON": None}, "EPI_LON is missing"),
        ({"EPI_LAT": "95.0"}, "out of range"),
        ({"M": "abc"}, "M is 'abc'"),
        ({"EPI_DEPTH": "deep"}, "EPI_DEPTH"),
        ({"O_TIME": "soon"}, "O_TIME"),
        ({"CATA_ID": "", "NEW_DID": ""}, "NEW_DID and CATA_ID are missing"),
        ({"O_TIME": "", "CATA_ID": "", "NEW_DID": "X1"}, "no origin time"),
        ({"O_TIME": "", "NEW_DID": "CC20191399100824"}, "no valid origin time"),
    ],
)
def test_bad_row(changes: dict[str, Any], reason: str) -> None:
    """Each garbled field that matters is a BadEvent naming it."""
    with pytest.raises(BadEvent, match=reason):
        cenc.parse_record(_row(**changes), now=NOW)


def test_bad_rows_are_skipped_with_reason() -> None:
    """A bad row is reported by its id, a non-object by index; the rest stand."""
    rows = [_row(), _row(M=None, NEW_DID="CC1"), 7]
    result = cenc.parse_feed(json.dumps(rows).encode(), now=NOW)
    assert len(result.events) == 1
    assert result.errors == (
        ("CC1", "M is missing, not a number"),
        ("#2", "row is not a JSON object"),
    )


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"", "empty"),
        (b"<html><body>502</body></html>", "not JSON"),
        (b'({"jieguo": "x"})', "shuju"),
        (b'"rows"', "shuju"),
        (b"({", "not JSON"),
    ],
)
def test_malformed_list(body: bytes, reason: str) -> None:
    """A body that is neither list form raises MalformedFeed with the reason."""
    with pytest.raises(MalformedFeed, match=reason):
        cenc.parse_feed(body, now=NOW)


@pytest.mark.parametrize("body", [b"[]", b'({"shuju":[],"jieguo":"","page":"","num":1})'])
def test_empty_lists(body: bytes) -> None:
    """Empty lists in either form are valid and hold nothing."""
    assert cenc.parse_feed(body, now=NOW).events == ()


def test_stray_page_value_is_dropped() -> None:
    """A garbled ``"page"`` value (unescaped HTML) does not cost the rows."""
    rows = json.dumps([_row()])
    body = f'({{"shuju":{rows},"jieguo":"","page":"<a href="?p=2">2</a>","num":1}})'.encode()
    assert len(cenc.parse_feed(body, now=NOW).events) == 1
