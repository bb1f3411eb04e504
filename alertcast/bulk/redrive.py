"""An operator's re-drive of a settled per-recipient parent (``POST /v1/deliveries/{id}/retry``).

The store's requeue makes the parent itself due again with a new budget; its sends are this
module's. A pass that settles its parent (the verdict, or its last attempt) marks the parent's
progress :data:`SETTLED`, saved with the attempt's record; a settled parent is claimed again
only after a re-drive, so the next pass that finds the mark makes the failed and dead sends
due again, each with the re-drive's budget, and only those (a delivered one is never resent,
a withdrawn one stays withdrawn), then clears the mark. Interrupted half way, the next pass
finds the mark still set and requeues the rest: those already due are not touched again.
"""

from __future__ import annotations

from alertcast.store.base import DeliveryRow, SendOutcome, Store

__all__ = ["SETTLED", "requeue_refused"]

SETTLED = "settled"  # in the parent's progress: the pass that wrote it settled the parent
PAGE = 1000  # sends requeued per write
REFUSED = ("failed", "dead")


async def requeue_refused(store: Store, parent: DeliveryRow, *, worker: str, now: float) -> int:
    """The parent's failed and dead sends due again at once, each left at most as many
    attempts as the parent had before this one (so each has the re-drive's budget); how many.
    Their last error and status stay, for the recipients page, until the next attempt."""
    before = max(0, parent.attempts - 1)
    requeued = 0
    for state in REFUSED:
        after = ""
        while page := await store.recipient_sends(parent.id, state=state, after=after, limit=PAGE):
            outcomes = [
                SendOutcome(
                    s.recipient_id,
                    "pending",
                    min(s.attempts, before),
                    http_status=s.http_status,
                    last_error=s.last_error,
                )
                for s in page
            ]
            await store.record_recipients(parent.id, outcomes, now=now, worker=worker, done=[])
            requeued += len(page)
            after = page[-1].recipient_id
    return requeued
