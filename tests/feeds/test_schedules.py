"""[[schedules]]: routine broadcasts on a crontab, through the normal path, once per run."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from alertcast import broadcasts
from alertcast.broadcasts import Schedules
from alertcast.config import ConfigError, load_config
from alertcast.keys import SCHEDULES
from alertcast.schedules import ScheduleConfig, last_fire
from tests.conftest import Daemon, until

SHANGHAI = "Asia/Shanghai"
REMINDER: dict[str, Any] = {
    "kind": "general",
    "headline": "每周交通安全提示",
    "description": "雨天路滑，减速慢行。",
    "area": {"name": "成都市", "codes": ["510100"]},
}


def weekly(**changes: Any) -> dict[str, Any]:
    return {"name": "traffic", "cron": "0 9 * * 1", "incident": REMINDER} | changes


def fired_at() -> datetime:
    """Monday 3 June 2024, 09:00 in Shanghai: a run of ``weekly()``."""
    return datetime(2024, 6, 3, 1, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("cron", "first"),
    [
        ("0 9 * * 1", "Mon 03"),
        ("0 9 * * 0", "Sun 02"),
        ("0 9 * * 7", "Sun 02"),
        ("0 9 * * sat", "Sat 08"),
        ("0 9 * * 5-7", "Sun 02"),
        ("0 11 * * 0-7", "Sat 01"),
        ("0 9 * * 2-4", "Tue 04"),
        ("0 9 * * */3", "Sun 02"),
        ("30 10 1 * *", "Sat 01"),
    ],
)
def test_crontab_weekdays_mean_what_cron_means(cron: str, first: str) -> None:
    """Day-of-week numbers follow crontab (0 and 7 are Sunday), not APScheduler 3's Monday 0."""
    trigger = ScheduleConfig(**weekly(cron=cron, timezone="UTC")).trigger()
    saturday = datetime(2024, 6, 1, 10, tzinfo=UTC)
    assert trigger.get_next_fire_time(None, saturday).strftime("%a %d") == first


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"cron": "0 9 * *"}, "5 fields"),
        ({"cron": "0 25 * * *"}, "higher than the maximum"),
        ({"cron": "0 9 1 * 1"}, "both day-of-month and day-of-week"),
        ({"cron": "0 9 * * 8"}, "not 0-7"),
        ({"timezone": "Mars/Olympus"}, "unknown time zone"),
        ({"incident_file": "x.json"}, "exactly one of incident"),
        ({"incident": None}, "exactly one of incident"),
        ({"incident": REMINDER | {"occurred_at": "2024-06-03T09:00:00+08:00"}}, "each run"),
        ({"incident": REMINDER | {"kind": "volcano"}}, "invalid incident"),
        ({"misfire": "twice"}, "late_within_grace"),
        ({"every": "monday"}, "Extra inputs"),
    ],
)
def test_bad_schedules_are_refused(changes: dict[str, Any], message: str) -> None:
    """Every mistake is refused when the configuration is read, saying what is wrong."""
    with pytest.raises(ValidationError, match=message):
        ScheduleConfig(**weekly(**changes))


def test_config_file_with_incident_file(tmp_path: Path) -> None:
    """``incident_file`` is read relative to the config file; names are unique."""
    (tmp_path / "notices").mkdir()
    (tmp_path / "notices" / "siren.json").write_text(json.dumps(REMINDER), encoding="utf-8")
    entry = (
        '[[schedules]]\nname = "siren"\ncron = "0 10 1 * *"\nincident_file = "notices/siren.json"\n'
    )
    (tmp_path / "a.toml").write_text(entry, encoding="utf-8")
    config = load_config(tmp_path / "a.toml")
    schedules = Schedules(config.schedules, None, None, base_dir=tmp_path)  # type: ignore[arg-type]
    assert schedules.templates["siren"]["headline"] == REMINDER["headline"]
    (tmp_path / "b.toml").write_text(entry + entry, encoding="utf-8")
    with pytest.raises(ConfigError, match="schedules: duplicate names siren"):
        load_config(tmp_path / "b.toml")
    with pytest.raises(ValueError, match="cannot read incident_file"):
        Schedules(config.schedules, None, None, base_dir=tmp_path / "elsewhere")  # type: ignore[arg-type]


def test_last_fire_finds_the_latest_run_within_the_window() -> None:
    """The latest run at or before now and within the look-back, else None."""
    trigger = ScheduleConfig(**weekly()).trigger()
    monday = fired_at()
    assert last_fire(trigger, monday, 60) == monday
    assert last_fire(trigger, monday + timedelta(minutes=59), 3600) == monday
    assert last_fire(trigger, monday + timedelta(minutes=61), 3600) is None
    assert last_fire(trigger, monday + timedelta(days=6), 7 * 86400) == monday
    assert last_fire(trigger, monday - timedelta(seconds=1), 3600) is None


