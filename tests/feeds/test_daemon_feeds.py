"""The daemon's feeds end to end: a real daemon polls a local server serving the real USGS files
(edited over time) and the recorded CENC lists, and raises, updates and cancels incidents."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from structlog.testing import capture_logs

from alertcast.feeds.runner import FeedRunner
from alertcast.feeds.source import Outcome
from alertcast.keys import FEEDS, STORE
from tests.conftest import Daemon

from ._make import cenc_bytes, usgs_bytes
from .feed_server import (
    FeedServer,
    collection,
    real_features,
    revised,
    server_fixture,  # noqa: F401
    until,
)

MS = 1000
HERAT = "us6000ldpv"  # M5.9 near Herat, 2023-10-07 (significant_month.geojson)
PORT_TOWNSEND = "uw61965081"  # M4.3, four associated ids after the networks merged


StartFeed = Callable[..., Awaitable[tuple[Daemon, FeedRunner]]]


@pytest.fixture
def start_feed(start_daemon: Any, server: FeedServer) -> StartFeed:
    async def start(**feed: Any) -> tuple[Daemon, FeedRunner]:
        """A daemon with one feed ``usgs`` on ``server``; returns once its first poll is done."""
        cfg = {
            "name": "usgs",
            "type": "usgs",
            "url": server.feed_url(),
            "interval_s": 3600,
            "timeout_s": 30,  # a local server; only test_misbehaving_feed wants a timeout
            "min_magnitude": 5.0,
            "max_age_s": None,  # the recorded feeds are years old
        }
        cfg |= feed
        d = await start_daemon(feeds=[cfg], approval={"severities": []})
        runner = d.client.app[FEEDS]
        polled = runner.feeds[cfg["name"]]
        await until(lambda: polled.poller.health.polls >= 1 and not polled.poll_lock.locked())
        return d, runner

    return start


async def incidents(d: Daemon) -> list[dict[str, Any]]:
    status, answer = await d.get("/v1/incidents?limit=500")
    assert status == 200
    return sorted(answer["incidents"], key=lambda i: i["created_at"])


async def messages(d: Daemon) -> list[tuple[str, str | None]]:
    """``(msg_type, references)`` of every stored message, oldest first."""
    return [(i["msg_type"], i["references"]) for i in await incidents(d)]


def herat(**props: Any) -> dict[str, Any]:
    feature = real_features("significant_month.geojson")[HERAT]
    t = feature["properties"]["time"]
    base = {"mag": 5.9, "status": "automatic", "alert": None, "updated": t + 2 * 60 * MS}
    return revised(feature, **(base | props))


OFFICIAL = {
    "mag": 7.0,
    "status": "reviewed",
    "place": "Herat, Afghanistan (2023-10-07 earthquake)",
}


async def test_automatic_then_official_is_one_incident_and_one_update(
    server: FeedServer, start_feed: StartFeed
) -> None:
    """Automatic M5.9, then the official M7.0 at a new place: one incident, one update."""
    server.serve(collection(herat()))
    d, runner = await start_feed()
    (alert,) = await incidents(d)
    assert (alert["issuer"], alert["source"], alert["msg_type"]) == (
        "feed:usgs",
        "feed:usgs",
        "alert",
    )
    await d.settled(alert["id"])
    t = herat()["properties"]["time"]
    server.serve(collection(herat(**OFFICIAL, updated=t + 30 * 60 * MS)))
    assert (await runner.poll_now("usgs")).outcome is Outcome.ok
    assert await messages(d) == [("alert", None), ("update", alert["id"])]
    update = (await incidents(d))[1]
    view = await d.settled(update["id"])
    assert view["incident"]["details"]["magnitude"] == 7.0
    # The place is named from the epicentre, never USGS's event name (issue 12).
    assert view["incident"]["area"]["name"] == "36 km NNW of Herāt, Afghanistan"
    assert {x["action"] for x in view["deliveries"]} == {"reply"}
    assert (await runner.poll_now("usgs")).outcome is Outcome.not_modified
    server.serve(collection(herat(**OFFICIAL, updated=t + 40 * 60 * MS)))  # nothing stated
    await runner.poll_now("usgs")
    assert len(await incidents(d)) == 2
    _, feeds = await d.get("/v1/feeds")
    (usgs,) = feeds["feeds"]
    assert usgs["decisions"] == {"ignore": 1, "raise": 1, "update": 1}


async def test_new_preferred_id_after_networks_merge_is_the_same_incident(
    server: FeedServer, start_feed: StartFeed
) -> None:
    """The event first seen as at00s28p79 comes back as uw61965081 with four ids: one incident."""
    real = real_features("significant_month.geojson")[PORT_TOWNSEND]
    updated = real["properties"]["updated"]
    early = revised(real, id="at00s28p79", ids=",at00s28p79,", updated=updated - 3600 * MS)
    server.serve(collection(early))
    d, runner = await start_feed(min_magnitude=4.0)
    assert len(await incidents(d)) == 1
    server.serve(collection(real))
    await runner.poll_now("usgs")
    assert await messages(d) == [("alert", None)]
    stored = await d.client.app[STORE].get_feed_event("usgs", "at00s28p79")
    assert stored is not None and len(stored.ids) == 4


async def test_two_alerted_events_merged_leave_one(
    server: FeedServer, start_feed: StartFeed
) -> None:
    """Two events that both alerted and are merged by the source: the duplicate is cancelled."""
    real = real_features("significant_month.geojson")[PORT_TOWNSEND]
    updated = real["properties"]["updated"]
    one = revised(real, id="at00s28p79", ids=",at00s28p79,", updated=updated - 3600 * MS)
    two = revised(real, id="us6000le56", ids=",us6000le56,", updated=updated - 3000 * MS)
    server.serve(collection(one, two))
    d, runner = await start_feed(min_magnitude=4.0)
    first, second = await incidents(d)
    server.serve(collection(real))
    await runner.poll_now("usgs")
    cancels = [i for i in await incidents(d) if i["msg_type"] == "cancel"]
    assert len(cancels) == 1 and cancels[0]["references"] in (first["id"], second["id"])
    assert cancels[0]["reason"].startswith("duplicate of ")


NOW = datetime(2017, 12, 3, 23, 16, tzinfo=UTC)  # all_hour.geojson was generated at 23:15:50


async def test_deleted_event_is_cancelled(server: FeedServer, start_feed: StartFeed) -> None:
    """An alerted event gone from the feed that FDSN answers 409 for is cancelled; one FDSN
    cannot vouch for (500) is left alone and asked again later."""
    features = real_features("all_hour.geojson")
    server.serve(usgs_bytes("all_hour.geojson"))
    d, runner = await start_feed(url=server.feed_url("all_hour.geojson"), min_magnitude=1.9)
    runner.clock = lambda: NOW
    alerts = {i["headline"]: i["id"] for i in await incidents(d)}
    assert len(alerts) == 2  # M1.9 near Anderson, M4.7 off the Philippines
    server.fdsn = {"nc72934355": (409, b"Conflict"), "us1000bknk": (500, b"busy")}
    rest = [f for i, f in features.items() if i not in ("nc72934355", "us1000bknk")]
    server.serve(collection(*rest))
    await runner.poll_now("usgs")
    assert sorted(server.lookups) == ["nc72934355", "us1000bknk"]
    (cancel,) = [i for i in await incidents(d) if i["msg_type"] == "cancel"]
    assert cancel["reason"] == "deleted by the source"
    await d.settled(cancel["id"])
    server.fdsn["us1000bknk"] = (204, b"")
    server.serve(collection(*rest[:-1]))
    await runner.poll_now("usgs")
    reasons = [i["reason"] for i in await incidents(d) if i["msg_type"] == "cancel"]
    assert reasons == ["deleted by the source", "deleted by the source"]
    assert server.lookups.count("nc72934355") == 1


async def test_revised_below_the_rule_is_cancelled_with_the_reason(
    server: FeedServer, start_feed: StartFeed
) -> None:
    """An alerted event revised below min_magnitude is cancelled, saying why."""
    server.serve(collection(herat()))
    d, runner = await start_feed(min_magnitude=5.5)
    (alert,) = await incidents(d)
    t = herat()["properties"]["time"]
    server.serve(collection(herat(mag=5.4, status="reviewed", updated=t + 20 * 60 * MS)))
    await runner.poll_now("usgs")
    cancel = (await incidents(d))[1]
    assert (cancel["msg_type"], cancel["references"]) == ("cancel", alert["id"])
    assert (
        cancel["reason"] == "no longer matches the rule: magnitude 5.4 is below min_magnitude 5.5"
    )


SLOW_TIMEOUT_S = 3.0


async def test_misbehaving_feed_is_reported_and_changes_nothing(
    server: FeedServer, start_feed: StartFeed
) -> None:
    """500s, garbage, a slow answer and an empty list: health says so, no incident moves."""
    server.serve(collection(herat()))
    # Room for a loaded machine to answer the 500, the garbage and the empty list in time; the
    # slow answer comes only after twice as long, so the timeout always expires first.
    d, runner = await start_feed(timeout_s=SLOW_TIMEOUT_S)
    before = await incidents(d)
    runner.clock = lambda: datetime(2023, 10, 7, 8, tzinfo=UTC)  # an hour after the event
    server.fdsn[HERAT] = (200, b"{}")  # the source still has it
    cases: list[tuple[Callable[[], None], Outcome, str]] = [
        (lambda: setattr(server, "status", 500), Outcome.http_error, "http_error: HTTP 500"),
        (lambda: server.serve(b"<html>oops</html>"), Outcome.garbage, "garbage: "),
        (lambda: server.serve(b'{"type": "Feature"}'), Outcome.garbage, "garbage: "),
        (
            lambda: setattr(server, "delay_s", 2 * SLOW_TIMEOUT_S),
            Outcome.timeout,
            "timeout: no answer within",
        ),
    ]
    for errors, (misbehave, outcome, error) in enumerate(cases, start=1):
        misbehave()
        assert (await runner.poll_now("usgs")).outcome is outcome
        _, answer = await d.get("/v1/feeds")
        health = answer["feeds"][0]
        assert health["last_error"].startswith(error)
        assert health["consecutive_errors"] == errors
    server.serve(collection())
    assert (await runner.poll_now("usgs")).outcome is Outcome.ok
    _, answer = await d.get("/v1/feeds")
    health = answer["feeds"][0]
    assert (health["consecutive_errors"], health["last_count"], health["events_seen"]) == (0, 0, 1)
    assert health["last_success_at"] is not None and health["next_poll_at"] is not None
    assert await incidents(d) == before
    assert server.lookups == [HERAT]


async def test_the_scheduler_polls_backs_off_and_survives_a_crash(
    server: FeedServer, start_feed: StartFeed, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Scheduled polls back off after 500s, and a crash while applying is logged, not fatal:
    the body is applied again on the next poll (even a 304)."""
    server.status = 500
    d, runner = await start_feed(interval_s=1, max_backoff_s=1)
    feed = runner.feeds["usgs"]
    assert feed.poller is not None
    await until(lambda: feed.poller is not None and feed.poller.health.consecutive_errors >= 2)
    sighting = feed.tracker.sighting
    crashes: list[str] = []

    async def crash_once(ev: Any) -> Any:
        if not crashes:
            crashes.append(ev.event_id)
            raise RuntimeError("store went away")
        return await sighting(ev)

    monkeypatch.setattr(feed.tracker, "sighting", crash_once)
    with capture_logs() as logs:
        server.serve(collection(herat()))
        await until(lambda: len(feed.applied) == 1, timeout_s=30)
    assert crashes == [HERAT]
    assert any(e["event"] == "feed.job_failed" for e in logs)
    _, answer = await d.get("/v1/feeds")
    assert answer["feeds"][0]["last_apply_error"] == "RuntimeError: store went away"
    assert len(await incidents(d)) == 1


