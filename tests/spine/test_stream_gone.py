"""A client gone from the live event stream is no server error (issue 10, finding 11)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientSession, web
from structlog.testing import capture_logs

from alertcast.app import create_app
from alertcast.keys import EVENTS
from tests.conftest import TOKEN, incident, make_config, until
from tests.spine.daemon_proc import DaemonProcess, write_config


async def test_a_stream_reader_that_leaves_is_no_server_error(env: None, tmp_path: Path) -> None:
    """A client gone from the event stream ends it quietly at the next write: no unhandled
    error (served as in production: the test server would cancel the handler instead)."""
    app = create_app(make_config(tmp_path, [], accounts=[_file_account(tmp_path)]))
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    port, auth = runner.addresses[0][1], {"Authorization": f"Bearer {TOKEN}"}
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(
            f"GET /v1/stream HTTP/1.1\r\nHost: x\r\nAuthorization: {auth['Authorization']}"
            "\r\n\r\n".encode()
        )
        await reader.readuntil(b": connected")
        writer.close()
        await writer.wait_closed()
        with capture_logs() as logs:
            async with ClientSession(f"http://127.0.0.1:{port}", headers=auth) as http:
                await http.post("/v1/incidents", json=incident())  # its events meet the stream
            await until(lambda: app[EVENTS].subscribers == 0, 10, "the stream to end")
    finally:
        await runner.cleanup()
    assert [e for e in logs if e["event"] == "http.unhandled"] == []


def _file_account(tmp_path: Path) -> dict[str, Any]:
    return {"id": "file-0", "channel": "file", "path": str(tmp_path / "sent.jsonl")}


@pytest.mark.slow
async def test_closed_streams_are_debug_lines_and_no_500_in_metrics(tmp_path: Path) -> None:
    """Streams closed at every point (at connect, mid-burst, after events) under the real
    daemon: /metrics counts them 200, never 5xx, and each is one debug line, no error."""
    extra = FILE_ACCOUNT.format(tmp_path)
    config = write_config(tmp_path / "c.toml", tmp_path / "p.db", 0, [], extra=extra)
    daemon = DaemonProcess(config, 0, tmp_path / "daemon.log")
    await daemon.start()
    try:
        for read_events in (0, 1, 3):
            reader, writer = await asyncio.open_connection("127.0.0.1", daemon.port)
            writer.write(STREAM_REQUEST.format(token=TOKEN).encode())
            await reader.readuntil(b": connected")
            await daemon.request("POST", "/v1/incidents", json=incident())
            for _ in range(read_events):
                await reader.readuntil(b"\n\n")
            writer.close()
            await writer.wait_closed()
            await daemon.request("POST", "/v1/incidents", json=incident())  # meets the closed one
        async with ClientSession() as http, http.get(f"{daemon.url}/metrics") as resp:
            metrics = await resp.text()
        await until(lambda: daemon.log_path.read_text().count("stream.client_gone") >= 3, 20)
    finally:
        assert daemon.stop() == 0
    stream = [m for m in metrics.splitlines() if m.startswith(REQUESTS + '{route="/v1/stream"')]
    assert stream and all('status="200"' in line for line in stream), stream
    assert not [m for m in metrics.splitlines() if m.startswith(REQUESTS) and 'status="5' in m]
    lines = [json.loads(x) for x in daemon.log_path.read_text().splitlines() if x.startswith("{")]
    gone = [x for x in lines if x["event"] == "stream.client_gone"]
    assert len(gone) >= 3 and {x["level"] for x in gone} == {"debug"}
    assert [x for x in lines if x["level"] in ("error", "critical")] == []


REQUESTS = "alertcast_http_requests_total"
STREAM_REQUEST = "GET /v1/stream HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\r\n"
FILE_ACCOUNT = '\n[[accounts]]\nid = "file-0"\nchannel = "file"\npath = "{}/sent.jsonl"\n'
