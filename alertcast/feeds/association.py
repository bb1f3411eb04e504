"""Association across feeds: one incident per real event, whichever feeds of a group report it.

Feeds whose ``[[feeds]]`` entries name the same ``associate`` group share events, the way a
seismic network associates the events of several catalogues. Each feed still runs its own
lifecycle (:mod:`alertcast.feeds.lifecycle`) on its own events; what that lifecycle would do to
an incident (raise, update, cancel) is turned into a :class:`Report` to the group, and
:func:`decide_group` says what the report does to the group's :class:`GroupEvent`. Pure
decisions; :class:`alertcast.feeds.tracker.GroupTracker` applies them durably.

**Same event.** A report joins the group event whose origin is within the group's window
(``associate_window_s``, default 60 s) and distance (``associate_distance_km``, default 100 km)
of its own, the closest in time, provided that event holds no other live report from the same
feed (two events of one feed are two events: a catalogue does not list one quake twice).

**Authority.** A report's rank is ``(priority, official)``: the feed's ``priority`` first, then
an official (reviewed) report above an automatic one. The *owner* is the report whose facts
the incident states. A report updates the incident when it is the owner's own revision, or when
it outranks the owner (strictly), and only if what it states (:func:`~alertcast.feeds.events.
alert_facts`) differs from what the incident states; it then becomes the owner. Any other
report is *associated*: recorded, nothing sent.

**Withdrawals.** A report withdrawn by its feed (deleted by the source, revised below the
feed's rule, or merged into another event by the source) cancels the incident only when no
other report of the group still stands behind it. Otherwise the best remaining report becomes
the owner, and if what it states differs, the incident is updated to it.

=======================================  ===================================================
report                                   effect on the group's incident
=======================================  ===================================================
first of its event in the group          raise
same event, owner's revision, new facts  update
same event, outranks the owner,          update (it becomes the owner)
new facts
same event, otherwise                    associate (recorded, nothing sent)
withdrawn, others still report it        associate, or update to the new owner's facts
withdrawn, nobody else reports it        cancel
report of an event whose incident was    raise (a new incident)
cancelled or refused
update or withdrawal of an incident the  update or cancel it (the feed raised it before it
group holds no event for                 joined the group: it is that feed's alone)
=======================================  ===================================================
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from alertcast.feeds._geo import distance_km
from alertcast.feeds.events import AlertFacts
from alertcast.feeds.lifecycle import Action, Decision
from alertcast.feeds.rules import FeedConfig

__all__ = [
    "DEFAULT_DISTANCE_KM",
    "DEFAULT_WINDOW_S",
    "GroupEvent",
    "GroupSettings",
    "GroupState",
    "Member",
    "Plan",
    "Rank",
    "Report",
    "decide_group",
    "group_problems",
    "group_settings",
    "rank_of",
]

DEFAULT_WINDOW_S = 60.0
DEFAULT_DISTANCE_KM = 100.0
# Longer than any feed keeps its own events (a month feed's window plus a week), so a late
# revision or deletion always finds the group event its feed's event belongs to.
RETAIN = timedelta(days=45)

Rank = tuple[int, int]


def rank_of(cfg: FeedConfig, report: str) -> Rank:
    """The feed's priority first, then official (1) above automatic (0)."""
    return (cfg.priority, 1 if report == "official" else 0)


# -- configuration ---------------------------------------------------------------------------
@dataclass(frozen=True)
class GroupSettings:
    name: str
    window: timedelta = timedelta(seconds=DEFAULT_WINDOW_S)
    distance_km: float = DEFAULT_DISTANCE_KM


def group_settings(feeds: Iterable[FeedConfig]) -> dict[str, GroupSettings]:
    """Every ``associate`` group of ``feeds`` with its window and distance."""
    out: dict[str, GroupSettings] = {}
    for cfg in feeds:
        if cfg.associate is None:
            continue
        s = out.setdefault(cfg.associate, GroupSettings(cfg.associate))
        if cfg.associate_window_s is not None:
            s = replace(s, window=timedelta(seconds=cfg.associate_window_s))
        if cfg.associate_distance_km is not None:
            s = replace(s, distance_km=cfg.associate_distance_km)
        out[cfg.associate] = s
    return out


def _language(cfg: FeedConfig) -> str:
    return cfg.language or ("zh-CN" if cfg.type == "cenc" else "en")


