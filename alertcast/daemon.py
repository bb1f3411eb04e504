"""Running the daemon: bind, open, serve, dispatch; until SIGINT/SIGTERM, then in order.

Start-up goes in an order that keeps a failed start harmless: the port is bound first (taken:
exit before anything is opened), then the store is opened (SQLite: its lock, so a second
daemon on one file exits here, before recovering or sending anything), then the accounts'
stored pauses are restored (a quota spent or credentials rejected before a restart still hold
the account), then requests are accepted, and only then does the dispatcher recover and send.

The edge's limits (``[server]``) are applied here, where the socket is served:

- **headers**: aiohttp's ``keepalive_timeout`` (since 3.14.4 it runs from the moment a
  connection opens, not only between requests) is ``header_timeout_s``: a connection that has
  not sent a whole request line and headers that long after connecting, or after its last
  answer, is closed;
- **bodies**: :func:`body_deadline` answers 408 to a request whose body has not arrived in
  full ``body_timeout_s`` after its headers; aiohttp closes the connection after lingering;
- **connections**: :class:`Gate`, the socket's protocol factory in front of aiohttp's, answers
  503 and closes past ``max_connections``; :func:`fit_open_files` keeps that cap under the
  open-file limit, so ``accept`` never runs out of descriptors (asyncio would then retry and
  log in a tight loop).
"""

from __future__ import annotations

import asyncio
import contextlib
import resource
import signal
from collections.abc import Callable
from typing import Any, cast

import structlog
from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from alertcast.app import create_app
from alertcast.config import Config
from alertcast.keys import DISPATCHER
from alertcast.store.base import StoreInUse

__all__ = ["Gate", "StartupError", "body_deadline", "fit_open_files", "serve"]

BACKLOG = 128  # connections the kernel queues for accept; also what one accept burst may add
BASE_FILES = 64  # descriptors of the process itself: the store, the loop, logs, feeds
MIN_CONNECTIONS = 16
REFUSAL = (
    b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nConnection: close\r\n"
    b"Content-Length: 0\r\n\r\n"
)

log = structlog.get_logger("alertcast")


class StartupError(Exception):
    """The daemon cannot start (its port is taken, its store held by another daemon, …)."""


