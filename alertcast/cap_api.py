"""CAP 1.2 over HTTP, both ways (``docs/cap.md``).

In: ``POST /v1/incidents`` with a CAP body (``api`` hands it here). An ``Alert`` raises an
incident, an ``Update`` or ``Cancel`` goes through the door's update or cancellation of the
incident its ``<references>`` name; the message's ``sender,identifier`` is its idempotency key,
and what it carried (every ``<info>``) is remembered under that key before the ``202`` leaves.

Out: ``GET /v1/incidents/{id}.cap`` (or ``Accept: application/cap+xml``) for any message the
token may read; ``GET /cap/{id}.xml`` and the Atom feed ``GET /cap/alerts.atom`` for everyone,
with released, actual, unexpired alerts only (never a held or drill message).
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiohttp import web

from alertcast import keys
from alertcast.cap import CapError, CapMessage, read_cap
from alertcast.cap_map import cancel_reason, incident_data
from alertcast.cap_out import Message, atom_feed, message_xml
from alertcast.errors import Conflict, FieldError, Invalid
from alertcast.models import Incident, IncidentState, parse_incident
from alertcast.plan import Asker
from alertcast.preview import public_link
from alertcast.reads import Reader, published, released
from alertcast.store.base import FeedEventRow, IncidentRow, Store

__all__ = ["CAP_FEED", "CAP_MEDIA", "incident_cap", "post_cap", "read_incident", "setup_routes"]

CAP_FEED = "cap:in"  # the feed-event rows that remember CAP messages (no [[feeds]] name has ':')
CAP_MEDIA = "application/cap+xml"
ATOM_MEDIA = "application/atom+xml"
FEED_ENTRIES = 100  # Google Public Alerts: a feed of ~100 KB, at most 900 KB
HELD = IncidentState.awaiting_approval.value
routes = web.RouteTableDef()


def _schema(app: web.Application) -> Path | None:
    config = app[keys.CONFIG]
    path = config.cap.schema_path
    if path is None or path.is_absolute() or config.source_path is None:
        return path
    return config.source_path.parent / path


def _scheme(app: web.Application) -> str:
    return app[keys.CONFIG].cap.geocode_name


async def _message(request: web.Request) -> tuple[CapMessage, bytes]:
    limit = request.app[keys.CONFIG].server.max_body_bytes
    if (request.content_length or 0) > limit:
        raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=request.content_length or 0)
    body = await request.read()
    try:
        return read_cap(body, _schema(request.app)), body
    except CapError as exc:
        errors = [FieldError(f, m) for f, m in exc.errors]
        raise Invalid(f"invalid CAP: {exc}", errors) from None


async def read_incident(request: web.Request) -> tuple[Incident, bytes]:
    """The CAP body's first ``<info>`` as a stand-alone incident (``POST /v1/render``)."""
    msg, body = await _message(request)
    try:
        data = incident_data(replace(msg, msg_type="Alert"), _scheme(request.app))
        return parse_incident(data), body
    except CapError as exc:
        raise Invalid(f"invalid CAP: {exc}", [FieldError(exc.field, str(exc))]) from None


def _asker(request: web.Request, msg: CapMessage, body: bytes) -> Asker:
    """The CAP message names itself: ``sender,identifier`` is its idempotency key."""
    request[keys.REPLAYS] = "CAP message (its sender and identifier)"
    key = "cap:" + hashlib.sha256(msg.key.encode()).hexdigest()[:48]
    digest = hashlib.sha256(request.path.encode() + b"\n" + body).hexdigest()
    issuer = request[keys.ISSUER]
    return Asker(issuer.name, source="cap", idempotency_key=key, body_sha256=digest, issuer=issuer)


async def post_cap(request: web.Request) -> web.Response:
    msg, body = await _message(request)
    store, door, asker = request.app[keys.STORE], request.app[keys.DOOR], _asker(request, msg, body)
    scheme = _scheme(request.app)
    known = await store.get_feed_event(CAP_FEED, msg.key)
    if known is not None and known.known.get("issuer") != asker.name:
        raise Conflict(f"CAP message {msg.key[:200]} was already taken from another issuer")
    try:
        if msg.msg_type == "Alert":
            answer = await door.alert(parse_incident(incident_data(msg, scheme)), asker)
        elif msg.msg_type == "Update":
            answer = await door.update(await _thread(store, msg), incident_data(msg, scheme), asker)
        else:
            answer = await door.cancel(await _thread(store, msg), cancel_reason(msg), asker)
    except CapError as exc:
        raise Invalid(f"invalid CAP: {exc}", [FieldError(exc.field, str(exc))]) from None
    if known is None:
        await _remember(store, msg, asker.name, str(answer["id"]))
    return web.json_response(dict(answer), status=202)


async def _remember(store: Store, msg: CapMessage, issuer: str, incident_id: str) -> None:
    """Keep what the message carried, under its name and its incident's id (a replay of a
    message whose first answer was lost writes it then; a concurrent twin's write loses)."""
    row = FeedEventRow(
        feed=CAP_FEED,
        event_id=msg.key,
        known={**msg.record(), "issuer": issuer},
        ids=(incident_id,),
        event_time=time.time(),
        incident_id=incident_id,
    )
    await store.put_feed_event(row, now=row.event_time)