def group_problems(feeds: Sequence[FeedConfig]) -> list[tuple[str, str]]:
    """``(path, message)`` for every group that cannot work as configured.

    A group needs two feeds or more; its feeds agree on the window and distance (where they
    state them), on ``status`` (an update cannot change it) and on the language (one incident
    is one thread of messages in one language).
    """
    problems: list[tuple[str, str]] = []
    first: dict[tuple[str, str], tuple[int, Any]] = {}
    members: dict[str, list[int]] = {}
    for i, cfg in enumerate(feeds):
        if cfg.associate is None:
            continue
        members.setdefault(cfg.associate, []).append(i)
        keys: list[tuple[str, Any]] = [
            ("associate_window_s", cfg.associate_window_s),
            ("associate_distance_km", cfg.associate_distance_km),
            ("status", cfg.status.value),
            ("language", _language(cfg)),
        ]
        for key, value in keys:
            if value is None:
                continue
            j, seen = first.setdefault((cfg.associate, key), (i, value))
            if seen != value:
                problems.append(
                    (
                        f"feeds[{i}].{key}",
                        f"{value!r} differs from {seen!r} of feeds[{j}] ({feeds[j].name}) in "
                        f"associate group {cfg.associate!r}; the feeds of a group agree on {key}",
                    )
                )
    for group, indexes in members.items():
        if len(indexes) < 2:
            problems.append(
                (
                    f"feeds[{indexes[0]}].associate",
                    f"associate group {group!r} has no other feed; name the same group on "
                    "every feed that reports the same events",
                )
            )
    return problems