async def serve(
    config: Config,
    secrets: Any,
    *,
    host: str | None = None,
    port: int | None = None,
    ready: asyncio.Future[str] | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Run the daemon until SIGINT/SIGTERM (or ``stop``); shut down in order.

    Raises :class:`StartupError` (and sets it on ``ready``) if it cannot start."""
    server = config.server
    try:
        gate = Gate(_connection_cap(config))
        runner = _runner(config, secrets, gate)
        address = (host or server.host, server.port if port is None else port)
        listener = await _bind(lambda: gate.admit(runner.server), *address)
    except Exception as exc:
        _fail(ready, exc)
        raise
    try:
        await _start(runner, listener)
        url = _url(listener)
        log.info("alertcast.listening", url=url, max_connections=gate.cap)
        await _until_stopped(stop or asyncio.Event(), ready, url)
    except Exception as exc:
        _fail(ready, exc)
        raise
    finally:
        listener.close()
        await runner.cleanup()
        await listener.wait_closed()


def _runner(config: Config, secrets: Any, gate: Gate) -> web.AppRunner:
    """The app (its dispatcher not started) behind a runner with the edge's deadlines."""
    server = config.server
    middlewares = [gate.track, body_deadline(server.body_timeout_s)]
    app = create_app(config, secrets=secrets, dispatch=False, before_body=middlewares)
    return web.AppRunner(
        app,
        access_log=None,
        handle_signals=False,
        keepalive_timeout=server.header_timeout_s,  # from connect, too: the header deadline
        shutdown_timeout=server.shutdown_grace_s,
    )


async def _start(runner: web.AppRunner, listener: asyncio.Server) -> None:
    """Open everything (the store first), restore the accounts' pauses, accept requests, then
    start dispatching."""
    try:
        await runner.setup()
    except StoreInUse as exc:
        raise StartupError(str(exc)) from None
    await runner.app[DISPATCHER].restore()  # the first GET /v1/channels already shows them
    await listener.start_serving()
    await runner.app[DISPATCHER].start()


async def _until_stopped(stop: asyncio.Event, ready: asyncio.Future[str] | None, url: str) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    if ready is not None and not ready.done():
        ready.set_result(url)
    await stop.wait()


def _fail(ready: asyncio.Future[str] | None, exc: Exception) -> None:
    if ready is not None and not ready.done():
        ready.set_exception(exc)


async def _bind(
    factory: Callable[[], asyncio.BaseProtocol], host: str, port: int
) -> asyncio.Server:
    """Bind and listen without accepting yet: a taken port stops us before anything opens."""
    try:
        return await asyncio.get_running_loop().create_server(
            factory, host, port, backlog=BACKLOG, start_serving=False
        )
    except OSError as exc:
        raise StartupError(f"cannot listen on {host}:{port}: {exc.strerror}") from None


def _url(listener: asyncio.Server) -> str:
    host, port = listener.sockets[0].getsockname()[:2]
    return f"http://{host}:{port}"


def _connection_cap(config: Config) -> int:
    """``max_connections``, lowered (and said so) if the open-file limit cannot hold it."""
    wanted = config.server.max_connections
    # One accept burst not yet admitted, and the burst before it whose admissions evicted as
    # many idle connections, their sockets closed only on the loop's next turn.
    reserve = BASE_FILES + 2 * BACKLOG + 2 * config.concurrency  # sends and their pool
    cap = fit_open_files(wanted, reserve)
    if cap < MIN_CONNECTIONS:
        raise StartupError(
            f"the open-file limit ({resource.getrlimit(resource.RLIMIT_NOFILE)[1]}) leaves "
            f"room for {max(cap, 0)} connections; raise it (ulimit -n) to at least "
            f"{MIN_CONNECTIONS + reserve}"
        )
    if cap < wanted:
        log.warning("server.max_connections_lowered", wanted=wanted, cap=cap, reserve=reserve)
    return cap


def fit_open_files(cap: int, reserve: int) -> int:
    """Raise the soft open-file limit toward the hard one until ``cap`` connections and
    ``reserve`` other descriptors fit; return the cap that fits (lower if the hard limit is)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = cap + reserve
    if soft != resource.RLIM_INFINITY and soft < want:
        soft = want if hard == resource.RLIM_INFINITY else min(want, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    return cap if soft == resource.RLIM_INFINITY else min(cap, soft - reserve)


class Gate:
    """Admits connections up to ``cap``; past it, closes the oldest one that has no request in
    progress (a half-open socket, an idle keep-alive) to make room, or if every one is busy,
    answers the newcomer 503. :meth:`track` is the middleware that tells busy from idle.

    asyncio accepts a burst of sockets and admits each in a task; a connection admitted joins
    the server's connections only on the loop's next turn (its transport calls
    ``connection_made`` soon), so until then it is counted here, or a burst would pass the cap.
    The count is cleared by a callback queued at the burst's first admission: it runs on that
    next turn ahead of the set-ups, and no admission runs between them."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.evicted = self.refused = 0
        self._busy: set[asyncio.BaseProtocol] = set()
        self._unmade = 0  # admitted this turn of the loop, not yet among the connections

    def admit(self, server: web.Server | None) -> asyncio.BaseProtocol:
        """The protocol for a new connection (the listening socket's factory calls this)."""
        assert server is not None, "the socket serves only once the runner is set up"
        live = [h for h in server.connections if h.transport is not None]
        if len(live) + self._unmade < self.cap or self._evict(live):
            if not self._unmade:
                asyncio.get_running_loop().call_soon(self._turned)
            self._unmade += 1
            return server()
        self.refused += 1
        log.warning("http.connection_refused", cap=self.cap, refused=self.refused)
        return _Refuse()

    def _turned(self) -> None:
        self._unmade = 0

    def _evict(self, live: list[web.RequestHandler]) -> bool:
        idle = next((h for h in live if h not in self._busy), None)  # oldest first
        if idle is None:
            return False
        idle.force_close()
        self.evicted += 1
        log.warning("http.connection_evicted", cap=self.cap, evicted=self.evicted)
        return True

    @web.middleware
    async def track(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        protocol = request.protocol
        self._busy.add(protocol)
        try:
            return await handler(request)
        finally:
            self._busy.discard(protocol)


class _Refuse(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        cast(asyncio.Transport, transport).write(REFUSAL)
        transport.close()


def body_deadline(timeout_s: float) -> Middleware:
    """A middleware: the body must be in full ``timeout_s`` after the headers, or 408 (the
    handler, still waiting for it, is cancelled)."""

    @web.middleware
    async def deadline(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.content.is_eof():  # no body, or all of it here already
            return await handler(request)
        timer = asyncio.timeout(timeout_s)
        try:
            async with timer:
                request.content.on_eof(_disarm(timer))
                return await handler(request)
        except TimeoutError:
            if not timer.expired():
                raise  # the handler's own timeout, not ours
            log.warning("http.body_too_slow", path=request.path, timeout_s=timeout_s)
            raise web.HTTPRequestTimeout(
                text=f"the request body did not arrive within {timeout_s:g} s"
            ) from None

    return deadline


def _disarm(timer: asyncio.Timeout) -> Callable[[], None]:
    def disarm() -> None:
        with contextlib.suppress(RuntimeError):  # the handler answered before the body ended
            timer.reschedule(None)

    return disarm
