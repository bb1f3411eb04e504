"""Two daemons polling one feed over one PostgreSQL store: every event is raised once, every
revision updated once, every delivery sent once."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import pytest

from alertcast.keys import FEEDS
from tests.conftest import Daemon
from tests.store.test_contract import PG_URL, _drop_schema, _pg_reachable

from .feed_server import (
    FeedServer,
    collection,
    real_features,
    revised,
    server_fixture,  # noqa: F401
    until,
)

pytestmark = pytest.mark.postgres


@pytest.fixture
async def pg_url() -> AsyncIterator[str]:
    if (why := await _pg_reachable()) is not None:
        pytest.skip(why)
    schema = f"t_{uuid.uuid4().hex[:12]}"
    yield f"{PG_URL}?schema={schema}"
    await _drop_schema(schema)


async def replica(start_daemon: Any, server: FeedServer, pg_url: str) -> Daemon:
    feed = {
        "name": "usgs",
        "type": "usgs",
        "url": server.feed_url("significant_month.geojson"),
        "interval_s": 3600,
        "min_magnitude": 5.5,
        "max_age_s": None,  # the recorded feed is years old
    }
    d: Daemon = await start_daemon(feeds=[feed], store={"url": pg_url}, approval={"severities": []})
    polled = d.client.app[FEEDS].feeds["usgs"]
    await until(lambda: polled.poller.health.polls >= 1 and not polled.poll_lock.locked())
    return d


async def roots(d: Daemon) -> Counter[str]:
    """How many messages of each type the shared store holds."""
    _, answer = await d.get("/v1/incidents?limit=500")
    return Counter(i["msg_type"] for i in answer["incidents"])


async def test_two_replicas_raise_and_update_once(
    start_daemon: Any, server: FeedServer, pg_url: str
) -> None:
    """Concurrent polls of a real feed by two replicas: 12 events raised once each, then one
    revision of each updated once, and the sink sees each delivery once."""
    features = list(real_features("significant_month.geojson").values())
    server.serve(collection())
    a = await replica(start_daemon, server, pg_url)
    b = await replica(start_daemon, server, pg_url)
    server.serve(collection(*features))
    await asyncio.gather(*(d.client.app[FEEDS].poll_now("usgs") for d in (a, b, a, b)))
    assert await roots(a) == {"alert": 12}  # the M5.5+ events of significant_month
    moved = [revised(f, place=f"{f['properties']['place']} (revised)") for f in features]
    server.serve(collection(*moved))
    await asyncio.gather(*(d.client.app[FEEDS].poll_now("usgs") for d in (b, a, b, a)))
    assert await roots(b) == {"alert": 12, "update": 12}
    await until(lambda: len(server.lookups) == 0 and len(a.sink.delivered_keys()) >= 24)
    assert max(a.sink.keys().values()) == 1
