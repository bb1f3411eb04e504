"""The dispatcher's inbox: what the commit path hands it, and wake-ups.

The commit path puts the deliveries a transaction claimed (each with its capacity ticket) and
rings when it stored work the dispatcher must claim itself; PostgreSQL's LISTEN/NOTIFY rings it
for work another replica stored. The dispatcher alone takes from it. Nothing here calls back.
"""

from __future__ import annotations

import asyncio
import contextlib

from alertcast.capacity import Ticket
from alertcast.store.base import ActiveClaim

__all__ = ["Inbox"]

Handed = tuple[ActiveClaim, Ticket]


class Inbox:
    def __init__(self) -> None:
        self._handed: list[Handed] = []
        self._rung = asyncio.Event()
        self._due = False
        self.open = False  # a running dispatcher takes from it
        self.unanswered = False  # a claiming write failed: its answer may have been lost

    def hand(self, handed: list[Handed]) -> bool:
        """Deliveries claimed at creation, to send at once; False (nothing taken) when no
        dispatcher runs: their rows stay claimed and the next start, or another replica's
        lease sweep, sends them."""
        if not self.open:
            return False
        self._handed += handed
        self._rung.set()
        return True

    def claim_failed(self) -> None:
        """A write that claimed at creation failed: it may have been committed all the same
        (its answer lost), its rows claimed and never handed (:mod:`alertcast.lost`)."""
        self.unanswered = True
        self._rung.set()

    def held(self) -> list[str]:
        """The deliveries handed and not yet taken."""
        return [claim.delivery.id for claim, _ in self._handed]

    def wake(self) -> None:
        """Due work is in the store: claim it."""
        self._due = True
        self._rung.set()

    @property
    def rung(self) -> bool:
        """Whether something came that the dispatcher has not looked at yet."""
        return self._rung.is_set()

    def take(self) -> list[Handed]:
        handed, self._handed = self._handed, []
        return handed

    def due(self) -> bool:
        """Whether a wake-up came since the last call (and forget it)."""
        due, self._due = self._due, False
        return due

    async def wait(self, timeout_s: float) -> bool:
        """Until rung or ``timeout_s``; True when rung."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                await self._rung.wait()
        rung = self._rung.is_set()
        self._rung.clear()
        return rung
