"""The daemon's feeds: one APScheduler job per polled feed, pushes, and what each feed did.

Each ``[[feeds]]`` entry with a ``url`` gets a :class:`~alertcast.feeds.source.FeedPoller` and an
interval job (``max_instances=1``, ``coalesce=True``, jittered). The job pauses itself while it
runs and then sets its next run to the poller's :meth:`~FeedPoller.next_delay_s` from the end of
this one: the interval after a success, a jittered doubling backoff after errors. A job never
raises into the scheduler: whatever goes wrong is logged and shown in :meth:`FeedRunner.status`.

After a successful poll every event goes through the feed's :class:`Tracker` (in feed order),
then alerted events missing from the feed's window are checked with the FDSN service: deleted
ones are cancelled, surviving ones decided on their current revision. A body whose events were
not all applied (the store was down) is applied again on the next poll even if it answers 304.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import structlog
from apscheduler.jobstores.base import JobLookupError  # type: ignore[import-untyped]
from apscheduler.schedulers.asyncio import AsyncIOScheduler  # type: ignore[import-untyped]
from apscheduler.triggers.interval import IntervalTrigger  # type: ignore[import-untyped]

from alertcast._tasks import Running
from alertcast.door import Door
from alertcast.feeds import fdsn, usgs
from alertcast.feeds.association import group_problems, group_settings
from alertcast.feeds.events import QuakeEvent
from alertcast.feeds.lifecycle import VANISH_MARGIN, KnownEvent, vanished
from alertcast.feeds.rules import FeedConfig
from alertcast.feeds.source import FeedPoller, Outcome, PollOutcome, parse_pushed
from alertcast.feeds.tracker import Applied, GroupTracker, Tracker
from alertcast.store.base import Store

__all__ = ["Feed", "FeedRunner", "utcnow"]

MAX_LOOKUPS = 5  # deletion checks per poll, each bounded by the feed's timeout_s
RECHECK_S = 600.0  # an event the source says still exists is not looked up again before this
PRUNE_EVERY_S = 3600.0
RETAIN = timedelta(days=7)  # kept beyond the feed's window (or, for CENC, beyond this)
MAX_JITTER_S = 5.0

log = structlog.get_logger("alertcast.feeds")


def utcnow() -> datetime:
    """The default :attr:`FeedRunner.clock` (rehearsals replace the attribute)."""
    return datetime.now(UTC)


def _wall() -> datetime:
    """Real time, for the scheduler, whatever :attr:`FeedRunner.clock` says."""
    return datetime.now(UTC)


@dataclass
class Feed:
    """One configured feed at run time: its poller (None for push-only), tracker and counters."""

    cfg: FeedConfig
    tracker: Tracker
    poller: FeedPoller | None
    poll_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    apply_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    events: tuple[QuakeEvent, ...] = ()  # of the last body that parsed
    applied: dict[str, QuakeEvent] = field(default_factory=dict)  # revision last applied, by id
    unapplied: bool = False
    rechecks: dict[str, float] = field(default_factory=dict)
    seen_ids: set[str] = field(default_factory=set)  # ids some polled body has carried
    decisions: Counter[str] = field(default_factory=Counter)
    pushed: int = 0
    push_refused: int = 0
    last_apply_error: str | None = None
    last_apply_error_at: datetime | None = None
    pruned_at: float = 0.0

    @property
    def job_id(self) -> str:
        return f"feed:{self.cfg.name}"


class FeedRunner:
    """Polls, takes pushes for, and reports on every configured feed.

    ``clock`` (UTC now) is what deletion windows and pruning are measured against; rehearsals
    with recorded feeds may set it to the feed's own time.
    """

    def __init__(
        self,
        feeds: Iterable[FeedConfig],
        store: Store,
        door: Door,
        session: aiohttp.ClientSession,
        *,
        rng: random.Random | None = None,
    ) -> None:
        self.store = store
        self.session = session
        self.clock: Callable[[], datetime] = utcnow
        self._rng = rng or random.Random()
        self._scheduler: AsyncIOScheduler | None = None
        self._running = Running()
        configs = list(feeds)
        if problems := group_problems(configs):
            raise ValueError("; ".join(f"{path}: {message}" for path, message in problems))
        self.groups: dict[str, GroupTracker] = {
            name: GroupTracker(settings, store, door)
            for name, settings in group_settings(configs).items()
        }
        self.feeds: dict[str, Feed] = {
            cfg.name: Feed(
                cfg,
                Tracker(
                    cfg,
                    store,
                    door,
                    self.groups[cfg.associate] if cfg.associate else None,
                ),
                self._poller(cfg),
            )
            for cfg in configs
        }

    def _poller(self, cfg: FeedConfig) -> FeedPoller | None:
        if cfg.url is None:
            return None
        return FeedPoller(cfg, clock=lambda: self.clock(), rng=self._rng)

    # -- life -------------------------------------------------------------------------------
    def start(self, scheduler: AsyncIOScheduler) -> None:
        """One interval job per polled feed; the first run within a second (jittered)."""
        self._scheduler = scheduler
        for feed in self.feeds.values():
            if feed.poller is None:
                continue
            interval = feed.cfg.interval_s
            scheduler.add_job(
                self._job,
                IntervalTrigger(seconds=interval, jitter=self._jitter_s(feed)),
                args=[feed.cfg.name],
                id=feed.job_id,
                name=feed.job_id,
                max_instances=1,
                coalesce=True,
                misfire_grace_time=None,
                next_run_time=_wall() + timedelta(seconds=self._rng.uniform(0, 1)),
            )

    async def drain(self, deadline_s: float) -> None:
        """Let running polls finish within ``deadline_s``, then cancel and await the rest."""
        await self._running.drain(deadline_s)

    # -- polling ----------------------------------------------------------------------------
    async def _job(self, name: str) -> None:
        """The scheduled poll: supervised, paused while it runs, rescheduled by the poller."""
        feed = self.feeds[name]
        self._reschedule(feed, None)
        try:
            with self._running.current():
                await self.poll_now(name)
        except Exception:  # supervised: a failed poll is logged, the schedule goes on
            log.exception("feed.job_failed", feed=name)
        finally:
            self._reschedule(feed, self._next_delay_s(feed))

    async def poll_now(self, name: str) -> PollOutcome:
        """Poll ``name`` once and apply what it found (waiting for a poll already running)."""
        feed = self.feeds[name]
        if feed.poller is None:
            raise ValueError(f"feed {name} is push-only (no url)")
        async with feed.poll_lock:
            outcome = await feed.poller.poll(self.session)
            if outcome.outcome is Outcome.ok:
                feed.events, feed.unapplied = outcome.events, True
                feed.seen_ids.update(i for ev in outcome.events for i in ev.ids)
            if outcome.ok:
                async with feed.apply_lock:
                    await self._after_success(feed)
            return outcome

    async def _after_success(self, feed: Feed) -> None:
        try:
            if feed.unapplied:
                await self._apply_all(feed)
            await self._check_vanished(feed)
            await self._prune(feed)
        except Exception as exc:
            feed.last_apply_error = f"{type(exc).__name__}: {exc}"
            feed.last_apply_error_at = self.clock()
            raise

    async def _apply_all(self, feed: Feed) -> None:
        applied = {}
        for ev in feed.events:
            if feed.applied.get(ev.event_id) != ev:
                self._count(feed, await feed.tracker.sighting(ev))
            applied[ev.event_id] = ev
        feed.applied, feed.unapplied = applied, False

    async def _check_vanished(self, feed: Feed) -> None:
        window = feed.poller.window if feed.poller else None
        if window is None:
            return
        now = self.clock()
        rows = await self.store.live_feed_events(
            feed.cfg.name, since=(now - window + VANISH_MARGIN).timestamp()
        )
        # An action claimed but not taken (the store failed, the daemon stopped) on an event
        # that has since been deleted: no sighting reads that row again, so finish it here.
        rows = [await feed.tracker.finish(r) if r.pending is not None else r for r in rows]
        known = [KnownEvent.from_json(dict(r.known)) for r in rows if r.live]
        due = time.monotonic()
        # Only an event a polled body once carried can vanish from it: one that came by push
        # and the source has not served yet is not "deleted" (FDSN may not know it either).
        suspects = [
            k
            for k in vanished(known, feed.events, window=window, now=now)
            if feed.rechecks.get(k.event_id, 0.0) <= due and k.ids & feed.seen_ids
        ]
        for k in suspects[:MAX_LOOKUPS]:
            await self._confirm_vanished(feed, k)

    async def _confirm_vanished(self, feed: Feed, known: KnownEvent) -> None:
        cfg = feed.cfg
        assert cfg.url is not None
        base = usgs.fdsn_base(cfg.url) if cfg.type == "usgs" else cfg.url
        found = await fdsn.lookup(self.session, base, known.event_id, timeout_s=cfg.timeout_s)
        log.info("feed.vanished", feed=cfg.name, event_id=known.event_id, deleted=found.deleted)
        if found.deleted:
            applied = await feed.tracker.deleted(known.event_id)
            self._count(feed, [applied] if applied else [])
        elif found.deleted is False:
            feed.rechecks[known.event_id] = time.monotonic() + max(RECHECK_S, cfg.interval_s)
            if found.event is not None:
                revision = replace(found.event, source=known.source)
                self._count(feed, await feed.tracker.sighting(revision))

    async def _prune(self, feed: Feed) -> None:
        if time.monotonic() - feed.pruned_at < PRUNE_EVERY_S:
            return
        feed.pruned_at = time.monotonic()
        window = feed.poller.window if feed.poller else None
        before = self.clock() - (window or RETAIN) - RETAIN
        gone = await self.store.prune_feed_events(
            feed.cfg.name,
            before=before.timestamp(),
            idle_since=time.time() - RETAIN.total_seconds(),
        )
        if gone:
            log.info("feed.pruned", feed=feed.cfg.name, events=gone)

    def _next_delay_s(self, feed: Feed) -> float:
        assert feed.poller is not None
        delay = feed.poller.next_delay_s()
        if feed.poller.health.consecutive_errors == 0:
            delay += self._rng.uniform(0, self._jitter_s(feed))
        return delay

    @staticmethod
    def _jitter_s(feed: Feed) -> float:
        return min(MAX_JITTER_S, feed.cfg.interval_s / 10)

    def _reschedule(self, feed: Feed, delay_s: float | None) -> None:
        """Pause the job (``None``) or set its next run ``delay_s`` from now."""
        if self._scheduler is None or not self._scheduler.running:
            return
        when = None if delay_s is None else _wall() + timedelta(seconds=delay_s)
        with contextlib.suppress(JobLookupError):  # the scheduler is shutting down
            self._scheduler.modify_job(feed.job_id, next_run_time=when)

    # -- pushes -----------------------------------------------------------------------------
    async def push(self, name: str, body: bytes) -> list[Applied]:
        """One pushed event for ``name``; raises ``FeedError`` (a 400) for what is not one."""
        feed = self.feeds[name]
        try:
            ev = parse_pushed(feed.cfg, body, now=self.clock())
        except ValueError:
            feed.push_refused += 1
            raise
        feed.pushed += 1
        async with feed.apply_lock:
            applied = await feed.tracker.sighting(ev)
        self._count(feed, applied)
        return applied

    # -- reporting --------------------------------------------------------------------------
    def _count(self, feed: Feed, applied: Iterable[Applied]) -> None:
        for a in applied:
            feed.decisions[a.decision.action.value] += 1
            if a.decision.action.value not in ("ignore", "associate"):
                log.info(
                    "feed.decided",
                    feed=feed.cfg.name,
                    event_id=a.event_id,
                    action=a.decision.action.value,
                    reason=a.decision.reason,
                    incident_id=a.incident_id,
                    message_id=a.message_id,
                )

    def status(self) -> list[dict[str, Any]]:
        """Every feed's health, for ``GET /v1/feeds``."""
        return [self._describe(feed) for feed in self.feeds.values()]

    def _describe(self, feed: Feed) -> dict[str, Any]:
        health = feed.poller.health if feed.poller else None
        polled = {} if health is None else _health(health.__dict__)
        return {
            "name": feed.cfg.name,
            "type": feed.cfg.type,
            "url": _public_url(feed.cfg.url),
            "polling": feed.poller is not None,
            "interval_s": feed.cfg.interval_s,
            "next_poll_at": _iso(self._next_run(feed)),
            **polled,
            "events_seen": (health.events_seen if health else 0) + feed.pushed,
            "pushed": feed.pushed,
            "push_refused": feed.push_refused,
            "decisions": dict(sorted(feed.decisions.items())),
            "last_apply_error": feed.last_apply_error,
            "last_apply_error_at": _iso(feed.last_apply_error_at),
            **_association(feed.cfg),
        }

    def _next_run(self, feed: Feed) -> datetime | None:
        if self._scheduler is None or feed.poller is None:
            return None
        job = self._scheduler.get_job(feed.job_id)
        return None if job is None else job.next_run_time


def _association(cfg: FeedConfig) -> dict[str, Any]:
    """The group keys of an associated feed (none for a feed on its own)."""
    if cfg.associate is None:
        return {}
    return {"associate": cfg.associate, "priority": cfg.priority}


def _health(fields: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _iso(v) if isinstance(v, datetime) else v for k, v in fields.items()}


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _public_url(url: str | None) -> str | None:
    """The URL without credentials, should one carry a user or password."""
    if url is None or "@" not in url.split("/", 3)[2]:
        return url
    scheme, rest = url.split("://", 1)
    return f"{scheme}://{rest.split('@', 1)[1]}"
