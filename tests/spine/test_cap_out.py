"""CAP 1.2 out: every message as CAP (references included), round trips over every sample,
GB/T 35965.1 identifiers, and the public Atom feed of active alerts."""

from __future__ import annotations

import re
from typing import Any
from xml.etree import ElementTree as ET

import pytest

from tests.conftest import TOKEN, incident
from tests.spine.cap_samples import NS, SAMPLES, sample, schema_path, taken, validator

AUTH = {"Authorization": f"Bearer {TOKEN}"}
ATOM = {"a": "http://www.w3.org/2005/Atom"}
GBT = {"identifier": "gbt35965", "area_code": "510100", "agency_code": "123", "sender": "cd@x.cn"}


async def _cap(d: Any, incident_id: str, path: str = "/v1/incidents/{}.cap") -> ET.Element:
    """The message's CAP, checked valid against the OASIS schema."""
    resp = await d.client.get(path.format(incident_id), headers=AUTH)
    body = await resp.read()
    assert resp.status == 200 and resp.content_type == "application/cap+xml", body[:300]
    root = ET.fromstring(body)
    errors = [f"{e.path}: {e.reason}" for e in validator().iter_errors(root)]
    assert errors == []
    return root


def _info_key(info: ET.Element) -> dict[str, Any]:
    def texts(path: str) -> list[str]:
        return [(e.text or "").strip() for e in info.findall(path, NS)]

    return {
        tag: texts(f"cap:{tag}")
        for tag in ("language", "category", "event", "urgency", "certainty", "headline")
    } | {
        "expires": texts("cap:expires"),
        "onset": texts("cap:onset") + texts("cap:effective"),
        "areas": texts("cap:area/cap:areaDesc"),
        "polygons": texts("cap:area/cap:polygon"),
        "circles": texts("cap:area/cap:circle"),
        "geocodes": texts("cap:area/cap:geocode/cap:value"),
    }


@pytest.mark.parametrize("name", SAMPLES)
async def test_round_trip(start_daemon: Any, name: str) -> None:
    """CAP in, incident, CAP out: valid, and every info's key fields as they came in."""
    d = await start_daemon(cap={"schema": schema_path()})
    answer = await taken(d, name)
    out = await _cap(d, answer["id"])
    given = ET.fromstring(sample(name))
    assert out.findtext("cap:status", namespaces=NS) == given.findtext("cap:status", namespaces=NS)
    assert out.findtext("cap:msgType", namespaces=NS) == given.findtext(
        "cap:msgType", namespaces=NS
    )
    assert out.findtext("cap:source", namespaces=NS) == given.findtext("cap:sender", namespaces=NS)
    infos_in = [_info_key(i) for i in given.findall("cap:info", NS)]
    assert [_info_key(i) for i in out.findall("cap:info", NS)] == infos_in
    if "msgType>Update" in sample(name).decode():  # references: alertcast's original message
        first = (await d.get(f"/v1/incidents/{answer['id']}"))[1]["references"]
        original = await _cap(d, first)
        triple = ",".join(
            original.findtext(f"cap:{t}", namespaces=NS) or ""
            for t in ("sender", "identifier", "sent")
        )
        assert out.findtext("cap:references", namespaces=NS) == triple


async def test_json_incident_update_and_cancel_as_cap(start_daemon: Any) -> None:
    """An incident raised as JSON, its update and its cancellation are CAP Alert, Update and
    Cancel, each later one referencing those before it."""
    d = await start_daemon()
    resp = await d.post(incident())
    first = await resp.json()
    upd = await d.client.post(
        f"/v1/incidents/{first['id']}/update", json={"details": {"magnitude": 6.6}}, headers=AUTH
    )
    update = await upd.json()
    assert upd.status == 202, update
    can = await d.client.post(
        f"/v1/incidents/{first['id']}/cancel", json={"reason": "误报"}, headers=AUTH
    )
    cancel = await can.json()
    alert_cap = await _cap(d, first["id"])
    update_cap = await _cap(d, update["id"])
    cancel_cap = await _cap(d, cancel["id"])

    def triple(root: ET.Element) -> str:
        return ",".join(
            root.findtext(f"cap:{t}", namespaces=NS) or "" for t in ("sender", "identifier", "sent")
        )

    assert [
        c.findtext("cap:msgType", namespaces=NS) for c in (alert_cap, update_cap, cancel_cap)
    ] == ["Alert", "Update", "Cancel"]
    assert update_cap.findtext("cap:references", namespaces=NS) == triple(alert_cap)
    assert (
        cancel_cap.findtext("cap:references", namespaces=NS)
        == f"{triple(alert_cap)} {triple(update_cap)}"
    )
    assert "误报" in (cancel_cap.findtext("cap:note", namespaces=NS) or "")
    params = {
        p.findtext("cap:valueName", namespaces=NS): p.findtext("cap:value", namespaces=NS)
        for p in update_cap.findall("cap:info/cap:parameter", NS)
    }
    assert params["Magnitude"] == "6.6 M"
    assert alert_cap.findtext("cap:info/cap:onset", namespaces=NS) == "2022-09-05T12:52:18+08:00"
    assert alert_cap.findtext("cap:info/cap:area/cap:geocode/cap:value", namespaces=NS) == "513322"


