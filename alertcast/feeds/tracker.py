"""The durable event lifecycle of one feed: find the known event, decide, act once, remember.

Every sighting reads the feed's candidate events from the store, lets
:func:`~alertcast.feeds.lifecycle.decide` choose, and moves the event on in three writes:

1. **claim**: the new :class:`~alertcast.feeds.lifecycle.KnownEvent` and the action it implies
   (an :class:`Intent`), on condition that the stored version is still the one read. A replica
   that read the same version loses the write and decides again from what the winner stored.
2. **act**: raise, update or cancel through the service with issuer ``feed:{name}`` and the
   idempotency key ``{event_id}:{version}`` of the claim.
3. **confirm**: the raised incident's id, and no pending action.

An intent whose confirmation never landed (a crash, a lost connection, a shutdown) is finished
by whoever reads the event next, this daemon after a restart or another replica, under the
same key: the service answers a reused key with its first answer, so nothing is sent twice.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import structlog
from aiohttp import web
from pydantic import ValidationError

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
from alertcast.feeds.rules import FeedConfig, to_incident
from alertcast.lifecycle import FollowUps
from alertcast.models import parse_incident
from alertcast.service import Conflict, Service, Submission
from alertcast.store.base import FeedEventRow, Store
from alertcast.store.sql import dumps

__all__ = ["Applied", "Intent", "LostRace", "Tracker"]

MAX_RACES = 5

log = structlog.get_logger("alertcast.feeds")


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

    def to_json(self) -> dict[str, Any]:
        return {
            "action": self.action.value,
            "key": self.key,
            "root": self.root,
            "reason": self.reason,
            "body": self.body,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Intent:
        return cls(**{**data, "action": Action(data["action"])})

    def digest(self) -> str:
        """What a replay must match: the same stored intent gives the same digest."""
        return hashlib.sha256(dumps(self.to_json()).encode()).hexdigest()


@dataclass(frozen=True)
class Applied:
    """What one decision did: ``incident_id`` is the incident raised, updated or cancelled;
    ``message_id`` the alert, update or cancellation that carried it (None when refused)."""

    event_id: str
    decision: Decision
    incident_id: str | None = None
    message_id: str | None = None


class Tracker:
    """Applies lifecycle decisions for the feed ``cfg`` names, durably and exactly once."""

    def __init__(
        self, cfg: FeedConfig, store: Store, service: Service, follow_ups: FollowUps
    ) -> None:
        self.cfg = cfg
        self.store = store
        self.service = service
        self.follow_ups = follow_ups
        self.issuer = f"feed:{cfg.name}"
        self._log = log.bind(feed=cfg.name)

    # -- sightings --------------------------------------------------------------------------
    async def sighting(self, ev: QuakeEvent) -> list[Applied]:
        """Decide and act on one revision of one event; duplicates it absorbs are cancelled."""
        for _ in range(MAX_RACES):
            rows = await self._candidates(ev)
            done = await self._try(rows, ev)
            if done is not None:
                return done
        raise LostRace(f"event {ev.event_id} kept changing under {MAX_RACES} attempts")

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
        intent = self._intent(known, decision, ev, f"{new.event_id}:{version + 1}")
        if row is not None and intent is None and new == known and not takeover:
            return Applied(new.event_id, decision, new.incident_id)
        claim = _row(self.cfg.name, new, intent, version)
        if not await self.store.put_feed_event(claim, takeover=takeover, now=time.time()):
            return None
        if intent is None:
            return Applied(new.event_id, decision, new.incident_id)
        stored = replace(claim, version=version + 1)
        message_id, _ = await self._complete(stored, intent)
        root = message_id if intent.action is Action.raise_ else intent.root
        return Applied(new.event_id, decision, root, message_id)

    def _intent(
        self, known: KnownEvent | None, decision: Decision, ev: QuakeEvent | None, key: str
    ) -> Intent | None:
        action, root = decision.action, known.incident_id if known else None
        if action is Action.raise_ and ev is not None:
            return Intent(action, key, reason=decision.reason, body=to_incident(self.cfg, ev))
        if action is Action.update and ev is not None and root:
            return Intent(action, key, root, decision.reason, body=to_incident(self.cfg, ev))
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
            _, done = await self._complete(row, Intent.from_json(dict(row.pending)))
            if done is not None:
                return done
            fresh = await self.store.get_feed_event(row.feed, row.event_id)
            if fresh is None:
                break
            row = fresh
        raise LostRace(f"event {row.event_id} kept changing under {MAX_RACES} attempts")

    async def _complete(
        self, row: FeedEventRow, intent: Intent
    ) -> tuple[str | None, FeedEventRow | None]:
        """Take the action (idempotently), then confirm; the row as stored if we confirmed."""
        message_id = await self._act(intent)
        known = KnownEvent.from_json(dict(row.known))
        if intent.action is Action.raise_:
            known = (
                replace(known, incident_id=message_id)
                if message_id
                else replace(known, alerted=False)
            )
        done = _row(self.cfg.name, known, None, row.version)
        if await self.store.put_feed_event(done, now=time.time()):
            return message_id, replace(done, version=row.version + 1)
        return message_id, None

    async def _act(self, intent: Intent) -> str | None:
        """The alert, update or cancellation id; None when the service refuses for good."""
        sub = Submission(
            issuer=self.issuer,
            source=self.issuer,
            idempotency_key=intent.key,
            body_sha256=intent.digest(),
        )
        try:
            answer = await self._send(intent, sub)
        except (web.HTTPException, Conflict, ValidationError) as exc:
            reason = exc.text if isinstance(exc, web.HTTPException) else str(exc)
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

    async def _send(self, intent: Intent, sub: Submission) -> dict[str, Any]:
        if intent.action is Action.raise_:
            _, answer = await self.service.submit(parse_incident(intent.body), sub)
            return answer
        assert intent.root is not None
        if intent.action is Action.update:
            return await self.follow_ups.update(intent.root, dict(intent.body or {}), sub)
        return await self.follow_ups.cancel(intent.root, intent.reason, sub)


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
        live=known.alerted and not known.cancelled,
        pending=None if intent is None else intent.to_json(),
        version=version,
    )
