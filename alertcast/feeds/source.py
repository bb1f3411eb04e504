"""Polling one feed: a conditional GET, a parse, an outcome with a reason, health and backoff.

A :class:`FeedPoller` never raises for what a feed does (5xx, garbage, timeouts, huge bodies): it
returns a :class:`PollOutcome` saying what happened, logs it, and keeps :class:`FeedHealth`. It does
not schedule itself; the caller polls again after :meth:`FeedPoller.next_delay_s` (the interval,
or a jittered exponential backoff after errors). Overlapping calls are refused, not queued.
Push sources use :func:`parse_pushed` for one event posted to the daemon.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

import aiohttp
import structlog

from alertcast.feeds import cenc, fdsn, usgs
from alertcast.feeds._wire import load_json
from alertcast.feeds.events import BadEvent, MalformedFeed, ParseResult, QuakeEvent
from alertcast.feeds.rules import FeedConfig

__all__ = [
    "PARSERS",
    "FeedHealth",
    "FeedPoller",
    "Outcome",
    "PollOutcome",
    "parse_pushed",
]

USER_AGENT = "alertcast-feeds/0.1 (+https://github.com/alertcast)"
_CHUNK = 64 * 1024
_MAX_DOUBLINGS = 30

log = structlog.get_logger(__name__)

Parser = Callable[[bytes, datetime], ParseResult]
PARSERS: Mapping[str, Parser] = {
    "usgs": lambda body, now: usgs.parse_feed(body),
    "fdsn": lambda body, now: fdsn.parse_feed(body),
    "cenc": lambda body, now: cenc.parse_feed(body, now=now),
}


class Outcome(StrEnum):
    ok = "ok"
    not_modified = "not_modified"
    busy = "busy"
    http_error = "http_error"
    timeout = "timeout"
    network = "network"
    garbage = "garbage"
    too_large = "too_large"
    internal = "internal"


_SUCCESS = frozenset({Outcome.ok, Outcome.not_modified})


@dataclass(frozen=True)
class PollOutcome:
    """What one poll found: events and skipped entries on success, a reason otherwise."""

    outcome: Outcome
    events: tuple[QuakeEvent, ...] = ()
    skipped: tuple[tuple[str, str], ...] = ()
    reason: str = ""
    http_status: int | None = None
    retry_after_s: float | None = None

    @property
    def ok(self) -> bool:
        return self.outcome in _SUCCESS


@dataclass
class FeedHealth:
    """Counters for ``GET /v1/feeds``-style views; ``events_seen`` counts parsed entries."""

    last_success_at: datetime | None = None
    last_error_at: datetime | None = None
    last_error: str | None = None
    consecutive_errors: int = 0
    events_seen: int = 0
    entries_skipped: int = 0
    last_count: int = 0
    polls: int = 0


class FeedPoller:
    """Polls the feed ``cfg`` names; keep one per feed for its validators and health."""

    def __init__(
        self,
        cfg: FeedConfig,
        *,
        clock: Callable[[], datetime] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        if cfg.url is None:
            raise ValueError(f"feed {cfg.name} has no url to poll (a push-only feed)")
        self.cfg = cfg
        self.health = FeedHealth()
        self._url = cfg.url
        self._parse = PARSERS[cfg.type]
        self._clock = clock or (lambda: datetime.now(UTC))
        self._rng = rng or random.Random()
        self._lock = asyncio.Lock()
        self._validators: tuple[str, dict[str, str]] = ("", {})
        self._retry_after_s: float | None = None
        self._log = log.bind(feed=cfg.name, feed_type=cfg.type)

    async def poll(self, session: aiohttp.ClientSession) -> PollOutcome:
        """One conditional GET and parse; never raises for what the feed did."""
        if self._lock.locked():
            return PollOutcome(Outcome.busy, reason="the previous poll is still running")
        async with self._lock:
            try:
                outcome = await self._fetch(session, self._request_url())
            except Exception as exc:  # a bug must not stop the poller; it is logged in full
                self._log.exception("feed.poll_crashed")
                outcome = PollOutcome(Outcome.internal, reason=f"internal error: {exc!r}")
            self._record(outcome)
            return outcome

    @property
    def window(self) -> timedelta | None:
        """How far back the feed reaches, when its source can confirm deletions; else None.

        An alerted event missing from a poll inside this window is a deletion suspect
        (:func:`alertcast.feeds.lifecycle.vanished`, then :func:`alertcast.feeds.fdsn.lookup`).
        """
        if self.cfg.type == "usgs":
            return usgs.feed_window(self._url)
        if self.cfg.type == "fdsn":
            return fdsn.rolling_window(self._url)
        return None

    def next_delay_s(self) -> float:
        """Seconds until the next poll: the interval, or jittered doubling backoff after errors."""
        errors = self.health.consecutive_errors
        if errors == 0:
            return self.cfg.interval_s
        cap = max(self.cfg.max_backoff_s, self.cfg.interval_s)
        base = min(cap, self.cfg.interval_s * 2.0 ** min(errors - 1, _MAX_DOUBLINGS))
        delay = base / 2 + self._rng.random() * base / 2
        return min(cap, max(delay, self._retry_after_s or 0.0))

    def _request_url(self) -> str:
        if self.cfg.type == "fdsn":
            return fdsn.poll_url(self._url, self._clock())
        return self._url

    async def _fetch(self, session: aiohttp.ClientSession, url: str) -> PollOutcome:
        timeout = aiohttp.ClientTimeout(total=self.cfg.timeout_s)
        try:
            async with session.get(url, headers=self._headers(url), timeout=timeout) as resp:
                return await self._answer(resp, url)
        except TimeoutError:
            return PollOutcome(Outcome.timeout, reason=f"no answer within {self.cfg.timeout_s:g} s")
        except aiohttp.ClientError as exc:
            return PollOutcome(Outcome.network, reason=f"{type(exc).__name__}: {exc}")

    async def _answer(self, resp: aiohttp.ClientResponse, url: str) -> PollOutcome:
        if resp.status == 304:
            return PollOutcome(Outcome.not_modified, http_status=304)
        if resp.status != 200:
            return PollOutcome(
                Outcome.http_error,
                reason=f"HTTP {resp.status} {resp.reason or ''}".strip(),
                http_status=resp.status,
                retry_after_s=_retry_after(resp.headers.get("Retry-After")),
            )
        body = await _read_limited(resp, self.cfg.max_body_bytes)
        if body is None:
            reason = f"body larger than max_body_bytes {self.cfg.max_body_bytes}"
            return PollOutcome(Outcome.too_large, reason=reason, http_status=200)
        try:
            result = self._parse(body, self._clock())
        except MalformedFeed as exc:
            return PollOutcome(Outcome.garbage, reason=exc.reason, http_status=200)
        self._keep_validators(url, resp)
        return PollOutcome(Outcome.ok, result.events, result.errors, http_status=200)

    def _headers(self, url: str) -> dict[str, str]:
        headers = {"User-Agent": USER_AGENT, "Accept": "application/json, */*;q=0.5"}
        known_url, validators = self._validators
        return headers | validators if known_url == url else headers

    def _keep_validators(self, url: str, resp: aiohttp.ClientResponse) -> None:
        validators = {}
        if etag := resp.headers.get("ETag"):
            validators["If-None-Match"] = etag
        if modified := resp.headers.get("Last-Modified"):
            validators["If-Modified-Since"] = modified
        self._validators = (url, validators)

    def _record(self, outcome: PollOutcome) -> None:
        if outcome.outcome is Outcome.busy:
            self._log.warning("feed.poll_overlap", reason=outcome.reason)
            return
        self.health.polls += 1
        if outcome.ok:
            self._succeeded(outcome)
        else:
            self._failed(outcome)

    def _succeeded(self, outcome: PollOutcome) -> None:
        health = self.health
        health.last_success_at = self._clock()
        health.consecutive_errors = 0
        health.events_seen += len(outcome.events)
        health.entries_skipped += len(outcome.skipped)
        if outcome.outcome is Outcome.ok:
            health.last_count = len(outcome.events)
        self._retry_after_s = None
        for entry, reason in outcome.skipped:
            self._log.warning("feed.entry_skipped", entry=entry, reason=reason)
        self._log.debug("feed.polled", outcome=outcome.outcome.value, events=len(outcome.events))

    def _failed(self, outcome: PollOutcome) -> None:
        health = self.health
        health.last_error_at = self._clock()
        health.last_error = f"{outcome.outcome.value}: {outcome.reason}"
        health.consecutive_errors += 1
        self._retry_after_s = outcome.retry_after_s
        self._log.warning(
            "feed.poll_failed",
            outcome=outcome.outcome.value,
            reason=outcome.reason,
            consecutive_errors=health.consecutive_errors,
        )


def parse_pushed(cfg: FeedConfig, body: bytes, *, now: datetime | None = None) -> QuakeEvent:
    """One pushed event: a GeoJSON feature (any feed type) or, for cenc, one quick-report row.

    Raises :class:`~alertcast.feeds.events.FeedError` (``MalformedFeed`` or ``BadEvent``) whose
    ``reason`` is fit for a 400 answer.
    """
    obj: Any = load_json(body)
    if cfg.type == "cenc" and isinstance(obj, dict) and "CATA_ID" in obj:
        return cenc.parse_record(obj, now=now or datetime.now(UTC))
    if isinstance(obj, dict) and obj.get("type") not in (None, "Feature"):
        raise BadEvent(f"expected one GeoJSON Feature, got {str(obj.get('type'))[:40]!r}")
    return usgs.parse_feature(obj, source=cfg.type)


async def _read_limited(resp: aiohttp.ClientResponse, limit: int) -> bytes | None:
    if resp.content_length is not None and resp.content_length > limit:
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in resp.content.iter_chunked(_CHUNK):
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _retry_after(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None
