"""A per-recipient account that is paused (``alertcast pause`` as a subprocess, or the API) or
whose rate window is spent, through a running daemon: nothing is sent while it is held, the
resume sends the rest with each recipient once, and the status API and the stream say why the
delivery waits."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from alertcast.bulk import sweep
from tests.conftest import ROOT
from tests.spine.bulk_people import TOKENS, Bulk, account, in_chengdu, load, people, quake, start

SETTLE_S = 1.2
WIDTH = 4
SLOW_S = 0.05


def _db(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'alertcast.db'}"


async def _cli(b: Bulk, *args: str) -> tuple[int, str]:
    """``alertcast ARGS`` as a subprocess against the running daemon (it must not block the
    daemon's loop, which serves the CLI's requests)."""
    url = str(b.d.client.make_url("")).rstrip("/")
    env = {**os.environ, "ALERTCAST_URL": url, "ALERTCAST_TOKEN": TOKENS["city"]}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "alertcast.cli",
        *args,
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 90)
    assert b"Traceback" not in err, err.decode()
    assert proc.returncode is not None
    return proc.returncode, out.decode() + err.decode()


async def _channel(b: Bulk) -> dict[str, Any]:
    status, channels = await b.get("/v1/channels")
    assert status == 200
    (row,) = [a for a in channels["accounts"] if a["id"] == "people"]
    return dict(row)


@pytest.mark.slow
async def test_a_paused_account_sends_nothing_until_resumed_then_each_recipient_once(
    start_daemon: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """``alertcast pause people``: the alert reaches no recipient and the account shows paused
    with the reason; ``alertcast resume people``: each of the 70 once."""
    await load(_db(tmp_path), people())
    b = await start(start_daemon, monkeypatch)
    code, out = await _cli(b, "pause", "people", "--reason", "接收方升级维护")
    assert code == 0 and "接收方升级维护" in out, out
    first = await b.raise_(quake())
    await asyncio.sleep(SETTLE_S)
    assert b.sink.received == []
    row = await _channel(b)
    assert row["healthy"] is False and "接收方升级维护" in row["paused"], row
    parent = await b.parent(first["id"])
    assert parent["state"] == "pending" and parent["attempts"] == 0, parent
    code, out = await _cli(b, "resume", "people")
    assert code == 0 and "resumed people" in out, out
    view = await b.settled(first["id"])
    assert view["deliveries"][0]["recipients"] == {"delivered": 70}
    await asyncio.sleep(SETTLE_S)
    assert b.got() == dict.fromkeys(in_chengdu(), 1)


async def _pause_half_way(b: Bulk) -> tuple[dict[str, Any], float]:
    b.sink.latency_s = SLOW_S
    first = await b.raise_(quake())
    await b.until_received(40)
    status, _ = await b.call("city", "/v1/channels/people/pause", {"reason": "接收方过载"})
    assert status == 200
    return first, time.time()


async def test_a_pause_half_way_stops_the_fan_out_and_the_resume_sends_the_rest_once(
    start_daemon: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Paused after 40 of 200: at most the sends on the wire arrive after it, the parent waits
    saying why; resumed, the rest go, each of the 200 exactly once."""
    await load(_db(tmp_path), people(chengdu=200, nowhere=0, beijing=0))
    b = await start(start_daemon, monkeypatch, accounts=[account(concurrency=WIDTH)])
    first, paused = await _pause_half_way(b)
    await asyncio.sleep(SETTLE_S)
    late = [r for r in b.posts("alert") if r.at > paused]
    assert len(late) <= 2 * WIDTH, f"{len(late)} recipients were sent after the pause"
    parent = await b.parent(first["id"])
    assert parent["state"] in ("pending", "retrying"), parent
    assert "接收方过载" in str(parent["reason"]), parent
    assert parent["recipients"]["pending"] > 100, parent
    status, _ = await b.call("city", "/v1/channels/people/resume")
    assert status == 200
    await b.settled(first["id"])
    assert b.got() == dict.fromkeys((f"cd-{i:04d}" for i in range(200)), 1)


