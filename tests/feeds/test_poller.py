"""FeedPoller against a real aiohttp server on 127.0.0.1 serving the real feed files."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from structlog.testing import capture_logs

from alertcast.feeds.rules import FeedConfig
from alertcast.feeds.source import FeedPoller, Outcome

from ._make import cenc_bytes, usgs_bytes
from .fake_feed import FakeFeed

MakeConfig = Callable[..., FeedConfig]
Serve = Callable[[FakeFeed], Awaitable[str]]
NOW = datetime(2017, 12, 3, 23, 16, tzinfo=UTC)
TOO_LARGE = "body larger than max_body_bytes 1024"
FEED_PATH = "/earthquakes/feed/v1.0/summary/all_hour.geojson"


class FixedRandom(random.Random):
    def __init__(self, value: float) -> None:
        super().__init__()
        self.value = value

    def random(self) -> float:
        return self.value


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


@pytest.fixture
def serve(aiohttp_server: Any) -> Serve:
    async def start(feed: FakeFeed) -> str:
        server = await aiohttp_server(feed.app())
        return str(server.make_url(FEED_PATH))

    return start


def _poller(feed_config: MakeConfig, url: str, **overrides: Any) -> FeedPoller:
    cfg = feed_config(url=url, **({"timeout_s": 30.0} | overrides))
    return FeedPoller(cfg, clock=lambda: NOW, rng=FixedRandom(0.5))


async def test_200_then_304(feed_config: MakeConfig, serve: Serve, session: Any) -> None:
    """The first poll gets the real file; the next sends its validators and gets 304."""
    feed = FakeFeed(usgs_bytes("all_hour.geojson"))
    poller = _poller(feed_config, await serve(feed))
    first = await poller.poll(session)
    assert (first.outcome, len(first.events), first.http_status) == (Outcome.ok, 8, 200)
    second = await poller.poll(session)
    assert (second.outcome, second.events, second.ok) == (Outcome.not_modified, (), True)
    assert feed.requests[1].headers["If-None-Match"] == '"v1"'
    assert feed.requests[1].headers["If-Modified-Since"] == feed.last_modified
    health = poller.health
    assert (health.polls, health.events_seen, health.last_success_at) == (2, 8, NOW)
    assert (health.last_count, health.consecutive_errors, health.last_error) == (8, 0, None)


@pytest.mark.parametrize(
    ("etag", "last_modified"), [('"v1"', None), (None, "Sun, 03 Dec 2017 23:15:50 GMT")]
)
async def test_either_validator_suffices(
    feed_config: MakeConfig, serve: Serve, session: Any, etag: str | None, last_modified: str | None
) -> None:
    """ETag alone or Last-Modified alone makes the second poll conditional."""
    feed = FakeFeed(usgs_bytes("significant_week.geojson"), etag=etag, last_modified=last_modified)
    poller = _poller(feed_config, await serve(feed))
    outcomes = [(await poller.poll(session)).outcome for _ in range(2)]
    assert outcomes == [Outcome.ok, Outcome.not_modified]


@pytest.mark.parametrize(
    ("feed", "outcome", "reason"),
    [
        (FakeFeed(b"", status=500), Outcome.http_error, "HTTP 500 Internal Server Error"),
        (FakeFeed(b"", status=503), Outcome.http_error, "HTTP 503 Service Unavailable"),
        (FakeFeed(b"", status=404), Outcome.http_error, "HTTP 404 Not Found"),
        (
            FakeFeed(b"<html>maintenance</html>"),
            Outcome.garbage,
            "body is not JSON: Expecting value: line 1 column 1 (char 0)",
        ),
        (FakeFeed(b""), Outcome.garbage, "body is empty"),
        (FakeFeed(b'{"type":"Feature"}'), Outcome.garbage, "not a GeoJSON FeatureCollection"),
        (FakeFeed(b"x" * 2000), Outcome.too_large, TOO_LARGE),
        (FakeFeed(b"x" * 2000, chunked=True), Outcome.too_large, TOO_LARGE),
        (FakeFeed(b"{}", delay_s=1.0), Outcome.timeout, "no answer within 0.1 s"),
    ],
)
async def test_failures_become_outcomes(
    feed_config: MakeConfig,
    serve: Serve,
    session: Any,
    feed: FakeFeed,
    outcome: Outcome,
    reason: str,
) -> None:
    """Server errors, garbage, oversize bodies and timeouts are outcomes, logged, never raised."""
    # Only the timeout case may run into the timeout: a loaded machine can take over 0.1 s to
    # answer the others. The timeout case's server sleeps 1 s, so 0.1 s always expires first.
    timeout_s = 0.1 if outcome is Outcome.timeout else 30.0
    poller = _poller(feed_config, await serve(feed), timeout_s=timeout_s, max_body_bytes=1024)
    with capture_logs() as logs:
        result = await poller.poll(session)
    assert (result.outcome, result.reason, result.ok, result.events) == (outcome, reason, False, ())
    assert poller.health.last_error == f"{outcome.value}: {reason}"
    assert poller.health.consecutive_errors == 1
    assert logs[-1]["event"] == "feed.poll_failed"
    assert (logs[-1]["feed"], logs[-1]["reason"]) == ("test", reason)


async def test_connection_refused(feed_config: MakeConfig, session: Any, refused_port: int) -> None:
    """Nobody listening is a network outcome."""
    poller = _poller(feed_config, f"http://127.0.0.1:{refused_port}/feed.geojson")
    result = await poller.poll(session)
    assert result.outcome is Outcome.network
    assert result.reason.startswith("ClientConnectorError")


@pytest.mark.parametrize(
    ("body", "count"),
    [
        (b'{"type":"FeatureCollection","metadata":{},"features":[]}', 0),
        (b"[]", 0),
    ],
)
async def test_empty_lists(
    feed_config: MakeConfig, serve: Serve, session: Any, body: bytes, count: int
) -> None:
    """An empty list is a successful poll with no events (USGS and CENC forms)."""
    kind = "usgs" if body.startswith(b"{") else "cenc"
    poller = _poller(feed_config, await serve(FakeFeed(body)), type=kind)
    result = await poller.poll(session)
    assert (result.outcome, len(result.events)) == (Outcome.ok, count)


async def test_cenc_feed(feed_config: MakeConfig, serve: Serve, session: Any) -> None:
    """A CENC feed parses the parenthesis-wrapped list with the poller's clock."""
    poller = _poller(feed_config, await serve(FakeFeed(cenc_bytes("cenc_speedsearch.json"))))
    poller = FeedPoller(
        feed_config(type="cenc", url=poller.cfg.url),
        clock=lambda: datetime(2019, 12, 12, 3, tzinfo=UTC),
    )
    result = await poller.poll(session)
    assert (result.outcome, len(result.events)) == (Outcome.ok, 5)


