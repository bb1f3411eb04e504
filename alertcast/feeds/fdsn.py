"""The FDSN event web service (``fdsnws/event/1``) in its GeoJSON format.

API reference: https://earthquake.usgs.gov/fdsnws/event/1/

- ``{base}query?format=geojson&starttime=…&updatedafter=…&minmagnitude=…&orderby=time-asc`` answers
  the same FeatureCollection as the summary feeds (:mod:`.usgs` parses it); times without a zone
  are UTC; ``limit`` is at most 20000 (more is a 400).
- ``{base}query?eventid=X`` finds an event by *any* of its associated ids. A deleted event answers
  **409 Conflict**; "no data" is **204** (or **404** when ``nodata=404``). Deleted events are never
  listed, so an alerted event that vanishes from a window it should still be in is confirmed
  deleted with :func:`is_deleted` before it is cancelled; :func:`lookup` also returns the current
  revision of an event that still exists (e.g. one revised below the feed's threshold).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import aiohttp
import structlog

from alertcast.feeds import usgs
from alertcast.feeds._wire import load_json
from alertcast.feeds.events import FeedError, ParseResult, QuakeEvent

__all__ = [
    "DEFAULT_LOOKBACK",
    "SOURCE",
    "Lookup",
    "is_deleted",
    "lookup",
    "parse_feed",
    "poll_url",
    "query_endpoint",
    "rolling_window",
]

SOURCE = "fdsn"
DEFAULT_LOOKBACK = timedelta(days=1)
_TIME_BOUNDS = frozenset({"starttime", "start", "updatedafter"})
# What ``query?eventid=X`` answering this status says about X being deleted.
_DELETED_BY_STATUS = {200: False, 204: True, 404: True, 409: True}

log = structlog.get_logger(__name__)


def parse_feed(body: bytes) -> ParseResult:
    """Every event of an fdsnws ``format=geojson`` answer (the USGS feature shape)."""
    return usgs.parse_feed(body, source=SOURCE)


def query_endpoint(base_url: str) -> str:
    """``…/fdsnws/event/1/query`` for a service base URL or a full query URL."""
    parts = urlsplit(base_url)
    return urlunsplit((parts.scheme, parts.netloc, _query_path(parts.path), "", ""))


def poll_url(url: str, now: datetime, lookback: timedelta = DEFAULT_LOOKBACK) -> str:
    """``url`` with ``format=geojson`` and, unless the query bounds time, a rolling ``starttime``.

    The start is rounded down to the minute so that repeated polls share a cacheable URL.
    """
    parts = urlsplit(url)
    params = dict(parse_qsl(parts.query, keep_blank_values=True))
    params["format"] = "geojson"
    if not _TIME_BOUNDS & params.keys():
        start = (now.astimezone(UTC) - lookback).replace(second=0, microsecond=0, tzinfo=None)
        params["starttime"] = start.isoformat()
    path = _query_path(parts.path)
    return urlunsplit((parts.scheme, parts.netloc, path, urlencode(params), ""))


def rolling_window(url: str) -> timedelta | None:
    """The window :func:`poll_url` keeps rolling for ``url``; None when the query bounds time."""
    params = dict(parse_qsl(urlsplit(url).query, keep_blank_values=True))
    return None if _TIME_BOUNDS & params.keys() else DEFAULT_LOOKBACK


def _query_path(path: str) -> str:
    return path if path.endswith("/query") else path.rstrip("/") + "/query"


@dataclass(frozen=True)
class Lookup:
    """What the service says of one id: deleted True/False (None: unknown), and its revision."""

    deleted: bool | None
    event: QuakeEvent | None = None


async def is_deleted(
    session: aiohttp.ClientSession, base_url: str, event_id: str, *, timeout_s: float = 10.0
) -> bool | None:
    """Whether the service says ``event_id`` is deleted: True, False, or None when unknown.

    409 (deleted), 204 and 404 (no such event any more) are True; 200 is False; anything else,
    a timeout or a network error is None — never cancel an alert on a guess.
    """
    return (await lookup(session, base_url, event_id, timeout_s=timeout_s)).deleted


async def lookup(
    session: aiohttp.ClientSession, base_url: str, event_id: str, *, timeout_s: float = 10.0
) -> Lookup:
    """:func:`is_deleted`, plus the event's current revision when it still exists.

    An alerted event that left a feed because a revision put it below the feed's threshold is
    not deleted; its revision is what :func:`alertcast.feeds.lifecycle.decide` needs.
    """
    params = {"eventid": event_id, "format": "geojson"}
    timeout = aiohttp.ClientTimeout(total=timeout_s)
    try:
        async with session.get(query_endpoint(base_url), params=params, timeout=timeout) as resp:
            status = resp.status
            body = await resp.read() if status == 200 else b""
    except (aiohttp.ClientError, TimeoutError) as exc:
        log.warning("feed.deletion_check_failed", event_id=event_id, error=repr(exc))
        return Lookup(None)
    deleted = _DELETED_BY_STATUS.get(status)
    if deleted is None:
        log.warning("feed.deletion_check_unclear", event_id=event_id, http_status=status)
    return Lookup(deleted, _event_in(body, event_id) if deleted is False else None)


def _event_in(body: bytes, event_id: str) -> QuakeEvent | None:
    """The event an ``eventid`` answer holds: one Feature, or a collection naming the id."""
    try:
        doc = load_json(body)
        if isinstance(doc, dict) and doc.get("type") == "Feature":
            return usgs.parse_feature(doc, source=SOURCE)
        events = usgs.parse_collection(doc, source=SOURCE).events
    except FeedError as exc:
        log.warning("feed.lookup_unparsed", event_id=event_id, reason=exc.reason)
        return None
    return next((ev for ev in events if event_id in ev.ids), None)
