"""HTTP handlers of the feeds: their health, and the push route.

``GET /v1/feeds`` shows every feed's polling health (last success, last error, events seen,
next poll), pushes and decisions. ``POST /v1/feeds/{name}/events`` takes one event in the
shape the feed reads (a GeoJSON Feature; for a ``cenc`` feed also one quick-report row) and
answers what the lifecycle decided: ``202`` when it raised, updated or cancelled an incident,
``200`` when it changed nothing.

Authentication: the app's middleware admits only issuer bearer tokens, once, at the edge. A feed
that names ``token_env`` is bound to that credential: a push must carry exactly that token (an
issuer scoped to ``kinds = ["earthquake"]`` holding the same variable), so an upstream relay
gets no more than its feed. A feed without ``token_env`` takes pushes only from an approver with
no region limit (a push raises and cancels by the feed's rules, alone).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

import structlog
from aiohttp import web

from alertcast import keys
from alertcast.config import IssuerConfig
from alertcast.feeds.events import FeedError
from alertcast.feeds.rules import FeedConfig
from alertcast.feeds.tracker import Applied
from alertcast.models import Kind
from alertcast.secrets import MissingSecret

__all__ = ["setup_routes"]

PUSH_TYPES = ("application/json", "application/geo+json")

log = structlog.get_logger("alertcast.feeds")
routes = web.RouteTableDef()


def _json(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=lambda d: json.dumps(d, ensure_ascii=False))


@routes.get("/v1/feeds")
async def list_feeds(request: web.Request) -> web.Response:
    """Every feed's health and decisions, to readers of earthquakes (what the feeds raise)."""
    if Kind.earthquake not in request[keys.ISSUER].kinds:
        return _json({"feeds": []})
    return _json({"feeds": request.app[keys.FEEDS].status()})


@routes.post("/v1/feeds/{name}/events")
async def push_event(request: web.Request) -> web.Response:
    runner, name = request.app[keys.FEEDS], request.match_info["name"]
    feed = runner.feeds.get(name)
    if feed is None:
        raise web.HTTPNotFound(text=f"no feed {name}")
    _authorize(request, feed.cfg)
    if request.content_type not in PUSH_TYPES:
        raise web.HTTPUnsupportedMediaType(text="send one event as application/json")
    request[keys.REPLAYS] = "event (its id and version are recognised)"  # a 503's advice
    try:
        applied = await runner.push(name, await request.read())
    except FeedError as exc:
        raise web.HTTPBadRequest(text=f"not an event feed {name} reads: {exc.reason}") from None
    log.info("feed.pushed", feed=name, issuer=request[keys.ISSUER].name, events=len(applied))
    changed = any(a.decision.action.value not in ("ignore", "associate") for a in applied)
    return _json({"feed": name, "decisions": [_view(a) for a in applied]}, 202 if changed else 200)


def _authorize(request: web.Request, cfg: FeedConfig) -> None:
    """403 unless the bearer may push to this feed (see the module's docstring)."""
    issuer = request[keys.ISSUER]
    if cfg.token_env is None:
        _may_act_as_feed(issuer, cfg)
        return
    try:
        expected = request.app[keys.SECRETS].get(cfg.token_env)
    except MissingSecret:
        raise web.HTTPForbidden(
            text=f"feed {cfg.name} takes no pushes: its token is not set"
        ) from None
    given = request.headers.get("Authorization", "").partition(" ")[2].strip()
    if not hmac.compare_digest(_digest(given), _digest(expected)):
        raise web.HTTPForbidden(text=f"feed {cfg.name} takes pushes only with its own token")


def _may_act_as_feed(issuer: IssuerConfig, cfg: FeedConfig) -> None:
    """A push acts as the feed: it raises, updates and cancels by the feed's rules, wherever they
    reach, with no second person. Without the feed's own token, only an approver with no
    region limit may do that."""
    if Kind.earthquake not in issuer.kinds:
        raise web.HTTPForbidden(text=f"issuer {issuer.name} may not raise earthquakes")
    if issuer.regions:
        raise web.HTTPForbidden(
            text=f"issuer {issuer.name} is limited to regions {', '.join(issuer.regions)}; a "
            f"push to feed {cfg.name} acts wherever the feed's rules reach: push with the "
            "feed's own token (token_env)"
        )
    if not issuer.approver:
        raise web.HTTPForbidden(
            text=f"issuer {issuer.name} may not act as feed {cfg.name}: a push raises and "
            "cancels alone, which takes the approve role (or the feed's own token, token_env)"
        )


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def _view(a: Applied) -> dict[str, Any]:
    return {
        "event_id": a.event_id,
        "action": a.decision.action.value,
        "reason": a.decision.reason,
        "changed": list(a.decision.changed),
        "incident_id": a.incident_id,
        "message_id": a.message_id,
        "status_url": f"/v1/incidents/{a.incident_id}" if a.incident_id else None,
    }


def setup_routes(app: web.Application) -> None:
    app.add_routes(routes)
