"""POST /v1/feeds/{name}/events against a real daemon: the same lifecycle as polling, behind
the issuer token, bound to the feed's own token when it names one."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.conftest import TOKEN, Daemon

from ._make import cenc_bytes
from .feed_server import real_features, revised

RELAY_TOKEN = "tok-usgs-relay-9a41c07e3d"
ISSUERS = [
    {"name": "city", "token_env": "T_TOKEN", "can_approve": True},
    {"name": "fire", "token_env": "T_OTHER_TOKEN", "kinds": ["fire"]},
    {"name": "relay", "token_env": "T_RELAY_TOKEN", "kinds": ["earthquake"]},
]
FEEDS = [
    {"name": "pushed", "type": "usgs", "min_magnitude": 5.0, "max_age_s": None},
    {
        "name": "relayed",
        "type": "fdsn",
        "min_magnitude": 5.0,
        "token_env": "T_RELAY_TOKEN",
        "max_age_s": None,
    },
    {"name": "cenc-push", "type": "cenc", "min_magnitude": 3.0, "max_age_s": None},
]


@pytest.fixture
async def daemon(start_daemon: Any, monkeypatch: pytest.MonkeyPatch) -> Daemon:
    monkeypatch.setenv("T_RELAY_TOKEN", RELAY_TOKEN)
    d: Daemon = await start_daemon(feeds=FEEDS, issuers=ISSUERS, approval={"severities": []})
    return d


async def push(
    d: Daemon, feed: str, body: Any, *, token: str | None = TOKEN, ctype: str = "application/json"
) -> tuple[int, dict[str, Any]]:
    headers = {"Content-Type": ctype}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    resp = await d.client.post(f"/v1/feeds/{feed}/events", data=data, headers=headers)
    return resp.status, await resp.json()


def afghanistan(**props: Any) -> dict[str, Any]:
    return revised(real_features("significant_month.geojson")["us6000len8"], **props)


async def test_push_raises_then_updates_then_ignores(daemon: Daemon) -> None:
    """A pushed feature raises; a changed revision updates; the same one again changes nothing."""
    status, first = await push(daemon, "pushed", afghanistan())
    assert status == 202, first
    (raised,) = first["decisions"]
    assert (raised["action"], raised["event_id"]) == ("raise", "us6000len8")
    view = await daemon.settled(raised["incident_id"])
    assert view["issuer"] == "feed:pushed" and view["incident"]["details"]["magnitude"] == 6.3
    later = afghanistan(mag=6.4, updated=afghanistan()["properties"]["updated"] + 60_000)
    status, second = await push(daemon, "pushed", later)
    (update,) = second["decisions"]
    assert (status, update["action"], update["changed"]) == (202, "update", ["magnitude"])
    assert update["incident_id"] == raised["incident_id"] != update["message_id"]
    status, third = await push(daemon, "pushed", later)
    assert (status, third["decisions"][0]["action"]) == (200, "ignore")
    _, feeds = await daemon.get("/v1/feeds")
    pushed = next(f for f in feeds["feeds"] if f["name"] == "pushed")
    assert (pushed["polling"], pushed["pushed"], pushed["events_seen"]) == (False, 3, 3)


async def test_push_cenc_row(daemon: Daemon) -> None:
    """A cenc feed takes one quick-report row."""
    row = json.loads(cenc_bytes("cenc_google.json"))[1]
    status, answer = await push(daemon, "cenc-push", row, ctype="application/geo+json")
    assert (status, answer["decisions"][0]["action"]) == (202, "raise")


@pytest.mark.parametrize(
    ("feed", "body", "token", "ctype", "status", "detail"),
    [
        ("pushed", b"{", TOKEN, "application/json", 400, "not JSON"),
        ("pushed", b'{"type":"FeatureCollection"}', TOKEN, "application/json", 400, "Feature"),
        ("pushed", b"{}", TOKEN, "text/plain", 415, "application/json"),
        ("nosuch", b"{}", TOKEN, "application/json", 404, "no feed nosuch"),
        ("pushed", b"{}", None, "application/json", 401, "missing bearer token"),
        ("pushed", b"{}", "tok-fire-brigade-0b8d44a1c9", "application/json", 403, "earthquakes"),
        ("relayed", b"{}", TOKEN, "application/json", 403, "its own token"),
    ],
)
async def test_push_refused(
    daemon: Daemon,
    feed: str,
    body: bytes,
    token: str | None,
    ctype: str,
    status: int,
    detail: str,
) -> None:
    """Bad bodies, media types, feeds and credentials get a problem answer and change nothing."""
    got, answer = await push(daemon, feed, body, token=token, ctype=ctype)
    assert (got, detail in answer["detail"]) == (status, True), answer
    _, listed = await daemon.get("/v1/incidents")
    assert listed["incidents"] == []


async def test_feed_bound_to_its_token(daemon: Daemon) -> None:
    """A feed naming token_env takes pushes with exactly that token."""
    status, answer = await push(daemon, "relayed", afghanistan(), token=RELAY_TOKEN)
    assert (status, answer["decisions"][0]["action"]) == (202, "raise")
    assert RELAY_TOKEN not in json.dumps(await daemon.get("/v1/feeds"))
