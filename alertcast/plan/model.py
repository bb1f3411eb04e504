"""What a planner reads and what it returns.

A planner is a pure function of the stored :class:`Chain`, the configuration, the
:class:`Asker` and a :class:`Moment`; it returns a :class:`Plan`: the authority decision with
its reason, the one :class:`~alertcast.store.base.Write` that makes the change, the answer to
give and the events to publish. The commit path applies it; nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from alertcast.config import IssuerConfig
from alertcast.store.base import DeliveryRow, IdempotencyRecord, IncidentRow, Write

__all__ = ["DAEMON", "Asker", "Authority", "Chain", "Moment", "Plan"]

DAEMON = "alertcast"  # the actor of changes the daemon makes by itself (a quota fallback)


@dataclass(frozen=True, slots=True)
class Asker:
    """Who asks for a change, and how to recognise a replay of the request.

    ``issuer`` is the configured issuer behind a request over HTTP or the CLI, whose kinds,
    regions and ``can_approve`` bind it; the daemon's own jobs (feeds, schedules) ask with
    ``issuer=None`` under their own name, bound by their configuration instead.
    """

    name: str
    source: str = "api"
    idempotency_key: str | None = None
    body_sha256: str = ""
    issuer: IssuerConfig | None = None


@dataclass(frozen=True, slots=True)
class Moment:
    """When the change is planned, and where its new ids come from (``prefix -> id``)."""

    at: float
    ids: Callable[[str], str]  # the door passes alertcast.ids.new_id; tests a counter


@dataclass(frozen=True, slots=True)
class Chain:
    """What is stored of one incident: the id a request names and its row, the root (the
    original; None when nothing is stored under that id), the root's follow-ups, the
    deliveries the planner needs (of the root and its follow-ups for a follow-up, of the named
    message for a fallback), and the first answer to a request replayed with its key."""

    asked: str = ""  # the id the request named
    named: IncidentRow | None = None
    root: IncidentRow | None = None
    follow_ups: Sequence[IncidentRow] = ()
    deliveries: Sequence[DeliveryRow] = ()
    replay: IdempotencyRecord | None = None

    def by_account(self) -> dict[str, list[DeliveryRow]]:
        """Per account, the deliveries of the original and its updates, oldest first."""
        out: dict[str, list[DeliveryRow]] = {}
        for row in sorted(self.deliveries, key=lambda r: r.created_at):
            out.setdefault(row.account, []).append(row)
        return out


@dataclass(frozen=True, slots=True)
class Authority:
    """Whether who asks may make the change, and the rule that says so."""

    allowed: bool
    reason: str


@dataclass(frozen=True, slots=True)
class Plan:
    """One change, decided: ``write`` is None when nothing is to be stored (a refusal, a
    replayed request, nothing to do); ``targets`` are the delivered originals the new
    deliveries thread to (delivery id -> remote id), so those may be claimed at once."""

    authority: Authority
    write: Write | None = None
    answer: Mapping[str, Any] = field(default_factory=dict)
    events: Sequence[Mapping[str, Any]] = ()
    targets: Mapping[str, str | None] = field(default_factory=dict)
