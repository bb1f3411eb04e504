"""The aiohttp application: factory, typed app keys, one resource context per engine, and the
middlewares at the edge (problem+json errors, bearer authentication, body size).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import structlog
from aiohttp import web
from pydantic import ValidationError

from alertcast import api, jobs, metrics
from alertcast.accounts import Accounts
from alertcast.channels.wechat_callback import Latest, WechatCallback
from alertcast.config import Config, IssuerConfig
from alertcast.dispatch import Dispatcher
from alertcast.events import EventBus
from alertcast.feeds import api as feeds_api
from alertcast.lifecycle import FollowUps
from alertcast.render import Renderer
from alertcast.secrets import Secrets
from alertcast.service import Conflict, Service
from alertcast.store import open_store
from alertcast.store.base import Store
from alertcast.views import Problem

__all__ = ["ISSUER", "SERVICE", "create_app", "problem"]

log = structlog.get_logger("alertcast.app")

CONFIG = web.AppKey("config", Config)
SECRETS = web.AppKey("secrets", Secrets)
EVENTS = web.AppKey("events", EventBus)
STORE = web.AppKey("store", Store)
SERVICE = web.AppKey("service", Service)
DISPATCHER = web.AppKey("dispatcher", Dispatcher)
FOLLOW_UPS = web.AppKey("follow_ups", FollowUps)
LATEST = web.AppKey("latest", object)
ACCOUNTS = web.AppKey("accounts", Accounts)
TOKENS = web.AppKey("tokens", list[tuple[bytes, IssuerConfig]])
ISSUER = web.RequestKey("issuer", IssuerConfig)
PUBLIC_PATHS = ("/healthz", "/metrics", "/openapi.json", "/p/", "/wechat/")


def problem(
    status: int,
    detail: str,
    *,
    title: str | None = None,
    errors: list[dict[str, str]] | None = None,
    headers: dict[str, str] | None = None,
) -> web.Response:
    body = Problem(title=title or _reason(status), status=status, detail=detail, errors=errors)
    return web.Response(
        status=status,
        text=body.model_dump_json(exclude_none=True),
        content_type="application/problem+json",
        headers=headers,
    )


def _reason(status: int) -> str:
    from http import HTTPStatus

    return HTTPStatus(status).phrase


def field_errors(exc: ValidationError, *, strip_tag: bool = True) -> list[dict[str, str]]:
    """Pydantic errors as ``{field, message}`` with dotted paths (the discriminator tag dropped)."""
    out = []
    for err in exc.errors():
        loc = list(err["loc"])
        if (
            strip_tag
            and len(loc) > 1
            and loc[0] in {"earthquake", "fire", "police", "weather", "general"}
        ):
            loc = loc[1:]
        path = ".".join(str(p) for p in loc) or "(body)"
        out.append({"field": path, "message": err["msg"]})
    return out


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def metrics_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Count every request by route template (not raw path: ids would explode the labels)."""
    resource = request.match_info.route.resource
    route = resource.canonical if resource is not None else "(unmatched)"
    response = await handler(request)
    metrics.REQUESTS.labels(route, str(response.status)).inc()
    return response


@web.middleware
async def errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ValidationError as exc:
        errs = field_errors(exc)
        detail = "; ".join(f"{e['field']}: {e['message']}" for e in errs)
        return problem(422, f"invalid incident: {detail}", errors=errs)
    except Conflict as exc:
        return problem(409, str(exc))
    except web.HTTPException as exc:
        if exc.status < 400 or request.path.startswith("/wechat/"):
            raise  # redirects, and WeChat's servers, get the plain response
        if exc.content_type == "application/problem+json":
            raise
        return problem(exc.status, exc.text or exc.reason, headers=_keep_headers(exc))
    except Exception:
        log.exception("http.unhandled", path=request.path)
        return problem(500, "internal error; the request may not have been processed")


