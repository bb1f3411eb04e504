"""Authority that cannot be bypassed, tried as a hostile insider would, over HTTP.

One test per finding of the review (issue 10), each against a running daemon; and the
role table tried whole: every role against every authenticated route.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

import pytest

from alertcast.access import ROUTE_ROLES
from alertcast.ids import new_id
from alertcast.keys import DOOR, PLANNER, STORE
from alertcast.latest import Latest
from alertcast.plan import Asker, Moment
from alertcast.store.base import StaleRead, StateConflict
from tests.conftest import TOKEN, incident, until
from tests.feeds.feed_server import real_features, revised

TOKENS = {
    "city": TOKEN,  # submit, operate, read, approve (can_approve)
    "duty": "tok-duty-7f3e91c2a4",  # an approver
    "clerk": "tok-clerk-0b8d5e61f9",  # submits, may not approve
    "fire": "tok-fire-3c2a9d7e15",  # fire only, Chengdu only
    "reader": "tok-reader-9e4f1a7b33",  # read only
    "chengdu": "tok-chengdu-4b7e02c9d1",  # an approver in Chengdu only
    "sichuan": "tok-sichuan-6c1f93e0a7",  # earthquakes in Chengdu only
}
ONLY = {role: f"tok-only-{role}-55d0c3a1" for role in ("submit", "approve", "operate", "read")}


NO_EXPIRY = {"earthquake_h": None}  # validity is tested in tests/feeds/test_daemon_feed_texts.py


async def _start(start_daemon: Any, monkeypatch: pytest.MonkeyPatch, **kw: Any) -> Any:
    for name, token in TOKENS.items():
        monkeypatch.setenv(f"T_{name.upper()}", token)
    for role, token in ONLY.items():
        monkeypatch.setenv(f"T_ONLY_{role.upper()}", token)
    issuers = [
        {"name": "city", "token_env": "T_CITY", "can_approve": True},
        {"name": "duty", "token_env": "T_DUTY", "roles": ["approve", "read"]},
        {"name": "clerk", "token_env": "T_CLERK"},
        {"name": "fire", "token_env": "T_FIRE", "kinds": ["fire"], "regions": ["510100"]},
        {"name": "reader", "token_env": "T_READER", "roles": ["read"]},
        {
            "name": "chengdu",
            "token_env": "T_CHENGDU",
            "regions": ["510100"],
            "roles": ["approve", "read"],
        },
        {
            "name": "sichuan",
            "token_env": "T_SICHUAN",
            "kinds": ["earthquake"],
            "regions": ["510100"],
        },
        *(
            {"name": f"only-{role}", "token_env": f"T_ONLY_{role.upper()}", "roles": [role]}
            for role in ONLY
        ),
    ]
    kw.setdefault("expiry", NO_EXPIRY)  # the quakes here are years old: still in force
    return await start_daemon(issuers=issuers, **kw)


def _auth(who: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS.get(who) or ONLY[who]}"}


async def _call(d: Any, who: str, path: str, body: Any = None) -> tuple[int, Any]:
    if body is None:
        resp = await d.client.post(path, headers=_auth(who))
    else:
        resp = await d.client.post(path, json=body, headers=_auth(who))
    return resp.status, await resp.json()


async def _raise(d: Any, who: str, body: dict[str, Any]) -> dict[str, Any]:
    status, answer = await _call(d, who, "/v1/incidents", body)
    assert status == 202, answer
    return dict(answer)


def _fire(codes: list[str], **changes: Any) -> dict[str, Any]:
    body = {
        "kind": "fire",
        "status": "actual",
        "severity": "severe",
        "headline": "高层住宅火灾",
        "description": "某小区住宅楼起火。",
        "instruction": "请勿靠近。",
        "area": {"name": "火场", "codes": codes},
        "occurred_at": "2026-11-30T10:00:00+08:00",
        "language": "zh-CN",
        "details": {"address": "某路1号", "level": 2, "evacuate": True, "avoid": ["某路"]},
    }
    body.update(changes)
    return body


async def test_an_update_cannot_carry_a_held_alert_past_approval(
    start_daemon: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Finding 1: approving the update of a held alert is refused; the chain is approved whole."""
    d = await _start(start_daemon, monkeypatch)
    first = await _raise(d, "city", incident(severity="extreme"))
    status, upd = await _call(d, "clerk", f"/v1/incidents/{first['id']}/update", {"headline": "x"})
    assert status == 202 and upd["state"] == "awaiting_approval"
    status, refused = await _call(d, "city", f"/v1/incidents/{upd['id']}/approve")
    assert status == 409 and first["id"] in refused["detail"]
    await asyncio.sleep(0.3)
    assert d.sink.received == []
    status, _ = await _call(d, "duty", f"/v1/incidents/{first['id']}/approve")
    assert status == 200
    await d.settled(upd["id"])
    assert sorted(r.body["msg_type"] for r in d.sink.received) == ["update"]


