"""Two replicas over one PostgreSQL store, each polling both feeds of an ``associate`` group at
once: the quake is raised once, and nothing is sent twice."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from alertcast.keys import FEEDS
from tests.conftest import Daemon
from tests.store.test_contract import PG_URL, _drop_schema, _pg_reachable

from .feed_server import FeedServer, collection, server_fixture, until  # noqa: F401
from .test_daemon_association import OFFICIAL, cenc_fixture, group_feeds, lushan, rows  # noqa: F401
from .test_daemon_feeds import incidents
from .test_daemon_replicas import roots

pytestmark = pytest.mark.postgres


@pytest.fixture(name="pg_url")
async def pg_url_fixture() -> AsyncIterator[str]:
    if (why := await _pg_reachable()) is not None:
        pytest.skip(why)
    schema = f"t_{uuid.uuid4().hex[:12]}"
    yield f"{PG_URL}?schema={schema}"
    await _drop_schema(schema)


async def replica(start_daemon: Any, server: FeedServer, cenc: FeedServer, url: str) -> Daemon:
    feeds = group_feeds(server, cenc)
    d: Daemon = await start_daemon(feeds=feeds, store={"url": url}, approval={"severities": []})
    for feed in d.client.app[FEEDS].feeds.values():
        await until(
            lambda f=feed: (
                f.poller is not None and f.poller.health.polls >= 1 and not f.poll_lock.locked()
            )
        )
    return d


@pytest.mark.parametrize("rounds", [1, 3])
async def test_two_replicas_two_feeds_one_incident(
    start_daemon: Any, server: FeedServer, cenc: FeedServer, pg_url: str, rounds: int
) -> None:
    """Both replicas poll CENC (official) and USGS concurrently: one alert, at most one update
    (when USGS won the race, CENC's official report outranks it), never a cancel; polling
    again changes nothing; each delivery reaches the sink once."""
    server.serve(collection())
    cenc.serve(rows())
    a = await replica(start_daemon, server, cenc, pg_url)
    b = await replica(start_daemon, server, cenc, pg_url)
    server.serve(collection(lushan()))
    cenc.serve(rows(OFFICIAL))
    for _ in range(rounds):
        polls = [d.client.app[FEEDS].poll_now(n) for d in (a, b, b, a) for n in ("usgs", "cenc")]
        await asyncio.gather(*polls)
    counts = await roots(a)
    assert counts["alert"] == 1 and counts["update"] <= 1 and counts["cancel"] == 0
    assert set(counts) <= {"alert", "update"}
    # Whoever won the race, the incident ends stating CENC's official report (an update that
    # outranks USGS's alert must not be lost to a version conflict), and both replicas agree.
    messages = {i["msg_type"]: i for i in await incidents(a)}
    newest = await a.settled(messages.get("update", messages["alert"])["id"])
    assert newest["incident"]["details"]["source"] == "cenc"
    assert newest["incident"]["details"]["magnitude"] == 7.0
    for d in (a, b):
        (event,) = (await d.client.app[FEEDS].groups["china"].state()).events.values()
        assert (
            event.owner == "cenc/CC20130420080246" and event.incident_id == messages["alert"]["id"]
        )
    await until(lambda: len(a.sink.delivered_keys()) >= sum(counts.values()))
    assert max(a.sink.keys().values()) == 1
