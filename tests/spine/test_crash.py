"""kill -9 in the middle of a fan-out, then a restart: nothing accepted is lost."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from pathlib import Path

import pytest

from alertcast.testing.sink import WebhookSink
from tests.conftest import HOOK_SECRET, incident
from tests.spine.daemon_proc import DaemonProcess, free_port, write_config

pytestmark = pytest.mark.slow

ACCOUNTS, INCIDENTS, CONCURRENCY = 10, 50, 16


def _states(db: Path) -> dict[str, int]:
    with sqlite3.connect(db) as conn:
        return dict(conn.execute("SELECT state, COUNT(*) FROM deliveries GROUP BY state"))


async def test_kill9_mid_fanout_loses_nothing(tmp_path: Path) -> None:
    """500 deliveries, SIGKILL after ~150 arrive, restart: all delivered, dupes <= in flight."""
    sink = WebhookSink(secret=HOOK_SECRET, latency_s=0.03)
    await sink.start()
    port, db = free_port(), tmp_path / "crash.db"
    hooks = [sink.url.replace("/hook", f"/hook/{i}") for i in range(ACCOUNTS)]
    config = write_config(tmp_path / "c.toml", db, port, hooks, concurrency=CONCURRENCY)
    daemon = DaemonProcess(config, port, tmp_path / "daemon.log")
    try:
        await daemon.start()
        ids = []
        for n in range(INCIDENTS):
            status, answer = await daemon.request(
                "POST",
                "/v1/incidents",
                data=json.dumps(incident(headline=f"第{n}号")),
                headers={"Content-Type": "application/json"},
            )
            assert status == 202, answer
            ids += [d["id"] for d in answer["deliveries"]]
        while len(sink.received) < 150:
            await asyncio.sleep(0.005)
        daemon.kill9()
        at_kill = _states(db)
        await daemon.start()
        deadline = time.monotonic() + 60
        while _states(db).get("delivered", 0) < len(ids):
            assert time.monotonic() < deadline, _states(db)
            await asyncio.sleep(0.1)
    finally:
        daemon.stop()
        await sink.stop()
    assert len(ids) == ACCOUNTS * INCIDENTS
    assert _states(db) == {"delivered": len(ids)}
    assert sink.delivered_keys() == set(ids)
    duplicates = sum(n - 1 for n in sink.keys().values() if n > 1)
    assert duplicates <= at_kill.get("sending", 0) <= CONCURRENCY
    assert 0 < at_kill.get("delivered", 0) < len(ids)
