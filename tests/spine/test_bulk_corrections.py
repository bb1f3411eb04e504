"""Updates and cancellations of an incident whose per-recipient delivery is (a) done, (b) half
way through its recipients, (c) still held, (d) in another replica's hands, through running
daemons: the correction reaches every recipient who got the original and nobody who got
nothing, threads to the original as the webhook's follow-ups do, and never waits behind the
original's remaining recipients (docs/delivery.md, "Per-recipient accounts: holds, corrections
and pauses").

Case (b), decided: a follow-up stops the original's recipients not yet sent (the way it
withdraws a delivery not yet sent); the recipients the original reached (or had in flight)
get the correction at once; for an update, the recipients the original had not reached get
the update instead, as their first message; for a cancellation, they get nothing.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from alertcast.keys import STORE
from alertcast.store.base import Recipient
from alertcast.testing.sink import Received
from tests.spine.bulk_people import (
    Bulk,
    account,
    answer_with_ids,
    in_chengdu,
    load,
    people,
    quake,
    start,
)
from tests.store.test_contract import PG_URL, _drop_schema, _pg_reachable

SETTLE_S = 1.2
WIDTH = 4  # the account's concurrency in the half-way cases
SLOW_S = 0.05  # the sink's answer time then: 200 recipients take 2.5 s at WIDTH
HALF = 40  # originals seen at the sink before the follow-up is posted


@pytest.fixture
async def pg_url() -> AsyncIterator[str]:
    if (why := await _pg_reachable()) is not None:
        pytest.skip(why)
    schema = f"t_{uuid.uuid4().hex[:12]}"
    yield f"{PG_URL}?schema={schema}"
    await _drop_schema(schema)


def _db(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'alertcast.db'}"


async def _done(b: Bulk) -> dict[str, Any]:
    first = await b.raise_(quake())
    view = await b.settled(first["id"])
    assert view["deliveries"][0]["recipients"] == {"delivered": 70}, view["deliveries"]
    return first


# -- (a) done -----------------------------------------------------------------------------------
async def test_an_update_of_a_done_delivery_reaches_each_who_got_it_once(
    start_daemon: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Every recipient who got the alert gets the update once, under its own key, naming the
    original (references); Beijing's, who got nothing, get nothing."""
    await load(_db(tmp_path), people())
    b = await start(start_daemon, monkeypatch)
    first = await _done(b)
    upd = await b.follow(first["id"], "update", "city", instruction="远离建筑物，注意余震")
    await b.settled(upd["id"])
    assert b.got("update") == b.got("alert") == dict.fromkeys(in_chengdu(), 1)
    posts = b.posts("update")
    assert {r.body["references"] for r in posts} == {first["id"]}
    assert {r.body["incident_id"] for r in posts} == {upd["id"]}
    assert all(r.signed and r.key.endswith(":" + r.body["recipient"]["id"]) for r in posts)


