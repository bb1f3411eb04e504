"""Decoding feed bodies: JSON, optionally wrapped in a JSONP call or bare parentheses."""

from __future__ import annotations

import json
import re
from typing import Any

from alertcast.feeds.events import MalformedFeed

__all__ = ["load_json"]

# ``eqfeed_callback({...});`` (USGS .geojsonp) or ``({...})`` (CENC speedsearch).
_WRAPPED = re.compile(r"^\s*(?:[A-Za-z_$][\w$]*\s*)?\((?P<body>.*)\)\s*;?\s*$", re.DOTALL)


def load_json(body: bytes) -> Any:
    """The JSON value in ``body``, unwrapping ``callback(...)``; :class:`MalformedFeed` if none."""
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise MalformedFeed(f"body is not UTF-8 (byte {exc.start})") from None
    if not text.strip():
        raise MalformedFeed("body is empty")
    match = _WRAPPED.match(text)
    if match:
        text = match.group("body")
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:
        raise MalformedFeed(f"body is not JSON: {exc}") from None


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")