async def test_cenc_automatic_then_official(server: FeedServer, start_feed: StartFeed) -> None:
    """The recorded Lushan lists: automatic M5.9, then the official M7.0 row: one update."""
    rows = cenc_bytes("cenc_google.json").decode()
    auto_only = rows[: rows.index("},{") + 1] + "]"
    server.serve(auto_only.encode())
    d, runner = await start_feed(name="cenc", type="cenc", url=f"{server.url}/ajax/google")
    (alert,) = await incidents(d)
    assert (await d.settled(alert["id"]))["incident"]["details"]["report"] == "automatic"
    server.serve(rows.encode())
    await runner.poll_now("cenc")
    assert await messages(d) == [("alert", None), ("update", alert["id"])]
    update = await d.settled((await incidents(d))[1]["id"])
    assert update["incident"]["details"]["report"] == "official"
    assert update["incident"]["details"]["magnitude"] == 7.0


async def test_speedsearch_list_newest_first(server: FeedServer, start_feed: StartFeed) -> None:
    """The recorded speedsearch list raises what the rule covers, once, in any poll order."""
    server.serve(cenc_bytes("cenc_speedsearch.json"))
    d, runner = await start_feed(
        name="cenc", type="cenc", url=f"{server.url}/ajax/speedsearch?num=1", min_magnitude=3.0
    )
    first = await incidents(d)
    assert len(first) == 4  # M3.5, M4.1, M3.1, M5.3; M2.0 (a collapse) is below the rule
    runner.feeds["cenc"].applied.clear()  # decide every row again, from the store alone
    server.serve(cenc_bytes("cenc_speedsearch.json"))
    assert (await runner.poll_now("cenc")).outcome is Outcome.ok
    assert await incidents(d) == first


