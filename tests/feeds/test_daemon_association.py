"""Feeds of one ``associate`` group end to end: a real daemon polls CENC (the recorded Lushan
quick reports) and USGS (a real feature moved onto the Lushan quake) on two local servers, and
raises one incident per real event."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from alertcast.feeds.runner import FeedRunner
from alertcast.keys import FEEDS, STORE
from tests.conftest import TOKEN, Daemon

from ._make import cenc_bytes
from .feed_server import (
    FeedServer,
    collection,
    real_features,
    revised,
    server_fixture,  # noqa: F401
    until,
)
from .test_daemon_feeds import HERAT, incidents, messages

MS = 1000
LUSHAN_MS = 1366416167500  # 2013-04-20T00:02:47.5Z: CENC says 08:02:46 Beijing time
AUTO, OFFICIAL = json.loads(cenc_bytes("cenc_google.json"))  # M5.9 automatic, M7.0 official


def lushan(**props: Any) -> dict[str, Any]:
    """USGS's report of the Lushan quake: a real feature, moved there (11 km from CENC's)."""
    feature = real_features("significant_month.geojson")[HERAT]
    base = {
        "id": "us7000lush",
        "ids": ",us7000lush,",
        "time": LUSHAN_MS,
        "updated": LUSHAN_MS + 5 * 60 * MS,
        "mag": 6.6,
        "place": "Lushan, Sichuan, China",
        "status": "automatic",
        "alert": None,
    }
    out = revised(feature, **(base | props))
    out["geometry"]["coordinates"] = [102.888, 30.308, 14.0]
    return out


def far_away() -> dict[str, Any]:
    """A USGS-only quake half an hour later, in Afghanistan."""
    feature = real_features("significant_month.geojson")[HERAT]
    t = LUSHAN_MS + 30 * 60 * MS
    return revised(feature, id="us7000far1", ids=",us7000far1,", time=t, updated=t, alert=None)


def rows(*entries: dict[str, Any]) -> bytes:
    return json.dumps(list(entries), ensure_ascii=False).encode()


@pytest.fixture(name="cenc")
async def cenc_fixture(aiohttp_server: Any) -> FeedServer:
    """A second local feed host, for CENC."""
    feed = FeedServer()
    running = await aiohttp_server(feed.app())
    feed.url = str(running.make_url("")).rstrip("/")
    return feed


def group_feeds(usgs: FeedServer, cenc: FeedServer) -> list[dict[str, Any]]:
    common = {"interval_s": 3600, "timeout_s": 30, "min_magnitude": 5.0, "max_age_s": None}
    return [
        common
        | {
            "name": "cenc",
            "type": "cenc",
            "url": f"{cenc.url}/ajax/google",
            "associate": "china",
            "priority": 10,
        },
        common
        | {
            "name": "usgs",
            "type": "usgs",
            "url": usgs.feed_url(),
            "associate": "china",
            "language": "zh-CN",
        },
    ]


Start = Callable[..., Awaitable[tuple[Daemon, FeedRunner]]]


@pytest.fixture
def start(start_daemon: Any, server: FeedServer, cenc: FeedServer) -> Start:
    async def run(**extra: Any) -> tuple[Daemon, FeedRunner]:
        """A daemon with both feeds of the group; returns once each has polled once."""
        d = await start_daemon(
            feeds=group_feeds(server, cenc), approval={"severities": []}, **extra
        )
        runner = d.client.app[FEEDS]
        for feed in runner.feeds.values():
            await until(
                lambda f=feed: (
                    f.poller is not None and f.poller.health.polls >= 1 and not f.poll_lock.locked()
                )
            )
        return d, runner

    return run


async def feeds_by_name(d: Daemon) -> dict[str, dict[str, Any]]:
    status, answer = await d.get("/v1/feeds")
    assert status == 200
    return {f["name"]: f for f in answer["feeds"]}


async def test_cenc_automatic_and_usgs_same_quake_is_one_incident(
    server: FeedServer, cenc: FeedServer, start: Start
) -> None:
    """CENC's automatic report raises; USGS's report of the same quake is associated with
    it: recorded, shown in /v1/feeds, nothing sent."""
    server.status = cenc.status = 503
    d, runner = await start()
    cenc.serve(rows(AUTO))
    await runner.poll_now("cenc")
    server.serve(collection(lushan()))
    await runner.poll_now("usgs")
    assert await messages(d) == [("alert", None)]
    (alert,) = await incidents(d)
    assert alert["source"] == "feed:cenc"
    view = await d.settled(alert["id"])
    assert view["incident"]["details"]["source"] == "cenc"
    feeds = await feeds_by_name(d)
    assert feeds["cenc"]["decisions"] == {"raise": 1}
    assert feeds["usgs"]["decisions"] == {"associate": 1}
    assert (feeds["usgs"]["associate"], feeds["cenc"]["priority"]) == ("china", 10)
    stored = await d.client.app[STORE].get_feed_event("usgs", "us7000lush")
    assert stored is not None and stored.incident_id == alert["id"] and stored.live
    assert len(d.sink.delivered_keys()) == 1


async def test_usgs_first_then_cenc_official_is_one_incident_and_one_update(
    server: FeedServer, cenc: FeedServer, start: Start
) -> None:
    """USGS's automatic M6.6 raises; CENC's official M7.0 (priority 10) updates it once; a
    later USGS revision, outranked, changes nothing."""
    server.status = cenc.status = 503
    d, runner = await start()
    server.serve(collection(lushan()))
    await runner.poll_now("usgs")
    (alert,) = await incidents(d)
    assert alert["source"] == "feed:usgs"
    cenc.serve(rows(OFFICIAL))
    await runner.poll_now("cenc")
    assert await messages(d) == [("alert", None), ("update", alert["id"])]
    update = await d.settled((await incidents(d))[1]["id"])
    details = update["incident"]["details"]
    assert (details["magnitude"], details["report"], details["source"]) == (7.0, "official", "cenc")
    assert {x["action"] for x in update["deliveries"]} == {"reply"}
    later = LUSHAN_MS + 40 * 60 * MS
    server.serve(collection(lushan(mag=6.7, status="reviewed", updated=later)))
    await runner.poll_now("usgs")
    assert len(await incidents(d)) == 2
    feeds = await feeds_by_name(d)
    assert feeds["usgs"]["decisions"] == {"associate": 1, "raise": 1}
    assert feeds["cenc"]["decisions"] == {"update": 1}


async def test_two_quakes_close_in_time_but_far_apart_are_two_incidents(
    server: FeedServer, cenc: FeedServer, start: Start
) -> None:
    """CENC reports a quake in Xinjiang 14 s after USGS's Lushan quake: two incidents."""
    server.status = cenc.status = 503
    d, runner = await start()
    server.serve(collection(lushan()))
    await runner.poll_now("usgs")
    xinjiang = OFFICIAL | {
        "CATA_ID": "CC20130420080300.00",
        "NEW_DID": "CC20130420080300",
        "O_TIME": "2013-04-20 08:03:00",
        "EPI_LAT": "41.8",
        "EPI_LON": "84.2",
        "M": "5.6",
        "LOCATION_C": "新疆巴音郭楞州轮台县",
    }
    cenc.serve(rows(xinjiang))
    await runner.poll_now("cenc")
    assert await messages(d) == [("alert", None), ("alert", None)]
    assert {i["source"] for i in await incidents(d)} == {"feed:usgs", "feed:cenc"}


