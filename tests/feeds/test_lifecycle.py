"""Event lifecycle: sequences of sightings and the raise/update/cancel/ignore they produce."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

import pytest

from alertcast.feeds import cenc, usgs
from alertcast.feeds.events import QuakeEvent
from alertcast.feeds.lifecycle import (
    Action,
    Decision,
    KnownEvent,
    absorbed,
    decide,
    find_known,
    remember,
    same_event,
    vanished,
)
from alertcast.feeds.rules import FeedConfig

from ._make import cenc_bytes, quake, usgs_bytes
from .test_cenc import NOW

MakeConfig = Callable[..., FeedConfig]
T0 = datetime(2024, 4, 3, 0, 10, tzinfo=UTC)


@dataclass
class FakeStore:
    """What the daemon's durable event table does, in memory: find, decide, act, remember."""

    cfg: FeedConfig
    known: list[KnownEvent] = field(default_factory=list)
    raised: int = 0

    def see(self, ev: QuakeEvent) -> Decision:
        known = find_known(self.known, ev)
        return self.apply(known, ev, decide(known, ev, self.cfg))

    def deleted(self, event_id: str) -> Decision:
        known = next(k for k in self.known if event_id in k.ids)
        return self.apply(known, None, decide(known, None, self.cfg))

    def run(self, sightings: Iterable[QuakeEvent]) -> list[tuple[Action, tuple[str, ...]]]:
        return [(d.action, d.changed) for d in map(self.see, sightings)]

    def apply(self, known: KnownEvent | None, ev: QuakeEvent | None, d: Decision) -> Decision:
        incident_id = None
        if d.action is Action.raise_:
            self.raised += 1
            incident_id = f"inc-{self.raised}"
        new = remember(known, ev, d, incident_id)
        if known is not None:
            self.known.remove(known)
        if new is not None:
            self.known.append(new)
        return d


def test_automatic_then_official_with_new_place(feed_config: MakeConfig) -> None:
    """CENC Lushan: automatic M5.9 raises, official M7.0 at a new place updates the same one."""
    store = FakeStore(feed_config(type="cenc", min_magnitude=4.0))
    auto, official = cenc.parse_feed(cenc_bytes("cenc_google.json"), now=NOW).events
    assert store.run([auto, official]) == [
        (Action.raise_, ()),
        (Action.update, ("magnitude", "depth_km", "place", "report")),
    ]
    (known,) = store.known
    assert (known.incident_id, known.ids) == ("inc-1", auto.ids | official.ids)
    assert store.run([auto, official]) == [(Action.ignore, ()), (Action.ignore, ())]


def test_official_first_then_automatic_row(feed_config: MakeConfig) -> None:
    """A list served newest first: the automatic row after the official one is stale."""
    store = FakeStore(feed_config(type="cenc"))
    auto, official = cenc.parse_feed(cenc_bytes("cenc_google.json"), now=NOW).events
    assert store.run([official, auto]) == [(Action.raise_, ()), (Action.ignore, ())]
    assert store.see(auto).reason == "automatic report after the official one"


def test_merged_preferred_id_is_the_same_event(feed_config: MakeConfig) -> None:
    """A new preferred id whose ``ids`` overlap a known event's is that event, not a new one."""
    store = FakeStore(feed_config())
    first = quake(ids=frozenset({"us7000abcd"}))
    merged = quake(
        event_id="pt24093050",
        ids=frozenset({"pt24093050", "us7000abcd", "at00sbh5zb"}),
        updated=T0 + timedelta(minutes=5),
    )
    assert store.run([first, merged]) == [(Action.raise_, ()), (Action.ignore, ())]
    (known,) = store.known
    assert known.event_id == "us7000abcd"
    assert known.ids == {"us7000abcd", "pt24093050", "at00sbh5zb"}
    later = quake(
        event_id="at00sbh5zb",
        ids=frozenset({"at00sbh5zb"}),
        depth_km=40.0,
        updated=T0 + timedelta(minutes=10),
    )
    assert store.run([later]) == [(Action.update, ("depth_km",))]


