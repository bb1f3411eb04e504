"""Slots: the sends an account's windows and quotas count, taken atomically where they are kept.

A *slot* is one send, recorded under an account key (the account, or the platform's app whose
quota several accounts share) in each *budget* it spends (a rate window, an hourly budget, the
day's mass sends), with ``ends_at``: while the send is in flight, its start plus a lease (a slot
of a replica that crashed mid-send counts as finished then, so it never blocks forever); once
finished, the moment it finished. A :class:`Need` asks for room among the slots of a budget
ending after ``since`` (``now - window_s`` for a sliding window, the local midnight for a daily
quota); a take inserts the slot in every budget its needs name only when every need has room,
and in the same transaction, so replicas sharing the store never together exceed a window.
Every instant of a slot and a need is read on :meth:`Slots.clock`, the one clock all holders
of the slots share (the store's: PostgreSQL's clock, :mod:`alertcast.store.clock`), never on
each replica's own, which may be seconds apart; durations (a lease, a wait) are anyone's.

:class:`Slots` is what the store implements (``limit_slots``, migration 0007: PostgreSQL
serialises takes per account with an advisory lock, SQLite's single writer already does);
:class:`MemorySlots` keeps them in the process (one daemon, no store to share, and tests).
A leaf: it imports nothing of alertcast, so the store, the limiter and the channels share it.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Protocol

__all__ = ["Answer", "MemorySlots", "Need", "SlotRow", "Slots", "counted", "has_room"]


@dataclass(frozen=True, slots=True)
class Need:
    """Room for one more slot of ``budget``: fewer than ``cap`` of its slots end after ``since``."""

    budget: str
    cap: int
    since: float


@dataclass(frozen=True, slots=True)
class SlotRow:
    """One budget's record of one send."""

    id: str
    budget: str
    started_at: float
    ends_at: float
    finished: bool


@dataclass(frozen=True, slots=True)
class Answer:
    """A take's outcome and the slots its needs counted (with the new one when ``taken``)."""

    taken: bool
    held: tuple[SlotRow, ...]


class Slots(Protocol):
    def clock(self) -> float:
        """Now (seconds since the epoch) on the clock every holder of these slots reads."""
        ...

    async def take_slot(
        self, key: str, slot_id: str, needs: Sequence[Need], *, now: float, lease_s: float
    ) -> Answer:
        """Insert ``slot_id`` in every budget of ``needs`` if each has room, atomically; a slot
        already taken under ``key`` is taken (a retry), whatever the room."""
        ...

    async def finish_slot(self, key: str, slot_id: str, *, now: float) -> None:
        """The send is over: its slots count from ``now``."""
        ...

    async def drop_slot(self, key: str, slot_id: str) -> None:
        """The send never went out: forget its slots."""
        ...

    async def held_slots(self, key: str, needs: Sequence[Need]) -> tuple[SlotRow, ...]:
        """The slots ``needs`` count now, without taking one."""
        ...


def counted(held: Iterable[SlotRow], need: Need) -> list[SlotRow]:
    """The slots of ``held`` that ``need`` counts."""
    return [r for r in held if r.budget == need.budget and r.ends_at > need.since]


def has_room(held: Iterable[SlotRow], needs: Sequence[Need]) -> bool:
    rows = list(held)
    return all(len(counted(rows, need)) < need.cap for need in needs)


def oldest_since(needs: Sequence[Need]) -> dict[str, float]:
    """Per budget, the earliest ``since`` of ``needs``: what is older counts for nothing."""
    since: dict[str, float] = {}
    for need in needs:
        since[need.budget] = min(need.since, since.get(need.budget, need.since))
    return since


class MemorySlots:
    """:class:`Slots` in this process's memory: every take is atomic (no await inside)."""

    def __init__(self) -> None:
        self._rows: dict[str, dict[tuple[str, str], SlotRow]] = {}

    def clock(self) -> float:
        """One process: its wall clock."""
        return time.time()

    def _held(self, key: str, needs: Sequence[Need]) -> tuple[SlotRow, ...]:
        since = oldest_since(needs)
        rows = self._rows.setdefault(key, {})
        for k, row in list(rows.items()):  # prune what no need counts any more
            if row.budget in since and row.ends_at <= since[row.budget]:
                del rows[k]
        return tuple(r for r in rows.values() if r.budget in since)

    async def take_slot(
        self, key: str, slot_id: str, needs: Sequence[Need], *, now: float, lease_s: float
    ) -> Answer:
        held = self._held(key, needs)
        rows = self._rows[key]
        if any(r.id == slot_id for r in rows.values()) or has_room(held, needs):
            for budget in oldest_since(needs):
                new = SlotRow(slot_id, budget, now, now + lease_s, finished=False)
                rows.setdefault((budget, slot_id), new)
            return Answer(True, self._held(key, needs))
        return Answer(False, held)

    async def finish_slot(self, key: str, slot_id: str, *, now: float) -> None:
        rows = self._rows.get(key, {})
        for k, row in list(rows.items()):
            if row.id == slot_id:
                rows[k] = replace(row, ends_at=now, finished=True)

    async def drop_slot(self, key: str, slot_id: str) -> None:
        rows = self._rows.get(key, {})
        for k in [k for k, row in rows.items() if row.id == slot_id]:
            del rows[k]

    async def held_slots(self, key: str, needs: Sequence[Need]) -> tuple[SlotRow, ...]:
        return self._held(key, needs)
