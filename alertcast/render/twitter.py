"""Twitter/X weighted length, twitter-text v3 (``config/v3.json``), checked against upstream cases.

The rule: NFC-normalise; every URL weighs ``transformedURLLength`` (23); with emoji parsing on,
an emoji sequence (ZWJ, skin tone, flag, keycap, tag sequence) weighs one default unit; any
other code point weighs 1 inside the light ranges (Latin and friends, some punctuation) and 2
outside them (CJK, most symbols). The limit is 280.

Two simplifications, both towards counting *more* than Twitter does, never less:

* emoji sequences are recognised by their UTS #51 shape rather than twemoji's list;
* a URL whose top-level domain is not in :data:`KNOWN_TLDS` weighs ``max(23, its own weight)``
  because upstream counts it as a link only when the TLD is in its (long) IANA list.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from alertcast.render.text import _MODIFIERS, _PICTOGRAPHIC, _REGIONAL

__all__ = ["KNOWN_TLDS", "LIGHT_RANGES", "TweetLength", "tweet_length"]

MAX_WEIGHTED_LENGTH = 280
SCALE = 100
DEFAULT_WEIGHT = 200
URL_WEIGHT = 23 * SCALE
LIGHT_RANGES: tuple[tuple[int, int, int], ...] = (
    (0, 4351, 100),
    (8192, 8205, 100),
    (8208, 8223, 100),
    (8242, 8247, 100),
)
INVALID_CHARS = frozenset("\ufffe\ufeff\uffff")
_TLDS = """
com net org edu gov mil int info biz name pro mobi asia app dev io ai co me tv cc
cn jp kr tw hk mo sg uk us ca au nz de fr it es nl ru in br eu ch se no fi dk pl
中国 中國 公司 网络 پاکستان
"""
KNOWN_TLDS = frozenset(_TLDS.split())

_ELEMENT = f"[{_PICTOGRAPHIC}](?:\ufe0f|[{_MODIFIERS}])?"
_EMOJI_RE = re.compile(
    rf"[{_REGIONAL}]{{2}}|[0-9#*]\ufe0f?\u20e3"
    rf"|\U0001f3f4[\U000e0020-\U000e007e]+\U000e007f|{_ELEMENT}(?:\u200d{_ELEMENT})*"
)
_LABEL = r"[^\W_](?:[\w-]*[^\W_])?"
_ASCII_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9_-]*[A-Za-z0-9])?"
_PATH_CHARS = r"a-zA-Z0-9\u00c0-\u024f\u0400-\u04ff!*';:=+,.$/%#\[\]\-\u2013_~&|@"
_PATH_END = r"a-zA-Z0-9\u00c0-\u024f\u0400-\u04ff=_#/+\-"
_REST = (
    rf"(?::\d{{1,5}})?(?:/(?:[{_PATH_CHARS}]*[{_PATH_END}])?)?"
    r"(?:\?[a-zA-Z0-9!?*'();:&=+$/%#\[\]\-_.,~|@]*[a-zA-Z0-9\-_&=#/])?"
)
# With a scheme the host may be internationalised; without one upstream takes ASCII domains only.
_SCHEME_RE = re.compile(
    rf"https?://(?P<host>(?:{_LABEL}\.)+(?P<tld>[^\W\d_]{{2,}}))(?![\w-]){_REST}"
)
_BARE_RE = re.compile(
    rf"(?<![A-Za-z0-9@＠$#＃\-_./])(?P<host>(?:{_ASCII_LABEL}\.)+(?P<tld>[A-Za-z]{{2,}}))"
    rf"(?![\w-]){_REST}"
)
_NOT_BEFORE_SCHEME = frozenset("@＠$#＃") | frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
)


@dataclass(frozen=True)
class TweetLength:
    weighted_length: int
    valid: bool


_LIGHT_RE = re.compile(
    "[" + "".join(f"{re.escape(chr(a))}-{re.escape(chr(b))}" for a, b, _ in LIGHT_RANGES) + "]"
)


def _plain_weight(text: str) -> int:
    """Scaled weight of text with no links or emoji: light characters 100, others 200."""
    light = len(text) - len(_LIGHT_RE.sub("", text))
    return light * 100 + (len(text) - light) * DEFAULT_WEIGHT


def _valid_host(host: str) -> bool:
    """Every label of the host, punycode-encoded, has 1 to 63 characters."""
    try:
        ascii_host = host.encode("idna").decode("ascii")
    except UnicodeError:
        return False
    return all(0 < len(label) <= 63 for label in ascii_host.split("."))


def _url_weights(text: str) -> dict[int, tuple[int, int]]:
    """Start offset -> (end offset, weight) of every URL upstream would count as 23."""
    found: dict[int, tuple[int, int]] = {}
    if "." not in text:
        return found
    scheme = [
        m
        for m in _SCHEME_RE.finditer(text)
        if text[m.start() - 1 : m.start()] not in _NOT_BEFORE_SCHEME
    ]
    for m in [*scheme, *_BARE_RE.finditer(text)]:
        if m.start() in found or not _valid_host(m["host"]):
            continue
        weight = URL_WEIGHT
        if m["tld"].lower() not in KNOWN_TLDS:
            weight = max(URL_WEIGHT, _plain_weight(m.group()))
        found[m.start()] = (m.end(), weight)
    return found


def _spans(text: str, emoji_parsing: bool) -> list[tuple[int, int, int]]:
    """``(start, end, weight)`` of links and emoji sequences, in text order."""
    spans = [(start, end, weight) for start, (end, weight) in _url_weights(text).items()]
    if emoji_parsing and not text.isascii():
        spans += [(m.start(), m.end(), DEFAULT_WEIGHT) for m in _EMOJI_RE.finditer(text)]
    return sorted(spans)


def tweet_length(text: str, *, emoji_parsing: bool = True) -> TweetLength:
    """Weighted length and validity of ``text`` (``emoji_parsing=False`` is the v2 rule)."""
    text = unicodedata.normalize("NFC", text).replace("\r\n", "\n")
    total, pos = 0, 0
    for start, end, weight in _spans(text, emoji_parsing):
        if start < pos:
            continue  # inside a link or sequence already counted, as upstream skips it
        total += _plain_weight(text[pos:start]) + weight
        pos = end
    total += _plain_weight(text[pos:])
    length = total // SCALE
    valid = 0 < length <= MAX_WEIGHTED_LENGTH and not INVALID_CHARS.intersection(text)
    return TweetLength(length, valid)
