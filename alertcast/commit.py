"""The one commit path: a plan applied in one transaction, its claims handed to the dispatcher.

Before the transaction it reserves capacity for the new deliveries that may go out at once (a
new alert's posts, follow-ups to originals already delivered); the store stores those claimed,
and after COMMIT they go straight to the dispatcher's inbox, with no second round trip. When
the transaction fails the reservation is given back. Then it counts, logs, publishes the plan's
events and rings the dispatcher for whatever it must claim itself.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, replace

import structlog

from alertcast import metrics
from alertcast.capacity import Capacity, Reservation
from alertcast.errors import Forbidden
from alertcast.events import EventBus
from alertcast.inbox import Inbox
from alertcast.plan import Plan
from alertcast.store.base import Applied, IncidentRow, Store, Taken, Write

__all__ = ["Claims", "Committer"]

log = structlog.get_logger("alertcast.commit")


@dataclass(frozen=True, slots=True)
class Claims:
    """Whose claims a transaction takes, and for how long (the dispatcher's worker id)."""

    worker: str
    lease_s: float


class Committer:
    def __init__(
        self, store: Store, capacity: Capacity, inbox: Inbox, events: EventBus, claims: Claims
    ) -> None:
        self.store = store
        self.capacity = capacity
        self.inbox = inbox
        self.events = events
        self.claims = claims

    async def apply(self, plan: Plan) -> Applied:
        """Apply ``plan`` (:class:`Forbidden` when its authority refused; nothing stored).

        Shielded: a caller cancelled mid-commit must not leave deliveries claimed by this
        worker and never sent; the commit's outcome is always acted on.
        """
        if not plan.authority.allowed:
            raise Forbidden(plan.authority.reason)
        if plan.write is None:
            return Applied()
        return await asyncio.shield(asyncio.ensure_future(self._apply(plan, plan.write)))

    async def _apply(self, plan: Plan, write: Write) -> Applied:
        reservation, taken = self._reserve(plan, write)
        try:
            applied = await self.store.apply(replace(write, taken=taken))
        except BaseException:
            if reservation is not None:
                reservation.cancel()
            if taken is not None:
                self.inbox.claim_failed()
            raise
        handed = len(applied.claims)
        if reservation is not None and not self.inbox.hand(
            [(c, reservation.tickets[c.delivery.id]) for c in applied.claims]
        ):
            reservation.cancel()
        self._accepted(plan, write, untaken=len(write.deliveries) - handed)
        return applied

    def _reserve(self, plan: Plan, write: Write) -> tuple[Reservation | None, Taken | None]:
        if write.incident is None or not write.deliveries or not self.inbox.open:
            return None, None
        now = time.time()
        reservation = self.capacity.reserve(write.deliveries, plan.targets, now)
        if reservation is None:
            return None, None
        ids = frozenset(reservation.tickets)
        lease_until = now + self.claims.lease_s
        return reservation, Taken(self.claims.worker, lease_until, ids, plan.targets)

    def _accepted(self, plan: Plan, write: Write, *, untaken: int) -> None:
        if write.incident is not None:
            _log_incident(write.incident, len(write.deliveries))
        for event in plan.events:
            self.events.publish(dict(event))
        if untaken > 0 or write.release is not None or write.requeue is not None:
            self.inbox.wake()


def _log_incident(row: IncidentRow, deliveries: int) -> None:
    metrics.INCIDENTS.labels(row.kind, row.msg_type).inc()
    log.info(
        "incident.accepted",
        incident_id=row.id,
        msg_type=row.msg_type,
        deliveries=deliveries,
        kind=row.kind,
        status=row.status,
        issuer=row.issuer,
        state=row.state,
        references=row.references,
    )
