"""The two-person rule on a per-recipient account, tried as a hostile insider would, through a
running daemon: a held incident reaches no recipient until a second person approves it (then
each recipient in its area exactly once); a rejected one reaches nobody, ever, also after a
restart; follow-ups of a held or an approved chain cannot carry anything past the rule."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from tests.spine.bulk_people import Bulk, in_chengdu, load, people, quake, start
from tests.spine.test_bulk import engine

__all__ = ["engine"]  # the store fixture: SQLite, and PostgreSQL when reachable

SETTLE_S = 1.2  # several claim loops (poll_interval_s 0.2): time to send what would be sent
EXTREME = {"severity": "extreme"}  # [approval] severities: extreme by default
HEADLINE = "更正：四川成都发生6.1级地震"


async def _held(b: Bulk) -> dict[str, Any]:
    """An extreme quake raised by the city: held, its parent pending 'awaiting approval'."""
    first = await b.raise_(quake(**EXTREME))
    assert first["state"] == "awaiting_approval", first
    return first


async def _nothing_sent(b: Bulk, incident_id: str) -> None:
    await asyncio.sleep(SETTLE_S)
    assert b.sink.received == []
    parent = await b.parent(incident_id)
    assert parent["state"] in ("pending", "skipped") and parent["attempts"] == 0, parent
    status, page = await b.get(f"/v1/deliveries/{parent['id']}/recipients")
    assert status == 200 and page["summary"] == {} and page["recipients"] == [], page


async def test_a_held_incident_reaches_no_recipient_until_approved_then_each_once(
    start_daemon: Any, monkeypatch: pytest.MonkeyPatch, engine: str
) -> None:
    """Held: no POST, no send expanded, the author's own approval refused (403); a second
    approver releases it: each of the 70 in the area exactly once, Beijing's none."""
    await load(engine, people())
    b = await start(start_daemon, monkeypatch, store={"url": engine})
    first = await _held(b)
    assert (await b.parent(first["id"]))["reason"] == "awaiting approval"
    status, refused = await b.call("city", f"/v1/incidents/{first['id']}/approve")
    assert status == 403 and "two-person rule" in refused["detail"], refused
    await _nothing_sent(b, first["id"])
    await b.follow(first["id"], "approve", "duty")
    view = await b.settled(first["id"])
    (parent,) = view["deliveries"]
    assert parent["state"] == "delivered" and parent["recipients"] == {"delivered": 70}, parent
    assert b.got() == dict.fromkeys(in_chengdu(), 1)


async def test_a_rejected_incident_reaches_nobody_ever_also_after_a_restart(
    start_daemon: Any, monkeypatch: pytest.MonkeyPatch, engine: str
) -> None:
    """A second person rejects the held incident: nothing goes out, the parent is withdrawn;
    a restarted daemon on the same store sends nothing either, and a retry is refused."""
    await load(engine, people())
    b = await start(start_daemon, monkeypatch, store={"url": engine})
    first = await _held(b)
    rejected = await b.follow(first["id"], "reject", "duty", reason="误报，未经核实")
    assert rejected["state"] == "cancelled", rejected
    await _nothing_sent(b, first["id"])
    parent = await b.parent(first["id"])
    assert parent["state"] == "skipped" and "rejected" in parent["reason"], parent
    await b.d.client.close()
    again = await start(start_daemon, monkeypatch, store={"url": engine})
    await _nothing_sent(again, first["id"])
    status, refused = await again.call("city", f"/v1/deliveries/{parent['id']}/retry")
    assert status == 409, refused
    await _nothing_sent(again, first["id"])


