"""What every platform fake shares: refusals, a failure queue, a request log, a sliding window,
and a gateway in front that can answer an error page echoing the request URL."""

from __future__ import annotations

import html
import json
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from aiohttp import web

__all__ = ["FakePlatform", "GatewayPage", "Recorded", "Refusal", "Window", "json_body"]


class Refusal(Exception):
    """The platform says no: ``code`` and ``message`` in its own error shape."""

    def __init__(
        self, code: int, message: str, *, status: int = 200, extra: Mapping[str, Any] | None = None
    ) -> None:
        super().__init__(f"{code} {message}")
        self.code = code
        self.message = message
        self.status = status
        self.extra = dict(extra or {})


class GatewayPage(Refusal):
    """Not the platform's answer: the error page of a gateway in front of it (a reverse proxy, a
    WAF, a corporate egress proxy), which echoes the request line and the full URL as such pages
    commonly do, query string and all — whatever credentials the caller put there.

    ``html`` escapes the echo as HTML (``&amp;`` between parameters); ``json`` escapes slashes
    as PHP and Java gateways do (``http:\\/\\/host\\/path``).
    """

    def __init__(self, status: int = 502, *, style: Literal["html", "json"] = "html") -> None:
        super().__init__(status, "Bad Gateway", status=status)
        self.style = style

    def page(self, request: web.Request) -> web.Response:
        line, url = f"{request.method} {request.raw_path}", str(request.url)
        if self.style == "json":
            echo = {"error": self.message, "status": self.status, "request": line, "url": url}
            text = json.dumps(echo).replace("/", "\\/")
            return web.Response(status=self.status, text=text, content_type="application/json")
        text = (
            f"<html><head><title>{self.status} {self.message}</title></head><body>"
            f"<p>{html.escape(line)}</p><p>upstream: {html.escape(url)}</p></body></html>"
        )
        return web.Response(status=self.status, text=text, content_type="text/html")


@dataclass(frozen=True, slots=True)
class Recorded:
    """One request as the fake received it."""

    method: str
    path: str
    query: Mapping[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class _Injected:
    refusal: Refusal
    path: str | None
    times: int
    after: int = 0  # matching requests to let through first


@dataclass
class Window:
    """At most ``limit`` events in any ``seconds``-long window, per key."""

    limit: int
    seconds: float
    _events: dict[str, deque[float]] = field(default_factory=dict)

    def admit(self, key: str, now: float) -> bool:
        events = self._events.setdefault(key, deque())
        while events and now - events[0] >= self.seconds:
            events.popleft()
        if len(events) >= self.limit:
            return False
        events.append(now)
        return True


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class FakePlatform(ABC):
    """Base of the fakes: an aiohttp app that records requests and can be told to fail.

    Subclasses list their routes, format a :class:`Refusal` in the platform's error shape, and
    name the paths injected failures skip unless aimed at them (token endpoints).
    """

    quiet_paths: frozenset[str] = frozenset()

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.requests: list[Recorded] = []
        self._injected: deque[_Injected] = deque()

    @abstractmethod
    def routes(self) -> list[web.RouteDef]:
        """The platform's endpoints."""

    @abstractmethod
    def refuse(self, request: web.Request, refusal: Refusal) -> web.Response:
        """``refusal`` in the platform's error shape."""

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware])
        app.add_routes(self.routes())
        return app

    def inject(
        self, refusal: Refusal, *, path: str | None = None, times: int = 1, after: int = 0
    ) -> None:
        """Answer ``times`` requests (to ``path``, if given) with ``refusal``, after letting
        the next ``after`` of them through."""
        self._injected.append(_Injected(refusal, path, times, after))

    def gateway_error(
        self,
        status: int = 502,
        *,
        style: Literal["html", "json"] = "html",
        path: str | None = None,
        times: int = 1,
        after: int = 0,
    ) -> None:
        """Answer ``times`` requests (to ``path``, if given) with a gateway's error page that
        echoes the request URL (see :class:`GatewayPage`), after letting ``after`` through."""
        self.inject(GatewayPage(status, style=style), path=path, times=times, after=after)

    def calls(self, path: str) -> list[Recorded]:
        return [r for r in self.requests if r.path == path]

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        body = await request.read()
        self.requests.append(Recorded(request.method, request.path, dict(request.query), body))
        injected = self._take(request.path)
        try:
            if injected is not None:
                raise injected
            return await handler(request)
        except GatewayPage as page:
            return page.page(request)
        except Refusal as refusal:
            return self.refuse(request, refusal)

    def _take(self, path: str) -> Refusal | None:
        for item in self._injected:
            if item.path == path or (item.path is None and path not in self.quiet_paths):
                if item.after > 0:
                    item.after -= 1
                    return None
                item.times -= 1
                if item.times <= 0:
                    self._injected.remove(item)
                return item.refusal
        return None


def json_body(raw: bytes, refusal: Refusal) -> dict[str, Any]:
    """``raw`` as a JSON object, or ``refusal``."""
    try:
        data = json.loads(raw)
    except ValueError:
        raise refusal from None
    if not isinstance(data, dict):
        raise refusal
    return data