def _keep_headers(exc: web.HTTPException) -> dict[str, str]:
    return {k: v for k, v in exc.headers.items() if k in ("Allow", "Retry-After")}


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path.startswith(PUBLIC_PATHS):
        return await handler(request)
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return problem(401, "missing bearer token", headers={"WWW-Authenticate": "Bearer"})
    issuer = _issuer_for(request.app[TOKENS], token.strip())
    if issuer is None:
        return problem(
            401,
            "unknown or wrong token",
            headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
        )
    request[ISSUER] = issuer
    return await handler(request)


def _issuer_for(tokens: list[tuple[bytes, IssuerConfig]], token: str) -> IssuerConfig | None:
    """Compare digests in constant time against every issuer (no early exit on a match)."""
    given = hashlib.sha256(token.encode()).digest()
    found = None
    for digest, issuer in tokens:
        if hmac.compare_digest(given, digest):
            found = issuer
    return found


def _tokens(config: Config, secrets: Secrets) -> list[tuple[bytes, IssuerConfig]]:
    return [(hashlib.sha256(secrets.get(i.token_env).encode()).digest(), i) for i in config.issuers]


def create_app(
    config: Config, *, secrets: Secrets | None = None, dispatch: bool = True
) -> web.Application:
    """The application; resources open on start-up and close in reverse on shutdown."""
    secrets = secrets or Secrets()
    app = web.Application(
        client_max_size=config.server.max_body_bytes,
        middlewares=[metrics_middleware, errors_middleware, auth_middleware],
    )
    app[CONFIG] = config
    app[SECRETS] = secrets
    app[EVENTS] = EventBus()
    app[TOKENS] = _tokens(config, secrets)
    app.on_shutdown.append(_end_streams)
    app.cleanup_ctx.append(_resources(dispatch))
    app.cleanup_ctx.append(jobs.context)
    api.setup_routes(app)
    feeds_api.setup_routes(app)
    callback = _LateLatest()
    WechatCallback(config.accounts, secrets, callback).install(app)
    app[LATEST] = callback
    return app


async def _end_streams(app: web.Application) -> None:
    """Live streams end at shutdown instead of holding it for the graceful timeout."""
    app[EVENTS].close()


class _LateLatest:
    """The WeChat keyword reply's view of recent incidents, bound once the store is open."""

    latest: Latest | None = None

    async def __call__(self, kind: str | None, regions: list[str], limit: int) -> list[Any]:
        if self.latest is None:
            return []
        return await self.latest(kind, regions, limit)


def _resources(dispatch: bool) -> Callable[[web.Application], AsyncIterator[None]]:
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        config, secrets, callback = app[CONFIG], app[SECRETS], app[LATEST]
        assert isinstance(callback, _LateLatest)
        store = open_store(config.store.url)
        await store.open()
        session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=30, connect=10),
            connector=aiohttp.TCPConnector(limit=0, limit_per_host=0),
        )
        accounts = Accounts(config, session, secrets)
        await accounts.start()
        dispatcher = Dispatcher(store, accounts, config.dispatch, secrets, app[EVENTS])
        if hasattr(store, "on_due"):  # replicas wake each other (PostgreSQL LISTEN/NOTIFY)
            store.on_due = dispatcher.wake
        app[STORE], app[ACCOUNTS], app[DISPATCHER] = store, accounts, dispatcher
        service = app[SERVICE] = Service(
            config, store, accounts, Renderer(config.render), app[EVENTS], wake=dispatcher.wake
        )
        app[FOLLOW_UPS] = FollowUps(service)
        dispatcher.on_quota = service.fallback
        callback.latest = service.latest
        if dispatch:
            await dispatcher.start()
            service.handoff = dispatcher  # only a running dispatcher takes at creation
        log.info("alertcast.started", accounts=len(config.accounts), store=store.describe())
        try:
            yield
        finally:
            await dispatcher.stop(config.server.shutdown_grace_s)
            await accounts.close()
            await session.close()
            await store.close()
            log.info("alertcast.stopped")

    return ctx
