"""What every platform fake shares: refusals, a failure queue, a request log, a sliding window."""

from __future__ import annotations

import json
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

__all__ = ["FakePlatform", "Recorded", "Refusal", "Window", "json_body"]


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
