"""The live stream: event ids and a retry hint, Last-Event-ID replay, gaps, scope, bad ids."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from alertcast.app import create_app
from tests.conftest import OTHER_TOKEN, TOKEN, incident, make_config

Event = dict[str, Any]
FIRE = {
    "kind": "fire",
    "severity": "moderate",
    "headline": "锦江区商铺火灾",
    "area": {"name": "成都市锦江区", "codes": ["510104"]},
    "occurred_at": "2026-12-01T10:00:00+08:00",
    "details": {"address": "春熙路1号", "level": 2},
}


@pytest.fixture
async def base(env: None, tmp_path: Path) -> AsyncIterator[str]:
    """A running app on 127.0.0.1 (served as in production), one file account."""
    account = {"id": "file-0", "channel": "file", "path": str(tmp_path / "sent.jsonl")}
    runner = web.AppRunner(create_app(make_config(tmp_path, [], accounts=[account])))
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    await runner.cleanup()


async def _post(base: str, body: dict[str, Any], token: str = TOKEN) -> str:
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{base}/v1/incidents", json=body, headers=_auth(token)) as resp,
    ):
        answer = await resp.json()
        assert resp.status == 202, answer
        return str(answer["id"])


def _auth(token: str = TOKEN, **more: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", **more}


async def _read(resp: aiohttp.ClientResponse, until: str | None = None, n: int = 1) -> list[Event]:
    """Events as parsed fields (``id``, ``event``, ``retry``, ``data`` decoded), ``n`` of them
    or up to the first ``until`` event."""
    out: list[Event] = []
    fields: Event = {}
    while len(out) < n or (until is not None and not any(e["event"] == until for e in out)):
        line = (await asyncio.wait_for(resp.content.readline(), 10)).decode().rstrip("\n")
        if line:
            name, _, value = line.partition(": ")
            fields[name] = value
            continue
        if "data" in fields:
            out.append({**fields, "data": json.loads(fields["data"])})
        fields = {}
    return out


async def _stream(http: aiohttp.ClientSession, base: str, **headers: str) -> Any:
    resp = await http.get(f"{base}/v1/stream", headers=_auth(**headers))
    assert resp.status == 200
    head = await resp.content.readuntil(b": connected\n\n")
    assert b"retry: 3000\n" in head
    return resp


async def test_every_event_has_a_rising_id_and_the_stream_a_retry(base: str) -> None:
    """The stream opens with retry:; every event carries an id one above the one before."""
    async with aiohttp.ClientSession() as http:
        resp = await _stream(http, base)
        incident_id = await _post(base, incident())
        events = await _read(resp, n=3)
        resp.close()
    ids = [int(e["id"]) for e in events]
    assert ids == sorted(ids) and len(set(ids)) == 3
    assert events[0]["event"] == "incident" and events[0]["data"]["id"] == incident_id


async def test_last_event_id_replays_what_was_missed(base: str) -> None:
    """A reconnect with Last-Event-ID (header or query) gets every later event, none before."""
    async with aiohttp.ClientSession() as http:
        resp = await _stream(http, base)
        first = await _post(base, incident())
        seen = (await _read(resp))[0]
        resp.close()
        assert seen["data"]["id"] == first
        second = await _post(base, incident(headline="余震"))  # while nobody listens
        for how in ({"Last-Event-ID": seen["id"]}, {}):
            url = f"{base}/v1/stream" + ("" if how else f"?last_event_id={seen['id']}")
            async with http.get(url, headers=_auth(**how)) as again:
                replayed = await _read(again, until="incident")
            assert min(int(e["id"]) for e in replayed) == int(seen["id"]) + 1
            assert replayed[-1]["data"]["id"] == second  # after the first's deliveries


async def test_an_id_no_longer_held_gets_a_gap(base: str) -> None:
    """An id from before this process (or any unknown one) gets a gap, then live events."""
    headers = _auth(**{"Last-Event-ID": "7"})
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{base}/v1/stream", headers=headers) as resp,
    ):
        gap = (await _read(resp))[0]
        incident_id = await _post(base, incident())
        live = (await _read(resp))[0]
    assert gap["event"] == "gap" and "re-read" in gap["data"]["detail"]
    assert live["data"]["id"] == incident_id and int(live["id"]) > int(gap["id"])


async def test_a_bad_last_event_id_is_a_400_naming_it(base: str) -> None:
    """A Last-Event-ID that is no id of ours is refused, naming the header."""
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{base}/v1/stream", headers=_auth(**{"Last-Event-ID": "abc"})) as resp,
    ):
        body = await resp.json(content_type=None)
    assert resp.status == 400 and body["errors"][0]["field"] == "Last-Event-ID"


async def test_a_replay_is_scoped_like_the_live_stream(base: str) -> None:
    """A fire-only issuer's replay leaves out the earthquake it may not read."""
    async with aiohttp.ClientSession() as http:
        resp = await _stream(http, base, token=OTHER_TOKEN)
        await _post(base, FIRE, OTHER_TOKEN)
        mark = (await _read(resp))[0]
        resp.close()
        quake = await _post(base, incident())  # not this issuer's to read
        fire = await _post(base, FIRE, OTHER_TOKEN)
        headers = _auth(OTHER_TOKEN, **{"Last-Event-ID": mark["id"]})
        async with http.get(f"{base}/v1/stream", headers=headers) as again:
            events = await _read(again, until="incident")
    about = {e["data"].get("incident_id", e["data"].get("id")) for e in events}
    assert fire in about and quake not in about
