"""What the console's pages show, read through the issuer's :class:`~alertcast.reads.Reader`:
an incident's chain and its account × message grid, a held message's texts, the text a
cancellation would carry on each account, a feed's health in an operator's terms.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from aiohttp import web

from alertcast import keys
from alertcast.models import DeliveryState, IncidentState, MsgType, parse_incident
from alertcast.preview import public_link, render_for
from alertcast.reads import Reader
from alertcast.render import RenderContext, RenderError
from alertcast.store.base import DeliveryRow, IncidentRow
from alertcast.views import DeliveryView, IncidentSummary

__all__ = ["cancel_texts", "feed_row", "held_item", "incident_page", "summary", "text_entry"]

MAX_DELIVERIES = 2000
HELD = IncidentState.awaiting_approval.value
STATES = [s.value for s in DeliveryState]


def summary(app: web.Application, row: IncidentRow) -> IncidentSummary:
    return IncidentSummary.of(row, app[keys.CONFIG].expiry, time.time())


def text_entry(
    account: str, channel: str, payload: dict[str, Any] | None, **extra: Any
) -> dict[str, Any]:
    """One account's text as the platform counts it: the text, and each measured length."""
    payload = payload or {}
    text = payload.get("text") or payload.get("content") or payload.get("title") or ""
    lengths = [
        {"field": field, **{k: v for k, v in m.items() if k in ("used", "limit", "unit")}}
        for field, m in (payload.get("lengths") or {}).items()
        if isinstance(m, dict)
    ]
    return {
        "account": account,
        "channel": channel,
        "format": payload.get("format", ""),
        "text": str(text),
        "lengths": lengths,
        **extra,
    }


async def _deliveries(app: web.Application, message_id: str) -> list[DeliveryRow]:
    return await app[keys.STORE].list_deliveries(incident_id=message_id, limit=MAX_DELIVERIES)


async def held_item(app: web.Application, reader: Reader, row: IncidentRow) -> dict[str, Any]:
    """A message awaiting approval: who wrote it, whether this viewer may release it, its texts
    side by side (the payloads stored with its held deliveries)."""
    root = await reader.incident(row.references) if row.references else row
    authors = {row.issuer} | ({root.issuer} if root is not None else set())
    texts = [
        text_entry(d.account, d.channel, dict(d.payload)) for d in await _deliveries(app, row.id)
    ]
    return {
        "row": summary(app, row),
        "body": dict(row.body),
        "root_id": row.references or row.id,
        "own": reader.issuer.name in authors,
        "authors": sorted(authors),
        "texts": texts,
    }


def _label(row: IncidentRow, index: int) -> str:
    return row.msg_type if row.msg_type != MsgType.update.value else f"update {index}"


async def incident_page(
    app: web.Application, reader: Reader, incident_id: str
) -> dict[str, Any] | None:
    """The incident (root) of ``incident_id``, its chain in order, and one grid row per
    delivery of every message in it; None when the viewer may not see it."""
    row = await reader.incident(incident_id)
    if row is None:
        return None
    root = await reader.incident(row.references) if row.references else row
    if root is None:
        return None
    chain = [root, *[f for f in await app[keys.STORE].follow_ups(root.id)]]
    rows, counts = [], []
    for n, message in enumerate(chain):
        label = _label(message, n)
        found = await _deliveries(app, message.id)
        counts.append({"id": message.id, "label": label, "counts": _counts(found)})
        rows += [_grid_row(message, label, d) for d in found]
    rows.sort(key=lambda r: (r["account"], r["order"]))
    held = [await held_item(app, reader, m) for m in chain if m.state == HELD]
    return {
        "root": summary(app, root),
        "body": dict(root.body),
        "chain": [summary(app, m) for m in chain],
        "messages": counts,
        "rows": rows,
        "held": held,
        "settled": all(DeliveryState(r["state"]).settled for r in rows),
        "cancelled": root.state == IncidentState.cancelled.value,
    }


def _counts(deliveries: list[DeliveryRow]) -> dict[str, int]:
    out: dict[str, int] = {}
    for d in deliveries:
        out[d.state.value] = out.get(d.state.value, 0) + 1
    return {s: out[s] for s in STATES if s in out}


def _grid_row(message: IncidentRow, label: str, d: DeliveryRow) -> dict[str, Any]:
    view = DeliveryView.of(d)
    return {
        "order": message.created_at,
        "message": label,
        "message_id": message.id,
        **view.model_dump(mode="json"),
        "text": text_entry(d.account, d.channel, dict(d.payload))["text"],
    }


async def cancel_texts(
    app: web.Application, reader: Reader, incident_id: str, reason: str
) -> list[dict[str, Any]] | None:
    """The cancellation's text on every account the original went to (its own format)."""
    row = await reader.incident(incident_id)
    root = await reader.incident(row.references) if row and row.references else row
    if root is None:
        return None
    config, renderer = app[keys.CONFIG], app[keys.PLANNER].drafter.renderer
    incident = parse_incident(dict(root.body))
    link = public_link(config, incident, root.id)
    ctx = RenderContext(root.id, MsgType.cancel, link, references=root.id, reason=reason or "…")
    reached = {d.account for d in await _deliveries(app, root.id)}
    out = []
    for account in (a for a in config.accounts if a.id in reached):
        try:
            payload = render_for(renderer, incident, account, ctx)
            out.append(text_entry(account.id, account.channel, payload))
        except RenderError as exc:
            out.append(text_entry(account.id, account.channel, None, error=str(exc)))
    return out


def feed_row(feed: dict[str, Any]) -> dict[str, Any]:
    """A feed's health with its lag: how long since its last good poll."""
    last = feed.get("last_success_at")
    lag_s = None
    if isinstance(last, str):
        lag_s = round(time.time() - datetime.fromisoformat(last.replace("Z", "+00:00")).timestamp())
    return {**feed, "lag_s": lag_s}