async def _thread(store: Store, msg: CapMessage) -> str:
    """The incident the message's references name: 422 when none is known, or they name two."""
    roots: dict[str, str] = {}
    for ref in msg.references:
        known = await store.get_feed_event(CAP_FEED, ref.key)
        row = await store.get_incident(known.incident_id) if known and known.incident_id else None
        if row is not None:
            roots[row.references or row.id] = ref.text
    texts = " ".join(r.text for r in msg.references)[:300]
    if not roots:
        why = f"names no message alertcast holds ({texts})"
        raise Invalid(f"{msg.msg_type} references {why}", [FieldError("references", why)])
    if len(roots) > 1:
        why = f"name messages of {len(roots)} different incidents ({', '.join(roots)})"
        raise Invalid(f"{msg.msg_type} references {why}", [FieldError("references", why)])
    return next(iter(roots))


async def _record(store: Store, incident_id: str) -> dict[str, Any] | None:
    rows = await store.feed_events(CAP_FEED, ids=[incident_id])
    return next((dict(r.known) for r in rows if r.incident_id == incident_id), None)


async def _compose(app: web.Application, row: IncidentRow, public: bool) -> Message:
    """A stored message with its chain: the released messages before it, its root, its record."""
    store = app[keys.STORE]
    root_id = row.references or row.id
    follow = [f for f in await store.follow_ups(root_id) if f.created_at < row.created_at]
    root = row if root_id == row.id else await store.get_incident(root_id)
    earlier = ([root] if root is not None and root is not row else []) + [
        f for f in follow if not public or (root is not None and published(root, f))
    ]
    link = public_link(app[keys.CONFIG], parse_incident(dict(row.body)), root_id)
    return Message(row, earlier, root_id, await _record(store, row.id), link)


def _cap_response(msg: Message, app: web.Application, public: bool) -> web.Response:
    headers = {"Cache-Control": "public, max-age=30"} if public else None
    body = message_xml(msg, app[keys.CONFIG].cap)
    return web.Response(body=body, content_type=CAP_MEDIA, charset="utf-8", headers=headers)


async def incident_cap(request: web.Request, incident_id: str) -> web.Response:
    """One message the token may read, as CAP 1.2."""
    app = request.app
    row = await Reader(app[keys.STORE], request[keys.ISSUER], app[keys.PLANNER].regions).incident(
        incident_id
    )
    if row is None:
        raise web.HTTPNotFound(text=f"no incident {incident_id}")
    return _cap_response(await _compose(app, row, public=False), app, public=False)


@routes.get("/v1/incidents/{id}.cap")
async def get_incident_cap(request: web.Request) -> web.Response:
    return await incident_cap(request, request.match_info["id"])


async def _public(store: Store, row: IncidentRow | None) -> bool:
    """For everyone: an actual message, not held, of an original that was released."""
    if row is None or row.status != "actual" or row.state == HELD:
        return False
    root = row if not row.references else await store.get_incident(row.references)
    return root is not None and await released(store, root)


@routes.get("/cap/{id}.xml")
async def public_cap(request: web.Request) -> web.Response:
    store, incident_id = request.app[keys.STORE], request.match_info["id"]
    row = await store.get_incident(incident_id)
    if row is None or not await _public(store, row):
        raise web.HTTPNotFound(text=f"no public incident {incident_id}")
    return _cap_response(await _compose(request.app, row, public=True), request.app, True)


def _base(request: web.Request) -> str:
    public = request.app[keys.CONFIG].server.public_url
    return (public or str(request.url.origin())).rstrip("/")


async def _latest(store: Store, root: IncidentRow) -> IncidentRow:
    updates = [
        f for f in await store.follow_ups(root.id) if f.msg_type == "update" and published(root, f)
    ]
    return max(updates, key=lambda f: f.created_at, default=root)


@routes.get("/cap/alerts.atom")
async def alerts_atom(request: web.Request) -> web.Response:
    """Active public alerts, newest first, each its latest released message."""
    app, now = request.app, time.time()
    store, base = app[keys.STORE], _base(request)
    roots = await store.list_incidents(limit=FEED_ENTRIES * 2, state="active", status="actual")
    entries = []
    for root in roots:
        if root.references or (root.expires_at is not None and root.expires_at <= now):
            continue
        latest = await _latest(store, root)
        entries.append((await _compose(app, latest, True), f"{base}/cap/{latest.id}.xml"))
    feed = atom_feed(
        entries[:FEED_ENTRIES],
        app[keys.CONFIG].cap,
        f"{base}/cap/alerts.atom",
        datetime.fromtimestamp(now, UTC),
    )
    headers = {"Cache-Control": "public, max-age=30"}
    return web.Response(body=feed, content_type=ATOM_MEDIA, charset="utf-8", headers=headers)


def setup_routes(app: web.Application) -> None:
    """Before :func:`alertcast.api.setup_routes`: ``/v1/incidents/{id}.cap`` must be tried
    before ``/v1/incidents/{id}``, which would take ``{id}`` as ``x.cap``."""
    app.add_routes(routes)