@pytest.mark.parametrize("crash", ["before_send", "after_send"])
async def test_restart_never_raises_twice(
    server: FeedServer,
    start_feed: StartFeed,
    monkeypatch: pytest.MonkeyPatch,
    crash: str,
) -> None:
    """A daemon that dies between claiming and confirming an alert leaves it to the next one,
    which finishes it under the same key: one incident, then updates as usual."""
    server.status = 503
    d, runner = await start_feed()
    tracker = runner.feeds["usgs"].tracker
    send = tracker._send

    async def dies(intent: Any, sub: Any) -> Any:
        if crash == "after_send":
            await send(intent, sub)
        raise ConnectionError("killed")

    monkeypatch.setattr(tracker, "_send", dies)
    server.serve(collection(herat()))
    with pytest.raises(ConnectionError):
        await runner.poll_now("usgs")
    raised = await incidents(d)
    assert len(raised) == (1 if crash == "after_send" else 0)
    await d.client.close()
    again, runner = await start_feed()
    assert len(await incidents(again)) == 1
    t = herat()["properties"]["time"]
    server.serve(collection(herat(**OFFICIAL, updated=t + 30 * 60 * MS)))
    await runner.poll_now("usgs")
    (alert, update) = await incidents(again)
    assert (update["msg_type"], update["references"]) == ("update", alert["id"])
    if raised:
        assert alert["id"] == raised[0]["id"]


async def test_a_pushed_event_the_feed_has_not_served_is_not_vanished(
    server: FeedServer, start_feed: StartFeed
) -> None:
    """A push ahead of the polled feed is not taken for a deletion on the next poll."""
    import json

    from tests.conftest import TOKEN

    from .feed_server import collection, real_features

    features = real_features("all_hour.geojson")
    fresh = features["nc72934355"]
    server.serve(collection(*[f for i, f in features.items() if i != "nc72934355"]))
    d, runner = await start_feed(url=server.feed_url("all_hour.geojson"), min_magnitude=1.9)
    runner.clock = lambda: datetime(2017, 12, 3, 23, 16, tzinfo=UTC)
    resp = await d.client.post(
        "/v1/feeds/usgs/events",
        data=json.dumps(fresh).encode(),
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
    )
    assert resp.status == 202, await resp.text()
    await runner.poll_now("usgs")
    assert "cancel" not in [m for m, _ in await messages(d)]
