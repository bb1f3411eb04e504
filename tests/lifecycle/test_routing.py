"""Region routing, route rules, clusters that repost, and the two-person rule."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from alertcast.config import Config
from alertcast.models import parse_incident
from alertcast.regions import Hierarchy
from alertcast.routing import route
from tests.conftest import OTHER_TOKEN, TOKEN, incident

APPROVER_TOKEN = "tok-duty-officer-44c1e0a9d2"


def _accounts(*specs: tuple[str, list[str]], **common: Any) -> list[dict[str, Any]]:
    return [{"id": i, "channel": "console", "regions": r, **common} for i, r in specs]


CHINA = _accounts(
    ("sichuan", ["510000"]),
    ("leshan", ["511100"]),
    ("yaan", ["511800"]),
    ("lushan", ["511826"]),
    ("baoxing", ["511827"]),
    ("chongqing", ["500000"]),
    ("national", []),
)


@pytest.mark.parametrize(
    ("codes", "reached"),
    [
        (["511826"], {"sichuan", "yaan", "lushan", "national"}),
        (["511827"], {"sichuan", "yaan", "baoxing", "national"}),
        (["511800"], {"sichuan", "yaan", "national"}),
        (["510000"], {"sichuan", "national"}),
        (["500101"], {"chongqing", "national"}),
        (["511826", "500101"], {"sichuan", "yaan", "lushan", "chongqing", "national"}),
        ([], {"national"}),
    ],
)
def test_county_city_province(codes: list[str], reached: set[str]) -> None:
    """An incident reaches its county, city, province and national accounts, no others."""
    config = Config(accounts=CHINA)
    eq = parse_incident(incident(area={"name": "x", "codes": codes}))
    assert {d.account.id for d in route(eq, config.accounts) if d.chosen} == reached


def test_foreign_hierarchy_by_parent_table() -> None:
    """Codes that do not nest by prefix follow the configured parents."""
    parents = {"SE-AB-0180": "SE-AB", "SE-AB": "SE", "SE-O-1480": "SE-O", "SE-O": "SE"}
    accounts = _accounts(
        ("stockholm-county", ["SE-AB"]), ("sweden", ["SE"]), ("gothenburg", ["SE-O-1480"])
    )
    config = Config(accounts=accounts, regions={"parents": parents})
    eq = parse_incident(incident(area={"name": "Stockholm", "codes": ["SE-AB-0180"]}))
    chosen = {d.account.id for d in route(eq, config.accounts, Hierarchy(parents)) if d.chosen}
    assert chosen == {"stockholm-county", "sweden"}


def test_route_rules_add_and_exclude() -> None:
    """Severe and above also reaches the national account; minor fires stay in the district."""
    accounts = [
        *_accounts(("district", ["510104"]), ("city", ["510100"])),
        {"id": "ministry", "channel": "console", "regions": ["999999"]},
    ]
    routes = [
        {"name": "severe-to-ministry", "min_severity": "severe", "add": ["ministry"]},
        {
            "name": "small-fires-local",
            "kinds": ["fire"],
            "max_severity": "minor",
            "exclude": ["city"],
        },
    ]
    config = Config(accounts=accounts, routes=routes)
    area = {"name": "锦江区", "codes": ["510104"]}

    def chosen(**kw: Any) -> dict[str, str]:
        inc = parse_incident(incident(area=area, **kw))
        return {
            d.account.id: d.why
            for d in route(inc, config.accounts, None, config.routes)
            if d.chosen
        }

    severe = chosen(severity="severe")
    assert set(severe) == {"district", "city", "ministry"}
    assert severe["ministry"] == "added by route severe-to-ministry"
    small_fire = chosen(kind="fire", severity="minor", details={"address": "春熙路"})
    assert set(small_fire) == {"district"}


async def test_release_hall_members_repost_the_lead(start_daemon: Any) -> None:
    """Members repost the lead's post; when the lead fails for good they post their own."""
    lead = {"id": "hall", "channel": "webhook", "url": "{sink}/lead", "secret_env": "T_HOOK_SECRET"}
    members = [
        {
            "id": f"agency-{i}",
            "channel": "webhook",
            "url": f"{{sink}}/m{i}",
            "secret_env": "T_HOOK_SECRET",
            "lead": "hall",
        }
        for i in range(3)
    ]
    d = await start_daemon(hooks=0, accounts=[lead, *members])
    first = await (await d.post(incident())).json()
    view = await d.settled(first["id"])
    remote = {x["account"]: x["remote_id"] for x in view["deliveries"]}
    sent = {r.path: r.body for r in d.sink.received}
    lead_delivery = {x["account"]: x["id"] for x in view["deliveries"]}["hall"]
    chain = {x["account"]: x["target_delivery_id"] for x in view["deliveries"]}
    assert chain == {"hall": None, **{f"agency-{i}": lead_delivery for i in range(3)}}
    routing = view["audit"][0]["detail"]["routing"]
    assert routing["agency-0"].startswith("chosen: takes earthquake/actual")
    for i in range(3):
        assert sent[f"/hook/m{i}"]["action"] == "repost"
        assert sent[f"/hook/m{i}"]["in_reply_to"] == remote["hall"]
    d.sink.answer = lambda item: (400, {}) if item.path.endswith("/lead") else None
    second = await (await d.post(incident(headline="第二条"))).json()
    view = await d.settled(second["id"])
    states = {x["account"]: x["state"] for x in view["deliveries"]}
    assert states == {"hall": "failed", **{f"agency-{i}": "delivered" for i in range(3)}}
    own = [
        r.body for r in d.sink.received if r.body["incident_id"] == second["id"] and "/m" in r.path
    ]
    assert all(b["action"] == "post" and b["in_reply_to"] is None for b in own)


