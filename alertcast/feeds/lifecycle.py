"""Event lifecycle: what one more sighting of an event means for its incident. Pure decisions.

The store remembers a :class:`KnownEvent` per real event (every id it went by, the facts its last
alert stated, whether it alerted). For each parsed event the caller finds the known one with
:func:`find_known`, asks :func:`decide`, acts on the :class:`Decision`, then stores
:func:`remember`. An event that vanished from its feed (:func:`vanished`) and that the source
confirms deleted (:func:`alertcast.feeds.fdsn.is_deleted`) is decided with ``ev=None``.

=================================  ==========================================================
situation                          decision
=================================  ==========================================================
new event that matches the rule    raise
new event that does not            ignore (the rule's reason)
older revision, or automatic       ignore (stale)
report after the official one
alerted, still matches, a stated   update (the changed fact names)
fact changed
alerted, still matches, nothing    ignore
stated changed
alerted, now below the rule        cancel (the rule's reason)
never alerted, now matches         raise
cancelled, matches again           raise (a new incident)
confirmed deleted, was alerted     cancel
=================================  ==========================================================
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from alertcast.feeds._geo import distance_km
from alertcast.feeds.events import AlertFacts, QuakeEvent, alert_facts
from alertcast.feeds.rules import FeedConfig, matches

__all__ = [
    "Action",
    "Decision",
    "KnownEvent",
    "absorbed",
    "decide",
    "find_known",
    "remember",
    "same_event",
    "vanished",
]

# An automatic and an official CENC row (different ids) are one event when this close.
MATCH_WINDOW = timedelta(seconds=60)
MATCH_DISTANCE_KM = 100.0
VANISH_MARGIN = timedelta(minutes=10)


class Action(StrEnum):
    raise_ = "raise"
    update = "update"
    cancel = "cancel"
    ignore = "ignore"
    # Recorded as part of an incident another feed of its associate group raised; nothing sent.
    associate = "associate"


@dataclass(frozen=True)
class Decision:
    action: Action
    reason: str
    changed: tuple[str, ...] = ()


@dataclass(frozen=True)
class KnownEvent:
    """What the store keeps per real event; ``facts`` are those its last alert stated."""

    source: str
    event_id: str
    ids: frozenset[str]
    facts: AlertFacts
    time: datetime
    latitude: float
    longitude: float
    updated: datetime | None = None
    alerted: bool = False
    cancelled: bool = False
    incident_id: str | None = None
    official_seen: bool = False

    def to_json(self) -> dict[str, Any]:
        """JSON-ready data for one durable column; :meth:`from_json` reads it back."""
        return {
            "source": self.source,
            "event_id": self.event_id,
            "ids": sorted(self.ids),
            "facts": list(self.facts),
            "time": self.time.isoformat(),
            "latitude": self.latitude,
            "longitude": self.longitude,
            "updated": self.updated.isoformat() if self.updated else None,
            "alerted": self.alerted,
            "cancelled": self.cancelled,
            "incident_id": self.incident_id,
            "official_seen": self.official_seen,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> KnownEvent:
        fields = {**data, "ids": frozenset(data["ids"]), "facts": AlertFacts(*data["facts"])}
        fields["time"] = datetime.fromisoformat(data["time"])
        updated = data.get("updated")
        fields["updated"] = datetime.fromisoformat(updated) if updated else None
        return cls(**fields)


def same_event(known: KnownEvent, ev: QuakeEvent) -> bool:
    """Shared ids (USGS associations), or a CENC automatic/official pair close in time and space."""
    if known.ids & ev.ids:
        return True
    if not (known.source == ev.source == "cenc" and "automatic" in (known.facts.report, ev.report)):
        return False
    apart_km = distance_km(known.latitude, known.longitude, ev.latitude, ev.longitude)
    return abs(known.time - ev.time) <= MATCH_WINDOW and apart_km <= MATCH_DISTANCE_KM


def find_known(candidates: Iterable[KnownEvent], ev: QuakeEvent) -> KnownEvent | None:
    """The known event ``ev`` is a sighting of, preferring shared ids, then live alerted ones
    (not a duplicate cancelled by :func:`absorbed`), then the closest in time."""
    matching = [k for k in candidates if same_event(k, ev)]
    return min(matching, key=lambda k: _rank(k, ev), default=None)


def absorbed(
    candidates: Iterable[KnownEvent], ev: QuakeEvent, kept: KnownEvent
) -> list[tuple[KnownEvent, Decision]]:
    """Other alerted events ``ev``'s ids now join to ``kept``: each is cancelled as a duplicate."""
    return [
        (k, Decision(Action.cancel, f"duplicate of {kept.event_id}: the source merged the ids"))
        for k in candidates
        if k.event_id != kept.event_id and k.ids & ev.ids and k.alerted and not k.cancelled
    ]