@pytest.mark.parametrize("crash", ["between_polls", "before_send", "after_send"])
async def test_restart_never_raises_twice(
    server: FeedServer,
    cenc: FeedServer,
    start: Start,
    monkeypatch: pytest.MonkeyPatch,
    crash: str,
) -> None:
    """A restart between the two feeds' polls, or a daemon killed while the group raises
    USGS's report: still one incident, which CENC's official report then updates once."""
    server.status = cenc.status = 503
    d, runner = await start()
    server.serve(collection(lushan()))
    if crash == "between_polls":
        await runner.poll_now("usgs")
    else:
        group = runner.groups["china"]
        send = group._send

        async def dies(intent: Any, sub: Any) -> Any:
            if crash == "after_send":
                await send(intent, sub)
            raise ConnectionError("killed")

        monkeypatch.setattr(group, "_send", dies)
        with pytest.raises(ConnectionError):
            await runner.poll_now("usgs")
    raised = await incidents(d)
    assert len(raised) == (0 if crash == "before_send" else 1)
    await d.client.close()

    server.status = 503
    cenc.serve(rows(OFFICIAL))
    again, runner = await start()  # CENC's first poll finishes what was pending, then updates
    server.serve(collection(lushan()))
    await runner.poll_now("usgs")
    alert, update = await incidents(again)
    assert (alert["msg_type"], alert["source"]) == ("alert", "feed:usgs")
    assert (update["msg_type"], update["references"]) == ("update", alert["id"])
    if raised:
        assert alert["id"] == raised[0]["id"]
    for name, event_id in (("usgs", "us7000lush"), ("cenc", "CC20130420080246")):
        row = await again.client.app[STORE].get_feed_event(name, event_id)
        assert row is not None and row.pending is None and row.incident_id == alert["id"]
    await until(lambda: len(again.sink.delivered_keys()) >= 2)
    assert max(again.sink.keys().values()) == 1