async def test_two_person_rule(start_daemon: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Extreme waits; the raiser cannot approve, a non-approver cannot, a second approver can."""
    monkeypatch.setenv("T_APPROVER", APPROVER_TOKEN)
    issuers = [
        {"name": "city", "token_env": "T_TOKEN", "can_approve": True},
        {"name": "fire", "token_env": "T_OTHER_TOKEN"},
        {"name": "duty", "token_env": "T_APPROVER", "can_approve": True},
    ]
    d = await start_daemon(issuers=issuers, expiry={"earthquake_h": None})  # a 2022 quake
    answer = await (await d.post(incident(severity="extreme"))).json()
    assert answer["state"] == "awaiting_approval"
    await asyncio.sleep(0.5)
    assert d.sink.received == []

    async def approve(token: str) -> int:
        resp = await d.client.post(
            f"/v1/incidents/{answer['id']}/approve", headers={"Authorization": f"Bearer {token}"}
        )
        return resp.status

    assert await approve(TOKEN) == 403
    assert await approve(OTHER_TOKEN) == 403
    assert await approve(APPROVER_TOKEN) == 200
    view = await d.settled(answer["id"])
    assert view["state"] == "active" and view["counts"] == {"delivered": 1}
    audit = [(a["action"], a["actor"]) for a in view["audit"]]
    assert audit == [("incident.create", "city"), ("incident.approve", "duty")]
    assert await approve(APPROVER_TOKEN) == 409


async def test_cancelling_an_unapproved_incident_sends_nothing(start_daemon: Any) -> None:
    """A cancellation before approval withdraws everything; nothing reaches anyone."""
    d = await start_daemon()
    answer = await (await d.post(incident(severity="extreme"))).json()
    resp = await d.client.post(
        f"/v1/incidents/{answer['id']}/cancel",
        json={"reason": "误报"},
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    assert resp.status == 202
    view = await d.settled(answer["id"])
    assert view["state"] == "cancelled" and view["counts"] == {"skipped": 1}
    await asyncio.sleep(0.3)
    assert d.sink.received == []