# Sunday 2 June 2024, 09:00 in Shanghai: no run of weekly() (nor of the 1st-of-month siren) is
# within its grace, so the catch-up every start-up runs sends nothing.
QUIET = datetime(2024, 6, 2, 1, 0, tzinfo=UTC)


async def start(
    start_daemon: Any, monkeypatch: pytest.MonkeyPatch, *schedules: dict[str, Any]
) -> tuple[Daemon, Schedules]:
    """A daemon with ``schedules``, once its start-up catch-up has run (and sent nothing).

    That catch-up reads the clock: left on the real one, it would send a run of weekly() whenever
    the suite runs on a Monday between 09:00 and 10:00 in Shanghai; left to run after a test has
    set its own clock, it would send the run the test means to send itself.
    """
    monkeypatch.setattr(broadcasts, "utcnow", lambda: QUIET)
    d = await start_daemon(schedules=list(schedules))
    schedules_ = d.client.app[SCHEDULES]
    scheduler = schedules_.scheduler
    assert scheduler is not None
    await until(lambda: scheduler.get_job("schedules:catch-up") is None, what="catch-up submitted")
    # APScheduler creates the job's task before it drops the job: one turn of the loop runs it,
    # and at QUIET it finds nothing due, so it is done in that turn.
    await asyncio.sleep(0)
    return d, schedules_


async def messages(d: Daemon) -> list[dict[str, Any]]:
    _, answer = await d.get("/v1/incidents?limit=100")
    return list(answer["incidents"])


async def test_a_run_goes_through_the_normal_path_marked_routine(
    start_daemon: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run is routed, rendered and delivered like any incident, marked routine, once."""
    d, schedules = await start(start_daemon, monkeypatch, weekly())
    first = await schedules.fire("traffic", fired_at())
    view = await d.settled(first.incident_id or "")
    assert (view["issuer"], view["source"], view["severity"]) == (
        "schedule:traffic",
        "schedule:traffic",
        "minor",
    )
    assert view["incident"]["details"] == {"category": "routine"}
    assert view["incident"]["occurred_at"] == "2024-06-03T01:00:00Z"  # 09:00 in Shanghai
    assert view["counts"] == {"delivered": 1}
    again = await schedules.fire("traffic", fired_at())
    assert (again.incident_id, again.new, first.new) == (first.incident_id, False, True)
    assert len(await messages(d)) == 1 and len(d.sink.received) == 1


async def test_the_scheduler_holds_a_job_per_schedule(
    start_daemon: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each schedule is a cron job whose next run is the crontab's next time in its zone."""
    _, schedules = await start(
        start_daemon, monkeypatch, weekly(), weekly(name="siren", cron="0 10 1 * *")
    )
    assert schedules.scheduler is not None
    job = schedules.scheduler.get_job("schedule:traffic")
    assert job.next_run_time.tzinfo is not None
    local = job.next_run_time.astimezone(ZoneInfo(SHANGHAI))
    assert (local.strftime("%a %H:%M"), job.max_instances, job.coalesce) == ("Mon 09:00", 1, True)
    siren = schedules.scheduler.get_job("schedule:siren").next_run_time.astimezone(
        ZoneInfo(SHANGHAI)
    )
    assert (siren.day, siren.hour) == (1, 10)


@pytest.mark.parametrize(
    ("misfire", "late", "sent"),
    [
        ("late_within_grace", timedelta(minutes=10), True),
        ("late_within_grace", timedelta(hours=2), False),
        ("skip", timedelta(minutes=10), False),
    ],
)
async def test_runs_missed_while_down_follow_the_policy(
    start_daemon: Any,
    monkeypatch: pytest.MonkeyPatch,
    misfire: str,
    late: timedelta,
    sent: bool,
) -> None:
    """Down over a run: sent once late within grace_s (and not again after a restart), or
    skipped, as the schedule says."""
    d, schedules = await start(start_daemon, monkeypatch, weekly(misfire=misfire, grace_s=3600))
    schedules.clock = lambda: fired_at() + late
    caught = await schedules.catch_up()
    assert [f.fire_at for f in caught] == ([fired_at()] if sent else [])
    assert len(await messages(d)) == int(sent)
    await d.client.close()
    again, schedules = await start(start_daemon, monkeypatch, weekly(misfire=misfire, grace_s=3600))
    schedules.clock = lambda: fired_at() + late + timedelta(minutes=1)
    assert await schedules.catch_up() == []
    assert len(await messages(again)) == int(sent)


async def test_a_run_later_than_grace_is_not_sent(
    start_daemon: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A scheduled run that starts more than grace_s late is dropped, not sent."""
    d, schedules = await start(start_daemon, monkeypatch, weekly(grace_s=60))
    schedules.clock = lambda: fired_at() + timedelta(minutes=5)
    assert await schedules.run_due("traffic") is None
    schedules.clock = lambda: fired_at() + timedelta(seconds=30)
    fired = await schedules.run_due("traffic")
    assert fired is not None and fired.new
    assert len(await messages(d)) == 1