async def test_content_negotiation(start_daemon: Any) -> None:
    """Accept: application/cap+xml on the incident's own URL answers its CAP."""
    d = await start_daemon()
    first = await (await d.post(incident())).json()
    resp = await d.client.get(
        f"/v1/incidents/{first['id']}", headers={**AUTH, "Accept": "application/cap+xml"}
    )
    assert resp.status == 200 and resp.content_type == "application/cap+xml"
    assert (await resp.text()).count("<alert") == 1


async def test_gbt_35965_identifiers(start_daemon: Any) -> None:
    """With [cap] identifier = "gbt35965", identifiers are ZZZZZZDDDUUUXX_YYYYMMDDhhmmss_N."""
    d = await start_daemon(cap=GBT)
    first = await (await d.post(incident())).json()
    root = await _cap(d, first["id"])
    identifier = root.findtext("cap:identifier", namespaces=NS) or ""
    assert re.fullmatch(r"51010012300000_\d{14}_\d", identifier) and len(identifier) == 31
    sent = root.findtext("cap:sent", namespaces=NS) or ""
    assert sent.endswith("+08:00") and identifier[15:29] == re.sub(r"\D", "", sent[:19])
    assert root.findtext("cap:sender", namespaces=NS) == "cd@x.cn"


async def test_atom_feed_has_public_alerts_only(start_daemon: Any) -> None:
    """The feed, open to all, lists released actual alerts; drills, held and cancelled never."""
    d = await start_daemon(hooks=1)
    public = await (await d.post(incident(headline="公开的地震"))).json()
    drill = await (await d.post(incident(status="exercise", headline="演习"))).json()
    held = await (await d.post(incident(severity="extreme", headline="待批准"))).json()
    gone = await (await d.post(incident(headline="已取消"))).json()
    await d.client.post(f"/v1/incidents/{gone['id']}/cancel", json={"reason": "误报"}, headers=AUTH)
    assert held["state"] == "awaiting_approval"
    resp = await d.client.get("/cap/alerts.atom")
    assert resp.status == 200 and resp.content_type == "application/atom+xml"
    feed = ET.fromstring(await resp.read())
    entries = feed.findall("a:entry", ATOM)
    assert [e.findtext("a:title", namespaces=ATOM) for e in entries] == ["公开的地震"]
    link = entries[0].find("a:link[@type='application/cap+xml']", ATOM)
    assert link is not None and link.get("href", "").endswith(f"/cap/{public['id']}.xml")
    await _cap(d, public["id"], "/cap/{}.xml")
    for hidden in (drill, held):
        resp = await d.client.get(f"/cap/{hidden['id']}.xml")
        assert resp.status == 404


async def test_feed_entry_is_the_latest_update(start_daemon: Any) -> None:
    """An updated alert appears once, as its update, which references the original."""
    d = await start_daemon()
    first = await (await d.post(incident())).json()
    upd = await d.client.post(
        f"/v1/incidents/{first['id']}/update", json={"details": {"magnitude": 6.6}}, headers=AUTH
    )
    update = await upd.json()
    feed = ET.fromstring(await (await d.client.get("/cap/alerts.atom")).read())
    hrefs = [e.get("href") for e in feed.findall("a:entry/a:link", ATOM)]
    assert len(hrefs) == 1 and str(hrefs[0]).endswith(f"/cap/{update['id']}.xml")
    root = await _cap(d, update["id"], "/cap/{}.xml")
    assert root.findtext("cap:msgType", namespaces=NS) == "Update"


async def test_cap_out_needs_a_token_that_reads_the_incident(start_daemon: Any) -> None:
    """The .cap route is closed without a token and to an issuer out of scope."""
    from tests.conftest import OTHER_TOKEN

    d = await start_daemon()
    first = await (await d.post(incident())).json()
    assert (await d.client.get(f"/v1/incidents/{first['id']}.cap")).status == 401
    other = {"Authorization": f"Bearer {OTHER_TOKEN}"}
    assert (await d.client.get(f"/v1/incidents/{first['id']}.cap", headers=other)).status == 404
