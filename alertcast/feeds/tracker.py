"""The durable event lifecycle of one feed: find the known event, decide, act once, remember.

Every sighting reads the feed's candidate events from the store, lets
:func:`~alertcast.feeds.lifecycle.decide` choose, and moves the event on in three writes:

1. **claim**: the new :class:`~alertcast.feeds.lifecycle.KnownEvent` and the action it implies
   (an :class:`Intent`), on condition that the stored version is still the one read. A replica
   that read the same version loses the write and decides again from what the winner stored.
2. **act**: raise, update or cancel through the door with issuer ``feed:{name}`` and the
   idempotency key ``{event_id}:{version}`` of the claim.
3. **confirm**: the raised incident's id, and no pending action.

An intent whose confirmation never landed (a crash, a lost connection, a shutdown) is finished
by whoever reads the event next, this daemon after a restart or another replica, under the
same key: the door answers a reused key with its first answer, so nothing is sent twice.

A feed of an ``associate`` group claims, instead of an action, a
:class:`~alertcast.feeds.association.Report` to its group; the group's :class:`GroupTracker`
moves the group's one row through the same claim, act, confirm, so that the feeds of a group
raise one incident per real event (see :mod:`alertcast.feeds.association`).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import structlog
from pydantic import ValidationError

from alertcast.door import Door
from alertcast.errors import DomainError
from alertcast.feeds.association import (
    GroupSettings,
    GroupState,
    Plan,
    Report,
    decide_group,
    rank_of,
)
from alertcast.feeds.events import QuakeEvent
from alertcast.feeds.lifecycle import (
    MATCH_WINDOW,
    Action,
    Decision,
    KnownEvent,
    absorbed,
    decide,
    find_known,
    remember,
)
from alertcast.feeds.places import localise, ready
from alertcast.feeds.rules import FeedConfig, to_incident
from alertcast.models import parse_incident
from alertcast.plan import Asker
from alertcast.store.base import FeedEventRow, Store

__all__ = ["Applied", "GroupOutcome", "GroupTracker", "Intent", "LostRace", "Tracker"]

MAX_RACES = 5
GROUP_RACES = 20  # every feed of a group writes the group's one row
GROUP_STATE = "~state"  # the event_id of a group's row (feed ``group:{name}``)

log = structlog.get_logger("alertcast.feeds")


def _canonical(value: Any) -> str:
    """One text per value (sorted keys, no spaces): what an intent's digest is taken over."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True)


class LostRace(Exception):
    """Other writers kept changing the event; the sighting is tried again on the next poll."""


@dataclass(frozen=True)
class Intent:
    """An action claimed in the store before it is taken; ``body``: the incident or patch."""

    action: Action
    key: str
    root: str | None = None
    reason: str = ""
    body: dict[str, Any] | None = None
    # Association (only stored when set, so a plain feed's intents read as before):
    issuer: str | None = None  # who acts, when not the tracker's own feed
    target: str | None = None  # the group event a group's action is for
    report: dict[str, Any] | None = None  # a feed's Report to its group, not an action

    def to_json(self) -> dict[str, Any]:
        data = {
            "action": self.action.value,
            "key": self.key,
            "root": self.root,
            "reason": self.reason,
            "body": self.body,
        }
        extra = {"issuer": self.issuer, "target": self.target, "report": self.report}
        return data | {k: v for k, v in extra.items() if v is not None}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Intent:
        return cls(**{**data, "action": Action(data["action"])})

    def digest(self) -> str:
        """What a replay must match: the same stored intent gives the same digest."""
        return hashlib.sha256(_canonical(self.to_json()).encode()).hexdigest()


@dataclass(frozen=True)
class Applied:
    """What one decision did: ``incident_id`` is the incident raised, updated or cancelled;
    ``message_id`` the alert, update or cancellation that carried it (None when refused)."""

    event_id: str
    decision: Decision
    incident_id: str | None = None
    message_id: str | None = None


@dataclass(frozen=True)
class GroupOutcome:
    """What a report did to its group: the effective decision and the group event's incident
    (None when there is none, or its raise was refused); ``message_id`` of what was sent."""

    decision: Decision
    incident_id: str | None
    message_id: str | None = None


