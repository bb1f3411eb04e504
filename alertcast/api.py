"""HTTP handlers of the public contract (DESIGN.md, "Public contract")."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections import Counter
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import ValidationError

from alertcast import cap_api, edge, keys, openapi, recipients_api
from alertcast.accounts import AccountRuntime
from alertcast.errors import FieldError, invalid
from alertcast.models import DeliveryState, Incident, IncidentState, parse_incident
from alertcast.page import render_page
from alertcast.plan import Asker
from alertcast.preview import preview
from alertcast.reads import Reader, published, released
from alertcast.store.base import AuditRow, IncidentRow
from alertcast.stream import stream_events
from alertcast.views import AuditView, CancelBody, DeliveryView, IncidentSummary, IncidentView

__all__ = ["setup_routes"]

JSON_TYPES = ("application/json",)
CAP_TYPES = ("application/cap+xml", "application/xml", "text/xml")
MAX_LIST = 500
MAX_VIEW_DELIVERIES = 10_000
routes = web.RouteTableDef()


def _json(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=lambda d: json.dumps(d, ensure_ascii=False))


async def _read_body(request: web.Request) -> bytes:
    limit = request.app[keys.CONFIG].server.max_body_bytes
    if (request.content_length or 0) > limit:
        raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=request.content_length or 0)
    return await request.read()


async def _incident_from_request(request: web.Request) -> tuple[Incident, bytes]:
    ctype = request.content_type
    if ctype in CAP_TYPES:
        return await cap_api.read_incident(request)
    if ctype not in JSON_TYPES:
        raise web.HTTPUnsupportedMediaType(
            text=f"Content-Type {ctype or '(none)'} is not accepted; send application/json "
            "or application/cap+xml"
        )
    body = await _read_body(request)
    return parse_incident(await edge.json_body(request)), body


@routes.post("/v1/incidents")
async def post_incident(request: web.Request) -> web.Response:
    if request.content_type in CAP_TYPES:  # an alert, update or cancellation (docs/cap.md)
        return await cap_api.post_cap(request)
    incident, body = await _incident_from_request(request)
    answer = await request.app[keys.DOOR].alert(incident, _asker(request, body))
    return _json(answer, 202)


async def _incident_or_404(request: web.Request) -> IncidentRow:
    row = await request.app[keys.STORE].get_incident(request.match_info["id"])
    if row is None:
        raise web.HTTPNotFound(text=f"no incident {request.match_info['id']}")
    return row


def _reader(request: web.Request) -> Reader:
    """The store as the requesting issuer may see it (its kinds and regions)."""
    app = request.app
    return Reader(app[keys.STORE], request[keys.ISSUER], app[keys.PLANNER].regions)


@routes.get("/v1/incidents/{id}")
async def get_incident(request: web.Request) -> web.Response:
    if cap_api.CAP_MEDIA in request.headers.get("Accept", ""):
        return await cap_api.incident_cap(request, request.match_info["id"])
    row = await _reader(request).incident(request.match_info["id"])
    if row is None:
        raise web.HTTPNotFound(text=f"no incident {request.match_info['id']}")
    return _json(await incident_view(request.app, row))


async def incident_view(app: web.Application, row: IncidentRow) -> dict[str, Any]:
    """One consistent view: counts and ``settled`` come from the same read as the deliveries."""
    store = app[keys.STORE]
    deliveries, follow, audit = await asyncio.gather(
        store.list_deliveries(incident_id=row.id, limit=MAX_VIEW_DELIVERIES),
        store.follow_ups(row.id),
        store.audit_trail(row.id),
    )
    counts = dict(Counter(d.state.value for d in deliveries))
    if len(deliveries) == MAX_VIEW_DELIVERIES:  # very large fan-outs: counts over all rows
        counts = await store.counts(row.id)
    view = IncidentView(
        **_summary(app, row).model_dump(),
        incident=dict(row.body),
        counts=counts,
        settled=all(DeliveryState(s).settled for s in counts),
        deliveries=[await recipients_api.delivery_view(store, d, payload=True) for d in deliveries],
        follow_ups=[f.id for f in follow],
        audit=[AuditView.of(a) for a in audit],
    )
    return view.model_dump(mode="json")


async def _json_object(request: web.Request) -> dict[str, Any]:
    if request.content_type not in JSON_TYPES:
        raise web.HTTPUnsupportedMediaType(text="send application/json")
    await _read_body(request)
    data = await edge.json_body(request)
    if not isinstance(data, dict):
        raise web.HTTPUnprocessableEntity(text="the body must be a JSON object")
    return data


def _asker(request: web.Request, body: bytes = b"", *, replays: bool = True) -> Asker:
    """The issuer behind the request, and the key and digest that recognise a replay
    (``replays``: the change records them, so a repeat with the key gets the first answer)."""
    if replays:
        request[keys.REPLAYS] = "Idempotency-Key"
    key = request.headers.get("Idempotency-Key", "").strip() or None
    if key is not None and len(key) > 200:
        raise web.HTTPBadRequest(text="Idempotency-Key is longer than 200 characters")
    digest = hashlib.sha256(request.path.encode() + b"\n" + body).hexdigest()
    issuer = request[keys.ISSUER]
    return Asker(issuer.name, idempotency_key=key, body_sha256=digest, issuer=issuer)


@routes.post("/v1/incidents/{id}/update")
async def update_incident(request: web.Request) -> web.Response:
    patch = await _json_object(request)
    asker = _asker(request, await request.read())
    answer = await request.app[keys.DOOR].update(request.match_info["id"], patch, asker)
    return _json(answer, 202)


@routes.post("/v1/incidents/{id}/cancel")
async def cancel_incident(request: web.Request) -> web.Response:
    try:
        body = CancelBody.model_validate(await _json_object(request))
    except ValidationError as exc:
        raise invalid(exc, "cancellation") from None
    asker = _asker(request, await request.read())
    answer = await request.app[keys.DOOR].cancel(request.match_info["id"], body.reason, asker)
    return _json(answer, 202)


@routes.post("/v1/incidents/{id}/approve")
async def approve_incident(request: web.Request) -> web.Response:
    asker = _asker(request, replays=False)  # an approval records no key: repeated, a 409
    answer = await request.app[keys.DOOR].approve(request.match_info["id"], asker)
    return _json(answer)


@routes.post("/v1/incidents/{id}/reject")
async def reject_incident(request: web.Request) -> web.Response:
    try:
        body = CancelBody.model_validate(await _json_object(request))
    except ValidationError as exc:
        raise invalid(exc, "rejection") from None
    asker = _asker(request, await request.read())
    answer = await request.app[keys.DOOR].reject(request.match_info["id"], body.reason, asker)
    return _json(answer)


@routes.get("/v1/incidents")
async def list_incidents(request: web.Request) -> web.Response:
    q = request.query
    rows = await _reader(request).incidents(
        _limit(q.get("limit")), kind=q.get("kind"), state=q.get("state"), status=q.get("status")
    )
    summaries = [_summary(request.app, r) for r in rows]
    if q.get("state") == IncidentState.active.value:  # in force: not past its validity
        summaries = [s for s in summaries if s.state == IncidentState.active.value]
    return _json({"incidents": [s.model_dump(mode="json") for s in summaries]})


def _summary(app: web.Application, row: IncidentRow) -> IncidentSummary:
    """The row's summary, ``expired`` once past its validity (alertcast.expiry)."""
    return IncidentSummary.of(row, app[keys.CONFIG].expiry, time.time())


