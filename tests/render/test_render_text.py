"""Text units: grapheme clusters, UTF-16 sizes and cuts that never split what must stay whole."""

from __future__ import annotations

import pytest

from alertcast.render.text import grapheme_count, shorten, utf16_len

GRAPHEMES = [
    ("ascii", "hello", 5),
    ("crlf is one", "a\r\nb", 3),
    ("cjk", "四川省雅安市", 6),
    ("combining acute", "e\u0301x", 2),
    ("zwj family", "👨\u200d👩\u200d👧\u200d👦", 1),
    ("skin tone", "🙋🏽", 1),
    ("keycap", "1\ufe0f\u20e3", 1),
    ("flags pair up", "🇨🇳🇺🇸", 2),
    ("tag flag", "🏴\U000e0067\U000e0062\U000e0065\U000e006e\U000e0067\U000e007f", 1),
    ("hangul jamo", "\u1100\u1161\u11a8", 1),
    ("devanagari marks", "नमस्ते", 4),
    ("arabic rtl", "مرحبا", 5),
]


@pytest.mark.parametrize(("name", "text", "count"), GRAPHEMES, ids=[g[0] for g in GRAPHEMES])
def test_grapheme_count(name: str, text: str, count: int) -> None:
    """Clusters are counted as a reader sees them."""
    assert grapheme_count(text) == count


def test_utf16_counts_astral_twice() -> None:
    """An astral character is two UTF-16 units."""
    assert utf16_len("a😷中") == 4


CUTS = [
    ("plain cut", "四川省雅安市芦山县", 4, "四川省雅…"),
    ("whole when it fits", "四川省", 3, "四川省"),
    ("never inside a number", "发生7.0级地震", 4, "发生…"),
    ("never inside a url", "详情 https://a.example/x 见", 6, "详情…"),
    ("never inside an emoji sequence", "注意👨\u200d👩\u200d👧安全", 3, "注意👨\u200d👩\u200d👧…"),
    ("trailing space goes", "ab cd", 3, "ab…"),
    ("nothing left", "https://a.example/x", 3, ""),
]


@pytest.mark.parametrize(("name", "text", "keep", "expected"), CUTS, ids=[c[0] for c in CUTS])
def test_shorten(name: str, text: str, keep: int, expected: str) -> None:
    """A shortened text ends with an ellipsis and keeps URLs, numbers and clusters whole."""
    assert shorten(text, keep) == expected
