"""One door for every change: read the chain, plan, commit; again while the reading changes.

The HTTP API (JSON and CAP), the CLI through it, the feeds, the schedules and the dispatcher's
quota fallback all ask here. Each request is read (:mod:`alertcast.chains`), planned by a pure
planner (:mod:`alertcast.plan`) and applied by the one commit path (:mod:`alertcast.commit`).
When the originals a follow-up read changed before it committed (:class:`StaleRead`: one it
meant to withdraw was claimed meanwhile, so it needs a correction instead), it is read and
planned again; a concurrent twin with the same idempotency key answers with the first answer.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import structlog

from alertcast.chains import Chains
from alertcast.commit import Committer
from alertcast.errors import Busy, Conflict
from alertcast.ids import new_id
from alertcast.models import Incident
from alertcast.plan import DAEMON, Asker, Chain, Moment, Plan, Planner
from alertcast.plan.common import replayed
from alertcast.store.base import (
    Applied,
    DeliveryRow,
    IdempotencyConflict,
    StaleRead,
    StateConflict,
)

__all__ = ["REPLANS", "Door"]

REPLANS = 8
log = structlog.get_logger("alertcast.door")

Read = Callable[[], Awaitable[Chain]]
Decide = Callable[[Chain, Moment], Plan]


class Door:
    def __init__(
        self,
        chains: Chains,
        planner: Planner,
        committer: Committer,
        *,
        clock: Callable[[], float] = time.time,
        ids: Callable[[str], str] = new_id,
    ) -> None:
        self.chains = chains
        self.planner = planner
        self.committer = committer
        self._clock = clock
        self._ids = ids

    async def alert(self, incident: Incident, asker: Asker) -> Mapping[str, Any]:
        """A new incident; its ``202`` answer (or a replay's first answer)."""
        plan, _ = await self._change(
            lambda: self.chains.new(asker),
            lambda chain, now: self.planner.alert(incident, chain, asker, now),
            asker,
        )
        return plan.answer

    async def update(
        self, incident_id: str, patch: dict[str, Any], asker: Asker
    ) -> Mapping[str, Any]:
        plan, _ = await self._change(
            lambda: self.chains.of(incident_id, asker),
            lambda chain, now: self.planner.update(chain, patch, asker, now),
            asker,
        )
        return plan.answer

    async def cancel(self, incident_id: str, reason: str, asker: Asker) -> Mapping[str, Any]:
        plan, _ = await self._change(
            lambda: self.chains.of(incident_id, asker),
            lambda chain, now: self.planner.cancel(chain, reason, asker, now),
            asker,
        )
        return plan.answer

    async def approve(self, incident_id: str, asker: Asker) -> Mapping[str, Any]:
        plan, applied = await self._change(
            lambda: self.chains.of(incident_id, asker),
            lambda chain, now: self.planner.approve(chain, asker, now),
            asker,
        )
        return {**plan.answer, "released": applied.released}

    async def reject(self, incident_id: str, reason: str, asker: Asker) -> Mapping[str, Any]:
        """A second person withdraws a held message with ``reason``; nothing of it goes out."""
        plan, _ = await self._change(
            lambda: self.chains.of(incident_id, asker),
            lambda chain, now: self.planner.reject(chain, reason, asker, now),
            asker,
        )
        return plan.answer

    async def retry(self, delivery_id: str, asker: Asker) -> DeliveryRow:
        """Re-drive a settled delivery; the row as it is now ``pending``."""
        _, applied = await self._change(
            lambda: self.chains.delivery(delivery_id),
            lambda chain, now: self.planner.retry(chain, delivery_id, asker, now),
            asker,
        )
        assert applied.requeued is not None
        return applied.requeued

    async def fallback(self, spent: DeliveryRow) -> Plan:
        """The daemon's own change: a spent account's fallback takes its message over."""
        plan, _ = await self._change(
            lambda: self.chains.message(spent.incident_id),
            lambda chain, now: self.planner.fallback(chain, spent, now),
            Asker(DAEMON, source=DAEMON),
        )
        if plan.write is not None:
            to = [d.account for d in plan.write.deliveries]
            log.info(
                "delivery.fallback", incident_id=spent.incident_id, account=spent.account, to=to
            )
        return plan

    async def _change(self, read: Read, decide: Decide, asker: Asker) -> tuple[Plan, Applied]:
        for _ in range(REPLANS):
            plan = decide(await read(), Moment(self._clock(), self._ids))
            try:
                return plan, await self.committer.apply(plan)
            except StaleRead as exc:
                log.info("change.replanned", why=str(exc))
            except IdempotencyConflict as exc:  # a concurrent twin won the race
                return replayed(exc.record, asker, plan.authority), Applied()
            except StateConflict as exc:  # cancelled or approved meanwhile
                raise Conflict(str(exc)) from None
        raise Busy("the originals kept changing while this was planned; try again", 1.0)
