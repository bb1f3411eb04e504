"""A USGS-like host on 127.0.0.1 for daemon tests: a feed whose body changes over time, and the
FDSN ``query?eventid=`` answers that confirm deletions. Real files, edited features."""

from __future__ import annotations

import asyncio
import copy
import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web

from ._make import usgs_bytes

SUMMARY = "/earthquakes/feed/v1.0/summary/"
FDSN_QUERY = "/fdsnws/event/1/query"


@dataclass
class FeedServer:
    """Serves ``body`` (ETag from its hash, 304 to a matching ``If-None-Match``) on every path
    but the FDSN one; ``fdsn[event_id]`` is ``(status, body)`` for ``query?eventid=``."""

    body: bytes = b""
    status: int = 200
    delay_s: float = 0.0
    fdsn: dict[str, tuple[int, bytes]] = field(default_factory=dict)
    hits: int = 0
    version: int = 0
    lookups: list[str] = field(default_factory=list)
    url: str = ""

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get(FDSN_QUERY, self._fdsn)
        app.router.add_get("/{tail:.*}", self._feed)
        return app

    def feed_url(self, name: str = "significant_day.geojson") -> str:
        return f"{self.url}{SUMMARY}{name}"

    def serve(self, body: bytes | dict[str, Any]) -> None:
        """Serve ``body`` from now on, under a new ETag even if it is the same body."""
        self.status, self.delay_s, self.version = 200, 0.0, self.version + 1
        self.body = body if isinstance(body, bytes) else json.dumps(body).encode()

    async def _feed(self, request: web.Request) -> web.Response:
        self.hits += 1
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if self.status != 200:
            return web.Response(status=self.status, text="upstream trouble")
        etag = f'"{self.version}-{hashlib.sha256(self.body).hexdigest()[:16]}"'
        if request.headers.get("If-None-Match") == etag:
            return web.Response(status=304)
        return web.Response(body=self.body, content_type="application/json", headers={"ETag": etag})

    async def _fdsn(self, request: web.Request) -> web.Response:
        event_id = request.query.get("eventid", "")
        self.lookups.append(event_id)
        status, body = self.fdsn.get(event_id, (204, b""))
        return web.Response(status=status, body=body, content_type="application/json")


def real_features(name: str) -> dict[str, dict[str, Any]]:
    """The features of a real USGS file in ../shared/data/usgs/, by id (skips when absent)."""
    doc = json.loads(usgs_bytes(name))
    return {f["id"]: f for f in doc["features"]}


def revised(feature: dict[str, Any], **props: Any) -> dict[str, Any]:
    """A copy of ``feature`` with ``properties`` changed (``id=`` changes the preferred id)."""
    out = copy.deepcopy(feature)
    if "id" in props:
        out["id"] = props.pop("id")
    out["properties"].update(props)
    return out


def collection(*features: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "FeatureCollection",
        "metadata": {"generated": 0, "status": 200, "count": len(features)},
        "features": list(features),
    }


@pytest.fixture(name="server")
async def server_fixture(aiohttp_server: Any) -> FeedServer:
    """``server``: a running :class:`FeedServer` (import this into the test module)."""
    feed = FeedServer()
    running = await aiohttp_server(feed.app())
    feed.url = str(running.make_url("")).rstrip("/")
    return feed


async def until(check: Callable[[], bool], timeout_s: float = 30.0) -> None:
    """Wait until ``check()`` holds, polling every 20 ms; fail after ``timeout_s``.

    It returns as soon as the check holds: the generous default is for a loaded machine, where
    a first poll (an HTTP fetch, then incidents committed to SQLite) can take seconds."""
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout_s} s")
        await asyncio.sleep(0.02)
