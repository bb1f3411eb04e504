"""Headline and description of a feed incident, in the wording of the source's own bulletins.

Chinese follows the CENC quick report (``中国地震台网正式测定：04月20日08时02分在四川省雅安市芦山县
（北纬30.3度，东经103.0度）发生7.0级地震，震源深度13千米。``); English follows the USGS title
(``M 6.3 - western Afghanistan``). Templates render the channel payloads; these are the facts.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC

from alertcast.feeds.cenc import BEIJING
from alertcast.feeds.events import QuakeEvent

__all__ = ["clip", "description", "headline"]

MAX_TEXT = 200
_AGENCY_ZH = {"cenc": "中国地震台网", "usgs": "美国地质调查局", "fdsn": "美国地质调查局"}
_AGENCY_EN = {"cenc": "China Earthquake Networks Center", "usgs": "USGS", "fdsn": "USGS"}
_REPORT_ZH = {"automatic": "自动测定", "official": "正式测定"}


def clip(text: str, limit: int = MAX_TEXT) -> str:
    """``text`` cut to ``limit`` characters, marked with an ellipsis when cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def headline(ev: QuakeEvent, language: str) -> str:
    """One line: magnitude and place, marked when the report is automatic (preliminary)."""
    if language.startswith("zh"):
        tail = "级地震（自动测定）" if ev.report == "automatic" else "级地震"
        return clip(ev.place, MAX_TEXT - 20) + f"发生{ev.magnitude:.1f}{tail}"
    tail = " (automatic, preliminary)" if ev.report == "automatic" else ""
    return f"M {ev.magnitude:.1f} - " + clip(ev.place, MAX_TEXT - 40) + tail


def description(ev: QuakeEvent, language: str) -> str:
    """The bulletin sentence: who measured, when, where, how strong, how deep."""
    ev = replace(ev, place=clip(ev.place))
    return _zh(ev) if language.startswith("zh") else _en(ev)


def _zh(ev: QuakeEvent) -> str:
    agency = _AGENCY_ZH.get(ev.source, ev.source)
    when = ev.time.astimezone(BEIJING).strftime("%m月%d日%H时%M分")
    lat = _hemisphere(ev.latitude, "北纬", "南纬")
    where = lat + "，" + _hemisphere(ev.longitude, "东经", "西经")
    if ev.report == "automatic":
        return (
            f"{agency}自动测定：{when}（北京时间）在{ev.place}附近（{where}）发生"
            f"{ev.magnitude:.1f}级左右地震，最终结果以正式速报为准。"
        )
    depth = "震源深度待定" if ev.depth_km is None else f"震源深度{ev.depth_km:.0f}千米"
    return (
        f"{agency}正式测定：{when}（北京时间）在{ev.place}（{where}）发生"
        f"{ev.magnitude:.1f}级地震，{depth}。"
    )


def _en(ev: QuakeEvent) -> str:
    agency = _AGENCY_EN.get(ev.source, ev.source)
    report = "automatic (preliminary) solution" if ev.report == "automatic" else "reviewed solution"
    when = ev.time.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    depth = "depth not yet determined" if ev.depth_km is None else f"depth {ev.depth_km:.1f} km"
    return (
        f"{agency} {report}: magnitude {ev.magnitude:.1f} ({ev.magnitude_type}) earthquake, "
        f"{ev.place}, at {when}; epicentre {ev.latitude:.3f}, {ev.longitude:.3f}, {depth}."
    )


def _hemisphere(value: float, positive: str, negative: str) -> str:
    return f"{positive if value >= 0 else negative}{abs(value):.2f}度"
