"""The FDSN event service: GeoJSON answers, query URLs, and deletion checks by status code."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from structlog.testing import capture_logs

from alertcast.feeds import fdsn

from ._make import usgs_bytes
from .fake_feed import FakeFeed

NOW = datetime(2024, 4, 3, 0, 10, 42, tzinfo=UTC)
BASE = "https://earthquake.usgs.gov/fdsnws/event/1/"


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


def test_parse_feed_marks_source() -> None:
    """An fdsnws GeoJSON answer parses like a summary feed, its events sourced ``fdsn``."""
    result = fdsn.parse_feed(usgs_bytes("significant_month.geojson"))
    assert len(result.events) == 18
    assert {ev.source for ev in result.events} == {"fdsn"}


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (BASE, BASE + "query?format=geojson&starttime=2024-04-02T00%3A10%3A00"),
        (
            BASE + "query?minmagnitude=5&format=quakeml",
            BASE + "query?minmagnitude=5&format=geojson&starttime=2024-04-02T00%3A10%3A00",
        ),
        (
            "https://service.iris.edu/fdsnws/event/1?updatedafter=2024-04-01",
            "https://service.iris.edu/fdsnws/event/1/query?updatedafter=2024-04-01&format=geojson",
        ),
        (
            BASE + "query?starttime=2024-01-01&minsig=600",
            BASE + "query?starttime=2024-01-01&minsig=600&format=geojson",
        ),
    ],
)
def test_poll_url(url: str, expected: str) -> None:
    """GeoJSON is always asked for; a rolling day-long start only when time is unbounded."""
    assert fdsn.poll_url(url, NOW) == expected


@pytest.mark.parametrize(
    ("status", "deleted"),
    [(200, False), (409, True), (204, True), (404, True), (400, None), (500, None), (503, None)],
)
async def test_is_deleted_by_status(
    aiohttp_server: Any, session: aiohttp.ClientSession, status: int, deleted: bool | None
) -> None:
    """409, 204 and 404 confirm deletion, 200 denies it, anything else is unknown."""
    feed = FakeFeed(b'{"type":"FeatureCollection","features":[]}', status=status)
    server = await aiohttp_server(feed.app())
    base = str(server.make_url("/fdsnws/event/1/"))
    assert await fdsn.is_deleted(session, base, "us7000abcd") is deleted
    request = feed.requests[0]
    assert (request.path, request.query["eventid"]) == ("/fdsnws/event/1/query", "us7000abcd")


async def test_is_deleted_unknown_on_timeout(
    aiohttp_server: Any, session: aiohttp.ClientSession
) -> None:
    """A service too slow to answer leaves deletion unknown, and says so in the log."""
    server = await aiohttp_server(FakeFeed(b"", status=409, delay_s=1.0).app())
    with capture_logs() as logs:
        verdict = await fdsn.is_deleted(session, str(server.make_url("/")), "x", timeout_s=0.05)
    assert verdict is None
    assert logs[0]["event"] == "feed.deletion_check_failed"


async def test_is_deleted_unknown_when_unreachable(
    session: aiohttp.ClientSession, refused_port: int
) -> None:
    """Nobody listening leaves deletion unknown."""
    base = f"http://127.0.0.1:{refused_port}/fdsnws/event/1/"
    assert await fdsn.is_deleted(session, base, "x") is None


def _feature_body(index: int) -> bytes:
    return json.dumps(
        json.loads(usgs_bytes("significant_month.geojson"))["features"][index]
    ).encode()


@pytest.mark.parametrize(
    ("body", "event_id", "found"),
    [
        (lambda: _feature_body(2), "us6000le56", "uw61965081"),  # by a secondary id
        (lambda: usgs_bytes("significant_month.geojson"), "us6000ldpv", "us6000ldpv"),
        (lambda: usgs_bytes("significant_month.geojson"), "us0000none", None),
        (lambda: b"<html>", "us6000ldpv", None),
    ],
)
async def test_lookup_returns_the_current_revision(
    aiohttp_server: Any,
    session: aiohttp.ClientSession,
    body: Callable[[], bytes],
    event_id: str,
    found: str | None,
) -> None:
    """An event that still exists comes back parsed, from a Feature or a collection."""
    server = await aiohttp_server(FakeFeed(body()).app())
    result = await fdsn.lookup(session, str(server.make_url("/fdsnws/event/1/")), event_id)
    assert result.deleted is False
    assert (result.event.event_id if result.event else None) == found


async def test_lookup_of_deleted_event(aiohttp_server: Any, session: aiohttp.ClientSession) -> None:
    """A deleted event has no revision to return."""
    server = await aiohttp_server(FakeFeed(b"gone", status=409).app())
    assert await fdsn.lookup(session, str(server.make_url("/")), "x") == fdsn.Lookup(True, None)


@pytest.mark.parametrize(
    ("url", "window"),
    [
        (BASE, timedelta(days=1)),
        (BASE + "query?minmagnitude=5", timedelta(days=1)),
        (BASE + "query?starttime=2024-01-01", None),
        (BASE + "query?updatedafter=2024-01-01", None),
    ],
)
def test_rolling_window(url: str, window: timedelta | None) -> None:
    """Only a query whose start the poller supplies has a rolling window."""
    assert fdsn.rolling_window(url) == window
