"""CAP 1.2 in over HTTP: every sample, every <info>, updates and cancellations threaded by
<references>, the schema's errors by element path, and hostile XML."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import OTHER_TOKEN, TOKEN
from tests.spine.cap_samples import (
    SAMPLES,
    accepted,
    original_of,
    post_xml,
    sample,
    schema_path,
    taken,
)

BOMB = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2"><identifier>&lol3;</identifier></alert>"""
XXE = b"""<?xml version="1.0"?>
<!DOCTYPE alert [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2"><identifier>&xxe;</identifier></alert>"""


async def _daemon(start_daemon: Any, **cap: Any) -> Any:
    return await start_daemon(cap={"schema": schema_path(), **cap})


def _cancel_of(name: str, identifier: bytes = b"KAR0-0306112239-SW-C") -> bytes:
    """A Cancel of the sample ``name`` (an Alert), naming it in references."""
    body = sample(name)
    sender = body.split(b"<sender>")[1].split(b"</sender>")[0]
    first = body.split(b"<identifier>")[1].split(b"</identifier>")[0]
    sent = body.split(b"<sent>")[1].split(b"</sent>")[0]
    head = body.split(b"<info>")[0].replace(
        b"<msgType>Alert</msgType>", b"<msgType>Cancel</msgType>"
    )
    head = head.replace(b"<identifier>" + first, b"<identifier>" + identifier)
    head = head.replace(b"<scope>Public</scope>", b"<scope>Public</scope><note>found safe</note>")
    head += b"<references>" + b",".join((sender, first, sent)) + b"</references>"
    return head + b"</alert>"


@pytest.mark.parametrize("name", SAMPLES)
async def test_every_sample_is_taken(start_daemon: Any, name: str) -> None:
    """Each sample (an update after the original it names) becomes a stored message."""
    d = await _daemon(start_daemon)
    answer = await taken(d, name)
    status, view = await d.get(f"/v1/incidents/{answer['id']}")
    assert status == 200 and view["status"] == "actual", view


async def test_oasis_earthquake_update_threads_to_its_original(start_daemon: Any) -> None:
    """The spec's earthquake update follows the report it names, keeps its time, names its
    sender, and maps magnitude, depth in km and the epicentre."""
    d = await _daemon(start_daemon)
    body = sample("Oasis_EarthquakeReport.xml")
    first = await accepted(d, original_of(body) or b"")
    update = await accepted(d, body)
    _, view = await d.get(f"/v1/incidents/{update['id']}")
    assert view["references"] == first["id"] and view["msg_type"] == "update"
    details = view["incident"]["details"]
    assert details["magnitude"] == 3.4 and details["magnitude_type"] == "Ml"
    assert details["depth_km"] == 19.0
    assert (details["latitude"], details["longitude"]) == (32.9525, -115.5527)
    assert details["source"].startswith("Southern California Seismic Network")
    assert view["incident"]["occurred_at"] == "2003-06-11T20:30:00-07:00"  # not the update's sent
    texts = [str(d["payload"]) for d in view["deliveries"]]
    assert not any("CAP正式测定" in t or "CAP测定" in t for t in texts)


async def test_time_comes_from_effective(start_daemon: Any) -> None:
    """Pelmorex's wind warning takes its time from effective, not from sent."""
    d = await _daemon(start_daemon)
    answer = await taken(d, "PelmorexNAADS_WindWarning.xml")
    _, view = await d.get(f"/v1/incidents/{answer['id']}")
    assert view["incident"]["occurred_at"] == "2019-01-09T02:16:03Z"
    assert view["kind"] == "weather" and view["incident"]["language"] == "fr-CA"


async def test_every_info_is_kept(start_daemon: Any) -> None:
    """The Amber alert's English and Spanish blocks both come out again."""
    d = await _daemon(start_daemon)
    answer = await accepted(d, sample("Oasis_AmberAlert.xml"))
    resp = await d.client.get(
        f"/v1/incidents/{answer['id']}.cap", headers={"Authorization": f"Bearer {TOKEN}"}
    )
    text = await resp.text()
    assert resp.status == 200 and text.count("<info>") == 2
    assert "<language>es-US</language>" in text and "Abducción de Niño" in text


async def test_polygon_and_gbt_geocodes_are_mapped(start_daemon: Any) -> None:
    """The thunderstorm's polygon becomes the area's; GB/T 2260 geocodes its codes, SAME not."""
    d = await _daemon(start_daemon)
    body = sample("Oasis_ThunderstormWarning.xml").replace(
        b"<valueName>SAME</valueName>\n        <value>006109</value>",
        b"<valueName>GB/T 2260</valueName>\n        <value>510100</value>",
    )
    answer = await accepted(d, body)
    _, view = await d.get(f"/v1/incidents/{answer['id']}")
    area = view["incident"]["area"]
    assert area["codes"] == ["510100"]
    assert area["polygon"][0] == [38.47, -120.14] and len(area["polygon"]) == 5
    assert view["kind"] == "weather" and view["incident"]["expires_at"]