@dataclass(frozen=True)
class _Done:
    """A pending action taken: the message sent, the row as confirmed (None: someone else
    confirmed), and for a report to a group, what the group did with it."""

    message_id: str | None
    row: FeedEventRow | None
    decision: Decision | None = None
    incident_id: str | None = None


class _Acting:
    """Raise, update or cancel through the door, idempotently (shared by both trackers)."""

    door: Door
    issuer: str
    _log: Any

    async def _act(self, intent: Intent) -> str | None:
        """The alert, update or cancellation id; None when the door refuses for good."""
        issuer = intent.issuer or self.issuer
        asker = Asker(
            issuer, source=issuer, idempotency_key=intent.key, body_sha256=intent.digest()
        )
        try:
            answer = await self._send(intent, asker)
        except (DomainError, ValidationError) as exc:
            reason = str(exc)
            self._log.warning(
                "feed.action_refused", action=intent.action.value, key=intent.key, reason=reason
            )
            return None
        self._log.info(
            "feed.action_taken",
            action=intent.action.value,
            key=intent.key,
            incident_id=intent.root or answer["id"],
            message_id=answer["id"],
            reason=intent.reason,
        )
        return str(answer["id"])

    async def _send(self, intent: Intent, asker: Asker) -> Mapping[str, Any]:
        if intent.action is Action.raise_:
            return await self.door.alert(parse_incident(intent.body), asker)
        assert intent.root is not None
        if intent.action is Action.update:
            return await self.door.update(intent.root, dict(intent.body or {}), asker)
        return await self.door.cancel(intent.root, intent.reason, asker)


