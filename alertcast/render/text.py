"""Text units every length policy shares: grapheme clusters, UTF-16/UTF-8 sizes, URLs, safe cuts.

Grapheme clusters follow UAX #29 closely enough to never *under*-count: combining and spacing
marks, variation selectors, emoji modifiers, tags and keycaps extend a cluster; an emoji ZWJ
sequence, a regional-indicator pair and a Hangul syllable sequence are one cluster. Rules we
skip (Prepend, Indic conjuncts) only ever split more, which over-counts, never under-counts.
The tables come from the interpreter's :mod:`unicodedata`, built once on first use.
"""

from __future__ import annotations

import re
import unicodedata
from functools import cache

from alertcast.lengths import URL_RE, utf8_len, utf16_len

__all__ = [
    "ELLIPSIS",
    "URL_RE",
    "grapheme_bounds",
    "grapheme_count",
    "protected_spans",
    "shorten",
    "utf8_len",
    "utf16_len",
]

ELLIPSIS = "…"

_NUMBER_RE = re.compile(r"[0-9０-９]+(?:[.,:．][0-9０-９]+)*")

_PICTOGRAPHIC = (
    "\u00a9\u00ae\u203c\u2049\u2122\u2139\u2194-\u2199\u21a9\u21aa\u231a\u231b\u2328\u23cf"
    "\u23e9-\u23f3\u23f8-\u23fa\u24c2\u25aa\u25ab\u25b6\u25c0\u25fb-\u25fe\u2600-\u27bf"
    "\u2934\u2935\u2b05-\u2b07\u2b1b\u2b1c\u2b50\u2b55\u3030\u303d\u3297\u3299"
    "\U0001f000-\U0001f1e5\U0001f200-\U0001faff"
)
_REGIONAL = "\U0001f1e6-\U0001f1ff"
_MARKS = frozenset({"Mn", "Me", "Mc"})
_MODIFIERS = "\U0001f3fb-\U0001f3ff"
_EXTRA_EXTEND = "\u200c\u20e3\U000e0020-\U000e007f" + _MODIFIERS


def _ranges(codepoints: list[int]) -> str:
    """Code points as a regex character-class body of ranges."""
    out: list[str] = []
    start = prev = codepoints[0]
    for cp in [*codepoints[1:], -1]:
        if cp == prev + 1:
            prev = cp
            continue
        out.append(re.escape(chr(start)) + ("-" + re.escape(chr(prev)) if prev > start else ""))
        start = prev = cp
    return "".join(out)


@cache
def _marks() -> str:
    """Combining and spacing marks (Mn, Me, Mc) as a character-class body, scanned once."""
    scan = [*range(0x300, 0x20000), *range(0xE0100, 0xE01F0)]
    return _ranges([cp for cp in scan if unicodedata.category(chr(cp)) in _MARKS])


@cache
def _cluster_re() -> re.Pattern[str]:
    """The grapheme-cluster pattern (built on first use, about 50 ms)."""
    ext = f"[{_marks()}{_EXTRA_EXTEND}]"
    pict = f"[{_PICTOGRAPHIC}]"
    return re.compile(
        rf"\r\n|[{_REGIONAL}]{{2}}|(?:{_hangul()}){ext}*"
        rf"|{pict}{ext}*(?:\u200d{pict}{ext}*)*\u200d?|.(?:{ext}|\u200d)*",
        re.DOTALL,
    )


@cache
def _joiner_re() -> re.Pattern[str]:
    """A BMP character that can join a neighbour into one cluster (a fast, BMP-only class)."""
    bmp = _ranges([cp for cp in range(0x300, 0x10000) if unicodedata.category(chr(cp)) in _MARKS])
    jamo = "\u1100-\u11ff\ua960-\ua97c\ud7b0-\ud7fb"
    return re.compile(f"[{bmp}\u200c\u200d\u20e3{jamo}]|\r\n")


def _hangul() -> str:
    """UAX #29 rules GB6-GB8: L* (LV V* | LVT | V+) T* | L+ | T+ as a pattern."""
    lead, vowel, trail = (
        "[\u1100-\u115f\ua960-\ua97c]",
        "[\u1160-\u11a7\ud7b0-\ud7c6]",
        ("[\u11a8-\u11ff\ud7cb-\ud7fb]"),
    )
    syllables = range(0xAC00, 0xD7A4)
    lv = f"[{_ranges([cp for cp in syllables if (cp - 0xAC00) % 28 == 0])}]"
    lvt = f"[{_ranges([cp for cp in syllables if (cp - 0xAC00) % 28])}]"
    return f"{lead}*(?:{lv}{vowel}*|{lvt}|{vowel}+){trail}*|{lead}+|{trail}+"


def _simple(text: str) -> bool:
    """True when every code point is its own cluster: no astral character, nothing joins."""
    return not text or (max(text) <= "\uffff" and _joiner_re().search(text) is None)


def grapheme_bounds(text: str) -> list[int]:
    """Offsets (in code points) where grapheme clusters end, starting with 0."""
    if _simple(text):
        return list(range(len(text) + 1))
    bounds = [0]
    bounds.extend(m.end() for m in _cluster_re().finditer(text))
    return bounds


def grapheme_count(text: str) -> int:
    """User-perceived characters, as Mastodon counts them."""
    if _simple(text):
        return len(text)
    return sum(1 for _ in _cluster_re().finditer(text))


def protected_spans(text: str) -> list[tuple[int, int]]:
    """Spans a cut must never fall inside: URLs and numbers (``6.8``, ``30.30``, ``08:02``)."""
    spans = [m.span() for m in URL_RE.finditer(text)]
    spans += [m.span() for m in _NUMBER_RE.finditer(text)]
    return spans


def _safe_cut(cut: int, spans: list[tuple[int, int]]) -> int:
    for start, end in spans:
        if start < cut < end:
            cut = min(cut, start)
    return cut


def shorten(
    text: str,
    keep: int,
    ellipsis: str = ELLIPSIS,
    bounds: list[int] | None = None,
    spans: list[tuple[int, int]] | None = None,
) -> str:
    """The first ``keep`` grapheme clusters of ``text`` plus ``ellipsis``, cut safely.

    The cut moves back to the start of any URL or number it would split; trailing spaces go.
    ``text`` itself comes back when it has at most ``keep`` clusters; ``""`` when the safe cut
    leaves nothing. ``bounds`` (of a prefix, or the whole) and ``spans`` may be precomputed.
    """
    bounds = bounds if bounds is not None else grapheme_bounds(text)
    if keep >= len(bounds) - 1 and bounds[-1] == len(text):
        return text
    cut = bounds[min(max(keep, 0), len(bounds) - 1)]
    cut = _safe_cut(cut, spans if spans is not None else protected_spans(text))
    head = text[:cut].rstrip()
    return head + ellipsis if head else ""
