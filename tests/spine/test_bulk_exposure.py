"""Who a per-recipient account exposes its recipients to, through a running daemon: an
exercise never reaches a per-recipient account without ``exercise = true``; only the read role
within its scope pages a delivery's recipients; no HTTP route imports or lists an account's
recipients; the recipients' own columns (phone numbers) and the account's secrets appear in no
answer of the API or the stream."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from alertcast.access import ROUTE_ROLES
from alertcast.testing.sink import BODY, Received
from tests.conftest import HOOK_SECRET
from tests.spine.bulk_people import (
    Bulk,
    account,
    auth,
    in_chengdu,
    load,
    people,
    quake,
    start,
)

SETTLE_S = 1.2
MARK = {"exercise": "【演习】", "test": "【测试】"}  # a drill's text says so first
BEARER = "bearer-token-of-the-receiver-4c1e9a"
PHONES = [f"1390000{i:04d}" for i in (3, 5, 7)]  # cd-0003, cd-0005, cd-0007's phone numbers


def _db(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'alertcast.db'}"


# -- exercises ----------------------------------------------------------------------------------
@pytest.mark.parametrize("status", ["exercise", "test"])
async def test_a_drill_never_reaches_a_per_recipient_account_without_exercise(
    start_daemon: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, status: str
) -> None:
    """Two per-recipient accounts on one sink, ``people`` (public, added to every quake by a
    route) and ``drill`` (exercise = true): a drill and its cancellation reach only the
    drill's recipients, each text marked as a drill; the public account gets no delivery."""
    await load(_db(tmp_path), people())
    await load(_db(tmp_path), people(), account="drill")
    drill = account(id="drill", exercise=True)
    route = {"name": "every-quake", "kinds": ["earthquake"], "add": ["people"]}
    b = await start(start_daemon, monkeypatch, accounts=[account(), drill], routes=[route])
    first = await b.raise_(quake(status=status))
    view = await b.settled(first["id"])
    assert [d["account"] for d in view["deliveries"]] == ["drill"], view["deliveries"]
    cancel = await b.follow(first["id"], "cancel", "city", reason="演练结束")
    view = await b.settled(cancel["id"])
    assert {d["account"] for d in view["deliveries"]} <= {"drill"}, view["deliveries"]
    await asyncio.sleep(SETTLE_S)
    drills = {d["id"] for d in first["deliveries"]} | {d["id"] for d in view["deliveries"]}
    assert {r.body["delivery_id"] for r in b.sink.received} == drills
    assert b.got("alert") == b.got("cancel") == dict.fromkeys(in_chengdu(), 1)
    for r in b.sink.received:
        assert r.body["incident"]["status"] == status
        assert r.body["text"].startswith(MARK[status]), r.body["text"]


# -- roles --------------------------------------------------------------------------------------
async def _sent(b: Bulk) -> tuple[dict[str, Any], dict[str, Any]]:
    first = await b.raise_(quake())
    view = await b.settled(first["id"])
    return first, view["deliveries"][0]


@pytest.mark.parametrize(
    ("who", "status"),
    [
        ("city", 200),
        ("reader", 200),
        ("duty", 200),  # approve and read
        ("only-submit", 403),
        ("only-approve", 403),
        ("only-operate", 403),
        ("fire", 404),  # fire only, Chengdu only: an earthquake's delivery is not in scope
    ],
)
async def test_only_the_read_role_in_scope_pages_a_deliverys_recipients(
    start_daemon: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, who: str, status: int
) -> None:
    """GET /v1/deliveries/{id}/recipients: the read role within its kinds and regions; any
    other role 403, out of scope 404; no token or a wrong one 401."""
    await load(_db(tmp_path), people(chengdu=10, nowhere=0, beijing=0))
    b = await start(start_daemon, monkeypatch)
    _, parent = await _sent(b)
    path = f"/v1/deliveries/{parent['id']}/recipients"
    got, page = await b.get(path, who)
    assert got == status, page
    if status == 200:
        assert [r["id"] for r in page["recipients"]] == [f"cd-{i:04d}" for i in range(10)]
    for headers in ({}, {"Authorization": "Bearer not-a-token"}):
        resp = await b.d.client.get(path, headers=headers)
        assert resp.status == 401


