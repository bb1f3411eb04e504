"""How much may be sent now: the dispatcher's concurrency and each account's room.

One object keeps every count: a delivery on its way holds a :class:`Ticket` from the moment it
is claimed (from the store, or in the transaction that creates it) until its attempt is
recorded. A ticket holds one of the dispatcher's slots and one of its account's; until the send
holds its rate-limit slot it also counts as *waiting*, so an account never has more claimed than
its rate window lets out before the claim's lease runs out.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

from alertcast.accounts import AccountRuntime, Accounts
from alertcast.models import DeliveryState
from alertcast.store.base import NewDelivery

__all__ = ["Capacity", "Reservation", "Ticket", "takeable"]


def takeable(d: NewDelivery, targets: Mapping[str, str | None], now: float) -> bool:
    """Whether a new delivery may be claimed in the transaction that creates it: due now and
    waiting for nothing (not held, not after another delivery, not a follow-up of an original
    not delivered), and not expired (the store's claim skips those as expired, unsent)."""
    if d.state is not DeliveryState.pending or d.hold or d.wait_for:
        return False
    if d.expires_at is not None and d.expires_at <= now:
        return False
    if d.not_before is not None and d.not_before > now:
        return False
    return not d.target_delivery_id or d.target_delivery_id in targets


@dataclass(eq=False)
class Ticket:
    """One delivery's hold on the dispatcher's and its account's capacity."""

    capacity: Capacity
    runtime: AccountRuntime | None
    waiting: bool = True
    released: bool = False

    def sending(self) -> None:
        """The send holds its rate-limit slot: no longer waiting for the window."""
        if self.waiting and self.runtime is not None:
            self.runtime.waiting -= 1
        self.waiting = False

    def release(self) -> None:
        """The attempt is recorded (or never will be here): give every slot back, once."""
        if self.released:
            return
        self.sending()
        if self.runtime is not None:
            self.runtime.inflight -= 1
        self.capacity.held -= 1
        self.released = True


@dataclass(frozen=True)
class Reservation:
    """Tickets for new deliveries, by delivery id, taken before the transaction that stores
    them claimed; cancelled when that transaction fails."""

    tickets: Mapping[str, Ticket]

    def cancel(self) -> None:
        for ticket in self.tickets.values():
            ticket.release()


class Capacity:
    def __init__(self, accounts: Accounts, concurrency: int) -> None:
        self.accounts = accounts
        self.concurrency = concurrency
        self.held = 0  # tickets not yet released
        self._claiming = False

    @property
    def room(self) -> int:
        """Deliveries the dispatcher may still take on."""
        return max(0, self.concurrency - self.held)

    def free(self, now: float) -> dict[str, int]:
        """Per account, how many more may be claimed now (0 while paused)."""
        return self.accounts.free(now)

    def take(self, account_id: str) -> Ticket:
        """A ticket for a delivery already claimed (an account no longer configured holds only
        the dispatcher's slot: its delivery fails at once)."""
        runtime = self.accounts.get(account_id)
        if runtime is not None:
            runtime.inflight += 1
            runtime.waiting += 1
        self.held += 1
        return Ticket(self, runtime, waiting=runtime is not None)

    @contextlib.contextmanager
    def claiming(self) -> Iterator[None]:
        """While a claim from the store is on its way its rows are not counted yet: nothing is
        reserved at creation meanwhile, which could overbook an account or its window."""
        self._claiming = True
        try:
            yield
        finally:
            self._claiming = False

    def reserve(
        self, deliveries: Sequence[NewDelivery], targets: Mapping[str, str | None], now: float
    ) -> Reservation | None:
        """Tickets for the new deliveries due now that wait for nothing (``targets``: the
        delivered originals a follow-up may thread to), highest priority first, on accounts
        with room, within the dispatcher's; None when there are none."""
        if self._claiming or self.room <= 0:
            return None
        free: dict[str, int] = {}
        tickets: dict[str, Ticket] = {}
        for d in sorted(deliveries, key=lambda d: -d.priority):
            if self.room <= 0:
                break
            if not takeable(d, targets, now) or (runtime := self.accounts.get(d.account)) is None:
                continue
            if d.account not in free:
                free[d.account] = runtime.free(now)
            if free[d.account] > 0:
                free[d.account] -= 1
                tickets[d.id] = self.take(d.account)
        return Reservation(tickets) if tickets else None