def test_real_feed_replayed_is_idempotent(feed_config: MakeConfig) -> None:
    """Seeing the same real feed twice raises each matching event once and then nothing."""
    store = FakeStore(feed_config(min_magnitude=6.0))
    events = usgs.parse_feed(usgs_bytes("significant_month.geojson")).events
    first = store.run(events)
    assert [a for a, _ in first].count(Action.raise_) == 8
    assert {a for a, _ in store.run(events)} == {Action.ignore}


def test_deleted_event_is_cancelled(feed_config: MakeConfig) -> None:
    """An alerted event confirmed deleted is cancelled; a second deletion changes nothing."""
    store = FakeStore(feed_config())
    store.see(quake())
    decision = store.deleted("us7000abcd")
    assert (decision.action, decision.reason) == (Action.cancel, "deleted by the source")
    assert store.deleted("us7000abcd").action is Action.ignore


def test_deleted_event_never_alerted(feed_config: MakeConfig) -> None:
    """Deleting an event that never alerted retracts nothing."""
    store = FakeStore(feed_config(min_magnitude=8.0))
    store.see(quake())
    assert store.deleted("us7000abcd").action is Action.ignore
    assert decide(None, None, feed_config()).action is Action.ignore


def test_below_threshold_after_update_is_cancelled(feed_config: MakeConfig) -> None:
    """Revised below the rule, an alerted event is cancelled with the rule's reason."""
    store = FakeStore(feed_config(min_magnitude=7.0))
    store.see(quake())
    decision = store.see(quake(magnitude=6.8, updated=T0 + timedelta(minutes=9)))
    assert decision.action is Action.cancel
    assert decision.reason == "no longer matches the rule: magnitude 6.8 is below min_magnitude 7"
    assert store.run([quake(magnitude=6.8, updated=T0 + timedelta(minutes=20))]) == [
        (Action.ignore, ())
    ]
    again = store.see(quake(magnitude=7.1, updated=T0 + timedelta(minutes=30)))
    assert (again.action, store.known[0].incident_id) == (Action.raise_, "inc-2")


@pytest.mark.parametrize(
    ("changes", "action", "changed"),
    [
        ({"depth_km": 34.6, "magnitude": 7.44}, Action.ignore, ()),
        ({"time": quake().time + timedelta(seconds=2)}, Action.ignore, ()),
        ({"magnitude_type": "mw", "status": "reviewed"}, Action.ignore, ()),
        ({"magnitude": 7.2}, Action.update, ("magnitude",)),
        ({"depth_km": 40.0}, Action.update, ("depth_km",)),
        ({"time": quake().time + timedelta(minutes=1)}, Action.update, ("time",)),
        ({"place": "2024 Hualien, Taiwan Earthquake"}, Action.update, ("place",)),
        ({"pager": "orange"}, Action.update, ("pager",)),
        ({"report": "official"}, Action.update, ("report",)),
    ],
)
def test_revision(
    feed_config: MakeConfig, changes: dict[str, object], action: Action, changed: tuple[str, ...]
) -> None:
    """A newer revision updates only when something the alert states has changed."""
    store = FakeStore(feed_config())
    store.see(quake())
    revision = quake(updated=T0 + timedelta(minutes=3), **changes)
    assert store.run([revision]) == [(action, changed)]


def test_older_revision_is_stale(feed_config: MakeConfig) -> None:
    """A revision older than the one already seen is ignored, whatever it says."""
    store = FakeStore(feed_config())
    store.see(quake())
    decision = store.see(quake(magnitude=6.0, updated=T0 - timedelta(minutes=1)))
    assert (decision.action, decision.reason) == (
        Action.ignore,
        "older revision than the one already seen",
    )