async def test_a_rewrite_of_an_approved_extreme_alert_waits_for_a_second_person(
    start_daemon: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Finding 2: after approval, a non-approver's rewrite is held, and the original's author
    cannot release it; another approver can."""
    d = await _start(start_daemon, monkeypatch)
    first = await _raise(d, "city", incident(severity="extreme"))
    assert (await _call(d, "duty", f"/v1/incidents/{first['id']}/approve"))[0] == 200
    await d.settled(first["id"])
    softer = {"details": {"magnitude": 5.0}, "instruction": "无需撤离"}
    status, upd = await _call(d, "clerk", f"/v1/incidents/{first['id']}/update", softer)
    assert status == 202 and upd["state"] == "awaiting_approval"
    await asyncio.sleep(0.3)
    assert [r.body["msg_type"] for r in d.sink.received] == ["alert"]
    status, refused = await _call(d, "city", f"/v1/incidents/{upd['id']}/approve")
    assert status == 403 and "two-person rule" in refused["detail"]
    assert (await _call(d, "duty", f"/v1/incidents/{upd['id']}/approve"))[0] == 200
    await d.settled(upd["id"])
    assert [r.body["msg_type"] for r in d.sink.received] == ["alert", "update"]


async def test_severity_cannot_be_declared_below_the_facts(
    start_daemon: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Finding 4: an M7.5 declared severe is raised to extreme, held, and the audit says so."""
    d = await _start(start_daemon, monkeypatch)
    quake = incident(severity="severe")
    quake["details"] = {**quake["details"], "magnitude": 7.5}
    first = await _raise(d, "clerk", quake)
    assert first["state"] == "awaiting_approval"
    status, view = await d.get(f"/v1/incidents/{first['id']}")
    assert status == 200 and view["severity"] == "extreme"
    (created,) = [a for a in view["audit"] if a["action"] == "incident.create"]
    assert "raised from severe to extreme" in created["detail"]["severity"]


async def test_scope_holds_before_and_after_an_update(
    start_daemon: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Finding 5: a Chengdu-only issuer cannot move a Beijing fire into Chengdu; nothing
    changes, nothing is withdrawn."""
    d = await _start(start_daemon, monkeypatch, hooks=1)
    beijing = await _raise(d, "city", _fire(["110101"]))
    await d.settled(beijing["id"])
    before = d.table_counts()
    moved = {"area": {"name": "成都", "codes": ["510104"]}, "headline": "attacker"}
    status, problem = await _call(d, "fire", f"/v1/incidents/{beijing['id']}/update", moved)
    assert status == 403 and "as it stands" in problem["detail"]
    assert d.table_counts() == before
    page = await (await d.client.get(f"/p/{beijing['id']}")).text()
    assert "attacker" not in page


async def test_a_scoped_issuer_reads_and_operates_only_its_scope(
    start_daemon: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Finding 6: reads, lists, retries and account operations stay within kinds and regions."""
    chengdu = {
        "id": "cd-fire",
        "channel": "webhook",
        "url": "{sink}",
        "secret_env": "T_HOOK_SECRET",
    }
    d = await _start(
        start_daemon,
        monkeypatch,
        accounts=[{**chengdu, "kinds": ["fire"], "regions": ["510100"]}],
    )
    quake = await _raise(d, "city", incident())
    fire = await _raise(d, "fire", _fire(["510104"]))
    assert (await d.get(f"/v1/incidents/{quake['id']}", TOKENS["fire"]))[0] == 404
    assert (await d.get(f"/v1/incidents/{fire['id']}", TOKENS["fire"]))[0] == 200
    _, listed = await d.get("/v1/incidents", TOKENS["fire"])
    assert [i["id"] for i in listed["incidents"]] == [fire["id"]]
    _, deliveries = await d.get("/v1/deliveries", TOKENS["fire"])
    assert {x["incident_id"] for x in deliveries["deliveries"]} == {fire["id"]}
    quake_delivery = quake["deliveries"][0]["id"]
    assert (await d.get(f"/v1/deliveries/{quake_delivery}", TOKENS["fire"]))[0] == 404
    status, problem = await _call(d, "fire", f"/v1/deliveries/{quake_delivery}/retry")
    assert status == 403 and "may not operate" in problem["detail"]
    _, accounts = await d.get("/v1/channels", TOKENS["fire"])
    assert [a["id"] for a in accounts["accounts"]] == ["cd-fire"]
    assert (await _call(d, "fire", "/v1/channels/hook-0/resume"))[0] == 404
    assert (await _call(d, "fire", "/v1/channels/cd-fire/resume"))[0] == 200


async def test_the_stream_shows_only_what_the_token_may_read(
    start_daemon: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Finding 6: a scoped token's live stream carries no event of another region's incident."""
    d = await _start(start_daemon, monkeypatch)
    resp = await d.client.get("/v1/stream", headers=_auth("fire"))
    opening = [await resp.content.readline() for _ in range(2)]  # retry:, then the comment
    assert opening[0].startswith(b"retry: ") and opening[1].startswith(b": connected")
    quake = await _raise(d, "city", incident())
    fire = await _raise(d, "fire", _fire(["510104"]))
    seen: list[str] = []
    async with asyncio.timeout(10):
        while fire["id"] not in seen:
            line = await resp.content.readline()
            if line.startswith(b"data: "):
                event = json.loads(line[6:])
                seen.append(event.get("incident_id", event.get("id")))
    resp.close()
    assert quake["id"] not in seen


async def test_the_public_page_shows_only_released_text(
    start_daemon: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Finding 7: no public page for a held incident; a held update's text is not shown."""
    d = await _start(start_daemon, monkeypatch)
    first = await _raise(d, "city", incident(severity="extreme"))
    assert (await d.client.get(f"/p/{first['id']}")).status == 404
    assert (await _call(d, "duty", f"/v1/incidents/{first['id']}/approve"))[0] == 200
    held = {"headline": "未经批准的更新"}
    status, upd = await _call(d, "clerk", f"/v1/incidents/{first['id']}/update", held)
    assert status == 202 and upd["state"] == "awaiting_approval"
    page = await d.client.get(f"/p/{first['id']}")
    assert page.status == 200 and "未经批准的更新" not in await page.text()


def _concrete(route: str) -> str:
    return route.replace("{id}", "missing").replace("{name}", "missing")


async def test_every_role_reaches_exactly_its_routes(
    start_daemon: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The role table, tried whole: a token with one role is refused (403) on every route of
    another role and admitted on its own; every authenticated route is in the table."""
    d = await _start(start_daemon, monkeypatch)
    served = {
        (r.method, r.resource.canonical)
        for r in d.client.app.router.routes()
        if r.resource is not None and r.resource.canonical.startswith("/v1/") and r.method != "HEAD"
    }
    assert served == set(ROUTE_ROLES)
    for (method, route), needed in sorted(ROUTE_ROLES.items()):
        for role in ONLY:
            resp = await d.client.request(method, _concrete(route), headers=_auth(role))
            refused = resp.status == 403 and "lacks the" in (await resp.text())
            resp.close()
            assert refused == (role != needed), (method, route, role, resp.status)


async def test_a_read_only_token_changes_nothing(
    start_daemon: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A dashboard's read-only token sees incidents but cannot raise, cancel or re-drive."""
    d = await _start(start_daemon, monkeypatch)
    first = await _raise(d, "city", incident())
    await d.settled(first["id"])
    before = d.table_counts()
    assert (await d.get(f"/v1/incidents/{first['id']}", TOKENS["reader"]))[0] == 200
    for path, body in [
        ("/v1/incidents", incident()),
        (f"/v1/incidents/{first['id']}/cancel", {"reason": "x"}),
        (f"/v1/incidents/{first['id']}/update", {"headline": "x"}),
    ]:
        assert (await _call(d, "reader", path, body))[0] == 403
    assert d.table_counts() == before


async def test_a_non_approver_cannot_cancel_a_true_alarm_alone(
    start_daemon: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Finding 3: a non-approver's cancellation of an approved extreme alarm waits for a second
    approver (not the alarm's author) and changes nothing until then; approved, it follows
    every original."""
    d = await _start(start_daemon, monkeypatch, hooks=2)
    first = await _raise(d, "city", incident(severity="extreme"))
    assert (await _call(d, "duty", f"/v1/incidents/{first['id']}/approve"))[0] == 200
    await d.settled(first["id"])
    status, cancel = await _call(
        d, "clerk", f"/v1/incidents/{first['id']}/cancel", {"reason": "误报"}
    )
    assert status == 202 and cancel["state"] == "awaiting_approval" and cancel["deliveries"] == []
    await asyncio.sleep(0.3)
    _, root = await d.get(f"/v1/incidents/{first['id']}")
    assert root["state"] == "active" and len(d.sink.received) == 2
    status, refused = await _call(d, "city", f"/v1/incidents/{cancel['id']}/approve")
    assert status == 403 and "two-person rule" in refused["detail"]
    status, released = await _call(d, "duty", f"/v1/incidents/{cancel['id']}/approve")
    assert status == 200 and released["state"] == "cancelled"
    done = await d.settled(cancel["id"])
    assert done["counts"] == {"delivered": 2} and done["state"] == "cancelled"
    _, root = await d.get(f"/v1/incidents/{first['id']}")
    assert root["state"] == "cancelled"
    assert sorted(r.body["msg_type"] for r in d.sink.received) == [
        "alert",
        "alert",
        "cancel",
        "cancel",
    ]


async def test_an_approvers_own_cancellation_goes_at_once(
    start_daemon: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The configured exception: an approver's cancellation is never held (speed of correction)."""
    d = await _start(start_daemon, monkeypatch)
    first = await _raise(d, "city", incident(severity="extreme"))
    assert (await _call(d, "duty", f"/v1/incidents/{first['id']}/approve"))[0] == 200
    await d.settled(first["id"])
    status, cancel = await _call(
        d, "city", f"/v1/incidents/{first['id']}/cancel", {"reason": "误报"}
    )
    assert status == 202 and cancel["state"] == "cancelled"
    assert (await d.settled(cancel["id"]))["counts"] == {"delivered": 1}


# -- a hostile insider's second look (after the rules above) ---------------------------------


async def test_a_held_update_cannot_stop_an_approved_alert(
    start_daemon: Any, monkeypatch: pytest.MonkeyPatch, refused_port: int
) -> None:
    """A non-approver's held update of an approved alert supersedes nothing while it waits:
    the alert still retrying on a failing account keeps retrying. Once a second person
    approves the update, the update supersedes it."""
    down = {
        "id": "down",
        "channel": "webhook",
        "url": f"http://127.0.0.1:{refused_port}/hook",
        "secret_env": "T_HOOK_SECRET",
    }
    slow = {"backoff_initial_s": 30, "backoff_max_s": 30, "poll_interval_s": 0.2}
    d = await _start(start_daemon, monkeypatch, hooks=0, accounts=[down], dispatch=slow)
    first = await _raise(d, "city", incident(severity="extreme"))
    assert (await _call(d, "duty", f"/v1/incidents/{first['id']}/approve"))[0] == 200
    (original,) = (x["id"] for x in first["deliveries"])

    async def retrying() -> bool:
        return bool((await d.get(f"/v1/deliveries/{original}"))[1]["state"] == "retrying")

    await until(retrying, what="the original retrying")
    softer = {"instruction": "无需撤离"}
    status, upd = await _call(d, "clerk", f"/v1/incidents/{first['id']}/update", softer)
    assert status == 202 and upd["state"] == "awaiting_approval" and upd["superseded"] == []
    _, row = await d.get(f"/v1/deliveries/{original}")
    assert (row["state"], row["reason"]) == ("retrying", None)
    assert (await _call(d, "duty", f"/v1/incidents/{upd['id']}/approve"))[0] == 200
    _, row = await d.get(f"/v1/deliveries/{original}")
    assert (row["state"], row["reason"]) == ("skipped", "superseded by an update")


async def test_an_approver_releases_only_what_is_in_its_scope(
    start_daemon: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Approving an incident releases its held updates: a Chengdu approver cannot release a
    held update that moved the incident to Beijing."""
    d = await _start(start_daemon, monkeypatch)
    first = await _raise(d, "city", _fire(["510104"], severity="extreme"))
    moved = {"area": {"name": "北京市东城区", "codes": ["110101"]}}
    status, upd = await _call(d, "city", f"/v1/incidents/{first['id']}/update", moved)
    assert status == 202 and upd["state"] == "awaiting_approval"
    status, refused = await _call(d, "chengdu", f"/v1/incidents/{first['id']}/approve")
    assert status == 403 and "110101" in refused["detail"]
    await asyncio.sleep(0.3)
    assert d.sink.received == []


async def test_scope_holds_for_the_chain_as_it_stands(
    start_daemon: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Once the city moved the brigade's fire to Beijing, the Chengdu-only brigade can neither
    update it (not even back into Chengdu) nor cancel it: its posts now reach Beijing."""
    d = await _start(start_daemon, monkeypatch)
    first = await _raise(d, "fire", _fire(["510104"]))
    moved = {"area": {"name": "北京市东城区", "codes": ["110101"]}}
    status, upd = await _call(d, "city", f"/v1/incidents/{first['id']}/update", moved)
    assert status == 202
    await d.settled(first["id"])
    await d.settled(upd["id"])
    before = d.table_counts()
    back = {"area": {"name": "成都", "codes": ["510104"]}, "headline": "attacker"}
    status, problem = await _call(d, "fire", f"/v1/incidents/{first['id']}/update", back)
    assert status == 403 and "as it stands" in problem["detail"]
    status, _ = await _call(d, "fire", f"/v1/incidents/{first['id']}/cancel", {"reason": "x"})
    assert status == 403
    assert d.table_counts() == before


async def test_a_held_update_of_a_cancelled_incident_cannot_be_approved(
    start_daemon: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The incident was cancelled while an update waited: approving the update is a conflict,
    and the cancelled incident's public page does not take up the unsent update's text."""
    d = await _start(start_daemon, monkeypatch)
    first = await _raise(d, "city", incident(severity="extreme"))
    assert (await _call(d, "duty", f"/v1/incidents/{first['id']}/approve"))[0] == 200
    held = {"headline": "未经批准的更新"}
    status, upd = await _call(d, "clerk", f"/v1/incidents/{first['id']}/update", held)
    assert status == 202 and upd["state"] == "awaiting_approval"
    cancel = {"reason": "误报"}
    assert (await _call(d, "city", f"/v1/incidents/{first['id']}/cancel", cancel))[0] == 202
    status, problem = await _call(d, "duty", f"/v1/incidents/{upd['id']}/approve")
    assert status == 409 and "cancelled" in problem["detail"]
    _, view = await d.get(f"/v1/incidents/{upd['id']}")
    assert view["state"] == "awaiting_approval"
    page = await d.client.get(f"/p/{first['id']}")
    assert page.status == 200 and "未经批准的更新" not in await page.text()


async def test_the_wechat_keyword_reply_shows_only_released_text(
    start_daemon: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The keyword reply (地震, 最新) is public like /p/{id}: no held incident, and a held
    update's text is not shown in place of the released one."""
    d = await _start(start_daemon, monkeypatch)
    latest = Latest(d.client.app[STORE], d.client.app[PLANNER].regions, d.config.expiry)
    first = await _raise(d, "city", incident(severity="extreme"))
    assert await latest("earthquake", [], 5) == []
    assert (await _call(d, "duty", f"/v1/incidents/{first['id']}/approve"))[0] == 200
    held = {"headline": "未经批准的更新"}
    status, upd = await _call(d, "clerk", f"/v1/incidents/{first['id']}/update", held)
    assert status == 202 and upd["state"] == "awaiting_approval"
    (shown,) = await latest("earthquake", [], 5)
    assert (shown["id"], shown["headline"]) == (first["id"], incident()["headline"])


async def test_a_held_alert_withdrawn_never_reaches_the_public_page(
    start_daemon: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An alert held for approval and cancelled before anyone approved it was never released:
    its public page stays 404 rather than showing the unapproved text as cancelled."""
    d = await _start(start_daemon, monkeypatch)
    first = await _raise(d, "clerk", incident(severity="extreme", headline="未经批准的警报"))
    cancel = {"reason": "撤回"}
    status, answer = await _call(d, "clerk", f"/v1/incidents/{first['id']}/cancel", cancel)
    assert status == 202 and answer["state"] == "cancelled"
    page = await d.client.get(f"/p/{first['id']}")
    assert page.status == 404 and "未经批准的警报" not in await page.text()


async def test_an_approved_then_cancelled_alert_shows_its_cancellation(
    start_daemon: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The counterpart: a released alert, cancelled, keeps its public page, saying so."""
    d = await _start(start_daemon, monkeypatch)
    first = await _raise(d, "city", incident(severity="extreme"))
    assert (await _call(d, "duty", f"/v1/incidents/{first['id']}/approve"))[0] == 200
    cancel = {"reason": "误报已撤销"}
    assert (await _call(d, "city", f"/v1/incidents/{first['id']}/cancel", cancel))[0] == 202
    page = await d.client.get(f"/p/{first['id']}")
    assert page.status == 200 and "误报已撤销" in await page.text()


async def test_a_preview_is_refused_out_of_scope(
    start_daemon: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """POST /v1/render shows routing and payloads for every account: only for an incident the
    issuer could raise (the Chengdu fire brigade learns nothing of a quake's routing)."""
    d = await _start(start_daemon, monkeypatch)
    resp = await d.client.post("/v1/render", json=incident(), headers=_auth("fire"))
    assert resp.status == 403 and "hook-0" not in await resp.text()
    resp = await d.client.post("/v1/render", json=_fire(["510104"]), headers=_auth("fire"))
    assert resp.status == 200


FEEDS = [{"name": "pushed", "type": "usgs", "min_magnitude": 5.0, "max_age_s": None}]


def _afghanistan(**props: Any) -> dict[str, Any]:
    return revised(real_features("significant_month.geojson")["us6000len8"], **props)


async def _push(d: Any, who: str, body: dict[str, Any]) -> tuple[int, Any]:
    resp = await d.client.post("/v1/feeds/pushed/events", json=body, headers=_auth(who))
    return resp.status, await resp.json()


async def test_a_push_cannot_cancel_an_approved_alert_alone(
    start_daemon: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A non-approver pushes the feed's own event, revised below the rule: the feed would
    cancel the approved alert at once. A person's push must not do what the person may not."""
    feeds = [{**FEEDS[0], "approval": "always"}]  # its official report waits too
    d = await _start(start_daemon, monkeypatch, feeds=feeds)
    status, raised = await _push(d, "city", _afghanistan())
    assert status == 202, raised
    root = raised["decisions"][0]["incident_id"]
    assert (await d.get(f"/v1/incidents/{root}"))[1]["state"] == "awaiting_approval"
    assert (await _call(d, "duty", f"/v1/incidents/{root}/approve"))[0] == 200
    await d.settled(root)
    later = _afghanistan()["properties"]["updated"] + 60_000
    await _push(d, "clerk", _afghanistan(mag=4.0, updated=later))
    assert (await d.get(f"/v1/incidents/{root}"))[1]["state"] == "active"


async def test_a_push_is_bound_by_the_pushers_regions(
    start_daemon: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Chengdu-only earthquake issuer cannot raise an Afghan quake through a feed's push."""
    d = await _start(start_daemon, monkeypatch, feeds=FEEDS)
    assert (await _call(d, "sichuan", "/v1/incidents", incident()))[0] == 403  # as it should
    status, _ = await _push(d, "sichuan", _afghanistan())
    assert status == 403
    assert (await d.get("/v1/incidents"))[1]["incidents"] == []


async def test_an_approval_releases_only_what_its_approver_saw(
    start_daemon: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An approver (city) reads the held alert, nothing else held, and before its approval
    commits writes a held update of its own: the approval must not carry that update out with
    it, a message no second person saw."""
    d = await _start(start_daemon, monkeypatch)
    first = await _raise(d, "clerk", incident(severity="extreme"))
    door, city = d.client.app[DOOR], next(i for i in d.config.issuers if i.name == "city")
    asker = Asker("city", issuer=city)
    plan = door.planner.approve(
        await door.chains.of(first["id"], asker), asker, Moment(1.0, new_id)
    )
    assert plan.authority.allowed
    status, upd = await _call(d, "city", f"/v1/incidents/{first['id']}/update", {"headline": "x"})
    assert status == 202 and upd["state"] == "awaiting_approval"
    with contextlib.suppress(StaleRead, StateConflict):  # refused at commit: also a fix
        await door.committer.apply(plan)
    assert (await d.get(f"/v1/incidents/{upd['id']}"))[1]["state"] == "awaiting_approval"


async def test_feed_health_is_read_by_earthquake_readers_only(
    start_daemon: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fire-only token sees no feed's decisions; an earthquake reader sees them all."""
    d = await _start(start_daemon, monkeypatch, feeds=FEEDS)
    _, shown = await d.get("/v1/feeds", TOKENS["reader"])
    assert [f["name"] for f in shown["feeds"]] == ["pushed"]
    _, hidden = await d.get("/v1/feeds", TOKENS["fire"])
    assert hidden["feeds"] == []


async def test_a_second_person_rejects_a_held_alert_with_a_reason(
    start_daemon: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rejected, a held alert is cancelled with the reason and audited; nothing of it goes out;
    its author cannot reject it, an empty reason is a 422 naming the field."""
    d = await _start(start_daemon, monkeypatch)
    first = await _raise(d, "city", incident(severity="extreme"))
    path = f"/v1/incidents/{first['id']}/reject"
    status, refused = await _call(d, "city", path, {"reason": "误报"})
    assert status == 403 and "two-person rule" in refused["detail"]
    status, problem = await _call(d, "duty", path, {"reason": " "})
    assert status == 422 and "reason" in json.dumps(problem)
    status, answer = await _call(d, "duty", path, {"reason": "震级有误"})
    assert status == 200, answer
    assert (answer["state"], answer["rejected_by"], answer["reason"]) == (
        "cancelled",
        "duty",
        "震级有误",
    )
    assert (await _call(d, "duty", path, {"reason": "again"}))[0] == 409
    assert (await _call(d, "duty", "/v1/incidents/inc_none/reject", {"reason": "x"}))[0] == 404
    await asyncio.sleep(0.3)
    assert d.sink.received == []
    _, view = await d.get(f"/v1/incidents/{first['id']}")
    assert view["state"] == "cancelled"
    assert {"action": "incident.reject", "actor": "duty"}.items() <= next(
        a for a in view["audit"] if a["action"] == "incident.reject"
    ).items()
    assert all(dv["state"] == "skipped" for dv in view["deliveries"])
    assert (await d.client.get(f"/p/{first['id']}")).status == 404


async def test_a_rejected_held_cancellation_leaves_the_alert_standing(
    start_daemon: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A non-approver's held cancellation, rejected, is withdrawn alone: the alert stays active
    and its public page never says it was cancelled."""
    d = await _start(start_daemon, monkeypatch)
    first = await _raise(d, "city", incident(severity="extreme"))
    assert (await _call(d, "duty", f"/v1/incidents/{first['id']}/approve"))[0] == 200
    await d.settled(first["id"])
    cancel = {"reason": "谣言说是误报"}
    status, held = await _call(d, "clerk", f"/v1/incidents/{first['id']}/cancel", cancel)
    assert status == 202 and held["state"] == "awaiting_approval"
    status, answer = await _call(
        d, "duty", f"/v1/incidents/{held['id']}/reject", {"reason": "真实"}
    )
    assert status == 200 and answer["id"] == held["id"], answer
    _, root = await d.get(f"/v1/incidents/{first['id']}")
    assert root["state"] == "active"
    assert (await _call(d, "duty", f"/v1/incidents/{held['id']}/approve"))[0] == 409
    page = await d.client.get(f"/p/{first['id']}")
    assert page.status == 200 and "谣言说是误报" not in await page.text()
    assert sorted(r.body["msg_type"] for r in d.sink.received) == ["alert"]
