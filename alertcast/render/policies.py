"""Length policies: how each platform counts a text, and how much it allows.

Each policy is a small frozen value with one question to answer, :meth:`Policy.measure`, which
returns the :class:`Length` a text has *as that platform counts it*. Where a source is unsure we
count the stricter way (docs/rendering.md lists every choice and its source).

The counting itself is :mod:`alertcast.lengths`' (the adapters check with the same counters), and
the limits of the platforms that have an adapter are the adapter's: :func:`policy_for` turns a
channel's declared :class:`~alertcast.lengths.Limit` into the policy that fits a text into it.
"""

from __future__ import annotations

import html
import math
import re
from dataclasses import dataclass
from typing import Any

from alertcast.lengths import WEIBO_LINK_HALF_UNITS, Limit, json_bytes, weibo_length
from alertcast.render.text import URL_RE, grapheme_count, utf8_len, utf16_len
from alertcast.render.twitter import tweet_length

__all__ = [
    "Bytes",
    "Chars",
    "FeishuPost",
    "Length",
    "Mastodon",
    "Policy",
    "Sms",
    "TelegramHtml",
    "Twitter",
    "Weibo",
    "feishu_lines",
    "policy_for",
]


@dataclass(frozen=True)
class Length:
    used: int
    limit: int
    unit: str

    @property
    def fits(self) -> bool:
        return self.used <= self.limit

    def as_dict(self) -> dict[str, Any]:
        return {"used": self.used, "limit": self.limit, "unit": self.unit}


@dataclass(frozen=True)
class Policy:
    """Counts in ``unit`` and allows ``limit``; subclasses override :meth:`size`."""

    limit: int
    unit: str = "chars"
    ellipsis: str = "…"

    def size(self, text: str) -> int:
        return len(text)

    def measure(self, text: str) -> Length:
        return Length(self.size(text), self.limit, self.unit)


@dataclass(frozen=True)
class Chars(Policy):
    """Unicode code points (WeChat digest and text, template values, the console)."""


@dataclass(frozen=True)
class Bytes(Policy):
    """UTF-8 bytes (WeCom text 2048 / markdown 4096, WeChat title 64, DingTalk)."""

    unit: str = "bytes"

    def size(self, text: str) -> int:
        return utf8_len(text)


@dataclass(frozen=True)
class Weibo(Policy):
    """Weibo units (:func:`alertcast.lengths.weibo_length`); a link weighs ``link_half_units``."""

    unit: str = "weibo"
    link_half_units: int = WEIBO_LINK_HALF_UNITS

    def size(self, text: str) -> int:
        return weibo_length(text, link_half_units=self.link_half_units)


@dataclass(frozen=True)
class Twitter(Policy):
    """twitter-text v3 weighted length (see :mod:`alertcast.render.twitter`)."""

    limit: int = 280
    unit: str = "twitter-weighted"

    def size(self, text: str) -> int:
        return tweet_length(text).weighted_length


@dataclass(frozen=True)
class Mastodon(Policy):
    """Grapheme clusters, every ``http(s)://`` link counting ``url_length`` (instance values)."""

    limit: int = 500
    unit: str = "graphemes"
    url_length: int = 23

    def size(self, text: str) -> int:
        return grapheme_count(URL_RE.sub("x" * self.url_length, text))


_TAG_RE = re.compile(r"<[^>]*>")


@dataclass(frozen=True)
class TelegramHtml(Policy):
    """UTF-16 units of the text *after* HTML entity parsing (tags gone, entities decoded)."""

    limit: int = 4096
    unit: str = "utf16"

    def size(self, text: str) -> int:
        return utf16_len(html.unescape(_TAG_RE.sub("", text)))


GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = frozenset("^{}\\[~]|€\f")


@dataclass(frozen=True)
class Sms(Policy):
    """Segments: GSM-7 160 (153 each when concatenated), else UCS-2 70 (67); a segment cap.

    ``signature`` (e.g. ``【某某应急】``) is added by the gateway and counted here.
    """

    limit: int = 3
    unit: str = "segments"
    ellipsis: str = "..."
    signature: str = ""

    def measure(self, text: str) -> Length:
        full = self.signature + text
        if all(ch in GSM7_BASIC or ch in GSM7_EXTENSION for ch in full):
            used = len(full) + sum(1 for ch in full if ch in GSM7_EXTENSION)
            return Length(used, 160 if self.limit == 1 else 153 * self.limit, "gsm7")
        return Length(utf16_len(full), 70 if self.limit == 1 else 67 * self.limit, "ucs2")

    def segments(self, text: str) -> int:
        length = self.measure(text)
        single = 160 if length.unit == "gsm7" else 70
        multi = 153 if length.unit == "gsm7" else 67
        return 1 if length.used <= single else math.ceil(length.used / multi)


def feishu_lines(text: str) -> list[list[dict[str, str]]]:
    """Plain lines as Feishu ``post`` content: text runs, every link an ``a`` tag."""
    lines: list[list[dict[str, str]]] = []
    for line in text.split("\n"):
        runs: list[dict[str, str]] = []
        last = 0
        for m in URL_RE.finditer(line):
            if m.start() > last:
                runs.append({"tag": "text", "text": line[last : m.start()]})
            runs.append({"tag": "a", "text": m.group(), "href": m.group()})
            last = m.end()
        if last < len(line) or not runs:
            runs.append({"tag": "text", "text": line[last:]})
        lines.append(runs)
    return lines


@dataclass(frozen=True)
class FeishuPost(Policy):
    """UTF-8 bytes of the JSON ``post`` content the lines become (request body ≤ 20 KB)."""

    unit: str = "json-bytes"

    def size(self, text: str) -> int:
        return json_bytes(feishu_lines(text))


def policy_for(limit: Limit, *, link_half_units: int) -> Policy:
    """The policy that fits a text into a channel's declared ``limit``.

    A ``json-bytes`` limit is on Feishu's ``post_lines``: the text is measured as the lines it
    becomes. ``link_half_units`` is ``[render] link_length`` (Weibo links).
    """
    if limit.unit == "bytes":
        return Bytes(limit.most)
    if limit.unit == "weibo":
        return Weibo(limit.most, link_half_units=link_half_units)
    if limit.unit == "json-bytes":
        return FeishuPost(limit.most)
    return Chars(limit.most)