async def test_cancel_names_its_alert(start_daemon: Any) -> None:
    """A CAP Cancel cancels the incident its references name, with the note as the reason."""
    d = await _daemon(start_daemon)
    first = await accepted(d, sample("Oasis_AmberAlert.xml"))
    cancel = await accepted(d, _cancel_of("Oasis_AmberAlert.xml"))
    _, view = await d.get(f"/v1/incidents/{first['id']}")
    assert view["state"] == "cancelled" and cancel["references"] == first["id"]


async def test_the_same_message_twice_is_one_incident(start_daemon: Any) -> None:
    """A CAP message resent answers as the first time (its sender and identifier are its key)."""
    d = await _daemon(start_daemon)
    first = await accepted(d, sample("Oasis_HomelandAlert.xml"))
    again = await accepted(d, sample("Oasis_HomelandAlert.xml"))
    assert again["id"] == first["id"]
    assert d.table_counts()["incidents"] == 1


async def test_the_same_message_from_another_issuer_conflicts(start_daemon: Any) -> None:
    """Another issuer cannot take a CAP message that is already stored."""
    d = await _daemon(start_daemon)
    body = sample("Oasis_ThunderstormWarning.xml").replace(b"<category>Met", b"<category>Fire")
    await accepted(d, body)
    resp = await post_xml(d, body, token=OTHER_TOKEN)
    assert resp.status == 409, await resp.text()
    assert d.table_counts()["incidents"] == 1


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        (lambda: sample("Oasis_EarthquakeReport.xml"), 422, "references"),
        (
            lambda: sample("Oasis_AmberAlert.xml").replace(b"Severe<", b"Dire<"),
            422,
            "info[1].severity",
        ),
        (lambda: sample("Oasis_HomelandAlert.xml").replace(b"Public", b"Private"), 422, "scope"),
        (lambda: sample("Oasis_HomelandAlert.xml").replace(b"Actual", b"Draft"), 422, "status"),
        (
            lambda: sample("Oasis_HomelandAlert.xml").replace(
                b"<sent>2003-04-02T14:39:01-05:00", b"<sent>2003-04-02T19:39:01Z"
            ),
            422,
            "sent",
        ),
        (lambda: BOMB, 422, "(body)"),
        (lambda: XXE, 422, "(body)"),
        (lambda: b"<alert><status>Actual</status></alert>", 422, "(body)"),
        (lambda: b"<not-xml", 422, "(body)"),
    ],
    ids=[
        "unknown original",
        "bad severity",
        "private",
        "draft",
        "Z time",
        "entity bomb",
        "external entity",
        "no namespace",
        "garbage",
    ],
)
async def test_bad_cap_is_refused_and_changes_nothing(
    start_daemon: Any, body: Any, status: int, field: str
) -> None:
    """Unknown references, schema errors, hostile or unmappable CAP: 4xx naming the element,
    and nothing is stored."""
    d = await _daemon(start_daemon)
    before = d.table_counts()
    resp = await post_xml(d, body())
    problem = await resp.json()
    assert resp.status == status, problem
    assert field in [e["field"] for e in problem.get("errors", [])], problem
    assert d.table_counts() == before


async def test_a_huge_document_is_413(start_daemon: Any) -> None:
    """A document past the body limit is refused before it is parsed."""
    d = await _daemon(start_daemon)
    body = sample("Oasis_HomelandAlert.xml").replace(
        b"</description>", b"x" * 400_000 + b"</description>"
    )
    resp = await post_xml(d, body)
    assert resp.status == 413


async def test_signatures_are_not_held_to_the_xmldsig_schema(start_daemon: Any) -> None:
    """Pelmorex's signature Id holds a space: valid against the CAP schema alone, so taken."""
    d = await _daemon(start_daemon)
    body = sample("PelmorexNAADS_WindWarning.xml")
    assert b'Id="NAADS Signature"' in body
    await taken(d, "PelmorexNAADS_WindWarning.xml")


async def test_without_a_schema_the_mapping_still_checks(start_daemon: Any) -> None:
    """With no [cap] schema, a sample is taken and a broken one still refused by the mapping."""
    d = await start_daemon()
    await accepted(d, sample("Oasis_HomelandAlert.xml"))
    resp = await post_xml(d, sample("Oasis_AmberAlert.xml").replace(b"Public", b"Private"))
    assert resp.status == 422