class Tracker(_Acting):
    """Applies lifecycle decisions for the feed ``cfg`` names, durably and exactly once.

    A feed of an ``associate`` group (``group``) does not act itself: the action its lifecycle
    implies is claimed as a :class:`~alertcast.feeds.association.Report` and handed to the
    group's :class:`GroupTracker`, which decides and acts for every feed of the group.
    """

    def __init__(
        self,
        cfg: FeedConfig,
        store: Store,
        door: Door,
        group: GroupTracker | None = None,
    ) -> None:
        self.cfg = cfg
        self.store = store
        self.door = door
        self.group = group
        self.issuer = f"feed:{cfg.name}"
        self._log = log.bind(feed=cfg.name)

    # -- sightings --------------------------------------------------------------------------
    async def sighting(self, ev: QuakeEvent) -> list[Applied]:
        """Decide and act on one revision of one event; duplicates it absorbs are cancelled."""
        await ready()  # the place names' data, loaded off the event loop once
        for _ in range(MAX_RACES):
            rows = await self._candidates(ev)
            done = await self._try(rows, ev)
            if done is not None:
                return done
        raise LostRace(f"event {ev.event_id} kept changing under {MAX_RACES} attempts")

    async def finish(self, row: FeedEventRow) -> FeedEventRow:
        """``row`` with the action it claimed (if any) taken and confirmed: for a row no sighting
        will read again (its event was deleted), which the runner finds by ``live``."""
        return await self._settled(row)

    async def deleted(self, event_id: str) -> Applied | None:
        """The source confirmed ``event_id`` deleted: cancel its alert, if it has one."""
        return await self._retract(event_id, lambda known: decide(known, None, self.cfg))

    async def _try(self, rows: list[FeedEventRow], ev: QuakeEvent) -> list[Applied] | None:
        knowns = {row.event_id: KnownEvent.from_json(dict(row.known)) for row in rows}
        known = find_known(knowns.values(), ev)
        row = next((r for r in rows if known and r.event_id == known.event_id), None)
        decision = decide(known, ev, self.cfg)
        new = remember(known, ev, decision, None)
        assert new is not None  # remember() only returns None for a deletion of nothing
        takeover = [k.event_id for k in knowns.values() if k is not known and k.ids & new.ids]
        first = await self._write(row, known, new, decision, ev, takeover)
        if first is None:
            return None
        duplicates = absorbed(knowns.values(), ev, new)
        return [first] + [a for k, d in duplicates if (a := await self._duplicate(k, d))]

    async def _duplicate(self, known: KnownEvent, decision: Decision) -> Applied | None:
        return await self._retract(known.event_id, lambda k: _still_live(k, decision))

    async def _retract(
        self, event_id: str, choose: Callable[[KnownEvent], Decision]
    ) -> Applied | None:
        for _ in range(MAX_RACES):
            row = await self.store.get_feed_event(self.cfg.name, event_id)
            if row is None:
                return None
            row = await self._settled(row)
            known = KnownEvent.from_json(dict(row.known))
            decision = choose(known)
            new = remember(known, None, decision, None)
            assert new is not None
            done = await self._write(row, known, new, decision, None, ())
            if done is not None:
                return done
        raise LostRace(f"event {event_id} kept changing under {MAX_RACES} attempts")

    async def _candidates(self, ev: QuakeEvent) -> list[FeedEventRow]:
        t = ev.time.timestamp()
        span = MATCH_WINDOW.total_seconds()
        between = (t - span, t + span) if ev.source == "cenc" else None
        rows = await self.store.feed_events(self.cfg.name, ids=sorted(ev.ids), between=between)
        return [await self._settled(row) for row in rows]

    # -- claim, act, confirm ----------------------------------------------------------------
    async def _write(
        self,
        row: FeedEventRow | None,
        known: KnownEvent | None,
        new: KnownEvent,
        decision: Decision,
        ev: QuakeEvent | None,
        takeover: Sequence[str],
    ) -> Applied | None:
        """Claim ``new`` (and the action ``decision`` implies); None when another writer won."""
        version = row.version if row else 0
        key = f"{new.event_id}:{version + 1}"
        if self.group is not None:
            intent = self._report(known, new, decision, ev, key, version + 1)
        else:
            intent = self._intent(known, decision, ev, key)
        if row is not None and intent is None and new == known and not takeover:
            return Applied(new.event_id, decision, new.incident_id)
        claim = _row(self.cfg.name, new, intent, version)
        if not await self.store.put_feed_event(claim, takeover=takeover, now=time.time()):
            return None
        if intent is None:
            return Applied(new.event_id, decision, new.incident_id)
        stored = replace(claim, version=version + 1)
        done = await self._complete(stored, intent)
        effective = done.decision or decision
        return Applied(new.event_id, effective, done.incident_id, done.message_id)

    def _report(
        self,
        known: KnownEvent | None,
        new: KnownEvent,
        decision: Decision,
        ev: QuakeEvent | None,
        key: str,
        seq: int,
    ) -> Intent | None:
        """The report to the group of what ``decision`` would do to an incident, if anything."""
        action = decision.action
        stating = action in (Action.raise_, Action.update) and ev is not None
        if not stating and not (action is Action.cancel and known is not None):
            return None
        report = Report(
            feed=self.cfg.name,
            event_id=new.event_id,
            seq=seq,
            action=action,
            reason=decision.reason,
            rank=rank_of(self.cfg, new.facts.report),
            facts=new.facts,
            time=new.time,
            latitude=new.latitude,
            longitude=new.longitude,
            body=self._incident(ev) if stating and ev is not None else None,
            incident_id=known.incident_id if known else None,
        )
        return Intent(action, key, reason=decision.reason, report=report.to_json())

    def _incident(self, ev: QuakeEvent) -> dict[str, Any]:
        """The incident ``ev`` raises, its place and reach named from its coordinates."""
        return to_incident(self.cfg, localise(self.cfg, ev))

    def _intent(
        self, known: KnownEvent | None, decision: Decision, ev: QuakeEvent | None, key: str
    ) -> Intent | None:
        action, root = decision.action, known.incident_id if known else None
        if action is Action.raise_ and ev is not None:
            return Intent(action, key, reason=decision.reason, body=self._incident(ev))
        if action is Action.update and ev is not None and root:
            return Intent(action, key, root, decision.reason, body=self._incident(ev))
        if action is Action.cancel and root:
            return Intent(action, key, root, decision.reason)
        return None

    async def _settled(self, row: FeedEventRow) -> FeedEventRow:
        """``row`` with its pending action finished and confirmed (by us or by whoever won).

        Never decide on a row with a pending action: the next write would drop the action.
        """
        for _ in range(MAX_RACES):
            if row.pending is None:
                return row
            done = (await self._complete(row, Intent.from_json(dict(row.pending)))).row
            if done is not None:
                return done
            fresh = await self.store.get_feed_event(row.feed, row.event_id)
            if fresh is None:
                break
            row = fresh
        raise LostRace(f"event {row.event_id} kept changing under {MAX_RACES} attempts")

    async def _complete(self, row: FeedEventRow, intent: Intent) -> _Done:
        """Take the action (idempotently), then confirm; the row as stored if we confirmed."""
        if intent.report is not None:
            return await self._reported(row, intent, Report.from_json(intent.report))
        message_id = await self._act(intent)
        known = KnownEvent.from_json(dict(row.known))
        if intent.action is Action.raise_:
            known = (
                replace(known, incident_id=message_id)
                if message_id
                else replace(known, alerted=False)
            )
        root = message_id if intent.action is Action.raise_ else intent.root
        done = _row(self.cfg.name, known, None, row.version)
        if await self.store.put_feed_event(done, now=time.time()):
            return _Done(message_id, replace(done, version=row.version + 1), None, root)
        return _Done(message_id, None, None, root)

    async def _reported(self, row: FeedEventRow, intent: Intent, report: Report) -> _Done:
        """Hand a claimed report to the group (once: the group knows its ``seq``), confirm."""
        if self.group is None:  # the feed left its group with a report pending: act alone
            root = report.incident_id
            if intent.action is Action.raise_ or root is not None:
                plain = Intent(intent.action, intent.key, root, intent.reason, report.body)
                return await self._complete(row, plain)
            done = _row(self.cfg.name, KnownEvent.from_json(dict(row.known)), None, row.version)
            confirmed = await self.store.put_feed_event(done, now=time.time())
            return _Done(None, replace(done, version=row.version + 1) if confirmed else None)
        outcome = await self.group.apply(report)
        known = KnownEvent.from_json(dict(row.known))
        if intent.action is Action.raise_ and outcome.incident_id is None:
            known = replace(known, alerted=False)
        elif outcome.incident_id:
            known = replace(known, incident_id=outcome.incident_id)
        done = _row(self.cfg.name, known, None, row.version)
        confirmed = await self.store.put_feed_event(done, now=time.time())
        stored = replace(done, version=row.version + 1) if confirmed else None
        return _Done(outcome.message_id, stored, outcome.decision, outcome.incident_id)


