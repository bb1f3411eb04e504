"""Claims whose answer was lost: committed by the store, never seen by the worker that made them.

A claiming write (the dispatcher's claim, an intake's claim at creation) can be committed by the
database while its answer is lost on the way back: the connection dies at the commit, a
partition drops the reply. Its rows are then ``sending``, claimed by this worker, and nobody
would send them until their lease ran out (``[dispatch] lease_s``, 120 s by default) — after a
short outage, two minutes of silence for alerts that were already accepted.

Every claiming write is answered within the store's ``claim_bound_s`` of its start, or fails
(the whole call is bounded, its connection ended), and the time it stamps on its rows is read
less than a bound before it starts. So a row this worker claimed more than two bounds ago and
does not hold was never received, and so never sent: it goes back to the queue at once, its
attempt taken back (:meth:`Store.release_lost`). *Held* is every
delivery the worker received and has not settled: being sent, handed over and not yet spawned,
or abandoned after a send whose outcome could not be recorded (the lease brings those back as
an interrupted send, counted, dead on its last attempt: they may have reached the platform; so
they stay out of every release until a lease sweep after their lease ran out took them).

The stamps alone are not enough for a call still on its way in this process: an intake's rows
carry its incident's ``created_at``, read before the plan (every account's text rendered) and
before the commit path's turn of the event loop, so a loop held longer than a bound makes them
look old while their answer is coming. The store therefore runs a release only while none of
its claiming calls is in flight (it waits for those, each within its bound, and holds new ones
back meanwhile), and reads what is held only then: an answer that came is handed by then.

The check runs two bounds (and a second) after a claiming write failed, and after every lease
sweep.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

import structlog

from alertcast.store.base import Store

__all__ = ["LostClaims"]

log = structlog.get_logger("alertcast.dispatch")

MARGIN_S = 1.0  # beyond the two bounds: the clock's own steps


class LostClaims:
    def __init__(
        self, store: Store, worker: str, *, lease_s: float, clock: Callable[[], float] = time.time
    ) -> None:
        self.store, self.worker, self.lease_s = store, worker, lease_s
        self._clock = clock
        self._abandoned: dict[str, float] = {}  # delivery id: when its task gave up on it
        self._check_at: float | None = None

    def abandoned(self, delivery_id: str) -> None:
        """A send whose outcome could not be recorded: held until a lease sweep after its
        lease ran out has taken it back (counted; dead on its last attempt). Nothing to keep
        where no claim's answer is lost (SQLite): no release runs there to keep it from."""
        if self.store.claim_bound_s is not None:
            self._abandoned[delivery_id] = self._clock()

    def unanswered(self) -> None:
        """A claiming write failed: its rows may be claimed and never received. Look once
        two bounds have passed (after the last such failure)."""
        if (bound := self.store.claim_bound_s) is not None:
            at = self._clock() + 2 * bound + MARGIN_S
            self._check_at = at if self._check_at is None else max(self._check_at, at)

    def due_in(self) -> float | None:
        """Seconds until a check is due (0: now), None when none is."""
        return None if self._check_at is None else max(0.0, self._check_at - self._clock())

    async def release(
        self, held: Callable[[], Iterable[str]], *, swept_at: float | None = None
    ) -> int:
        """Release the worker's lost claims, when a check is due (or right after a lease sweep
        that read the time ``swept_at``); ``held`` lists the deliveries it is sending or was
        handed. How many went back to the queue."""
        bound = self.store.claim_bound_s
        now = self._clock()
        due = self._check_at is not None and now >= self._check_at
        if bound is None or not (swept_at is not None or due):
            return 0
        if due:  # a sweep before the check is due leaves it due: its claim is not old enough
            self._check_at = None
        if swept_at is not None:
            self._forget_swept(swept_at)
        try:
            released = await self.store.release_lost(
                worker=self.worker,
                held=lambda: [*held(), *self._abandoned],  # called once no claim is on its way
                claimed_before=now - 2 * bound - MARGIN_S,
                now=now,
            )
        except BaseException:
            self._check_at = now  # the store is away: look again once it is back
            raise
        if released:
            log.warning("dispatch.lost_claims_released", deliveries=released, bound_s=bound)
        return released

    def _forget_swept(self, swept_at: float) -> None:
        """The abandoned sends whose lease ended before a sweep read ``swept_at``: that sweep
        took them back (a check due before the sweep keeps them, lease over or not)."""
        lease_s = self.lease_s + MARGIN_S
        self._abandoned = {k: at for k, at in self._abandoned.items() if at + lease_s > swept_at}