async def test_a_correction_threads_to_each_recipients_original(
    start_daemon: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The receiver answered each original with its own id: the update and the cancellation
    to that recipient are replies whose in_reply_to names it, as a plain webhook's are."""
    await load(_db(tmp_path), people(chengdu=10, nowhere=0, beijing=0))
    b = await start(start_daemon, monkeypatch)
    b.sink.answer = answer_with_ids
    first = await b.raise_(quake())
    await b.settled(first["id"])
    upd = await b.follow(first["id"], "update", "city", instruction="注意余震")
    await b.settled(upd["id"])
    cancel = await b.follow(first["id"], "cancel", "city", reason="误报")
    await b.settled(cancel["id"])
    for msg_type in ("update", "cancel"):
        posts = b.posts(msg_type)
        assert len(posts) == 10
        for r in posts:
            rid = r.body["recipient"]["id"]
            assert (r.body["action"], r.body["in_reply_to"]) == ("reply", f"alert-{rid}"), r.body


async def test_an_update_narrowing_the_area_still_reaches_everyone_who_got_the_alert(
    start_daemon: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The update moves the area to one district (510104): the recipients of the other
    district (510105) got the alert too and must get the update as well."""
    await load(_db(tmp_path), people())
    b = await start(start_daemon, monkeypatch)
    first = await _done(b)
    area = {"name": "四川省成都市锦江区", "codes": ["510104"]}
    upd = await b.follow(first["id"], "update", "city", area=area)
    await b.settled(upd["id"])
    assert b.got("update") == b.got("alert") == dict.fromkeys(in_chengdu(), 1)


async def test_a_cancellation_skips_recipients_imported_after_the_alert(
    start_daemon: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Five recipients imported after the alert went out never saw it: they get no
    cancellation; each of the twenty who got the alert gets it once."""
    await load(_db(tmp_path), people(chengdu=20, nowhere=0, beijing=0))
    b = await start(start_daemon, monkeypatch)
    first = await b.raise_(quake())
    await b.settled(first["id"])
    later = [Recipient(f"cd-late-{i}", "510104", {"phone": f"1370000000{i}"}) for i in range(5)]
    await b.d.client.app[STORE].import_recipients("people", enumerate(later, 2))
    cancel = await b.follow(first["id"], "cancel", "city", reason="误报")
    await b.settled(cancel["id"])
    assert b.got("cancel") == b.got("alert") == dict.fromkeys(in_chengdu(20, 0), 1)


async def test_a_cancellation_of_a_partly_refused_delivery_reaches_who_got_it(
    start_daemon: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Two of twenty recipients refused the alert (400), so its parent ended failed: the
    eighteen it reached get the cancellation once; the two get none."""
    await load(_db(tmp_path), people(chengdu=20, nowhere=0, beijing=0))
    b = await start(start_daemon, monkeypatch)
    refused = {"cd-0003", "cd-0004"}

    def answer(item: Received) -> tuple[int, dict[str, str]] | None:
        rid = item.body["recipient"]["id"]
        return (400, {}) if rid in refused and item.body["msg_type"] == "alert" else None

    b.sink.answer = answer
    first = await b.raise_(quake())
    parent = (await b.settled(first["id"]))["deliveries"][0]
    assert parent["state"] == "failed" and parent["recipients"] == {"delivered": 18, "failed": 2}
    cancel = await b.follow(first["id"], "cancel", "city", reason="误报")
    await b.settled(cancel["id"])
    assert b.got("cancel") == dict.fromkeys(in_chengdu(20, 0) - refused, 1)


# -- (b) half way -------------------------------------------------------------------------------
async def _half_way(b: Bulk) -> tuple[dict[str, Any], float]:
    """200 recipients at WIDTH, the sink answering in SLOW_S: the alert's id once HALF of
    its POSTs have arrived."""
    b.sink.latency_s = SLOW_S
    first = await b.raise_(quake())
    await b.until_received(HALF)
    return first, time.time()


def _after(b: Bulk, follow_up: str, acked: float) -> None:
    """What a half-way follow-up must leave: no original started after it was acknowledged
    (WIDTH were on the wire), and its first POST within a second: it does not wait for the
    original's remaining recipients."""
    late = [r for r in b.posts("alert") if r.at > acked]
    assert len(late) <= WIDTH, f"{len(late)} alerts went out after the {follow_up}"
    first = min(r.at for r in b.posts(follow_up))
    assert first - acked < 1.0, f"the {follow_up} started {first - acked:.2f} s after its 202"


async def test_a_cancellation_half_way_stops_the_rest_and_reaches_who_got_it_at_once(
    start_daemon: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Half way through 200: the rest get neither the alert nor the cancellation; everyone
    the alert reached gets the cancellation once, the first within a second."""
    await load(_db(tmp_path), people(chengdu=200, nowhere=0, beijing=0))
    b = await start(start_daemon, monkeypatch, accounts=[account(concurrency=WIDTH)])
    first, _ = await _half_way(b)
    cancel = await b.follow(first["id"], "cancel", "city", reason="误报")
    acked = time.time()
    await b.settled(cancel["id"])
    await b.settled(first["id"])
    _after(b, "cancel", acked)
    assert b.got("cancel") == dict.fromkeys(b.got("alert"), 1)
    assert len(b.got("alert")) < 200


async def test_an_update_half_way_replaces_the_rest_and_corrects_who_got_it_at_once(
    start_daemon: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Half way through 200: each of the 200 gets the update exactly once — a correction for
    those the alert reached (at once), the first message for the rest, who never get the
    alert's stale facts."""
    await load(_db(tmp_path), people(chengdu=200, nowhere=0, beijing=0))
    b = await start(start_daemon, monkeypatch, accounts=[account(concurrency=WIDTH)])
    first, _ = await _half_way(b)
    upd = await b.follow(first["id"], "update", "city", headline="更正：成都发生5.1级地震")
    acked = time.time()
    await b.settled(upd["id"])
    await b.settled(first["id"])
    _after(b, "update", acked)
    assert b.got("update") == dict.fromkeys((f"cd-{i:04d}" for i in range(200)), 1)
    assert len(b.got("alert")) < 200


async def test_a_cancellation_of_a_parent_handed_back_reaches_who_got_the_alert(
    start_daemon: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """One recipient answers 503 Retry-After 60: the parent is handed back retrying with 19
    delivered. The cancellation reaches those 19 once; the 20th gets neither."""
    await load(_db(tmp_path), people(chengdu=20, nowhere=0, beijing=0))
    b = await start(start_daemon, monkeypatch, accounts=[account(backoff_max_s=120)])

    def answer(item: Received) -> tuple[int, dict[str, str]] | None:
        late = item.body["recipient"]["id"] == "cd-0007" and item.body["msg_type"] == "alert"
        return (503, {"Retry-After": "60"}) if late else None

    b.sink.answer = answer
    first = await b.raise_(quake())
    deadline = time.monotonic() + 30
    while (parent := await b.parent(first["id"]))["state"] != "retrying":
        assert time.monotonic() < deadline, parent
        await asyncio.sleep(0.05)
    assert parent["recipients"] == {"delivered": 19, "retrying": 1}, parent
    cancel = await b.follow(first["id"], "cancel", "city", reason="误报")
    await b.settled(cancel["id"])
    await asyncio.sleep(SETTLE_S)
    reached = {f"cd-{i:04d}" for i in range(20)} - {"cd-0007"}
    assert b.got("cancel") == dict.fromkeys(reached, 1)
    assert b.got("alert")["cd-0007"] == 1  # its one refused try; never retried after the cancel


async def test_a_correction_does_not_wait_behind_another_incidents_fan_out(
    start_daemon: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """An account taking one request at a time (concurrency 1) is sending a second alert to
    200 recipients when the first alert, long delivered, is cancelled: the cancellation's
    first POST arrives within a second, not after the other fan-out."""
    await load(_db(tmp_path), people(chengdu=200, nowhere=0, beijing=0))
    b = await start(start_daemon, monkeypatch, accounts=[account(concurrency=1)])
    first = await b.raise_(quake())
    await b.settled(first["id"])
    b.sink.latency_s = SLOW_S / 2  # the other fan-out: 200 x 25 ms, 5 s
    other = await b.raise_(quake(headline="四川成都发生4.2级余震"))
    await b.until_received(200 + HALF)
    cancel = await b.follow(first["id"], "cancel", "city", reason="误报")
    acked = time.time()
    await b.settled(cancel["id"])
    started = min(r.at for r in b.posts("cancel"))
    assert started - acked < 1.0, f"the cancellation started {started - acked:.2f} s after its 202"
    await b.settled(other["id"])


# -- (c) held by a paused account ---------------------------------------------------------------
async def _paused(b: Bulk) -> dict[str, Any]:
    status, _ = await b.call("city", "/v1/channels/people/pause", {"reason": "接收方维护"})
    assert status == 200
    first = await b.raise_(quake())
    await asyncio.sleep(SETTLE_S)
    assert b.sink.received == []
    return first


async def test_a_cancellation_while_the_account_is_paused_reaches_nobody_ever(
    start_daemon: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The alert waits on a paused account; cancelled meanwhile, it is withdrawn: after the
    resume no recipient gets the alert or the cancellation."""
    await load(_db(tmp_path), people())
    b = await start(start_daemon, monkeypatch)
    first = await _paused(b)
    cancel = await b.follow(first["id"], "cancel", "city", reason="误报")
    assert cancel["withdrawn"] == [(await b.parent(first["id"]))["id"]], cancel
    status, _ = await b.call("city", "/v1/channels/people/resume")
    assert status == 200
    await asyncio.sleep(SETTLE_S)
    assert b.sink.received == []
    assert (await b.settled(cancel["id"]))["settled"]


async def test_an_update_while_the_account_is_paused_goes_out_once_instead(
    start_daemon: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The alert waits on a paused account; an update supersedes it: after the resume each
    recipient in the area gets the update once and never the alert."""
    await load(_db(tmp_path), people())
    b = await start(start_daemon, monkeypatch)
    first = await _paused(b)
    upd = await b.follow(first["id"], "update", "city", headline="更正：成都发生5.1级地震")
    status, _ = await b.call("city", "/v1/channels/people/resume")
    assert status == 200
    await b.settled(upd["id"])
    await asyncio.sleep(SETTLE_S)
    assert b.got("update") == dict.fromkeys(in_chengdu(), 1) and b.got("alert") == {}


# -- (d) in another replica's hands -------------------------------------------------------------
@pytest.mark.postgres
async def test_a_cancellation_on_one_replica_stops_the_fan_out_on_the_other(
    start_daemon: Any, monkeypatch: pytest.MonkeyPatch, pg_url: str
) -> None:
    """Replica A sends the alert to 200; the cancellation is posted to replica B half way:
    A starts no more alerts, and the cancellation reaches everyone the alert did, at once."""
    await load(pg_url, people(chengdu=200, nowhere=0, beijing=0))
    kw: dict[str, Any] = {"accounts": [account(concurrency=WIDTH)], "store": {"url": pg_url}}
    a = await start(start_daemon, monkeypatch, **kw)
    b = await start(start_daemon, monkeypatch, **kw)
    first, _ = await _half_way(a)
    cancel = await b.follow(first["id"], "cancel", "city", reason="误报")
    acked = time.time()
    await b.settled(cancel["id"])
    await a.settled(first["id"])
    _after(a, "cancel", acked)
    assert a.got("cancel") == dict.fromkeys(a.got("alert"), 1)
    assert len(a.got("alert")) < 200