def _limit(raw: str | None, default: int = 50) -> int:
    if raw is None:
        return default
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 6) or not 1 <= int(raw) <= MAX_LIST:
        why = f"must be a whole number from 1 to {MAX_LIST}"
        raise edge.BadRequest(f"limit {why}", [FieldError("limit", why)])
    return int(raw)


@routes.get("/v1/deliveries")
async def list_deliveries(request: web.Request) -> web.Response:
    q = request.query
    state = q.get("state")
    if state is not None and state not in DeliveryState.__members__:
        why = f"must be one of {', '.join(DeliveryState.__members__)}"
        raise edge.BadRequest(f"state {why}", [FieldError("state", why)])
    rows = await request.app[keys.STORE].list_deliveries(
        state=state,
        account=q.get("account"),
        incident_id=q.get("incident_id"),
        limit=_limit(q.get("limit"), MAX_LIST),
    )
    rows = await _reader(request).deliveries(rows)
    return _json({"deliveries": [DeliveryView.of(r).model_dump(mode="json") for r in rows]})


@routes.get("/v1/deliveries/{id}")
async def get_delivery(request: web.Request) -> web.Response:
    store = request.app[keys.STORE]
    row = await _reader(request).delivery(request.match_info["id"])
    if row is None:
        raise web.HTTPNotFound(text=f"no delivery {request.match_info['id']}")
    view = await recipients_api.delivery_view(
        store, row, payload=True, attempts=await store.attempts(row.id)
    )
    return _json(view.model_dump(mode="json"))