# -- reports and group state -----------------------------------------------------------------
@dataclass(frozen=True)
class Report:
    """What one feed's lifecycle would do to an incident, addressed to the group instead.

    ``seq`` is the version of the feed's event row that claimed it: a report is applied once.
    ``body``: the incident this report states (raise, update); ``incident_id``: the incident the
    feed's event is linked to, if any.
    """

    feed: str
    event_id: str
    seq: int
    action: Action
    reason: str
    rank: Rank
    facts: AlertFacts
    time: datetime
    latitude: float
    longitude: float
    body: dict[str, Any] | None = None
    incident_id: str | None = None

    @property
    def member(self) -> str:
        return f"{self.feed}/{self.event_id}"

    @property
    def issuer(self) -> str:
        return f"feed:{self.feed}"

    def to_json(self) -> dict[str, Any]:
        return {
            "feed": self.feed,
            "event_id": self.event_id,
            "seq": self.seq,
            "action": self.action.value,
            "reason": self.reason,
            "rank": list(self.rank),
            "facts": list(self.facts),
            "time": self.time.isoformat(),
            "latitude": self.latitude,
            "longitude": self.longitude,
            "body": self.body,
            "incident_id": self.incident_id,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Report:
        return cls(
            **{
                **data,
                "action": Action(data["action"]),
                "rank": _rank(data["rank"]),
                "facts": AlertFacts(*data["facts"]),
                "time": datetime.fromisoformat(data["time"]),
            }
        )


@dataclass(frozen=True)
class Member:
    """One feed's event in a group event: its last report, whether it still stands behind it,
    and what that report did (``last``, ``reason``; for idempotent replays)."""

    feed: str
    event_id: str
    seq: int
    rank: Rank
    facts: AlertFacts
    live: bool
    last: str
    reason: str
    body: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        return {**self.__dict__, "rank": list(self.rank), "facts": list(self.facts)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Member:
        return cls(**{**data, "rank": _rank(data["rank"]), "facts": AlertFacts(*data["facts"])})


@dataclass(frozen=True)
class GroupEvent:
    """One real event as the group knows it: its incident, whose facts it states (``owner``,
    ``stated``), the owner's origin, and every feed's event associated with it."""

    gid: str
    incident_id: str | None
    cancelled: bool
    time: datetime
    latitude: float
    longitude: float
    owner: str
    owner_rank: Rank
    stated: AlertFacts
    members: Mapping[str, Member] = field(default_factory=dict)

    @property
    def alive(self) -> bool:
        """Its incident stands (raised, not cancelled, not refused)."""
        return self.incident_id is not None and not self.cancelled

    def to_json(self) -> dict[str, Any]:
        return {
            "gid": self.gid,
            "incident_id": self.incident_id,
            "cancelled": self.cancelled,
            "time": self.time.isoformat(),
            "latitude": self.latitude,
            "longitude": self.longitude,
            "owner": self.owner,
            "owner_rank": list(self.owner_rank),
            "stated": list(self.stated),
            "members": {k: m.to_json() for k, m in sorted(self.members.items())},
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> GroupEvent:
        return cls(
            **{
                **data,
                "time": datetime.fromisoformat(data["time"]),
                "owner_rank": _rank(data["owner_rank"]),
                "stated": AlertFacts(*data["stated"]),
                "members": {k: Member.from_json(m) for k, m in data["members"].items()},
            }
        )


@dataclass(frozen=True)
class GroupState:
    """Every recent event of one group (the JSON of one durable row)."""

    events: Mapping[str, GroupEvent] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"events": [e.to_json() for _, e in sorted(self.events.items())]}

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> GroupState:
        events = [GroupEvent.from_json(e) for e in (data or {}).get("events", [])]
        return cls({e.gid: e for e in events})

    def put(self, event: GroupEvent) -> GroupState:
        return GroupState({**self.events, event.gid: event})

    def holding(self, member: str) -> GroupEvent | None:
        return next((e for e in self.events.values() if member in e.members), None)

    def pruned(self, now: datetime) -> GroupState:
        """Without events older than :data:`RETAIN`."""
        return GroupState({g: e for g, e in self.events.items() if e.time >= now - RETAIN})


@dataclass(frozen=True)
class Plan:
    """What a report does: the group's new state, and the effective ``decision`` on the group
    event ``gid`` (raise, update, cancel: act on ``root`` with ``body``, as ``issuer``;
    associate or ignore: nothing to send). ``done``: the report was applied before."""

    state: GroupState
    gid: str | None
    decision: Decision
    root: str | None = None
    body: dict[str, Any] | None = None
    issuer: str = ""
    done: bool = False


def decide_group(state: GroupState, report: Report, settings: GroupSettings) -> Plan:
    """What ``report`` does to the group whose events are ``state``."""
    event = state.holding(report.member)
    if event is not None:
        held = event.members[report.member]
        if held.seq >= report.seq:
            return Plan(state, event.gid, Decision(Action(held.last), held.reason), done=True)
    elif report.incident_id is not None and report.action is not Action.raise_:
        return _adopt(state, report)
    elif report.action is not Action.cancel:
        event = _match(state, report, settings)
    if event is None:
        if report.action is Action.cancel:
            decision = Decision(Action.ignore, "not associated with any event of the group")
            return Plan(state, None, decision)
        return _found(state, report, f"{report.reason} (first report in the group)", None)
    if report.action is Action.cancel:
        return _withdraw(state, event, report)
    if not event.alive:
        why = f"{report.reason} (its earlier incident no longer stands)"
        return _found(state, report, why, event)
    return _report(state, event, report)


def _match(state: GroupState, report: Report, settings: GroupSettings) -> GroupEvent | None:
    def close(e: GroupEvent) -> bool:
        apart = distance_km(e.latitude, e.longitude, report.latitude, report.longitude)
        taken = any(m.live and m.feed == report.feed for m in e.members.values())
        near = abs(e.time - report.time) <= settings.window and apart <= settings.distance_km
        return near and not taken

    found = [e for e in state.events.values() if close(e)]
    return min(found, key=lambda e: (not e.alive, abs(e.time - report.time)), default=None)


def _member(report: Report, decision: Decision, live: bool = True) -> Member:
    return Member(
        feed=report.feed,
        event_id=report.event_id,
        seq=report.seq,
        rank=report.rank,
        facts=report.facts,
        live=live,
        last=decision.action.value,
        reason=decision.reason,
        body=report.body if live else None,  # only a live report can be stated later
    )


def _found(state: GroupState, report: Report, reason: str, old: GroupEvent | None) -> Plan:
    """``report`` raises an incident: a new group event, or ``old`` whose alert is gone."""
    decision = Decision(Action.raise_, reason)
    members = {**(old.members if old else {}), report.member: _member(report, decision)}
    event = GroupEvent(
        gid=old.gid if old else report.member,
        incident_id=None,
        cancelled=False,
        time=report.time,
        latitude=report.latitude,
        longitude=report.longitude,
        owner=report.member,
        owner_rank=report.rank,
        stated=report.facts,
        members=members,
    )
    return Plan(state.put(event), event.gid, decision, None, report.body, report.issuer)


def _adopt(state: GroupState, report: Report) -> Plan:
    """An update or withdrawal of an incident no event of the group holds (raised before the
    feed joined the group): it is this feed's alone, so it acts on it as a lone feed would."""
    assert report.incident_id is not None
    cancel = report.action is Action.cancel
    decision = Decision(report.action, report.reason)
    event = GroupEvent(
        gid=report.member,
        incident_id=report.incident_id,
        cancelled=cancel,
        time=report.time,
        latitude=report.latitude,
        longitude=report.longitude,
        owner=report.member,
        owner_rank=report.rank,
        stated=report.facts,
        members={report.member: _member(report, decision, live=not cancel)},
    )
    return Plan(
        state.put(event), event.gid, decision, report.incident_id, report.body, report.issuer
    )


def _report(state: GroupState, event: GroupEvent, report: Report) -> Plan:
    """A raise or update of a live event: update if it is the owner's or outranks it."""
    owner = event.members.get(event.owner)
    by = owner.feed if owner else event.owner.split("/", 1)[0]
    own = report.member == event.owner
    if not own and report.rank <= event.owner_rank:
        decision = Decision(
            Action.associate,
            f"associated with incident {event.incident_id}, stated from {by}'s report "
            f"(rank {_show(event.owner_rank)} >= {_show(report.rank)})",
        )
        members = {**event.members, report.member: _member(report, decision)}
        return Plan(state.put(replace(event, members=members)), event.gid, decision)
    changed = _changed(event.stated, report.facts)
    moved = replace(
        event,
        owner=report.member,
        owner_rank=report.rank,
        time=report.time,
        latitude=report.latitude,
        longitude=report.longitude,
    )
    if not changed:
        decision = Decision(
            Action.associate,
            f"associated with incident {event.incident_id}: it states the same facts",
        )
        members = {**event.members, report.member: _member(report, decision)}
        return Plan(state.put(replace(moved, members=members)), event.gid, decision)
    why = report.reason if own else f"{report.feed}'s report outranks {by}'s"
    decision = Decision(Action.update, f"{why}; changed: {', '.join(changed)}", changed)
    members = {**event.members, report.member: _member(report, decision)}
    new = replace(moved, stated=report.facts, members=members)
    return Plan(state.put(new), event.gid, decision, event.incident_id, report.body, report.issuer)


def _withdraw(state: GroupState, event: GroupEvent, report: Report) -> Plan:
    """The feed no longer stands behind its report: cancel only if nobody else does."""
    others = [m for k, m in event.members.items() if m.live and k != report.member]
    if not others:
        if event.alive:
            decision = Decision(Action.cancel, report.reason)
            root = event.incident_id
        else:
            decision = Decision(Action.ignore, f"{report.reason}, no alert to retract")
            root = None
        members = {**event.members, report.member: _member(report, decision, live=False)}
        new = replace(event, members=members, cancelled=event.cancelled or root is not None)
        return Plan(state.put(new), event.gid, decision, root, None, report.issuer)
    names = ", ".join(sorted({m.feed for m in others}))
    note = f"withdrawn by {report.feed} ({report.reason}); still reported by {names}"
    if report.member != event.owner:
        decision = Decision(Action.associate, note)
        members = {**event.members, report.member: _member(report, decision, live=False)}
        return Plan(state.put(replace(event, members=members)), event.gid, decision)
    best = max(others, key=lambda m: m.rank)
    key = f"{best.feed}/{best.event_id}"
    changed = _changed(event.stated, best.facts)
    if changed and best.body is not None and event.alive:
        decision = Decision(Action.update, f"{note}: now stating {best.feed}'s report", changed)
        body, root, issuer = best.body, event.incident_id, f"feed:{best.feed}"
        stated = best.facts
    else:
        decision = Decision(Action.associate, note)
        body, root, issuer, stated = None, None, "", event.stated
    members = {**event.members, report.member: _member(report, decision, live=False)}
    new = replace(event, owner=key, owner_rank=best.rank, stated=stated, members=members)
    return Plan(state.put(new), event.gid, decision, root, body, issuer)


def _changed(stated: AlertFacts, facts: AlertFacts) -> tuple[str, ...]:
    return tuple(f for f in AlertFacts._fields if getattr(facts, f) != getattr(stated, f))


def _rank(value: Sequence[int]) -> Rank:
    return (int(value[0]), int(value[1]))


def _show(rank: Rank) -> str:
    return f"priority {rank[0]}, {'official' if rank[1] else 'automatic'}"