def test_below_rule_then_revised_above_raises(feed_config: MakeConfig) -> None:
    """An event first seen below the rule raises when a revision lifts it above."""
    store = FakeStore(feed_config(min_magnitude=7.5))
    assert store.run([quake(), quake(magnitude=7.6, updated=T0 + timedelta(hours=1))]) == [
        (Action.ignore, ()),
        (Action.raise_, ()),
    ]


def test_official_on_automatic_only_feed_does_not_cancel(feed_config: MakeConfig) -> None:
    """The report-kind rule gates raising; it never cancels an alerted event."""
    store = FakeStore(feed_config(reports=["automatic"]))
    store.see(quake())
    assert store.run([quake(report="official", updated=T0 + timedelta(minutes=5))]) == [
        (Action.update, ("report",))
    ]


AUTO = quake(source="cenc", event_id="AU1", ids=frozenset({"AU1"}), time=NOW, latitude=30.1)
OFFICIAL = replace(AUTO, event_id="CC1", ids=frozenset({"CC1"}), latitude=30.3, report="official")


@pytest.mark.parametrize(
    ("first", "second", "same"),
    [
        (AUTO, OFFICIAL, True),
        (AUTO, replace(OFFICIAL, time=NOW + timedelta(seconds=45)), True),
        (AUTO, replace(OFFICIAL, time=NOW + timedelta(seconds=90)), False),
        (AUTO, replace(OFFICIAL, latitude=31.3), False),  # 133 km north
        (replace(AUTO, report="official"), OFFICIAL, False),  # two official reports: two events
        (AUTO, replace(OFFICIAL, source="usgs"), False),
        (
            AUTO,
            replace(OFFICIAL, ids=frozenset({"CC1", "AU1"}), time=NOW + timedelta(hours=1)),
            True,
        ),
    ],
)
def test_same_event(first: QuakeEvent, second: QuakeEvent, same: bool) -> None:
    """Shared ids match; CENC automatic/official rows match when close in time and space."""
    known = remember(None, first, Decision(Action.raise_, ""), "inc-1")
    assert known is not None
    assert same_event(known, second) is same


def test_absorbed_duplicates(feed_config: MakeConfig) -> None:
    """When a source merges two alerted events, the one not kept is cancelled as a duplicate."""
    store = FakeStore(feed_config())
    store.run([quake(), quake(event_id="pt1", ids=frozenset({"pt1"}), time=T0)])
    merged = quake(ids=frozenset({"us7000abcd", "pt1"}))
    kept = find_known(store.known, merged)
    assert kept is not None and kept.event_id == "us7000abcd"
    ((other, decision),) = absorbed(store.known, merged, kept)
    assert other.event_id == "pt1"
    assert (decision.action, decision.reason) == (
        Action.cancel,
        "duplicate of us7000abcd: the source merged the ids",
    )
    store.apply(other, None, decision)
    assert store.run([merged, merged]) == [(Action.ignore, ()), (Action.ignore, ())]
    assert store.raised == 2


def test_vanished(feed_config: MakeConfig) -> None:
    """Only alerted, live events inside the window (less the margin) count as vanished."""
    store = FakeStore(feed_config(min_magnitude=7.0))
    now = quake().time + timedelta(hours=12)
    store.run([
        quake(),
        quake(event_id="old", ids=frozenset({"old"}), time=now - timedelta(hours=23, minutes=55)),
        quake(event_id="small", ids=frozenset({"small"}), magnitude=3.0),
        quake(event_id="still", ids=frozenset({"still"}), time=T0 + timedelta(hours=1)),
    ])  # fmt: skip
    present = [quake(event_id="x", ids=frozenset({"x", "still"}))]
    gone = vanished(store.known, present, window=timedelta(days=1), now=now)
    assert [k.event_id for k in gone] == ["us7000abcd"]


def test_known_event_json_round_trip(feed_config: MakeConfig) -> None:
    """A KnownEvent survives its JSON column unchanged."""
    store = FakeStore(feed_config())
    store.see(quake(depth_km=None))
    (known,) = store.known
    assert KnownEvent.from_json(known.to_json()) == known
