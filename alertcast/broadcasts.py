"""Scheduled broadcasts: every ``[[schedules]]`` entry raised through the door, once per run.

A run is identified by its schedule and fire time (the idempotency key), so restarts and
replicas never send one twice; runs missed while no daemon ran are settled at start-up by the
schedule's ``misfire`` policy.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import structlog
from apscheduler.schedulers.asyncio import AsyncIOScheduler  # type: ignore[import-untyped]

from alertcast._tasks import Running
from alertcast.door import Door
from alertcast.errors import Conflict
from alertcast.models import incident_json
from alertcast.plan import Asker
from alertcast.schedules import ScheduleConfig, last_fire, routine_incident, run_identity
from alertcast.store.base import Store

__all__ = ["Fired", "Schedules"]

log = structlog.get_logger("alertcast.jobs")


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Fired:
    """One run: its time, the incident it raised (or first raised), and whether it was new."""

    schedule: str
    fire_at: datetime
    incident_id: str | None
    new: bool


class Schedules:
    """Runs every ``[[schedules]]`` entry, once per run across restarts and replicas."""

    def __init__(
        self,
        schedules: Iterable[ScheduleConfig],
        store: Store,
        door: Door,
        *,
        base_dir: Path | None,
    ) -> None:
        self.store = store
        self.door = door
        self.schedules = {s.name: s for s in schedules}
        self.templates = {s.name: s.template(base_dir) for s in self.schedules.values()}
        self.clock: Callable[[], datetime] = utcnow
        self.scheduler: AsyncIOScheduler | None = None
        self._running = Running()

    async def drain(self, deadline_s: float) -> None:
        """Let runs in progress finish within ``deadline_s``, then cancel and await them."""
        await self._running.drain(deadline_s)

    def start(self, scheduler: AsyncIOScheduler) -> None:
        """A cron job per schedule; missed runs are settled by :meth:`catch_up` right away."""
        self.scheduler = scheduler
        for s in self.schedules.values():
            scheduler.add_job(
                self.run_due,
                s.trigger(),
                args=[s.name],
                id=f"schedule:{s.name}",
                name=f"schedule:{s.name}",
                max_instances=1,
                coalesce=True,
                misfire_grace_time=int(s.grace_s),
            )
        if self.schedules:
            # Runs once, now; however late a slow start-up makes it, it must still run (the
            # default 1 s misfire grace would skip it and lose the missed runs).
            scheduler.add_job(
                self.catch_up,
                id="schedules:catch-up",
                name="schedules:catch-up",
                misfire_grace_time=None,
            )

    async def run_due(self, name: str) -> Fired | None:
        """The scheduled run: the latest run time, sent unless it is more than grace_s late."""
        s = self.schedules[name]
        try:
            with self._running.current():
                fire_at = last_fire(s.trigger(), self.clock(), s.grace_s)
                if fire_at is None:
                    log.warning("schedule.run_too_late", schedule=name, grace_s=s.grace_s)
                    return None
                return await self.fire(name, fire_at)
        except Exception:  # supervised: logged, the schedule goes on
            log.exception("schedule.run_failed", schedule=name)
            return None

    async def catch_up(self) -> list[Fired]:
        """Runs missed while no daemon ran: the latest within grace_s, if the policy sends it."""
        done = []
        for s in self.schedules.values():
            try:
                with self._running.current():
                    fired = await self._catch_up(s)
            except Exception:
                log.exception("schedule.catch_up_failed", schedule=s.name)
                continue
            if fired is not None:
                done.append(fired)
        return done

    async def _catch_up(self, s: ScheduleConfig) -> Fired | None:
        fire_at = last_fire(s.trigger(), self.clock(), s.grace_s)
        if fire_at is None:
            return None
        issuer, key = run_identity(s.name, fire_at)
        if await self.store.get_idempotency(issuer, key) is not None:
            return None  # it went out (or is going out) already
        if s.misfire == "skip":
            log.info("schedule.missed", schedule=s.name, fire_at=fire_at.isoformat(), policy="skip")
            return None
        return await self.fire(s.name, fire_at)

    async def fire(self, name: str, fire_at: datetime) -> Fired:
        """Send the run of ``fire_at``; a run already sent answers with its first incident."""
        issuer, key = run_identity(name, fire_at)
        incident = routine_incident(self.templates[name], fire_at)
        body = json.dumps(incident_json(incident), sort_keys=True, ensure_ascii=False)
        first = await self.store.get_idempotency(issuer, key)
        asker = Asker(
            issuer,
            source=issuer,
            idempotency_key=key,
            body_sha256=hashlib.sha256(body.encode()).hexdigest(),
        )
        try:
            answer = await self.door.alert(incident, asker)
        except Conflict:  # sent already, from a configuration that has changed since
            log.warning("schedule.sent_with_other_content", schedule=name, key=key)
            return Fired(name, fire_at, None, new=False)
        late_s = (self.clock() - fire_at).total_seconds()
        log.info(
            "schedule.fired" if first is None else "schedule.already_sent",
            schedule=name,
            fire_at=fire_at.isoformat(),
            late_s=round(late_s, 3),
            incident_id=answer["id"],
        )
        return Fired(name, fire_at, str(answer["id"]), new=first is None)
