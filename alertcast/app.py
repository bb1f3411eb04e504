"""The aiohttp application: factory, typed app keys, one resource context per engine, and the
middlewares at the edge (problem+json errors, bearer authentication, body size).
"""

from __future__ import annotations

import hashlib
import hmac
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

import aiohttp
import structlog
from aiohttp import web
from aiohttp.typedefs import Middleware
from pydantic import ValidationError

from alertcast import api, cap_api, console, edge, jobs, metrics
from alertcast.access import denied
from alertcast.accounts import Accounts
from alertcast.capacity import Capacity
from alertcast.chains import Chains
from alertcast.channels.wechat_callback import WechatCallback
from alertcast.commit import Claims, Committer
from alertcast.config import Config, IssuerConfig
from alertcast.dispatch import Dispatcher
from alertcast.door import Door
from alertcast.errors import Busy, Conflict, DomainError, Forbidden, Invalid, NotFound, invalid
from alertcast.events import EventBus
from alertcast.feeds import api as feeds_api
from alertcast.geo import known_codes
from alertcast.inbox import Inbox
from alertcast.keys import (
    ACCOUNTS,
    CONFIG,
    DISPATCHER,
    DOOR,
    EVENTS,
    ISSUER,
    PLANNER,
    REPLAYS,
    SECRETS,
    STORE,
    TOKENS,
)
from alertcast.latest import Latest
from alertcast.outage import UNANSWERED, unknown
from alertcast.plan import Planner
from alertcast.render import Renderer
from alertcast.secrets import Secrets
from alertcast.store import open_store
from alertcast.store.base import Store
from alertcast.views import Problem

__all__ = ["create_app", "problem"]

log = structlog.get_logger("alertcast.app")

PUBLIC_PATHS = ("/healthz", "/metrics", "/openapi.json", "/p/", "/cap/", "/wechat/")


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


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def metrics_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Count every request by route template (not raw path: ids would explode the labels)."""
    resource = request.match_info.route.resource
    route = resource.canonical if resource is not None else "(unmatched)"
    response = await handler(request)
    metrics.REQUESTS.labels(route, str(response.status)).inc()
    return response


STATUS: dict[type[DomainError], int] = {
    NotFound: 404,
    Conflict: 409,
    Forbidden: 403,
    Invalid: 422,
    Busy: 503,
}


def domain_problem(exc: DomainError) -> web.Response:
    """A domain error as ``application/problem+json``: the edge's one translation."""
    status = next((code for cls, code in STATUS.items() if isinstance(exc, cls)), 400)
    errors = [{"field": e.field, "message": e.message} for e in getattr(exc, "errors", ())]
    headers = {"Retry-After": str(round(exc.retry_after_s))} if isinstance(exc, Busy) else None
    return problem(status, exc.detail, errors=errors or None, headers=headers)


@web.middleware
async def errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ValidationError as exc:
        return domain_problem(invalid(exc))
    except DomainError as exc:
        return domain_problem(exc)
    except web.HTTPException as exc:
        if exc.status < 400 or request.path.startswith("/wechat/"):
            raise  # redirects, and WeChat's servers, get the plain response
        if exc.content_type == "application/problem+json":
            raise
        return problem(exc.status, exc.text or exc.reason, headers=_keep_headers(exc))
    except Exception as exc:
        outage = request.app[DISPATCHER].outage if DISPATCHER in request.app else None
        done = unknown(request.method, request.get(REPLAYS))  # it may have been committed
        if outage is not None and not await outage.probe():  # the store is away, not a bug
            return problem(503, outage.detail(done=done), headers={"Retry-After": "2"})
        if outage is not None and isinstance(exc, UNANSWERED):  # slow, or a connection lost
            log.warning("http.store_unanswered", path=request.path, error=outage.redacted(exc))
            return problem(503, outage.missed(exc, done=done), headers={"Retry-After": "2"})
        log.exception("http.unhandled", path=request.path)
        return problem(500, "internal error; the request may not have been processed")


