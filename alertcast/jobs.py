"""The daemon's scheduled work on one APScheduler: feed polls and scheduled broadcasts.

:func:`context` is the application's cleanup context for it (after the store and the door
are up): it starts an ``AsyncIOScheduler`` (UTC, ``coalesce``, ``max_instances=1``), the
:class:`~alertcast.feeds.runner.FeedRunner` and :class:`~alertcast.broadcasts.Schedules`,
and on shutdown stops taking new runs, lets running ones finish within a deadline, then
cancels the rest. Every job is supervised: an exception is logged and the scheduler goes on.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC

import aiohttp
import structlog
from aiohttp import web
from apscheduler.events import (  # type: ignore[import-untyped]
    EVENT_JOB_ERROR,
    EVENT_JOB_MAX_INSTANCES,
    EVENT_JOB_MISSED,
    JobEvent,
    JobExecutionEvent,
)
from apscheduler.schedulers.asyncio import AsyncIOScheduler  # type: ignore[import-untyped]

from alertcast import keys
from alertcast.broadcasts import Schedules
from alertcast.feeds.runner import FeedRunner
from alertcast.feeds.source import USER_AGENT

__all__ = ["context"]

DRAIN_S = 5.0

log = structlog.get_logger("alertcast.jobs")


async def context(app: web.Application) -> AsyncIterator[None]:
    """Start the scheduler, the feeds and the schedules; stop them in order."""
    config = app[keys.CONFIG]
    base_dir = config.source_path.parent if config.source_path else None
    scheduler = AsyncIOScheduler(timezone=UTC, job_defaults={"coalesce": True, "max_instances": 1})
    scheduler.add_listener(_job_event, EVENT_JOB_ERROR | EVENT_JOB_MISSED | EVENT_JOB_MAX_INSTANCES)
    schedules = Schedules(config.schedules, app[keys.STORE], app[keys.DOOR], base_dir=base_dir)
    async with aiohttp.ClientSession(headers={"User-Agent": USER_AGENT}) as session:
        feeds = FeedRunner(config.feeds, app[keys.STORE], app[keys.DOOR], session)
        app[keys.FEEDS], app[keys.SCHEDULES] = feeds, schedules
        scheduler.start()
        feeds.start(scheduler)
        schedules.start(scheduler)
        log.info("jobs.started", feeds=len(feeds.feeds), schedules=len(schedules.schedules))
        try:
            yield
        finally:
            scheduler.pause()
            deadline_s = min(DRAIN_S, config.server.shutdown_grace_s)
            await asyncio.gather(feeds.drain(deadline_s), schedules.drain(deadline_s))
            scheduler.shutdown(wait=False)
            await asyncio.sleep(0)  # the asyncio scheduler shuts down on the loop


def _job_event(event: JobEvent) -> None:
    """APScheduler's own reports, in our logs (our jobs catch and log their errors first)."""
    if isinstance(event, JobExecutionEvent) and event.exception is not None:
        log.error("jobs.job_raised", job=event.job_id, error=repr(event.exception))
    elif event.code == EVENT_JOB_MISSED:
        log.warning("jobs.run_missed", job=event.job_id)
    else:
        log.warning("jobs.still_running", job=event.job_id)
