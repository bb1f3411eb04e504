"""What the status API shows of a per-recipient account's deliveries (alertcast.bulk).

A bulk delivery (a parent: one per incident and account, fanned out to each recipient) shows its
recipients' summary by state in ``GET /v1/incidents/{id}`` and ``GET /v1/deliveries/{id}``
(``recipients: {"delivered": n, "retrying": n, …}``); ``GET /v1/deliveries/{id}/recipients``
pages the sends themselves by recipient id (``?state=&after=&limit=``; ``next`` is the
``after`` of the next page, null on the last one). A recipient's own columns (a phone number,
an address) are never shown.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from alertcast import edge, keys
from alertcast.errors import FieldError
from alertcast.reads import Reader
from alertcast.recipients import MAX_ID
from alertcast.store.base import DeliveryRow, Store
from alertcast.views import DeliveryView, RecipientPage, RecipientSendView

__all__ = ["STATES", "delivery_view", "setup_routes"]

STATES = ("pending", "retrying", "delivered", "failed", "dead")
MAX_PAGE, DEFAULT_PAGE = 1000, 100
routes = web.RouteTableDef()


def is_bulk(d: DeliveryRow) -> bool:
    """Whether ``d`` is a per-recipient parent that began its expansion."""
    return bool(d.progress) and "recipients" in (d.progress or {})


async def delivery_view(store: Store, d: DeliveryRow, **kw: Any) -> DeliveryView:
    """:meth:`DeliveryView.of`, with the recipients' summary of a bulk delivery."""
    view = DeliveryView.of(d, **kw)
    if not is_bulk(d):
        return view
    return view.model_copy(update={"recipients": await store.recipient_summary(d.id)})


@routes.get("/v1/deliveries/{id}/recipients")
async def delivery_recipients(request: web.Request) -> web.Response:
    q = request.query
    state, after, limit = _state(q.get("state")), _after(q.get("after")), _limit(q.get("limit"))
    app = request.app
    row = await Reader(app[keys.STORE], request[keys.ISSUER], app[keys.PLANNER].regions).delivery(
        request.match_info["id"]
    )
    if row is None:
        raise web.HTTPNotFound(text=f"no delivery {request.match_info['id']}")
    store = app[keys.STORE]
    sends = await store.recipient_sends(row.id, state=state, after=after, limit=limit)
    page = RecipientPage(
        delivery_id=row.id,
        summary=await store.recipient_summary(row.id),
        recipients=[RecipientSendView.of(s) for s in sends],
        next=sends[-1].recipient_id if len(sends) == limit else None,
    )
    return web.json_response(page.model_dump(mode="json"))


def _bad(name: str, why: str) -> edge.BadRequest:
    return edge.BadRequest(f"{name} {why}", [FieldError(name, why)])


def _state(raw: str | None) -> str | None:
    if raw is not None and raw not in STATES:
        raise _bad("state", f"must be one of {', '.join(STATES)}")
    return raw


def _after(raw: str | None) -> str:
    if raw is None:
        return ""
    if len(raw) > MAX_ID or not raw.isprintable():
        raise _bad("after", f"must be a recipient id: 1 to {MAX_ID} printable characters")
    return raw


def _limit(raw: str | None) -> int:
    if raw is None:
        return DEFAULT_PAGE
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 6) or not 1 <= int(raw) <= MAX_PAGE:
        raise _bad("limit", f"must be a whole number from 1 to {MAX_PAGE}")
    return int(raw)


def setup_routes(app: web.Application) -> None:
    app.add_routes(routes)