@routes.post("/v1/deliveries/{id}/retry")
async def retry_delivery(request: web.Request) -> web.Response:
    asker = _asker(request, replays=False)  # a re-drive records no key: repeated, a 409
    again = await request.app[keys.DOOR].retry(request.match_info["id"], asker)
    return _json(DeliveryView.of(again).model_dump(mode="json"), 202)


@routes.get("/v1/channels")
async def channels(request: web.Request) -> web.Response:
    now, accounts = time.time(), request.app[keys.ACCOUNTS]
    shown = _reader(request).accounts(iter(accounts))
    return _json({"accounts": [a.describe(now) for a in shown]})


def _account_or_404(request: web.Request) -> AccountRuntime:
    runtime = request.app[keys.ACCOUNTS].get(request.match_info["id"])
    if runtime is None or not _reader(request).accounts([runtime]):
        raise web.HTTPNotFound(text=f"no account {request.match_info['id']}")
    return runtime


async def _operated(
    request: web.Request, runtime: AccountRuntime, action: str, **detail: str
) -> web.Response:
    """Audit an operator's pause or resume; the dispatcher stores the pause on waking."""
    audit = AuditRow(
        time.time(), request[keys.ISSUER].name, action, detail={"account": runtime.id, **detail}
    )
    await request.app[keys.STORE].add_audit(audit)
    request.app[keys.DISPATCHER].wake()
    return _json(runtime.describe(time.time()))


@routes.post("/v1/channels/{id}/pause")
async def pause_channel(request: web.Request) -> web.Response:
    runtime = _account_or_404(request)
    try:
        body = CancelBody.model_validate(await _json_object(request))  # {reason}, as there
    except ValidationError as exc:
        raise invalid(exc, "pause") from None
    runtime.pause(f"paused by {request[keys.ISSUER].name}: {body.reason}", operator=True)
    return await _operated(request, runtime, "account.pause", reason=body.reason)


@routes.post("/v1/channels/{id}/resume")
async def resume_channel(request: web.Request) -> web.Response:
    runtime = _account_or_404(request)
    runtime.resume(request.app[keys.STORE].clock())
    return await _operated(request, runtime, "account.resume")


routes.get("/v1/stream")(stream_events)  # alertcast/stream.py: ids, replay, gaps


@routes.post("/v1/render")
async def render_preview(request: web.Request) -> web.Response:
    incident, _ = await _incident_from_request(request)
    if (why := _reader(request).refusal(incident)) is not None:  # routing is not for all eyes
        raise web.HTTPForbidden(text=why)
    app = request.app
    account = request.query.get("account")
    planner = app[keys.PLANNER]
    return _json(
        preview(app[keys.CONFIG], planner.drafter.renderer, incident, account, planner.regions)
    )


@routes.get("/p/{id}")
async def public_page(request: web.Request) -> web.Response:
    row = await _incident_or_404(request)
    if row.references:
        raise web.HTTPFound(f"/p/{row.references}")
    if not await released(request.app[keys.STORE], row):  # held, or withdrawn while held
        raise web.HTTPNotFound(text=f"no incident {row.id}")
    follow = [f for f in await request.app[keys.STORE].follow_ups(row.id) if published(row, f)]
    return web.Response(
        text=render_page(row, follow, request.app[keys.CONFIG].expiry, time.time()),
        content_type="text/html",
        headers={"Cache-Control": "public, max-age=30"},
    )


@routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    dispatcher = request.app[keys.DISPATCHER]
    up = await dispatcher.outage.probe()  # an outage also ends, or starts, here
    body = {"status": "ok" if up else "degraded", **dispatcher.outage.view()}
    body |= {"inflight": dispatcher.inflight, "unrecorded": len(dispatcher.outage.waiting)}
    return _json(body, 200 if up else 503)


@routes.get("/metrics")
async def metrics_view(request: web.Request) -> web.Response:
    resp = web.Response(body=generate_latest())
    resp.content_type = CONTENT_TYPE_LATEST.split(";")[0]
    return resp


@routes.get("/openapi.json")
async def openapi_view(request: web.Request) -> web.Response:
    return _json(openapi.document(request.app))


def setup_routes(app: web.Application) -> None:
    app.add_routes(routes)
    recipients_api.setup_routes(app)  # /v1/deliveries/{id}/recipients
