"""Reading what a planner needs from the store: an incident's chain, or one message."""

from __future__ import annotations

from alertcast.plan import Asker, Chain
from alertcast.store.base import IdempotencyRecord, IncidentRow, Store

__all__ = ["ALL", "Chains"]

ALL = 1_000_000  # every delivery of a message (a follow-up must reach each original)


class Chains:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def replay(self, asker: Asker) -> IdempotencyRecord | None:
        """The first answer to a request made before with the asker's idempotency key."""
        if not asker.idempotency_key:
            return None
        return await self.store.get_idempotency(asker.name, asker.idempotency_key)

    async def new(self, asker: Asker) -> Chain:
        """Nothing stored yet, unless the request is a replay."""
        return Chain(replay=await self.replay(asker))

    async def of(self, incident_id: str, asker: Asker) -> Chain:
        """The incident ``incident_id`` names (itself, or the original of a follow-up), its
        follow-ups and every delivery of them."""
        replay = await self.replay(asker)
        named = await self.store.get_incident(incident_id)
        root = named
        if named is not None and named.references:
            root = await self.store.get_incident(named.references)
        if root is None:
            return Chain(incident_id, named, replay=replay)
        follow = await self.store.follow_ups(root.id)
        rows = list(await self.store.list_deliveries(incident_id=root.id, limit=ALL))
        for f in follow:
            rows += await self.store.list_deliveries(incident_id=f.id, limit=ALL)
        return Chain(incident_id, named, root, follow, rows, replay)

    async def message(self, incident_id: str) -> Chain:
        """One stored message (an alert, update or cancellation), its root (the original,
        whose state is the incident's) and the message's own deliveries."""
        named = await self.store.get_incident(incident_id)
        if named is None:
            return Chain(incident_id)
        rows = await self.store.list_deliveries(incident_id=named.id, limit=ALL)
        return Chain(incident_id, named, await self._root(named), deliveries=rows)

    async def delivery(self, delivery_id: str) -> Chain:
        """One delivery, with the message it belongs to and that message's root."""
        row = await self.store.get_delivery(delivery_id)
        if row is None:
            return Chain(delivery_id)
        named = await self.store.get_incident(row.incident_id)
        root = await self._root(named) if named is not None else None
        return Chain(row.incident_id, named, root, deliveries=(row,))

    async def _root(self, named: IncidentRow) -> IncidentRow | None:
        """The original a message refers to (itself, for an original)."""
        if not named.references:
            return named
        return await self.store.get_incident(named.references)