async def test_fdsn_poll_asks_for_geojson(
    feed_config: MakeConfig, serve: Serve, session: Any
) -> None:
    """An FDSN feed adds ``format=geojson`` and a rolling ``starttime`` to its query."""
    feed = FakeFeed(usgs_bytes("significant_week.geojson"))
    url = (await serve(feed)).replace(FEED_PATH, "/fdsnws/event/1/query?minmagnitude=5")
    result = await _poller(feed_config, url, type="fdsn").poll(session)
    assert (result.outcome, {e.source for e in result.events}) == (Outcome.ok, {"fdsn"})
    query = feed.requests[0].query
    assert (query["format"], query["starttime"], query["minmagnitude"]) == (
        "geojson",
        "2017-12-02T23:16:00",
        "5",
    )


async def test_bad_entries_are_logged_and_skipped(
    feed_config: MakeConfig, serve: Serve, session: Any
) -> None:
    """A bad entry is logged with its reason and skipped; the poll still succeeds."""
    body = usgs_bytes("all_hour.geojson").replace(b'"mag":1.93', b'"mag":null', 1)
    poller = _poller(feed_config, await serve(FakeFeed(body)))
    with capture_logs() as logs:
        result = await poller.poll(session)
    assert (result.outcome, len(result.events)) == (Outcome.ok, 7)
    assert result.skipped == (("nc72934355", "mag is missing, not a number"),)
    skipped = [e for e in logs if e["event"] == "feed.entry_skipped"]
    assert skipped == [
        {
            "event": "feed.entry_skipped",
            "log_level": "warning",
            "feed": "test",
            "feed_type": "usgs",
            "entry": "nc72934355",
            "reason": "mag is missing, not a number",
        }
    ]
    assert poller.health.entries_skipped == 1


