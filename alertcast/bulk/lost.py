"""Parts whose take's answer was lost: leased by the store to this worker, never received.

A part's take (the holder's, or a helper's) is a claiming write: the database can commit it
while the answer is lost on the way back (a connection dying at the commit). The part is then
leased to this worker, which never had it, and nobody would send its recipients until the
lease ran out (``[dispatch] lease_s``, 120 s by default). As for the deliveries' claims
(:mod:`alertcast.lost`): every take is answered within the store's ``claim_bound_s`` or fails,
so two bounds after a take failed the worker gives back every part leased to it that it does
not hold (:meth:`Store.release_lost_parts`, which runs only while no take is on its way).

*Held* is every part a take handed to this worker and a sweep of it has not let go of: it is
noted in the same turn of the event loop the answer comes in (before anything else may run),
and forgotten when its sweep ends (done, given back, or lost to another worker).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable

import structlog

from alertcast.store.base import RecipientPart, Store

__all__ = ["LostParts"]

log = structlog.get_logger("alertcast.bulk")

MARGIN_S = 1.0  # beyond the two bounds: the clock's own steps


class LostParts:
    """The parts this worker holds, and the check for the ones leased to it and not held."""

    def __init__(self, store: Store, worker: str) -> None:
        self.store, self.worker = store, worker
        # (delivery id, after) of the parts held, by how many sweeps here (a holder's and a
        # helper's of this worker may both hold one whose lease ran out and was taken again)
        self.held: Counter[tuple[str, str]] = Counter()
        self.check_at: float | None = None  # when to look for lost ones (a take failed)

    async def take(
        self, take: Callable[[], Awaitable[RecipientPart | None]]
    ) -> RecipientPart | None:
        """A part's take, after the check of lost ones when it is due; the part is held at
        once. A take that fails or is cancelled (its answer may be lost, or may come to no
        one) schedules the check."""
        await self.release()
        try:
            got = await take()
        except BaseException:
            self._schedule()
            raise
        if got is not None:  # in this turn of the loop: no release can run before it
            self.held[(got.delivery_id, got.after)] += 1
        return got

    def let_go(self, delivery_id: str, parts: Iterable[str]) -> None:
        """A sweep of these parts ended: held here by one sweep fewer."""
        self.held.subtract((delivery_id, after) for after in parts)
        self.held = +self.held  # the ones no sweep holds any more, forgotten

    async def release(self) -> int:
        """Give back the parts leased here and not held, when a check is due; how many."""
        if self.check_at is None or time.time() < self.check_at:
            return 0
        self.check_at = None
        try:
            found = await self.store.release_lost_parts(
                worker=self.worker, held=lambda: set(self.held), now=time.time()
            )
        except Exception as exc:  # the store still away: look again later
            log.warning("bulk.lost_parts_check_failed", error=type(exc).__name__)
            self._schedule()
            return 0
        if found:
            log.warning("bulk.lost_parts_released", parts=found)
        return found

    def _schedule(self) -> None:
        if (bound := self.store.claim_bound_s) is None:  # SQLite: no answer is ever lost
            return
        at = time.time() + 2 * bound + MARGIN_S
        self.check_at = at if self.check_at is None else max(self.check_at, at)
