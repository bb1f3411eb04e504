"""Association across the feeds of a group: the pure decisions, and the configuration."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from alertcast.checks import load_checked
from alertcast.config import ConfigError
from alertcast.feeds.association import (
    GroupSettings,
    GroupState,
    Plan,
    Report,
    decide_group,
    group_settings,
)
from alertcast.feeds.events import QuakeEvent, alert_facts
from alertcast.feeds.lifecycle import Action
from alertcast.feeds.rules import FeedConfig
from alertcast.feeds.tracker import GroupTracker

from ._make import quake

CHINA = GroupSettings("china")
CENC_OFFICIAL = quake(
    source="cenc",
    event_id="CC20240402235811",
    ids=frozenset({"CC20240402235811"}),
    time=quake().time + timedelta(seconds=4),
    latitude=23.81,
    longitude=121.74,
    magnitude=7.3,
    place="台湾花莲县海域",
    report="official",
)


def report(
    ev: QuakeEvent,
    seq: int = 1,
    action: Action = Action.raise_,
    priority: int = 0,
    feed: str | None = None,
) -> Report:
    return Report(
        feed=feed or ev.source,
        event_id=ev.event_id,
        seq=seq,
        action=action,
        reason="matches the rule",
        rank=(priority, 1 if ev.report == "official" else 0),
        facts=alert_facts(ev),
        time=ev.time,
        latitude=ev.latitude,
        longitude=ev.longitude,
        body={"headline": f"M{ev.magnitude}", "source": ev.source},
    )


def run(state: GroupState, *reports: Report, raised: str = "inc_1") -> tuple[GroupState, Plan]:
    """Apply ``reports`` in turn, as the tracker would (a raise gets ``raised`` as incident)."""
    plan = None
    for r in reports:
        plan = decide_group(state, r, CHINA)
        state = plan.state
        if plan.decision.action is Action.raise_ and plan.gid:
            state = state.put(replace(state.events[plan.gid], incident_id=raised))
        state = GroupState.from_json(state.to_json())  # what the store keeps
    assert plan is not None
    return state, plan


def test_the_same_quake_from_two_feeds_is_one_event() -> None:
    """The first report raises; the second, within 60 s and 100 km, is associated."""
    state, first = run(GroupState(), report(quake(), priority=0))
    assert first.decision.action is Action.raise_ and first.body is not None
    state, second = run(state, report(quake(report="automatic", source="usgs2"), priority=0))
    assert second.decision.action is Action.associate
    assert len(state.events) == 1 and len(next(iter(state.events.values())).members) == 2


def test_the_more_authoritative_report_updates_once() -> None:
    """USGS automatic first, then CENC official (priority 10): one update stating CENC's
    facts; USGS's later revision no longer changes the incident."""
    state, _ = run(GroupState(), report(quake()))
    state, plan = run(state, report(CENC_OFFICIAL, priority=10))
    assert plan.decision.action is Action.update and plan.root == "inc_1"
    assert plan.issuer == "feed:cenc" and "magnitude" in plan.decision.changed
    state, plan = run(state, report(quake(magnitude=7.5, report="official"), 2, Action.update))
    assert plan.decision.action is Action.associate
    (event,) = state.events.values()
    assert event.owner == "cenc/CC20240402235811" and event.stated.magnitude == 7.3


def test_equal_rank_from_another_feed_is_absorbed() -> None:
    state, _ = run(GroupState(), report(quake()))
    _, plan = run(state, report(replace(CENC_OFFICIAL, report="automatic")))
    assert plan.decision.action is Action.associate


@pytest.mark.parametrize(
    ("seconds", "lat", "same"),
    [(4, 23.81, True), (59, 23.81, True), (61, 23.81, False), (4, 25.0, False)],
)
def test_window_and_distance(seconds: int, lat: float, same: bool) -> None:
    """60 s and 100 km by default (25.0° N is about 130 km north)."""
    other = replace(CENC_OFFICIAL, time=quake().time + timedelta(seconds=seconds), latitude=lat)
    state, _ = run(GroupState(), report(quake()), report(other, priority=10))
    assert (len(state.events) == 1) is same


