"""What a token may read: incidents, deliveries, accounts and stream events within its scope.

An issuer's kinds and regions bind what it reads as they bind what it changes. Reads of a
message out of scope answer as if it did not exist (no id is confirmed to someone who may not
see it); lists leave such rows out. What the public may read (``/p/{id}``) is :func:`released`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from alertcast.accounts import AccountRuntime
from alertcast.config import IssuerConfig
from alertcast.models import Incident, IncidentState
from alertcast.plan.authority import covers, operates, sees
from alertcast.regions import Hierarchy
from alertcast.store.base import DeliveryRow, IncidentRow, Store

__all__ = ["Reader", "published", "released"]

PAGES = 10  # a scoped list reads at most this many pages of the newest rows
HELD = IncidentState.awaiting_approval.value


def published(root: IncidentRow, row: IncidentRow) -> bool:
    """Whether a follow-up of ``root`` was released: not held, and not rejected by a second
    person (a rejected update is stored ``cancelled``, as is a rejected cancellation while
    the incident stands)."""
    if row.state == HELD:
        return False
    if row.state != IncidentState.cancelled.value:
        return True
    return row.msg_type == "cancel" and root.state == IncidentState.cancelled.value


async def released(store: Store, row: IncidentRow) -> bool:
    """Whether an original was ever released to the public: not awaiting approval, and, if it
    was held when raised, approved by a second person — one withdrawn while it was held (a
    cancellation before approval) never was, and its unapproved text stays unpublished."""
    if row.state == HELD:
        return False
    if row.state != IncidentState.cancelled.value:
        return True  # active: released when raised, or approved since
    trail = await store.audit_trail(row.id)
    held = any(a.action == "incident.create" and a.detail.get("state") == HELD for a in trail)
    return not held or any(a.action == "incident.approve" for a in trail)


class Reader:
    """The store and the account list as one issuer may see them."""

    def __init__(self, store: Store, issuer: IssuerConfig, regions: Hierarchy) -> None:
        self.store = store
        self.issuer = issuer
        self.regions = regions
        self._seen: dict[str, bool] = {}

    async def incident(self, incident_id: str) -> IncidentRow | None:
        row = await self.store.get_incident(incident_id)
        if row is None or not self._sees(row):
            return None
        return row

    async def incidents(self, limit: int, **filters: str | None) -> list[IncidentRow]:
        """The newest ``limit`` incidents in scope (reading back a few pages for them)."""
        out: list[IncidentRow] = []
        before: float | None = None
        for _ in range(PAGES):
            rows = await self.store.list_incidents(limit=limit, before=before, **filters)
            out += [r for r in rows if self._sees(r)]
            if len(out) >= limit or len(rows) < limit:
                break
            before = rows[-1].created_at
        return out[:limit]

    async def delivery(self, delivery_id: str) -> DeliveryRow | None:
        row = await self.store.get_delivery(delivery_id)
        if row is None or not await self.sees_message(row.incident_id):
            return None
        return row

    async def deliveries(self, rows: Sequence[DeliveryRow]) -> list[DeliveryRow]:
        return [r for r in rows if await self.sees_message(r.incident_id)]

    async def sees_message(self, incident_id: str) -> bool:
        """Whether the message (alert, update or cancellation) is in scope; remembered."""
        if incident_id not in self._seen:
            row = await self.store.get_incident(incident_id)
            self._seen[incident_id] = row is not None and self._sees(row)
        return self._seen[incident_id]

    async def event(self, event: Mapping[str, Any]) -> bool:
        """Whether a stream event is about a message in scope (shutdown notices always are)."""
        if event.get("type") == "shutdown":
            return True
        incident_id = event.get("incident_id", event.get("id"))
        return isinstance(incident_id, str) and await self.sees_message(incident_id)

    def refusal(self, incident: Incident) -> str | None:
        """Why the issuer may not speak about ``incident`` (preview it, raise it), or None."""
        authority = covers(self.issuer, incident.kind, incident.area.codes, self.regions)
        return None if authority.allowed else authority.reason

    def accounts(self, runtimes: Iterable[AccountRuntime]) -> list[AccountRuntime]:
        return [r for r in runtimes if operates(self.issuer, r.config, self.regions)]

    def _sees(self, row: IncidentRow) -> bool:
        return sees(self.issuer, row, self.regions)
