"""A feed server on 127.0.0.1 that honours conditional requests and misbehaves on demand."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from aiohttp import web

LAST_MODIFIED = "Sun, 03 Dec 2017 23:15:50 GMT"


@dataclass
class FakeFeed:
    """Serves ``body`` with an ETag and Last-Modified, answering 304 when the client has it."""

    body: bytes
    status: int = 200
    delay_s: float = 0.0
    etag: str | None = '"v1"'
    last_modified: str | None = LAST_MODIFIED
    chunked: bool = False
    extra_headers: dict[str, str] = field(default_factory=dict)
    requests: list[web.Request] = field(default_factory=list)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/{tail:.*}", self.handle)
        return app

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(request)
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if self.status != 200:
            return web.Response(status=self.status, text="boom", headers=self.extra_headers)
        if self._client_has_it(request):
            return web.Response(status=304)
        headers = {
            k: v for k, v in (("ETag", self.etag), ("Last-Modified", self.last_modified)) if v
        }
        if self.chunked:
            return await self._stream(request, headers)
        return web.Response(body=self.body, content_type="application/json", headers=headers)

    def _client_has_it(self, request: web.Request) -> bool:
        etag = request.headers.get("If-None-Match")
        since = request.headers.get("If-Modified-Since")
        return bool(
            (self.etag and etag == self.etag)
            or (self.last_modified and since == self.last_modified)
        )

    async def _stream(self, request: web.Request, headers: dict[str, str]) -> web.StreamResponse:
        response = web.StreamResponse(headers=headers)
        response.enable_chunked_encoding()
        await response.prepare(request)
        for start in range(0, len(self.body), 1000):
            await response.write(self.body[start : start + 1000])
        await response.write_eof()
        return response