def test_one_feed_never_associates_two_of_its_own_events() -> None:
    """An aftershock the same feed lists 20 s later and 10 km away is an event of its own."""
    after = quake(event_id="us7000abce", ids=frozenset({"us7000abce"}), magnitude=6.0)
    after = replace(after, time=quake().time + timedelta(seconds=20), latitude=23.9)
    state, plan = run(GroupState(), report(quake()), report(after))
    assert plan.decision.action is Action.raise_ and len(state.events) == 2


def test_withdrawal_cancels_only_when_nobody_else_reports_it() -> None:
    """CENC raised, USGS associated: USGS's deletion is absorbed; CENC's withdrawal (the last
    one standing) cancels."""
    state, _ = run(GroupState(), report(CENC_OFFICIAL, priority=10), report(quake()))
    gone = replace(report(quake(), 2, Action.cancel), reason="deleted by the source")
    state, plan = run(state, gone)
    assert plan.decision.action is Action.associate
    assert plan.decision.reason.startswith("withdrawn by usgs (deleted by the source)")
    state, plan = run(state, report(CENC_OFFICIAL, 2, Action.cancel, priority=10))
    assert (plan.decision.action, plan.root) == (Action.cancel, "inc_1")
    assert next(iter(state.events.values())).cancelled


def test_owner_withdrawn_hands_over_to_the_remaining_report() -> None:
    """The owner withdraws while another feed still reports the quake: update to its facts."""
    state, _ = run(GroupState(), report(quake()), report(CENC_OFFICIAL, priority=10))
    state, plan = run(state, report(CENC_OFFICIAL, 2, Action.cancel, priority=10))
    assert plan.decision.action is Action.update and plan.issuer == "feed:usgs"
    assert plan.body == {"headline": "M7.4", "source": "usgs"}


def test_a_report_is_applied_once() -> None:
    """The same report handed over twice (a crash before the feed confirmed) does nothing."""
    state, _ = run(GroupState(), report(quake()))
    again = decide_group(state, report(quake()), CHINA)
    assert again.done and again.decision.action is Action.raise_


def test_a_cancelled_event_raises_again() -> None:
    state, _ = run(GroupState(), report(quake()), report(quake(), 2, Action.cancel))
    _, plan = run(state, report(quake(magnitude=7.6), 3))
    assert plan.decision.action is Action.raise_


def test_a_report_dated_in_the_future_forgets_no_event() -> None:
    """The group's row keeps 45 days of events, counted back from the newest origin time but
    never from past the clock: a report dated a year ahead (a bad push, a wrong year) must not
    prune today's events, or USGS's deletion of its copy would cancel CENC's alert alone."""
    now = datetime.now(UTC)
    cenc = replace(CENC_OFFICIAL, time=now, updated=None)
    usgs = quake(time=now, updated=None)
    state, _ = run(GroupState(), report(cenc, priority=10), report(usgs))
    ahead = quake(event_id="us9", ids=frozenset({"us9"}), time=now + timedelta(days=400))
    state, _ = run(state, replace(report(ahead), latitude=0.0, longitude=0.0))
    stored = GroupTracker(CHINA, Any, Any)._row(state, None, 1)  # type: ignore[arg-type]
    kept = GroupState.from_json(stored.known)
    assert set(kept.events) == {"cenc/CC20240402235811", "usgs/us9"}
    gone = replace(report(usgs, 2, Action.cancel), incident_id="inc_1")
    plan = decide_group(kept, gone, CHINA)
    assert (plan.decision.action, plan.root) == (Action.associate, None)


# -- configuration ---------------------------------------------------------------------------
def feed(**keys: Any) -> dict[str, Any]:
    return {"type": "usgs", "url": "https://feed.test/x"} | keys


