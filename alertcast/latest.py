"""What is in force now: active, actual incidents by region, with their latest facts.

The WeChat keyword reply (``地震``, ``最新`` …) reads it; drills never appear here. It is public
like ``/p/{id}``: only released text — no incident awaiting approval, and the latest facts are
those of the latest released update, never of one still awaiting its second person. An incident
past its validity (:mod:`alertcast.expiry`) is no longer in force and is left out.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from pydantic import ValidationError

from alertcast.config import ExpiryConfig
from alertcast.expiry import expired
from alertcast.models import IncidentState, MsgType, parse_incident
from alertcast.regions import Hierarchy
from alertcast.render.facts import spoken
from alertcast.store.base import Store

__all__ = ["Latest"]

SCAN = 200


class Latest:
    def __init__(
        self,
        store: Store,
        regions: Hierarchy,
        expiry: ExpiryConfig | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.regions = regions
        self.expiry = expiry or ExpiryConfig()
        self.clock = clock

    async def __call__(
        self, kind: str | None, regions: list[str], limit: int, language: str | None = None
    ) -> list[dict[str, Any]]:
        """Newest first, at most ``limit``, in any of ``regions`` (all when empty); a feed
        quake's headline and area said in ``language`` when given (the reader's account's)."""
        rows = await self.store.list_incidents(
            limit=SCAN, kind=kind, state="active", status="actual"
        )
        out: list[dict[str, Any]] = []
        for row in rows:
            if row.msg_type != MsgType.alert.value:
                continue
            codes = list(row.body.get("area", {}).get("codes", []))
            if regions and not self.regions.any_covers(regions, codes):
                continue
            updates = [
                f
                for f in await self.store.follow_ups(row.id)
                if f.msg_type == MsgType.update.value and f.state == IncidentState.active.value
            ]
            body = dict(updates[-1].body) if updates else dict(row.body)
            if expired(body, self.expiry, self.clock()):
                continue
            out.append({"id": row.id, **_said(body, language)})
            if len(out) >= limit:
                break
        return out


def _said(body: dict[str, Any], language: str | None) -> dict[str, Any]:
    """``body`` with a feed quake's headline and area name in ``language``."""
    if language is None:
        return body
    try:
        words = spoken(parse_incident(body), language)
    except ValidationError:
        return body
    if "headline" in words:
        body = {**body, "headline": words["headline"]}
    if "area" in words:
        body = {**body, "area": {**body.get("area", {}), "name": words["area"]}}
    return body