def _keep_headers(exc: web.HTTPException) -> dict[str, str]:
    return {k: v for k, v in exc.headers.items() if k in ("Allow", "Retry-After")}


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path.startswith(PUBLIC_PATHS) or console.is_console(request.path):
        return await handler(request)  # the console's pages sign in by their own session
    by_cookie = None if "Authorization" in request.headers else console.session_issuer(request)
    issuer = by_cookie or _bearer(request)
    if isinstance(issuer, web.Response):
        return issuer
    resource = request.match_info.route.resource
    if resource is not None and (why := denied(issuer, request.method, resource.canonical)):
        return problem(403, why)
    request[ISSUER] = issuer
    return await handler(request)


def _bearer(request: web.Request) -> IssuerConfig | web.Response:
    """The issuer of the request's bearer token, or the ``401`` that refuses it."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return problem(401, "missing bearer token", headers={"WWW-Authenticate": "Bearer"})
    issuer = _issuer_for(request.app[TOKENS], token.strip())
    if issuer is None:
        return problem(
            401,
            "unknown or wrong token",
            headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
        )
    return issuer


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
    config: Config,
    *,
    secrets: Secrets | None = None,
    dispatch: bool = True,
    before_body: Sequence[Middleware] = (),
) -> web.Application:
    """The application; resources open on start-up and close in reverse on shutdown.

    ``dispatch=False`` leaves the dispatcher stopped (``serve`` starts it once the port is
    bound); ``before_body`` middlewares run after authentication, before any body is read
    (``serve`` passes its body deadline).
    """
    secrets = secrets or Secrets()
    app = web.Application(
        client_max_size=config.server.max_body_bytes,
        middlewares=[
            metrics_middleware,
            errors_middleware,
            edge.vet_request,
            auth_middleware,
            *before_body,
            edge.vet_body,
        ],
    )
    inbox = Inbox()
    planner = Planner(config, Renderer(config.render), known_codes())
    store = open_store(config.store.url, on_due=inbox.wake)
    app[CONFIG], app[SECRETS], app[EVENTS] = config, secrets, EventBus()
    app[TOKENS], app[STORE], app[PLANNER] = _tokens(config, secrets), store, planner
    app.on_shutdown.append(_end_streams)
    app.cleanup_ctx.append(_resources(store, inbox, dispatch))
    app.cleanup_ctx.append(jobs.context)
    cap_api.setup_routes(app)  # first: /v1/incidents/{id}.cap before /v1/incidents/{id}
    api.setup_routes(app)
    feeds_api.setup_routes(app)
    console.setup(app)  # the web console at / (docs/console.md)
    latest, noted = Latest(store, planner.regions, config.expiry), store.note_interaction
    WechatCallback(config.accounts, secrets, latest, interactions=noted).install(app)
    return app


async def _end_streams(app: web.Application) -> None:
    """Live streams end at shutdown instead of holding it for the graceful timeout."""
    app[EVENTS].close()


def _resources(
    store: Store, inbox: Inbox, dispatch: bool
) -> Callable[[web.Application], AsyncIterator[None]]:
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        config = app[CONFIG]
        await store.open()
        session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=30, connect=10),
            connector=aiohttp.TCPConnector(limit=0, limit_per_host=0),
        )
        accounts = Accounts(config, session, app[SECRETS], slots=store)  # windows, quotas
        await accounts.start()
        dispatcher = _wire(app, store, inbox, accounts)
        if dispatch:
            await dispatcher.start()  # only a running dispatcher takes deliveries at creation
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


def _wire(app: web.Application, store: Store, inbox: Inbox, accounts: Accounts) -> Dispatcher:
    """The core, each part given what it needs in its constructor, once."""
    config, events = app[CONFIG], app[EVENTS]
    capacity = Capacity(accounts, config.concurrency)
    claims = Claims(f"w-{uuid.uuid4().hex[:12]}", config.dispatch.lease_s)
    committer = Committer(store, capacity, inbox, events, claims)
    door = Door(Chains(store), app[PLANNER], committer)
    dispatcher = Dispatcher(
        store,
        capacity,
        inbox,
        door,
        config.dispatch,
        secrets=app[SECRETS],
        events=events,
        worker=claims.worker,
    )
    app[ACCOUNTS], app[DOOR], app[DISPATCHER] = accounts, door, dispatcher
    return dispatcher