async def test_the_stream_says_why_a_paused_fan_out_waits(
    start_daemon: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Paused half way: the stream carries the parent's state with the pause's reason (a
    delivery event, or the recipients summary), not a delivery that goes on by itself."""
    await load(_db(tmp_path), people(chengdu=200, nowhere=0, beijing=0))
    b = await start(start_daemon, monkeypatch, accounts=[account(concurrency=WIDTH)])
    resp = await b.d.client.get("/v1/stream", headers={"Authorization": f"Bearer {TOKENS['city']}"})
    await resp.content.readuntil(b": connected\n\n")
    first, _ = await _pause_half_way(b)
    said = await _until_event(resp, lambda e: "接收方过载" in json.dumps(e, ensure_ascii=False))
    resp.close()
    assert said.get("id") == (await b.parent(first["id"]))["id"], said


async def test_a_pause_half_way_is_no_attempt_and_the_reason_names_it(
    start_daemon: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Paused after 40 of 200: the parent's reason names the pause; resumed, it is delivered
    on its first attempt (the pause was not one) and the account counts no failure."""
    await load(_db(tmp_path), people(chengdu=200, nowhere=0, beijing=0))
    b = await start(start_daemon, monkeypatch, accounts=[account(concurrency=WIDTH)])
    first, _ = await _pause_half_way(b)
    await asyncio.sleep(SETTLE_S)
    parent = await b.parent(first["id"])
    assert "接收方过载" in str(parent["reason"]), parent
    status, _ = await b.call("city", "/v1/channels/people/resume")
    assert status == 200
    (parent,) = (await b.settled(first["id"]))["deliveries"]
    assert parent["state"] == "delivered" and parent["attempts"] == 1, parent
    assert (await _channel(b))["healthy"] is True


async def _until_event(resp: aiohttp.ClientResponse, check: Any, timeout_s: float = 5) -> Any:
    deadline = time.monotonic() + timeout_s
    while (left := deadline - time.monotonic()) > 0:
        try:
            line = (await asyncio.wait_for(resp.content.readline(), left)).decode()
        except TimeoutError:
            break
        if line.startswith("data: ") and check(event := json.loads(line[6:])):
            return event
    raise AssertionError("no stream event says why the delivery waits")


async def test_a_spent_rate_window_holds_the_rest_of_the_recipients(
    start_daemon: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """per_minute = 20 and 60 recipients: within the first seconds at most 20 POSTs arrive
    (a window's reserve kept for corrections), the parent still waiting for the window."""
    await load(_db(tmp_path), people(chengdu=60, nowhere=0, beijing=0))
    b = await start(start_daemon, monkeypatch, accounts=[account(per_minute=20)])
    first = await b.raise_(quake())
    await asyncio.sleep(3 * SETTLE_S)
    assert 0 < len(b.sink.received) <= 20, len(b.sink.received)
    parent = await b.parent(first["id"])
    assert parent["state"] != "delivered", parent


async def test_a_retry_of_a_partly_refused_delivery_resends_only_the_refused_recipients(
    start_daemon: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Two of twenty refused (400), the parent failed; the receiver is fixed and an operator
    re-drives the parent: the two get the alert once, the eighteen are not sent it again."""
    await load(_db(tmp_path), people(chengdu=20, nowhere=0, beijing=0))
    b = await start(start_daemon, monkeypatch)
    refused = {"cd-0003", "cd-0004"}
    b.sink.answer = lambda item: (400, {}) if item.body["recipient"]["id"] in refused else None
    first = await b.raise_(quake())
    parent = (await b.settled(first["id"]))["deliveries"][0]
    assert parent["state"] == "failed", parent
    b.sink.answer = None
    status, again = await b.call("only-operate", f"/v1/deliveries/{parent['id']}/retry")
    assert status == 202, again
    view = await b.settled(first["id"])
    assert view["deliveries"][0]["recipients"] == {"delivered": 20}, view["deliveries"]
    everyone = in_chengdu(20, 0)
    assert b.got() == {rid: 2 if rid in refused else 1 for rid in everyone}


async def test_a_send_waiting_for_its_rate_window_is_not_sent_once_the_account_is_paused(
    start_daemon: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """per_second = 2 and four senders: three of them wait for the window at any time, each
    looking whether to stop only every ``WINDOW_LOOK_S`` (half a second in service; a minute
    here, so that the window's next slot comes first). Paused (the API answered), none of them
    goes when its slot comes: nothing arrives after the request that was on the wire. (A send
    whose slot came after the pause went: the pause was looked at only every ``WINDOW_LOOK_S``
    of waiting, not once the slot was had.)"""
    monkeypatch.setattr(sweep, "WINDOW_LOOK_S", 60.0)
    await load(_db(tmp_path), people(chengdu=40, nowhere=0, beijing=0))
    b = await start(start_daemon, monkeypatch, accounts=[account(per_second=2, concurrency=4)])
    await b.raise_(quake())
    await b.until_received(3)
    status, _ = await b.call("city", "/v1/channels/people/pause", {"reason": "接收方过载"})
    assert status == 200
    paused = time.time()
    await asyncio.sleep(2.5)  # five slots of the window
    # A send on the wire at the pause arrives within milliseconds; the window's next slot,
    # a second after the last send: what arrives later than 0.3 s after the pause was sent
    # after it.
    late = [r.body["recipient"]["id"] for r in b.posts("alert") if r.at > paused + 0.3]
    assert late == [], f"sent after the pause: {late}"
