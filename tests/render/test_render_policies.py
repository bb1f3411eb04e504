"""Length policies: each platform's own way of counting, one small table per platform."""

from __future__ import annotations

import pytest

from alertcast.render.policies import (
    Bytes,
    Mastodon,
    Policy,
    Sms,
    TelegramHtml,
    Twitter,
    Weibo,
    feishu_lines,
)

LINK = "https://alerts.example.org/i/inc_01J0SAMPLE"
LONG_LINK = "https://alerts.example.org/" + "x" * 150

CASES: list[tuple[str, Policy, str, int, str]] = [
    ("weibo: WeCase reference text", Weibo(140), "我司CEO与我司吉祥物...好大一坨！", 16, "weibo"),
    ("weibo: ascii is half, rounded up", Weibo(140), "abc", 2, "weibo"),
    ("weibo: 140 cjk", Weibo(140), "震" * 140, 140, "weibo"),
    ("weibo: astral weighs two", Weibo(140), "😷", 2, "weibo"),
    ("weibo: latin-1 counted strictly as 1", Weibo(140), "é", 1, "weibo"),
    ("weibo: a link is a short link", Weibo(140), f"详情：{LINK}", 3 + 10, "weibo"),
    ("weibo: link length configurable", Weibo(140, link_half_units=44), LINK, 22, "weibo"),
    ("weibo: a very long link weighs more", Weibo(140), LONG_LINK, 29, "weibo"),
    ("weibo: t.cn links at face value", Weibo(140), "http://t.cn/A6abcdef", 10, "weibo"),
    ("twitter: cjk and a link", Twitter(), f"地震 {LINK}", 28, "twitter-weighted"),
    ("mastodon: graphemes", Mastodon(), "👨\u200d👩\u200d👧 地震", 4, "graphemes"),
    ("mastodon: links weigh 23", Mastodon(), f"a {LINK}", 25, "graphemes"),
    ("mastodon: instance limit", Mastodon(limit=1000), "x", 1, "graphemes"),
    ("telegram: length after entity parsing", TelegramHtml(), "<b>a&amp;b</b>😷", 5, "utf16"),
    ("wecom text: utf-8 bytes", Bytes(2048), "地震a", 7, "bytes"),
]


@pytest.mark.parametrize(
    ("name", "policy", "text", "used", "unit"), CASES, ids=[c[0] for c in CASES]
)
def test_measure(name: str, policy: Policy, text: str, used: int, unit: str) -> None:
    """Each policy counts as its platform does."""
    length = policy.measure(text)
    assert (length.used, length.unit) == (used, unit)


SMS = [
    ("gsm7 single", Sms(limit=1), "a" * 160, ("gsm7", 160, 160), 1),
    ("gsm7 extension chars weigh two", Sms(limit=1), "[]", ("gsm7", 4, 160), 1),
    ("gsm7 concatenated", Sms(limit=3), "a" * 161, ("gsm7", 161, 459), 2),
    ("ucs2 single", Sms(limit=1), "震" * 70, ("ucs2", 70, 70), 1),
    ("ucs2 concatenated at 67", Sms(limit=3), "震" * 71, ("ucs2", 71, 201), 2),
    ("one non-gsm char makes ucs2", Sms(limit=3), "a" * 100 + "…", ("ucs2", 101, 201), 2),
    ("signature counts", Sms(limit=1, signature="【应急】"), "震" * 66, ("ucs2", 70, 70), 1),
]


@pytest.mark.parametrize(
    ("name", "policy", "text", "length", "segments"), SMS, ids=[c[0] for c in SMS]
)
def test_sms(
    name: str, policy: Sms, text: str, length: tuple[str, int, int], segments: int
) -> None:
    """SMS: GSM-7 160/153 or UCS-2 70/67 per segment, up to the configured cap."""
    measured = policy.measure(text)
    assert (measured.unit, measured.used, measured.limit) == length
    assert policy.segments(text) == segments


def test_feishu_lines_make_links_anchors() -> None:
    """Each line becomes text runs, every link an ``a`` tag with its href."""
    assert feishu_lines(f"标题\n详情：{LINK}。") == [
        [{"tag": "text", "text": "标题"}],
        [
            {"tag": "text", "text": "详情："},
            {"tag": "a", "text": LINK, "href": LINK},
            {"tag": "text", "text": "。"},
        ],
    ]