async def test_no_overlapping_runs(feed_config: MakeConfig, serve: Serve, session: Any) -> None:
    """A poll started while one is running returns ``busy`` at once."""
    feed = FakeFeed(usgs_bytes("all_hour.geojson"), delay_s=0.2)
    poller = _poller(feed_config, await serve(feed))
    first, second = await asyncio.gather(poller.poll(session), poller.poll(session))
    assert (first.outcome, second.outcome) == (Outcome.ok, Outcome.busy)
    assert (len(feed.requests), poller.health.polls) == (1, 1)


async def test_error_then_recovery(feed_config: MakeConfig, serve: Serve, session: Any) -> None:
    """Errors back off (honouring Retry-After); one success resets the interval."""
    feed = FakeFeed(usgs_bytes("all_hour.geojson"), status=503)
    feed.extra_headers = {"Retry-After": "700"}
    poller = _poller(feed_config, await serve(feed))
    await poller.poll(session)
    assert poller.next_delay_s() == 700
    feed.status = 200
    await poller.poll(session)
    assert (poller.next_delay_s(), poller.health.consecutive_errors) == (60, 0)
    assert poller.health.last_error == "http_error: HTTP 503 Service Unavailable"


@pytest.mark.parametrize(
    ("errors", "jitter", "delay"),
    [
        (0, 0.0, 60),
        (1, 0.0, 30),
        (1, 1.0, 60),
        (2, 0.5, 90),
        (3, 1.0, 240),
        (5, 1.0, 900),
        (500, 0.0, 450),
    ],
)
def test_backoff(feed_config: MakeConfig, errors: int, jitter: float, delay: float) -> None:
    """Doubling per consecutive error from the interval, jittered to [half, full], capped."""
    poller = FeedPoller(feed_config(), rng=FixedRandom(jitter))
    poller.health.consecutive_errors = errors
    assert poller.next_delay_s() == delay


@pytest.mark.parametrize(
    ("type_", "url", "window"),
    [
        ("usgs", "https://e.test/earthquakes/feed/v1.0/summary/4.5_day.geojson", timedelta(days=1)),
        (
            "usgs",
            "https://e.test/earthquakes/feed/v1.0/summary/all_hour.geojson",
            timedelta(hours=1),
        ),
        ("fdsn", "https://e.test/fdsnws/event/1/query?minmagnitude=5", timedelta(days=1)),
        ("fdsn", "https://e.test/fdsnws/event/1/query?starttime=2024-01-01", None),
        ("cenc", "https://www.ceic.ac.cn/ajax/speedsearch?num=1", None),
    ],
)
def test_window(feed_config: MakeConfig, type_: str, url: str, window: timedelta | None) -> None:
    """Deletion suspects are looked for only where the source can confirm a deletion."""
    assert FeedPoller(feed_config(type=type_, url=url)).window == window


def test_push_only_feed_cannot_be_polled(feed_config: MakeConfig) -> None:
    """A feed without a url is push-only: making a poller for it is an error."""
    with pytest.raises(ValueError, match="no url to poll"):
        FeedPoller(feed_config(url=None))


async def test_a_parser_bug_is_an_outcome(
    feed_config: MakeConfig, serve: Serve, session: Any
) -> None:
    """Even a bug while parsing is logged and returned as ``internal``, not raised."""
    poller = _poller(feed_config, await serve(FakeFeed(usgs_bytes("all_hour.geojson"))))

    def broken(body: bytes, now: datetime) -> Any:
        raise KeyError("oops")

    poller._parse = broken
    with capture_logs() as logs:
        result = await poller.poll(session)
    assert (result.outcome, result.reason) == (Outcome.internal, "internal error: KeyError('oops')")
    assert [e["event"] for e in logs] == ["feed.poll_crashed", "feed.poll_failed"]