def test_group_settings_and_defaults() -> None:
    feeds = [
        FeedConfig.model_validate(feed(name="a", associate="china", associate_window_s=30)),
        FeedConfig.model_validate(feed(name="b", associate="china", priority=5)),
    ]
    (china,) = group_settings(feeds).values()
    assert (china.window, china.distance_km) == (timedelta(seconds=30), 100.0)


def _toml(value: Any) -> str:
    if isinstance(value, str):
        return f'"{value}"'
    return str(value).lower() if isinstance(value, bool) else str(value)


def problems(tmp_path: Path, *feeds: dict[str, Any]) -> dict[str, str]:
    text = "".join(
        "[[feeds]]\n" + "".join(f"{k} = {_toml(v)}\n" for k, v in f.items()) for f in feeds
    )
    path = tmp_path / "alertcast.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_checked(path)
    return dict(caught.value.problems)


def test_config_errors_name_their_path(tmp_path: Path) -> None:
    """Keys of one feed first (pydantic), then, once every feed is valid, the groups."""
    found = problems(
        tmp_path,
        feed(name="usgs", associate="china"),
        feed(name="alone", priority=3),
        feed(name="odd", associate="a b"),
        feed(name="far", associate="x", associate_distance_km=0),
    )
    assert set(found) == {"feeds[1]", "feeds[2].associate", "feeds[3].associate_distance_km"}
    assert "only apply to a feed that sets associate" in found["feeds[1]"]
    found = problems(
        tmp_path,
        feed(name="usgs", associate="china", associate_window_s=60, language="zh-CN"),
        feed(name="cenc", type="cenc", associate="china", associate_window_s=30),
        feed(name="fdsn", type="fdsn", associate="chin"),
    )
    assert set(found) == {"feeds[1].associate_window_s", "feeds[2].associate"}
    assert "differs from 60.0 of feeds[0] (usgs)" in found["feeds[1].associate_window_s"]
    assert "has no other feed" in found["feeds[2].associate"]


def test_config_group_must_agree_on_language_and_status(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        feed(name="usgs", associate="china"),
        feed(name="cenc", type="cenc", associate="china", status="exercise"),
    )
    assert set(found) == {"feeds[1].language", "feeds[1].status"}
    assert "'zh-CN' differs from 'en'" in found["feeds[1].language"]


def test_config_a_good_group_loads(tmp_path: Path) -> None:
    path = tmp_path / "alertcast.toml"
    path.write_text(
        '[[feeds]]\nname = "cenc"\ntype = "cenc"\nassociate = "china"\npriority = 10\n'
        '[[feeds]]\nname = "usgs"\ntype = "usgs"\nassociate = "china"\nlanguage = "zh-CN"\n'
        "associate_distance_km = 150\n",
        encoding="utf-8",
    )
    config = load_checked(path)
    assert [f.associate for f in config.feeds] == ["china", "china"]


def test_an_incident_raised_before_the_feed_joined_is_its_own() -> None:
    """A feed's event alerted before ``associate`` was set: its withdrawal cancels that
    incident, its update updates it, though no event of the group holds it."""
    gone = replace(report(quake(), 5, Action.cancel), incident_id="inc_old")
    _, plan = run(GroupState(), gone)
    assert (plan.decision.action, plan.root) == (Action.cancel, "inc_old")
    moved = replace(report(quake(magnitude=7.6), 5, Action.update), incident_id="inc_old")
    _, plan = run(GroupState(), moved)
    assert (plan.decision.action, plan.root) == (Action.update, "inc_old")


def test_check_config_names_the_path(tmp_path: Path) -> None:
    """``alertcast check-config`` prints each problem with its path and exits non-zero."""
    path = tmp_path / "alertcast.toml"
    path.write_text(
        '[[feeds]]\nname = "cenc"\ntype = "cenc"\nassociate = "china"\n'
        '[[feeds]]\nname = "usgs"\ntype = "usgs"\nassociate = "china"\n',
        encoding="utf-8",
    )
    result = subprocess.run(
        [sys.executable, "-m", "alertcast.cli", "check-config", "--no-env", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "feeds[1].language: 'en' differs from 'zh-CN' of feeds[0] (cenc)" in result.stderr