async def test_an_update_of_a_held_incident_goes_out_once_instead_of_it(
    start_daemon: Any, monkeypatch: pytest.MonkeyPatch, engine: str
) -> None:
    """Case (c) of an update: while the incident is held its update is held too; the one
    approval sends each recipient exactly one message, the update's facts, never the
    original's."""
    await load(engine, people())
    b = await start(start_daemon, monkeypatch, store={"url": engine})
    first = await _held(b)
    upd = await b.follow(first["id"], "update", "clerk", headline=HEADLINE)
    assert upd["state"] == "awaiting_approval", upd
    await _nothing_sent(b, first["id"])
    assert b.sink.received == []
    await b.follow(first["id"], "approve", "duty")
    await b.settled(upd["id"])
    await b.settled(first["id"])
    await asyncio.sleep(SETTLE_S)
    assert b.got() == dict.fromkeys(in_chengdu(), 1)
    assert {r.body["msg_type"] for r in b.sink.received} == {"update"}
    assert {r.body["incident"]["headline"] for r in b.sink.received} == {HEADLINE}


async def test_a_cancellation_of_a_held_incident_reaches_nobody(
    start_daemon: Any, monkeypatch: pytest.MonkeyPatch, engine: str
) -> None:
    """Case (c) of a cancellation: the held incident is withdrawn whole at once; no recipient
    gets the alert or the cancellation, and approving it afterwards is refused."""
    await load(engine, people())
    b = await start(start_daemon, monkeypatch, store={"url": engine})
    first = await _held(b)
    cancel = await b.follow(first["id"], "cancel", "clerk", reason="误报")
    assert cancel["deliveries"] == [], cancel
    await _nothing_sent(b, first["id"])
    status, _ = await b.call("duty", f"/v1/incidents/{first['id']}/approve")
    assert status == 409
    await _nothing_sent(b, first["id"])


async def test_a_clerks_update_of_an_approved_chain_waits_for_a_second_person(
    start_daemon: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """After approval and delivery, a non-approver's rewrite is held: no recipient gets it
    until another approver releases it (then each who got the original once); the original's
    author cannot release it."""
    await load(f"sqlite:///{tmp_path / 'alertcast.db'}", people())
    b = await start(start_daemon, monkeypatch)
    first = await _held(b)
    await b.follow(first["id"], "approve", "duty")
    await b.settled(first["id"])
    got = b.got("alert")
    upd = await b.follow(first["id"], "update", "clerk", instruction="无需撤离")
    assert upd["state"] == "awaiting_approval", upd
    await asyncio.sleep(SETTLE_S)
    assert b.got("update") == {}
    status, refused = await b.call("city", f"/v1/incidents/{upd['id']}/approve")
    assert status == 403 and "two-person rule" in refused["detail"], refused
    await asyncio.sleep(SETTLE_S)
    assert b.got("update") == {}
    await b.follow(upd["id"], "approve", "duty")
    await b.settled(upd["id"])
    assert b.got("update") == got == dict.fromkeys(in_chengdu(), 1)


async def test_a_clerks_cancellation_of_an_approved_chain_waits_then_reaches_who_got_it(
    start_daemon: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A non-approver's cancellation of an approved chain is held (no deliveries, nothing
    sent); a second person's rejection leaves the alert standing and sends nothing; a later
    approver's cancellation reaches each recipient who got the alert once."""
    await load(f"sqlite:///{tmp_path / 'alertcast.db'}", people())
    b = await start(start_daemon, monkeypatch)
    first = await _held(b)
    await b.follow(first["id"], "approve", "duty")
    await b.settled(first["id"])
    held = await b.follow(first["id"], "cancel", "clerk", reason="想撤回")
    assert held["state"] == "awaiting_approval" and held["deliveries"] == [], held
    await b.follow(held["id"], "reject", "duty", reason="警报属实，不撤回")
    await asyncio.sleep(SETTLE_S)
    assert b.got("cancel") == {}
    cancel = await b.follow(first["id"], "cancel", "city", reason="余震风险解除")
    await b.settled(cancel["id"])
    assert b.got("cancel") == b.got("alert") == dict.fromkeys(in_chengdu(), 1)