def decide(known: KnownEvent | None, ev: QuakeEvent | None, cfg: FeedConfig) -> Decision:
    """What this sighting (``ev``), or confirmed deletion (``ev=None``), means for the incident."""
    if ev is None:
        return _deleted(known)
    if known is None:
        return _first(cfg, ev, "")
    stale = _stale(known, ev)
    if stale:
        return Decision(Action.ignore, stale)
    if known.cancelled:
        return _first(cfg, ev, " again after its cancellation")
    if not known.alerted:
        return _first(cfg, ev, " after a revision")
    return _revision(known, ev, cfg)


def remember(
    known: KnownEvent | None, ev: QuakeEvent | None, decision: Decision, incident_id: str | None
) -> KnownEvent | None:
    """What to store after acting on ``decision`` (``incident_id``: the one raised, if any)."""
    if ev is None:
        return known if known is None else replace(known, cancelled=_cancels(decision, known))
    if known is None:
        return _known_from(ev, decision, incident_id)
    ids = known.ids | ev.ids
    if _stale(known, ev):
        return replace(known, ids=ids)
    stated = decision.action in (Action.raise_, Action.update)
    return replace(
        known,
        ids=ids,
        facts=alert_facts(ev) if stated or not known.alerted else known.facts,
        time=ev.time,
        latitude=ev.latitude,
        longitude=ev.longitude,
        updated=ev.updated or known.updated,
        alerted=known.alerted or stated,
        cancelled=_cancels(decision, known) and decision.action is not Action.raise_,
        incident_id=incident_id if decision.action is Action.raise_ else known.incident_id,
        official_seen=known.official_seen or ev.report == "official",
    )


def vanished(
    known: Iterable[KnownEvent],
    seen: Iterable[QuakeEvent],
    *,
    window: timedelta,
    now: datetime,
    margin: timedelta = VANISH_MARGIN,
) -> list[KnownEvent]:
    """Alerted events missing from a feed whose window (less ``margin``) should still hold them.

    Each is only *suspected* deleted: confirm with the source before deciding with ``ev=None``.
    """
    seen_ids = {i for ev in seen for i in ev.ids}
    since = now - window + margin
    return [
        k
        for k in known
        if k.alerted and not k.cancelled and k.time >= since and not k.ids & seen_ids
    ]


def _rank(known: KnownEvent, ev: QuakeEvent) -> tuple[bool, bool, bool, timedelta]:
    shares_ids = bool(known.ids & ev.ids)
    return (not shares_ids, known.cancelled, not known.alerted, abs(known.time - ev.time))


def _first(cfg: FeedConfig, ev: QuakeEvent, when: str) -> Decision:
    reason = matches(cfg, ev)
    if reason:
        return Decision(Action.ignore, reason)
    return Decision(Action.raise_, f"matches the rule{when}")


def _revision(known: KnownEvent, ev: QuakeEvent, cfg: FeedConfig) -> Decision:
    reason = matches(cfg, ev, report=False)
    if reason:
        return Decision(Action.cancel, f"no longer matches the rule: {reason}")
    facts = alert_facts(ev)
    changed = tuple(f for f in AlertFacts._fields if getattr(facts, f) != getattr(known.facts, f))
    if not changed:
        return Decision(Action.ignore, "no change in what the alert states")
    return Decision(Action.update, "changed: " + ", ".join(changed), changed)


def _stale(known: KnownEvent, ev: QuakeEvent) -> str:
    if known.official_seen and ev.report == "automatic":
        return "automatic report after the official one"
    if known.updated and ev.updated and ev.updated < known.updated:
        return "older revision than the one already seen"
    return ""


def _deleted(known: KnownEvent | None) -> Decision:
    if known is None or not known.alerted or known.cancelled:
        return Decision(Action.ignore, "deleted by the source, no alert to retract")
    return Decision(Action.cancel, "deleted by the source")


def _cancels(decision: Decision, known: KnownEvent) -> bool:
    return known.cancelled or decision.action is Action.cancel


def _known_from(ev: QuakeEvent, decision: Decision, incident_id: str | None) -> KnownEvent:
    alerted = decision.action is Action.raise_
    return KnownEvent(
        source=ev.source,
        event_id=ev.event_id,
        ids=ev.ids,
        facts=alert_facts(ev),
        time=ev.time,
        latitude=ev.latitude,
        longitude=ev.longitude,
        updated=ev.updated,
        alerted=alerted,
        incident_id=incident_id if alerted else None,
        official_seen=ev.report == "official",
    )
