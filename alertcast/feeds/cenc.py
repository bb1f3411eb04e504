"""China Earthquake Networks Center (CENC, 中国地震台网) quick-report JSON lists.

Not an official API, but widely used:

- ``https://www.ceic.ac.cn/ajax/speedsearch?num=1`` (1 = 24 h, 2 = 48 h, 3 = 7 d, 4 = 30 d) answers
  ``({"shuju": [...], "jieguo": "…", "page": "", "num": 1})``: an object wrapped in parentheses.
- ``https://news.ceic.ac.cn/ajax/google`` answers a bare array, oldest first.
- A row: ``CATA_ID`` (``AU``/``CC``/``CD`` + ``YYYYMMDDhhmmss`` + ``.00``; seconds may read 60),
  ``NEW_DID`` (``CATA_ID`` without ``.00``, also the page id), ``O_TIME`` (Beijing time, no zone),
  ``EPI_LAT``/``EPI_LON``/``M`` as strings, ``EPI_DEPTH`` a number or a string, ``LOCATION_C``
  (Chinese place, county level at home, country or sea area abroad), ``AUTO_FLAG`` (``"M"`` on
  official rows), ``SAVE_TIME``/``SYNC_TIME`` (Beijing time).
- ``AU`` is the automatic report (自动测定); ``CC`` (CENC) and ``CD`` (province via CENC) are
  official (正式测定). Automatic and official rows of one event carry different ids and may
  differ by a magnitude unit and a place: :func:`alertcast.feeds.lifecycle.same_event` matches
  them.
- Times are Beijing time (UTC+8, no DST). Copies may omit the year (``MM月DD日HH时mm分``); it is
  inferred as the latest year that does not put the event in the future.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from alertcast.feeds._wire import load_json
from alertcast.feeds.events import (
    BadEvent,
    MalformedFeed,
    ParseResult,
    QuakeEvent,
    Report,
    finite_float,
)

__all__ = [
    "BEIJING",
    "PROVINCE_CODES",
    "SOURCE",
    "parse_beijing_time",
    "parse_feed",
    "parse_record",
    "province_codes",
]

SOURCE = "cenc"
BEIJING = timezone(timedelta(hours=8), "CST")
_FUTURE_SLACK = timedelta(days=1)

# GB/T 2260 province-level codes, keyed by the short name CENC places begin with.
# fmt: off
PROVINCE_CODES = {
    "北京": "110000", "天津": "120000", "河北": "130000", "山西": "140000", "内蒙古": "150000",
    "辽宁": "210000", "吉林": "220000", "黑龙江": "230000", "上海": "310000", "江苏": "320000",
    "浙江": "330000", "安徽": "340000", "福建": "350000", "江西": "360000", "山东": "370000",
    "河南": "410000", "湖北": "420000", "湖南": "430000", "广东": "440000", "广西": "450000",
    "海南": "460000", "重庆": "500000", "四川": "510000", "贵州": "520000", "云南": "530000",
    "西藏": "540000", "陕西": "610000", "甘肃": "620000", "青海": "630000", "宁夏": "640000",
    "新疆": "650000", "台湾": "710000", "香港": "810000", "澳门": "820000",
}
# fmt: on
_NOT_A_PROVINCE = ("台湾海峡",)
_SEGMENTS = re.compile(r"[、，,与和]")
_EVENT_TAGS = {"塌陷": "collapse", "爆炸": "explosion", "疑爆": "explosion"}
_OFFICIAL_PREFIXES = frozenset({"CC", "CD"})
_TIME = re.compile(
    r"^\s*(?:(?P<y>\d{4})\s*[-/年]\s*)?(?P<mo>\d{1,2})\s*[-/月]\s*(?P<d>\d{1,2})\s*日?\s*"
    r"(?P<h>\d{1,2})\s*[:时]\s*(?P<mi>\d{1,2})\s*(?:[:分]\s*(?:(?P<s>\d{1,2})(?:\.\d+)?)?\s*秒?)?\s*$"
)
_CATA_TIME = re.compile(r"^[A-Z]{2}(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})")
_STRAY_PAGE = re.compile(rb',\s*"page"\s*:\s*".*?"(?=\s*,\s*"num"|\s*})', re.DOTALL)


def parse_feed(body: bytes, *, now: datetime | None = None) -> ParseResult:
    """Every row of either list form; ``now`` anchors year inference (default: the clock)."""
    now = now or datetime.now(UTC)
    events: list[QuakeEvent] = []
    errors: list[tuple[str, str]] = []
    for index, row in enumerate(_rows(body)):
        try:
            events.append(parse_record(row, now=now))
        except BadEvent as exc:
            errors.append((_label(index, row), exc.reason))
    return ParseResult(tuple(events), tuple(errors))


def parse_record(row: Any, *, now: datetime) -> QuakeEvent:
    """One quick-report row as an event; :class:`BadEvent` names the field at fault."""
    if not isinstance(row, dict):
        raise BadEvent("row is not a JSON object")
    event_id = _event_id(row)
    lat, lon = _epicentre(row)
    place = _text(row.get("LOCATION_C")) or f"{lat:.2f}, {lon:.2f}"
    return QuakeEvent(
        source=SOURCE,
        event_id=event_id,
        ids=frozenset({event_id}),
        time=_origin_time(row, event_id, now),
        updated=_issued(row, now),
        magnitude=finite_float(row.get("M"), "M"),
        magnitude_type="M",
        depth_km=_depth(row.get("EPI_DEPTH")),
        latitude=lat,
        longitude=lon,
        place=place,
        report=_report(event_id[:2], row.get("AUTO_FLAG")),
        event_type=_event_type(place),
        url=f"https://news.ceic.ac.cn/{event_id}.html",
        area_codes=province_codes(place),
        status=event_id[:2],
    )


def province_codes(place: str) -> tuple[str, ...]:
    """GB/T 2260 province codes a Chinese place names (``四川甘孜州理塘县`` → ``("510000",)``)."""
    codes: list[str] = []
    for segment in _SEGMENTS.split(place):
        segment = segment.strip()
        if segment.startswith(_NOT_A_PROVINCE):
            continue
        code = next((c for name, c in PROVINCE_CODES.items() if segment.startswith(name)), None)
        if code and code not in codes:
            codes.append(code)
    return tuple(codes)


def parse_beijing_time(text: str, now: datetime) -> datetime:
    """A Beijing wall-clock time, with or without the year, as UTC; ValueError if not one."""
    match = _TIME.match(text)
    if not match:
        raise ValueError(f"not a Beijing time: {text!r}")
    parts = {k: int(v) for k, v in match.groupdict().items() if v is not None}
    second = parts.pop("s", 0)
    year = parts.pop("y", None)
    try:
        moment = _infer_year(now, **parts) if year is None else _wall(year, **parts)
    except ValueError:
        raise ValueError(f"not a valid Beijing time: {text!r}") from None
    return (moment + timedelta(seconds=second)).astimezone(UTC)


def _wall(year: int, mo: int, d: int, h: int, mi: int) -> datetime:
    return datetime(year, mo, d, h, mi, tzinfo=BEIJING)


def _infer_year(now: datetime, mo: int, d: int, h: int, mi: int) -> datetime:
    """The latest of next, this or last year that does not put the time in the future."""
    local_now = now.astimezone(BEIJING)
    for year in (local_now.year + 1, local_now.year, local_now.year - 1):
        try:
            moment = _wall(year, mo, d, h, mi)
        except ValueError:  # 29 February in a common year
            continue
        if moment <= local_now + _FUTURE_SLACK:
            return moment
    raise ValueError("no year makes it a recent time")


def _rows(body: bytes) -> list[Any]:
    doc = _load(body)
    if isinstance(doc, dict):
        doc = doc.get("shuju")
    if not isinstance(doc, list):
        raise MalformedFeed("neither a list of rows nor an object with a shuju list")
    return doc


def _load(body: bytes) -> Any:
    """The JSON document; a second try without a garbled ``"page"`` value some answers carry."""
    try:
        return load_json(body)
    except MalformedFeed:
        cleaned = _STRAY_PAGE.sub(b"", body)
        if cleaned == body:
            raise
        return load_json(cleaned)


def _event_id(row: dict[str, Any]) -> str:
    event_id = _text(row.get("NEW_DID")) or _text(row.get("CATA_ID")).split(".")[0]
    if not event_id:
        raise BadEvent("NEW_DID and CATA_ID are missing")
    return event_id


def _epicentre(row: dict[str, Any]) -> tuple[float, float]:
    lat = finite_float(row.get("EPI_LAT"), "EPI_LAT")
    lon = finite_float(row.get("EPI_LON"), "EPI_LON")
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise BadEvent(f"epicentre out of range: lat {lat}, lon {lon}")
    return lat, lon


def _origin_time(row: dict[str, Any], event_id: str, now: datetime) -> datetime:
    text = _text(row.get("O_TIME"))
    if text:
        try:
            return parse_beijing_time(text, now)
        except ValueError as exc:
            raise BadEvent(f"O_TIME: {exc}") from None
    return _time_from_id(event_id)


def _time_from_id(event_id: str) -> datetime:
    match = _CATA_TIME.match(event_id)
    if not match:
        raise BadEvent("O_TIME is missing and the id carries no origin time")
    y, mo, d, h, mi, s = (int(g) for g in match.groups())
    try:
        return (_wall(y, mo, d, h, mi) + timedelta(seconds=s)).astimezone(UTC)
    except ValueError:
        raise BadEvent(f"the id {event_id!r} carries no valid origin time") from None


def _issued(row: dict[str, Any], now: datetime) -> datetime | None:
    text = _text(row.get("SYNC_TIME")) or _text(row.get("SAVE_TIME"))
    try:
        return parse_beijing_time(text, now) if text else None
    except ValueError:
        return None


def _depth(value: Any) -> float | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    return finite_float(value, "EPI_DEPTH")


def _report(prefix: str, auto_flag: Any) -> Report:
    if prefix == "AU":
        return "automatic"
    if prefix in _OFFICIAL_PREFIXES or auto_flag == "M":
        return "official"
    return "automatic"


def _event_type(place: str) -> str:
    return next((kind for tag, kind in _EVENT_TAGS.items() if tag in place), "earthquake")


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def _label(index: int, row: Any) -> str:
    if not isinstance(row, dict):
        return f"#{index}"
    return _text(row.get("NEW_DID")) or _text(row.get("CATA_ID")) or f"#{index}"