async def test_no_http_route_imports_or_lists_an_accounts_recipients(
    start_daemon: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The only route that names recipients is the read-role page of one delivery's sends;
    writing to it, or guessing an import route, is refused and changes nothing."""
    await load(_db(tmp_path), people(chengdu=10, nowhere=0, beijing=0))
    b = await start(start_daemon, monkeypatch)
    app: web.Application = b.d.client.app
    named = {
        (r.method, r.resource.canonical)
        for r in app.router.routes()
        if r.resource is not None and "recipient" in r.resource.canonical
    }
    assert named <= {
        ("GET", "/v1/deliveries/{id}/recipients"),
        ("HEAD", "/v1/deliveries/{id}/recipients"),
    }
    assert ROUTE_ROLES[("GET", "/v1/deliveries/{id}/recipients")] == "read"
    _, parent = await _sent(b)
    csv = "id,region,phone\nevil-1,510104,13700000000\n"
    for method, path in (
        ("POST", f"/v1/deliveries/{parent['id']}/recipients"),
        ("PUT", f"/v1/deliveries/{parent['id']}/recipients"),
        ("POST", "/v1/accounts/people/recipients"),
        ("POST", "/v1/channels/people/recipients"),
        ("GET", "/v1/channels/people/recipients"),
        ("POST", "/v1/recipients/people"),
    ):
        resp = await b.d.client.request(method, path, data=csv, headers=auth("city"))
        assert resp.status in (403, 404, 405), (method, path, resp.status)
    status, page = await b.get(f"/v1/deliveries/{parent['id']}/recipients?limit=1000")
    assert status == 200 and "evil-1" not in {r["id"] for r in page["recipients"]}
    openapi = await (await b.d.client.get("/openapi.json")).json()
    assert [p for p in openapi["paths"] if "recipient" in p] == ["/v1/deliveries/{id}/recipients"]


# -- what the answers show ----------------------------------------------------------------------
def _refuse_some(item: Received) -> tuple[int, dict[str, str]] | None:
    """cd-0003 refused with a body echoing the receiver's bearer token; cd-0005 and cd-0007
    with bodies echoing their phone numbers."""
    recipient = item.body["recipient"]
    if recipient["id"] == "cd-0003":
        return 400, {BODY: f"bad Authorization: Bearer {BEARER}"}
    if recipient["id"] in ("cd-0005", "cd-0007"):
        return 400, {BODY: json.dumps({"error": f"invalid number {recipient['phone']}"})}
    return None


async def _everything_shown(b: Bulk, incident_id: str, parent_id: str) -> str:
    """Every answer a reader can get about the incident and its recipients, as one text."""
    paths = [
        f"/v1/incidents/{incident_id}",
        "/v1/incidents",
        f"/v1/deliveries/{parent_id}",
        f"/v1/deliveries/{parent_id}/recipients?limit=1000",
        f"/v1/deliveries/{parent_id}/recipients?state=failed",
        "/v1/deliveries?account=people",
        "/v1/deliveries?state=failed",
        "/v1/channels",
    ]
    shown = []
    for path in paths:
        for who in ("city", "reader"):
            resp = await b.d.client.get(path, headers=auth(who))
            assert resp.status == 200, (path, who)
            shown.append(await resp.text())
    for path in (f"/v1/incidents/{incident_id}.cap", "/metrics", "/healthz", f"/p/{incident_id}"):
        resp = await b.d.client.get(path, headers=auth("reader"))
        shown.append(await resp.text())
    return "\n".join(shown)


async def _refused_fan_out(
    start_daemon: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> tuple[Bulk, str, str]:
    monkeypatch.setenv("T_HOOK_BEARER", BEARER)
    await load(_db(tmp_path), people(chengdu=10, nowhere=0, beijing=0))
    b = await start(
        start_daemon, monkeypatch, accounts=[account(auth="bearer", auth_env="T_HOOK_BEARER")]
    )
    b.sink.answer = _refuse_some
    resp = await b.d.client.get("/v1/stream", headers=auth("reader"))
    await resp.content.readuntil(b": connected\n\n")
    first, parent = await _sent(b)
    assert parent["recipients"] == {"delivered": 7, "failed": 3}, parent
    stream = await _read_for(resp, 0.5)
    resp.close()
    shown = await _everything_shown(b, first["id"], parent["id"])
    return b, stream + shown, parent["id"]


async def _read_for(resp: Any, seconds: float) -> str:
    out: list[bytes] = []
    try:
        async with asyncio.timeout(seconds):
            while True:
                out.append(await resp.content.readline())
    except TimeoutError:
        pass
    return b"".join(out).decode()


async def test_no_secret_appears_in_any_answer_about_a_per_recipient_delivery(
    start_daemon: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A receiver's refusal echoes the account's bearer token: neither the token nor the
    signing secret appears in any API answer or stream event; the refusal is shown,
    scrubbed."""
    b, shown, parent_id = await _refused_fan_out(start_daemon, monkeypatch, tmp_path)
    assert BEARER not in shown and HOOK_SECRET not in shown
    status, page = await b.get(f"/v1/deliveries/{parent_id}/recipients?state=failed")
    assert status == 200
    (token_refusal,) = [r for r in page["recipients"] if r["id"] == "cd-0003"]
    assert token_refusal["http_status"] == 400 and "Authorization" in token_refusal["last_error"]


async def test_the_recipients_columns_are_not_shown_where_alertcast_writes_them(
    start_daemon: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The recipients' phone numbers, which every POST carries to the receiver, appear in no
    answer alertcast composes: views, pages, summaries, stream events (refusals aside)."""
    await load(_db(tmp_path), people(chengdu=10, nowhere=0, beijing=0))
    b = await start(start_daemon, monkeypatch)
    resp = await b.d.client.get("/v1/stream", headers=auth("reader"))
    await resp.content.readuntil(b": connected\n\n")
    first, parent = await _sent(b)
    stream = await _read_for(resp, 0.5)
    resp.close()
    shown = stream + await _everything_shown(b, first["id"], parent["id"])
    assert "recipients" in stream  # the summaries were read
    phones = [f"1390000{i:04d}" for i in range(10)]
    assert [p for p in phones if p in shown] == []
    assert {r.body["recipient"]["phone"] for r in b.sink.received} == set(phones)


async def test_a_refusal_echoing_a_recipients_phone_does_not_show_it(
    start_daemon: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Two refusals echo the recipient's phone number: the recipients page shows the refusal
    (400) without the number."""
    _, shown, _ = await _refused_fan_out(start_daemon, monkeypatch, tmp_path)
    assert [p for p in PHONES if p in shown] == []
