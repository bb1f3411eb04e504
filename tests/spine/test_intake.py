"""POST /v1/incidents: acceptance, every refusal, idempotency, exercise routing."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.conftest import OTHER_TOKEN, TOKEN, incident


async def test_accepts_stores_and_delivers(start_daemon: Any) -> None:
    """A valid earthquake is stored with one delivery per account and answered 202."""
    d = await start_daemon(hooks=3)
    resp = await d.post(incident())
    answer = await resp.json()
    assert resp.status == 202, answer
    assert answer["state"] == "active"
    assert answer["status_url"] == f"/v1/incidents/{answer['id']}"
    assert sorted(x["account"] for x in answer["deliveries"]) == ["hook-0", "hook-1", "hook-2"]
    view = await d.settled(answer["id"])
    assert view["counts"] == {"delivered": 3}
    for delivery in view["deliveries"]:
        assert delivery["remote_id"].startswith("sink-")
        assert delivery["delivered_at"] and delivery["attempts"] == 1
        assert delivery["payload"]["format"] == "webhook"
    assert {r.key for r in d.sink.received} == {x["id"] for x in answer["deliveries"]}
    assert all(r.signed for r in d.sink.received)


def _bad_requests() -> list[tuple[str, dict[str, Any], int, str]]:
    eq = incident()
    return [
        ("no token", {"body": eq, "token": None}, 401, "bearer"),
        ("wrong token", {"body": eq, "token": "nope-nope-nope"}, 401, "token"),
        ("kind out of scope", {"body": eq, "token": OTHER_TOKEN}, 403, "earthquake"),
        (
            "region out of scope",
            {
                "body": incident(
                    kind="fire",
                    details={"address": "x"},
                    area={"name": "重庆", "codes": ["500101"]},
                ),
                "token": OTHER_TOKEN,
            },
            403,
            "500101",
        ),
        ("malformed json", {"body": b"{not json"}, 400, "malformed JSON"),
        ("unknown kind", {"body": incident(kind="tsunami")}, 422, "kind"),
        (
            "latitude out of range",
            {"body": incident(details={**eq["details"], "latitude": 95})},
            422,
            "details.latitude",
        ),
        (
            "magnitude over 10",
            {"body": incident(details={**eq["details"], "magnitude": 10.5})},
            422,
            "details.magnitude",
        ),
        (
            "negative depth",
            {"body": incident(details={**eq["details"], "depth_km": -1})},
            422,
            "details.depth_km",
        ),
        ("naive time", {"body": incident(occurred_at="2022-09-05T12:52:18")}, 422, "occurred_at"),
        (
            "expiry before onset",
            {"body": incident(expires_at="2022-09-05T12:00:00+08:00")},
            422,
            "expires_at",
        ),
        ("unknown field", {"body": incident(colour="red")}, 422, "colour"),
        ("empty headline", {"body": incident(headline="   ")}, 422, "headline"),
        ("oversize body", {"body": incident(description="x" * 300_000)}, 413, ""),
        ("wrong content type", {"body": eq, "Content-Type": "text/plain"}, 415, "Content-Type"),
    ]


@pytest.mark.parametrize(
    ("case", "request_", "status", "mentions"), _bad_requests(), ids=[c[0] for c in _bad_requests()]
)
async def test_bad_input_is_refused_and_changes_nothing(
    start_daemon: Any, case: str, request_: dict[str, Any], status: int, mentions: str
) -> None:
    """Every refusal is a problem+json naming the fault, and no table gains a row."""
    d = await start_daemon()
    before = d.table_counts()
    body = request_.pop("body")
    token = request_.pop("token", TOKEN)
    resp = await d.post(body, token=token, **request_)
    assert resp.status == status, await resp.text()
    assert resp.content_type == "application/problem+json"
    problem = await resp.json()
    assert problem["status"] == status
    assert mentions in problem["detail"] or mentions in json.dumps(problem["errors"] or "")
    assert d.table_counts() == before


async def test_validation_names_every_field(start_daemon: Any) -> None:
    """Several faults at once are all listed with their paths."""
    d = await start_daemon()
    eq = incident()
    resp = await d.post(incident(details={**eq["details"], "latitude": 91, "longitude": 181}))
    fields = {e["field"] for e in (await resp.json())["errors"]}
    assert {"details.latitude", "details.longitude"} <= fields


async def test_idempotent_replay_returns_first_answer(start_daemon: Any) -> None:
    """The same key and body answer the first answer again and create nothing."""
    d = await start_daemon()
    first = await (await d.post(incident(), **{"Idempotency-Key": "k-1"})).json()
    await d.settled(first["id"])  # attempts recorded: the snapshot is at rest
    counts = d.table_counts()
    again = await d.post(incident(), **{"Idempotency-Key": "k-1"})
    assert again.status == 202
    assert await again.json() == first
    assert d.table_counts() == counts


async def test_idempotency_key_with_other_body_conflicts(start_daemon: Any) -> None:
    """The same key with a different body is 409 and creates nothing."""
    d = await start_daemon()
    first = await (await d.post(incident(), **{"Idempotency-Key": "k-2"})).json()
    await d.settled(first["id"])
    counts = d.table_counts()
    resp = await d.post(incident(headline="另一条"), **{"Idempotency-Key": "k-2"})
    assert resp.status == 409
    assert "k-2" in (await resp.json())["detail"]
    assert d.table_counts() == counts


async def test_concurrent_replays_create_one_incident(start_daemon: Any) -> None:
    """Ten simultaneous posts with one key store exactly one incident."""
    import asyncio

    d = await start_daemon()
    resps = await asyncio.gather(
        *(d.post(incident(), **{"Idempotency-Key": "k-3"}) for _ in range(10))
    )
    ids = {(await r.json())["id"] for r in resps}
    assert len(ids) == 1
    assert d.table_counts()["incidents"] == 1


@pytest.mark.parametrize("status", ["exercise", "test"])
async def test_drills_reach_only_exercise_accounts(start_daemon: Any, status: str) -> None:
    """A drill goes to the exercise account and to no public one."""
    drill = {"id": "drill", "channel": "file", "path": "/dev/null", "exercise": True}
    d = await start_daemon(hooks=2, accounts=[drill])
    answer = await (await d.post(incident(status=status))).json()
    assert [x["account"] for x in answer["deliveries"]] == ["drill"]
    actual = await (await d.post(incident())).json()
    assert "drill" not in [x["account"] for x in actual["deliveries"]]


async def test_listing_and_filters(start_daemon: Any) -> None:
    """GET /v1/incidents lists newest first; /v1/deliveries filters by state."""
    d = await start_daemon()
    a = await (await d.post(incident())).json()
    b = await (await d.post(incident(headline="第二条"))).json()
    await d.settled(b["id"])
    status, listing = await d.get("/v1/incidents")
    assert [i["id"] for i in listing["incidents"]][:2] == [b["id"], a["id"]]
    status, deliveries = await d.get("/v1/deliveries?state=delivered")
    assert status == 200 and len(deliveries["deliveries"]) >= 1
    status, bad = await d.get("/v1/deliveries?state=lost")
    assert status == 400 and "state" in bad["detail"]
    status, _missing = await d.get("/v1/incidents/inc_nope")
    assert status == 404
