"""Operator views: the live stream, the render preview, channel health, metrics, CLI render."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from typing import Any

from tests.conftest import ROOT, TOKEN, incident

AUTH = {"Authorization": f"Bearer {TOKEN}"}


async def test_stream_shows_each_delivery_settle(start_daemon: Any) -> None:
    """GET /v1/stream sends server-sent events for the incident and each delivery state."""
    d = await start_daemon(hooks=2)
    resp = await d.client.get("/v1/stream", headers=AUTH)
    assert resp.headers["Content-Type"] == "text/event-stream"
    await resp.content.readline()  # ": connected"
    answer = await (await d.post(incident())).json()
    events: list[dict[str, Any]] = []
    async with asyncio.timeout(30):  # ends as soon as both are delivered
        while sum(e.get("state") == "delivered" for e in events) < 2:
            line = (await resp.content.readline()).decode()
            if line.startswith("data: "):
                events.append(json.loads(line[6:]))
    resp.close()
    assert events[0] == {
        "type": "incident",
        "id": answer["id"],
        "state": "active",
        "msg_type": "alert",
        "references": None,
    }
    states = [(e["account"], e["state"]) for e in events if e["type"] == "delivery"]
    assert ("hook-0", "sending") in states and ("hook-0", "delivered") in states


async def test_render_preview_sends_nothing(start_daemon: Any) -> None:
    """POST /v1/render shows each account's payload and why it was chosen; stores nothing."""
    drill = {"id": "drill", "channel": "console", "exercise": True}
    d = await start_daemon(accounts=[drill])
    before = d.table_counts()
    resp = await d.client.post("/v1/render", json=incident(), headers=AUTH)
    preview = await resp.json()
    assert resp.status == 200
    by_id = {a["account"]: a for a in preview["accounts"]}
    assert by_id["hook-0"]["chosen"] and by_id["hook-0"]["payload"]["format"] == "webhook"
    assert not by_id["drill"]["chosen"] and "status" in by_id["drill"]["why"]
    assert d.table_counts() == before and d.sink.received == []


async def test_channels_and_metrics(start_daemon: Any) -> None:
    """Channel health counts successes; /metrics exposes attempts by outcome."""
    d = await start_daemon()
    answer = await (await d.post(incident())).json()
    await d.settled(answer["id"])
    _, channels = await d.get("/v1/channels")
    (account,) = channels["accounts"]
    assert account["healthy"] and account["delivered"] == 1 and account["silent_for_s"] >= 0
    text = await (await d.client.get("/metrics")).text()
    assert 'alertcast_delivery_attempts_total{channel="webhook",outcome="delivered"}' in text
    assert 'alertcast_http_requests_total{route="/v1/incidents",status="202"}' in text


def test_cli_render_previews_an_incident_file(tmp_path: Any) -> None:
    """alertcast render FILE prints each payload with its length and budget."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "alertcast.cli",
            "render",
            "config/samples/earthquake.json",
            "--account",
            "weibo-sichuan",
            "--config",
            "config/example.toml",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    (entry,) = json.loads(result.stdout)["accounts"]
    assert entry["chosen"] and entry["payload"]["format"] == "weibo"
    lengths = entry["payload"]["lengths"]["text"]
    assert lengths["used"] <= lengths["limit"] == 140


async def test_shutdown_ends_open_streams(tmp_path: Any) -> None:
    """SIGTERM with a live stream open: the stream ends with a shutdown event, no 60 s hold."""
    import time

    import aiohttp

    from tests.spine.daemon_proc import DaemonProcess, write_config

    config = write_config(tmp_path / "c.toml", tmp_path / "s.db", 0, [])  # any free port
    daemon = DaemonProcess(config, 0, tmp_path / "d.log")
    await daemon.start()
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{daemon.url}/v1/stream", headers=AUTH) as resp,
    ):
        await resp.content.readline()
        started = time.monotonic()
        assert daemon.proc is not None
        daemon.proc.terminate()
        body = (await resp.content.read()).decode()
    assert daemon.stop() == 0
    assert "event: shutdown" in body and time.monotonic() - started < 10


def test_render_key_groups_accounts_that_render_alike() -> None:
    """Same format, language and render options share a payload; any difference does not."""
    from alertcast.config import AccountConfig
    from alertcast.preview import render_key

    def hook(i: int, **kw: Any) -> AccountConfig:
        return AccountConfig(id=f"h{i}", channel="webhook", url="http://x/", secret_env="S", **kw)

    assert render_key(hook(1)) == render_key(hook(2))
    assert render_key(hook(1)) != render_key(hook(2, language="en"))
    assert render_key(hook(1)) != render_key(hook(2, format="text"))
    assert render_key(hook(1)) != render_key(hook(2, sms_signature="【应急】"))
