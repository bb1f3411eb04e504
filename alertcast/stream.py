"""``GET /v1/stream``: server-sent events of incident and delivery state changes.

Each event has an ``id:`` (the event bus's, one more than the last) and the stream opens with a
``retry:`` hint; a client that reconnects with ``Last-Event-ID`` (the header browsers send, or
``?last_event_id=``) first gets every event it missed, or a ``gap`` event when the daemon no
longer holds them all (README, "HTTP API"). The stream is scoped like every
read: the asker the edge authenticated (``request[keys.ISSUER]``, however it was resolved) sees
only the incidents within its kinds and regions. A client that goes away ends its stream with a
debug line: it is no error.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import structlog
from aiohttp import web

from alertcast import edge, keys
from alertcast.errors import FieldError
from alertcast.events import GAP, Item
from alertcast.reads import Reader

__all__ = ["RETRY_MS", "stream_events"]

log = structlog.get_logger("alertcast.stream")
RETRY_MS = 3000  # how long a client waits before it reconnects
KEEPALIVE_S = 15.0
HEADERS = {
    "Content-Type": "text/event-stream",
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",
}


def _last_event_id(request: web.Request) -> int | None:
    """The id the client saw last: the header (what browsers send), else ``?last_event_id=``;
    either one, when given, must be an id."""
    given = [
        (name, raw.strip(" "))
        for name, raw in (
            ("Last-Event-ID", request.headers.get("Last-Event-ID")),
            ("last_event_id", request.query.get("last_event_id")),
        )
        if raw is not None and raw.strip(" ")  # empty: no id seen yet (as a browser sends none)
    ]
    for name, raw in given:
        if not (raw.isascii() and raw.isdigit() and len(raw) <= 20):
            why = "must be the id of an event this stream sent (a whole number)"
            raise edge.BadRequest(f"{name} {why}", [FieldError(name, why)])
    return int(given[0][1]) if given else None


async def stream_events(request: web.Request) -> web.StreamResponse:
    """The live stream, from the asker's ``Last-Event-ID`` on (``?incident_id=`` filters)."""
    after, only = _last_event_id(request), request.query.get("incident_id")
    reader = Reader(
        request.app[keys.STORE], request[keys.ISSUER], request.app[keys.PLANNER].regions
    )
    resp = web.StreamResponse(headers=HEADERS)
    async with request.app[keys.EVENTS].subscribe(after) as queue:
        # Subscribed before the client hears it is connected: nothing published after that
        # line can be missed.
        await resp.prepare(request)
        try:
            await resp.write(f"retry: {RETRY_MS}\n: connected\n\n".encode())
            await _pump(queue, resp, reader, only)
        except ConnectionError as exc:  # the client went away: its stream just ends
            log.debug("stream.client_gone", error=type(exc).__name__, last_event_id=after)
    return resp


async def _pump(
    queue: asyncio.Queue[Item], resp: web.StreamResponse, reader: Reader, only: str | None
) -> None:
    while True:
        try:
            items = [await asyncio.wait_for(queue.get(), timeout=KEEPALIVE_S)]
        except TimeoutError:
            await resp.write(b": keep-alive\n\n")
            continue
        while not queue.empty():  # a fan-out publishes in bursts: one write per burst
            items.append(queue.get_nowait())
        chunk = b"".join([_sse(i) for i in items if _wanted(i[1], only) and await _sees(reader, i)])
        if chunk:
            await resp.write(chunk)
        if any(event["type"] == "shutdown" for _, event in items):
            return


async def _sees(reader: Reader, item: Item) -> bool:
    return item[1]["type"] == GAP or await reader.event(item[1])


def _wanted(event: dict[str, Any], only: str | None) -> bool:
    if event["type"] in ("shutdown", GAP) or not only:
        return True
    return bool(event.get("incident_id", event.get("id", only)) == only)


def _sse(item: Item) -> bytes:
    event_id, event = item
    head = "" if event_id is None else f"id: {event_id}\n"
    data = json.dumps(event, ensure_ascii=False)
    return f"{head}event: {event['type']}\ndata: {data}\n\n".encode()
