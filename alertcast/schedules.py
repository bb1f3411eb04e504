"""Scheduled broadcasts (``[[schedules]]``): recurring routine messages on a crontab.

This module holds the configuration and the pure parts; :class:`alertcast.jobs.Schedules`
runs them in the daemon. Each run goes through :meth:`alertcast.service.Service.submit` like
any incident (route, render, store, dispatch) with issuer and source ``schedule:{name}`` and
the idempotency key ``schedule:{name}:{fire time}``, so two replicas, or a restart in the
middle of a run, send it once. The incident is marked routine: ``severity`` defaults to
``minor`` and a ``general`` incident's ``details.category`` to ``routine``; ``occurred_at`` is
the run's time.

Runs missed while no daemon was running follow ``misfire``: ``late_within_grace`` sends the
latest missed run once, on start-up, if it is at most ``grace_s`` late (earlier ones are
skipped); ``skip`` sends none. While running, a run delayed by at most ``grace_s`` still goes.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from apscheduler.triggers.cron import CronTrigger  # type: ignore[import-untyped]
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from alertcast.models import Incident, parse_incident

__all__ = ["ScheduleConfig", "last_fire", "routine_incident", "run_identity"]

PER_RUN = ("occurred_at", "expires_at")
_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_LOOKBACKS_S = (120.0, 3600.0, 86400.0)


class ScheduleConfig(BaseModel):
    """One ``[[schedules]]`` entry: what to send, when, and what to do about missed runs."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    cron: str = Field(description="minute hour day-of-month month day-of-week (0 or 7: Sunday)")
    timezone: str = "Asia/Shanghai"
    incident: dict[str, Any] | None = None
    incident_file: Path | None = None
    misfire: Literal["late_within_grace", "skip"] = "late_within_grace"
    grace_s: float = Field(default=3600.0, ge=1, le=7 * 86400)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, name: str) -> str:
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {name!r} (an IANA name: Asia/Shanghai)") from None
        return name

    @model_validator(mode="after")
    def _check(self) -> ScheduleConfig:
        self.trigger()
        if (self.incident is None) == (self.incident_file is None):
            raise ValueError("give exactly one of incident (inline) or incident_file")
        if self.incident is not None:
            routine_incident(self.incident, datetime.now(UTC))
        return self

    @property
    def zone(self) -> tzinfo:
        return ZoneInfo(self.timezone)

    def trigger(self) -> CronTrigger:
        """The crontab as a trigger in the schedule's zone; ValueError says what is wrong."""
        fields = self.cron.split()
        if len(fields) != 5:
            raise ValueError(f"cron needs 5 fields (minute hour day month weekday): {self.cron!r}")
        if fields[2] != "*" and fields[4] != "*":
            raise ValueError(
                "cron restricts both day-of-month and day-of-week; cron implementations "
                "disagree on what that means, so give one of them as *"
            )
        minute, hour, day, month, weekday = fields
        return CronTrigger(
            minute=minute,
            hour=hour,
            day=day,
            month=month,
            day_of_week=_weekdays(weekday),
            timezone=self.zone,
        )

    def template(self, base_dir: Path | None) -> dict[str, Any]:
        """The incident to send, inline or read from ``incident_file`` (relative to
        ``base_dir``, the config file's folder); ValueError names the file at fault."""
        if self.incident is not None:
            return dict(self.incident)
        assert self.incident_file is not None
        path = self.incident_file
        if not path.is_absolute() and base_dir is not None:
            path = base_dir / path
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ValueError(
                f"schedule {self.name}: cannot read incident_file {path}: {exc}"
            ) from exc
        if not isinstance(data, dict):
            raise ValueError(f"schedule {self.name}: {path} does not hold a JSON object")
        try:
            routine_incident(data, datetime.now(UTC))
        except ValueError as exc:
            raise ValueError(f"schedule {self.name}: {path}: {exc}") from exc
        return data


def routine_incident(template: dict[str, Any], fire_at: datetime) -> Incident:
    """The incident of one run: the template, marked routine, occurring at ``fire_at``."""
    fixed = [k for k in PER_RUN if k in template]
    if fixed:
        raise ValueError(f"{', '.join(fixed)} is set by each run; leave it out of the incident")
    data = {"severity": "minor", **template, "occurred_at": fire_at.isoformat()}
    if data.get("kind") == "general":
        data["details"] = {"category": "routine", **(data.get("details") or {})}
    try:
        return parse_incident(data)
    except ValidationError as exc:
        paths = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ValueError(f"invalid incident: {paths}") from None


def last_fire(trigger: CronTrigger, now: datetime, lookback_s: float) -> datetime | None:
    """The latest run time of ``trigger`` in ``[now - lookback_s, now]``, or None."""
    for span_s in (*(s for s in _LOOKBACKS_S if s < lookback_s), lookback_s):
        latest: datetime | None = None
        fire = trigger.get_next_fire_time(None, now - timedelta(seconds=span_s))
        while fire is not None and fire <= now:
            latest = fire
            fire = trigger.get_next_fire_time(fire, fire + timedelta(microseconds=1))
        if latest is not None:
            return latest
    return None


def run_identity(name: str, fire_at: datetime) -> tuple[str, str]:
    """Issuer and idempotency key of one run (the fire time with its zone's offset)."""
    return f"schedule:{name}", f"schedule:{name}:{fire_at.isoformat()}"


def _weekdays(field: str) -> str:
    """A crontab day-of-week field (0 or 7 is Sunday) as names APScheduler 3 reads right.

    APScheduler 3 counts 0 as Monday; names mean the same to both.
    """
    if field == "*":
        return field
    days: set[int] = set()
    for part in field.split(","):
        base, _, step = part.partition("/")
        first, _, last = base.partition("-")
        lo, hi = (0, 6) if base == "*" else (_day(first), _day(last or first))
        if last.strip() == "7":  # a range ending at 7 ends at Sunday: 0-7 is every day
            hi = 7
        if hi < lo:
            hi += 7
        days.update(d % 7 for d in range(lo, hi + 1, int(step or 1)))
    return ",".join(_DAYS[d] for d in sorted(days))


def _day(text: str) -> int:
    text = text.strip().lower()
    if re.fullmatch(r"[0-7]", text):
        return int(text) % 7
    if text[:3] in _DAYS and len(text) == 3:
        return _DAYS.index(text)
    raise ValueError(f"day of week {text!r} is not 0-7 or sun..sat")
