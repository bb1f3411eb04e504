"""A client gone from the live event stream is no server error (issue 10, finding 11)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from aiohttp import ClientSession, web
from structlog.testing import capture_logs

from alertcast.app import create_app
from alertcast.keys import EVENTS
from tests.conftest import TOKEN, incident, make_config, until


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
