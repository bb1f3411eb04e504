"""A webhook receiver that verifies alertcast's signatures and can be told how to answer.

Used by the demo, the tests and the benchmarks; an office can run it to rehearse a webhook
account. Every request is kept (by ``Idempotency-Key`` too, to count duplicates); a script of
answers (``[(500, {}), (429, {"Retry-After": "2"})]``) is played before it answers 200.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from alertcast.signing import verify

__all__ = ["BODY", "Received", "WebhookSink"]

BODY = "__body__"  # a scripted answer's headers may carry its body text under this name


@dataclass(frozen=True)
class Received:
    at: float
    path: str
    key: str
    body: dict[str, Any]
    signed: bool


@dataclass
class WebhookSink:
    secret: str | None = None
    latency_s: float = 0.0
    script: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    answer: Callable[[Received], tuple[int, dict[str, str]] | None] | None = None
    received: list[Received] = field(default_factory=list)
    answers: list[tuple[str, int]] = field(default_factory=list)
    _runner: web.AppRunner | None = None
    url: str = ""

    def app(self) -> web.Application:
        app = web.Application(client_max_size=4 * 1024 * 1024)
        app.router.add_post("/{path:.*}", self._handle)
        return app

    async def _handle(self, request: web.Request) -> web.Response:
        raw = await request.read()
        signed = self.secret is None or verify(self.secret, request.headers, raw)
        item = Received(
            time.time(),
            request.path,
            request.headers.get("Idempotency-Key", ""),
            json.loads(raw) if raw else {},
            signed,
        )
        self.received.append(item)
        if self.latency_s:
            await asyncio.sleep(self.latency_s)
        status, headers = self._next(item) if signed else (401, {})
        self.answers.append((item.key, status))
        if not signed:
            return web.json_response({"error": "bad signature"}, status=401)
        body = headers.pop(BODY, None) if headers else None
        if body is not None:
            return web.Response(status=status, text=body, headers=headers)
        return web.json_response(
            {"id": f"sink-{len(self.received)}"}, status=status, headers=headers
        )

    def _next(self, item: Received) -> tuple[int, dict[str, str]]:
        if self.script:
            status, headers = self.script.pop(0)
            return status, dict(headers)
        if self.answer is not None and (scripted := self.answer(item)) is not None:
            return scripted[0], dict(scripted[1])
        return 200, {}

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        self._runner = web.AppRunner(self.app(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        bound = self._runner.addresses[0]
        self.url = f"http://{bound[0]}:{bound[1]}/hook"
        return self.url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def keys(self) -> Counter[str]:
        """How many requests each idempotency key made (a count over 1 is a duplicate)."""
        return Counter(r.key for r in self.received)

    def delivered_keys(self) -> set[str]:
        """Keys answered with a 2xx at least once."""
        return {key for key, status in self.answers if 200 <= status < 300}
