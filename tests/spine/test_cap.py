"""CAP 1.2 intake over HTTP, with the OASIS examples and hostile XML."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import shared

BOMB = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2"><identifier>&lol3;</identifier></alert>"""


def _as_alert(name: str) -> bytes:
    return (
        shared("cap", name)
        .read_bytes()
        .replace(b"<msgType>Update</msgType>", b"<msgType>Alert</msgType>")
    )


async def _post_xml(d: Any, body: bytes) -> Any:
    return await d.client.post(
        "/v1/incidents",
        data=body,
        headers={
            "Authorization": "Bearer tok-city-office-7f3a9c2e51",
            "Content-Type": "application/cap+xml",
        },
    )


async def test_oasis_earthquake_becomes_an_earthquake(start_daemon: Any) -> None:
    """The spec's earthquake example maps magnitude, depth in km and the epicentre."""
    d = await start_daemon()
    resp = await _post_xml(d, _as_alert("Oasis_EarthquakeReport.xml"))
    answer = await resp.json()
    assert resp.status == 202, answer
    _, view = await d.get(f"/v1/incidents/{answer['id']}")
    details = view["incident"]["details"]
    assert view["kind"] == "earthquake" and details["magnitude"] == 3.4
    assert details["magnitude_type"] == "Ml" and details["depth_km"] == 19.0
    assert (details["latitude"], details["longitude"]) == (32.9525, -115.5527)
    assert view["incident"]["occurred_at"] == "2003-06-11T20:56:00-07:00"


async def test_thunderstorm_example_is_weather(start_daemon: Any) -> None:
    """A Met-category warning becomes a weather incident with its expiry."""
    d = await start_daemon()
    resp = await _post_xml(d, shared("cap", "Oasis_ThunderstormWarning.xml").read_bytes())
    answer = await resp.json()
    assert resp.status == 202, answer
    _, view = await d.get(f"/v1/incidents/{answer['id']}")
    assert view["kind"] == "weather" and "expires_at" in view["incident"]


@pytest.mark.parametrize(
    ("body", "mentions"),
    [
        (BOMB, "XML"),
        (b"<alert><status>Actual</status></alert>", "root element"),
        (b"<not-xml", "XML"),
        (None, "msgType Update"),
    ],
    ids=["entity bomb", "no namespace", "garbage", "update"],
)
async def test_bad_cap_is_refused_and_changes_nothing(
    start_daemon: Any, body: bytes | None, mentions: str
) -> None:
    """Hostile or unmappable CAP is 422 with the reason and stores nothing."""
    d = await start_daemon()
    before = d.table_counts()
    resp = await _post_xml(
        d, body if body is not None else shared("cap", "Oasis_EarthquakeReport.xml").read_bytes()
    )
    problem = await resp.json()
    assert resp.status == 422, problem
    assert mentions in problem["detail"]
    assert d.table_counts() == before
