"""How the platforms measure text: one counter per unit, a length limit as data, Weibo's rules.

A leaf: it imports nothing of alertcast, so the channel adapters (which declare and check their
limits) and the renderer (which fits texts into them) share one definition of every unit, one
Weibo counter with one link rule (facts §1.7) and one reading of Weibo's ``#topic#`` and
safe-domain rules (facts §1.1), without importing each other.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

__all__ = [
    "UNIT_NAMES",
    "URL_RE",
    "WEIBO_LINK_HALF_UNITS",
    "Limit",
    "Unit",
    "json_bytes",
    "links_to_domain",
    "size",
    "utf8_len",
    "utf16_len",
    "weibo_length",
    "weibo_topics",
]

Unit = Literal["chars", "bytes", "weibo", "json-bytes"]
"""``chars``: code points; ``bytes``: UTF-8 bytes; ``weibo``: :func:`weibo_length`;
``json-bytes``: UTF-8 bytes of the value written as JSON (:func:`json_bytes`)."""
UNIT_NAMES: dict[str, str] = {
    "chars": "characters",
    "bytes": "bytes",
    "weibo": "Weibo units",
    "json-bytes": "bytes of JSON",
}

# A scheme URL as the platforms auto-link it: printable ASCII up to whitespace, minus the
# punctuation a sentence puts after a link. Non-ASCII text right after a URL ends it.
URL_RE = re.compile(r"https?://[!-~]*[A-Za-z0-9/=_#&%~+\-]")
WEIBO_LINK_HALF_UNITS = 20
"""What Weibo charges for a link, in half-units: the length of its t.cn short link (10 units)."""
_WEIBO_TOPIC = re.compile(r"#([^#\s][^#]*)#")


def utf8_len(text: str) -> int:
    return len(text.encode("utf-8"))


def utf16_len(text: str) -> int:
    """UTF-16 code units (Telegram, JavaScript ``length``)."""
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def json_bytes(value: object) -> int:
    """UTF-8 bytes of ``value`` as JSON, non-ASCII kept, default separators."""
    return utf8_len(json.dumps(value, ensure_ascii=False))


def weibo_length(text: str, *, link_half_units: int = WEIBO_LINK_HALF_UNITS) -> int:
    """Weibo's length (facts §1.7, WeCase's Sina-compatible counter), counted strictly.

    ASCII weighs ½, any other BMP character 1 (Latin-1 included: the stricter of the two
    readings), an astral one 2; the total is rounded up. A link weighs ``link_half_units``
    half-units, plus ``bytes - 140`` more when it is longer than 140 bytes; ``t.cn`` links and
    ``weibo.com``/``weibo.cn`` links of at most 41 bytes weigh their own characters.
    """
    half, last = 0, 0
    for m in URL_RE.finditer(text):
        half += _half_units(text[last : m.start()]) + _link_half_units(m.group(), link_half_units)
        last = m.end()
    half += _half_units(text[last:])
    return math.ceil(half / 2)


def _link_half_units(url: str, weight: int) -> int:
    size = utf8_len(url)
    host = url.split("/", 3)[2].lower()
    if host == "t.cn" or (host.endswith(("weibo.com", "weibo.cn")) and size <= 41):
        return _half_units(url)
    return weight + max(0, size - 140)


def _half_units(text: str) -> int:
    """ASCII 1, other BMP 2, astral 4 half-units (counted in C, not per character)."""
    if text.isascii():
        return len(text)
    ascii_count = len(text.encode("ascii", "ignore"))
    astral = utf16_len(text) - len(text)
    return ascii_count + 2 * (len(text) - ascii_count - astral) + 4 * astral


def weibo_topics(text: str) -> list[str]:
    """The ``#topic#`` marks outside links (``statuses/share`` refuses a text with one)."""
    return [m.group() for part in URL_RE.split(text) for m in _WEIBO_TOPIC.finditer(part)]


def links_to_domain(text: str, url: str) -> bool:
    """True when ``text`` links to ``url``'s host or a subdomain of it."""
    host = (urlsplit(url).hostname or "").lower()
    found = ((urlsplit(link).hostname or "").lower() for link in URL_RE.findall(text))
    return bool(host) and any(h == host or h.endswith("." + host) for h in found)


def size(value: object, unit: Unit) -> int:
    """``value`` measured in ``unit``."""
    if unit == "json-bytes":
        return json_bytes(value)
    text = str(value)
    if unit == "bytes":
        return utf8_len(text)
    if unit == "weibo":
        return weibo_length(text)
    return len(text)


@dataclass(frozen=True, slots=True)
class Limit:
    """The most one payload field may hold, counted in ``unit``."""

    most: int
    unit: Unit = "chars"

    def size(self, value: object) -> int:
        return size(value, self.unit)

    def excess(self, value: object) -> int:
        """How far ``value`` is over the limit (0 when it fits)."""
        return max(0, self.size(value) - self.most)

    def __str__(self) -> str:
        return f"{self.most} {UNIT_NAMES[self.unit]}"