async def test_a_deletion_cancels_only_what_that_feed_alone_reported(
    server: FeedServer, cenc: FeedServer, start: Start
) -> None:
    """USGS deletes its Lushan event (CENC raised the alert) and a quake only USGS reported:
    the first is absorbed, the second cancelled."""
    server.status = cenc.status = 503
    d, runner = await start()
    runner.clock = lambda: datetime(2013, 4, 20, 2, 0, tzinfo=UTC)
    cenc.serve(rows(OFFICIAL))
    await runner.poll_now("cenc")
    server.serve(collection(lushan(), far_away()))
    await runner.poll_now("usgs")
    assert [m for m, _ in await messages(d)] == ["alert", "alert"]
    lushan_alert, far_alert = await incidents(d)
    assert (lushan_alert["source"], far_alert["source"]) == ("feed:cenc", "feed:usgs")
    server.fdsn = {"us7000lush": (409, b"Conflict"), "us7000far1": (409, b"Conflict")}
    server.serve(collection())
    await runner.poll_now("usgs")
    assert sorted(server.lookups) == ["us7000far1", "us7000lush"]
    (cancel,) = [i for i in await incidents(d) if i["msg_type"] == "cancel"]
    assert (cancel["references"], cancel["reason"]) == (far_alert["id"], "deleted by the source")
    assert len(await incidents(d)) == 3
    feeds = await feeds_by_name(d)
    assert feeds["usgs"]["decisions"] == {"associate": 2, "cancel": 1, "raise": 1}


async def test_a_feed_without_associate_is_on_its_own(
    server: FeedServer, cenc: FeedServer, start_daemon: Any
) -> None:
    """The same two feeds without ``associate``: each raises its own incident, as before."""
    feeds = group_feeds(server, cenc)
    for f in feeds:
        f.pop("associate"), f.pop("priority", None)
    server.serve(collection(lushan()))
    cenc.serve(rows(OFFICIAL))
    d = await start_daemon(feeds=feeds, approval={"severities": []})
    runner = d.client.app[FEEDS]
    await runner.poll_now("cenc")
    await runner.poll_now("usgs")
    assert await messages(d) == [("alert", None), ("alert", None)]
    assert runner.groups == {}


async def test_a_pushed_report_of_the_same_quake_is_associated(
    server: FeedServer, cenc: FeedServer, start: Start
) -> None:
    """A push to a grouped feed goes through the group: ``200``, action ``associate``, and the
    incident it was associated with."""
    server.status = cenc.status = 503
    d, runner = await start()
    cenc.serve(rows(OFFICIAL))
    await runner.poll_now("cenc")
    (alert,) = await incidents(d)
    resp = await d.client.post(
        "/v1/feeds/usgs/events",
        data=json.dumps(lushan()).encode(),
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
    )
    assert resp.status == 200, await resp.text()
    (decision,) = (await resp.json())["decisions"]
    assert (decision["action"], decision["incident_id"]) == ("associate", alert["id"])
    assert decision["reason"].startswith(f"associated with incident {alert['id']}")
    assert len(await incidents(d)) == 1


async def test_a_deletion_interrupted_before_the_group_is_finished_next_poll(
    server: FeedServer, cenc: FeedServer, start: Start, monkeypatch: pytest.MonkeyPatch
) -> None:
    """USGS's deletion is claimed on its event's row, then the hand-over to the group fails
    (the store went away, the daemon was stopping): the deleted event never shows in a feed
    again, yet the next poll still cancels its alert, once."""
    server.status = cenc.status = 503
    d, runner = await start()
    runner.clock = lambda: datetime(2013, 4, 20, 2, 0, tzinfo=UTC)
    server.serve(collection(far_away()))
    await runner.poll_now("usgs")
    (far_alert,) = await incidents(d)
    group = runner.groups["china"]
    apply = group.apply

    async def fails(report: Any) -> Any:
        raise ConnectionError("store unreachable")

    monkeypatch.setattr(group, "apply", fails)
    server.fdsn = {"us7000far1": (409, b"Conflict")}
    server.serve(collection())
    with pytest.raises(ConnectionError):
        await runner.poll_now("usgs")
    assert len(await incidents(d)) == 1
    monkeypatch.setattr(group, "apply", apply)
    await runner.poll_now("usgs")
    (cancel,) = [i for i in await incidents(d) if i["msg_type"] == "cancel"]
    assert (cancel["references"], cancel["reason"]) == (far_alert["id"], "deleted by the source")
    row = await d.client.app[STORE].get_feed_event("usgs", "us7000far1")
    assert row is not None and row.pending is None and not row.live
    await runner.poll_now("usgs")
    assert len(await incidents(d)) == 2