class GroupTracker(_Acting):
    """Applies the reports of an ``associate`` group's feeds to the group, durably and once.

    The group's state (:class:`~alertcast.feeds.association.GroupState`) is one row of the
    feed-event table, feed ``group:{name}`` (``:`` never occurs in a feed name), and moves like
    a feed's event rows: **claim** the new state and the action it implies on the version read,
    **act** as the reporting feed's issuer under the key ``group:{name}:{gid}:{version}``,
    **confirm**. A pending action is finished by whoever reads the row next. A report carries
    the version of the feed row that claimed it (``seq``), so a report handed over twice (a
    crash between the group's write and the feed's confirmation) is applied once.
    """

    def __init__(self, settings: GroupSettings, store: Store, door: Door) -> None:
        self.settings = settings
        self.store = store
        self.door = door
        self.feed = f"group:{settings.name}"
        self.issuer = self.feed  # every intent names the reporting feed's issuer instead
        self._lock = asyncio.Lock()  # the feeds of a group share one row: take turns here
        self._log = log.bind(group=settings.name)

    async def apply(self, report: Report) -> GroupOutcome:
        """Decide and act on ``report``; :class:`LostRace` if other writers kept winning."""
        async with self._lock:
            for _ in range(GROUP_RACES):
                done = await self._try(report)
                if done is not None:
                    return done
        raise LostRace(f"group {self.settings.name} kept changing under {GROUP_RACES} attempts")

    async def state(self) -> GroupState:
        """The group's events as stored (for status and tests)."""
        row = await self.store.get_feed_event(self.feed, GROUP_STATE)
        return GroupState.from_json(None if row is None else dict(row.known))

    async def _try(self, report: Report) -> GroupOutcome | None:
        row = await self.store.get_feed_event(self.feed, GROUP_STATE)
        row = None if row is None else await self._settled(row)
        version = row.version if row else 0
        state = GroupState.from_json(None if row is None else dict(row.known))
        plan = decide_group(state, report, self.settings)
        event = plan.state.events.get(plan.gid) if plan.gid else None
        incident_id = event.incident_id if event else None
        if plan.done:
            return GroupOutcome(plan.decision, incident_id)
        intent = self._intent(plan, version + 1)
        claim = self._row(plan.state, intent, version)
        if not await self.store.put_feed_event(claim, now=time.time()):
            return None
        self._log.info(
            "feed.group_decided",
            feed=report.feed,
            event_id=report.event_id,
            group_event=plan.gid,
            action=plan.decision.action.value,
            reason=plan.decision.reason,
            incident_id=incident_id,
        )
        if intent is None:
            return GroupOutcome(plan.decision, incident_id)
        message_id, _ = await self._complete(replace(claim, version=version + 1), intent)
        root = message_id if intent.action is Action.raise_ else intent.root
        return GroupOutcome(plan.decision, root, message_id)

    def _intent(self, plan: Plan, version: int) -> Intent | None:
        action = plan.decision.action
        if action not in (Action.raise_, Action.update, Action.cancel):
            return None
        if action is not Action.raise_ and plan.root is None:
            return None
        return Intent(
            action,
            f"{self.feed}:{plan.gid}:{version}",
            plan.root,
            plan.decision.reason,
            plan.body,
            issuer=plan.issuer,
            target=plan.gid,
        )

    def _row(self, state: GroupState, intent: Intent | None, version: int) -> FeedEventRow:
        newest = max((e.time for e in state.events.values()), default=None)
        # Pruned by the newest origin time (a replay of old events keeps them), but never from
        # a time past the clock: one report dated in the future must not forget the group.
        now = datetime.fromtimestamp(time.time(), UTC)
        kept = state if newest is None else state.pruned(min(newest, now))
        return FeedEventRow(
            feed=self.feed,
            event_id=GROUP_STATE,
            known=kept.to_json(),
            ids=(GROUP_STATE,),
            event_time=newest.timestamp() if newest else 0.0,
            incident_id=None,
            live=False,
            pending=None if intent is None else intent.to_json(),
            version=version,
        )

    async def _settled(self, row: FeedEventRow) -> FeedEventRow:
        """``row`` with its pending action finished and confirmed (by us or by whoever won)."""
        for _ in range(GROUP_RACES):
            if row.pending is None:
                return row
            _, done = await self._complete(row, Intent.from_json(dict(row.pending)))
            if done is not None:
                return done
            fresh = await self.store.get_feed_event(self.feed, GROUP_STATE)
            if fresh is None:
                break
            row = fresh
        raise LostRace(f"group {self.settings.name} kept changing under {GROUP_RACES} attempts")

    async def _complete(
        self, row: FeedEventRow, intent: Intent
    ) -> tuple[str | None, FeedEventRow | None]:
        """Act (idempotently), record a raised incident on its group event, confirm."""
        message_id = await self._act(intent)
        state = GroupState.from_json(dict(row.known))
        event = state.events.get(intent.target or "")
        if intent.action is Action.raise_ and event is not None:
            state = state.put(replace(event, incident_id=message_id))  # None: refused
        done = self._row(state, None, row.version)
        if await self.store.put_feed_event(done, now=time.time()):
            return message_id, replace(done, version=row.version + 1)
        return message_id, None


def _still_live(known: KnownEvent, decision: Decision) -> Decision:
    if known.alerted and not known.cancelled:
        return decision
    return Decision(Action.ignore, "already retracted")


def _row(feed: str, known: KnownEvent, intent: Intent | None, version: int) -> FeedEventRow:
    return FeedEventRow(
        feed=feed,
        event_id=known.event_id,
        known=known.to_json(),
        ids=tuple(sorted(known.ids)),
        event_time=known.time.timestamp(),
        incident_id=known.incident_id,
        # A row with an action still to take stays live until it is confirmed, so that a
        # cancellation claimed for a deleted event (which no sighting reads again) is found.
        live=(known.alerted and not known.cancelled) or intent is not None,
        pending=None if intent is None else intent.to_json(),
        version=version,
    )
