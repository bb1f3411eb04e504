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
from tests.spine.daemon_proc import DaemonProcess, write_config

pytestmark = pytest.mark.slow

ACCOUNTS, INCIDENTS, CONCURRENCY = 10, 50, 16


def _states(db: Path) -> dict[str, int]:
    with sqlite3.connect(db) as conn:
        return dict(conn.execute("SELECT state, COUNT(*) FROM deliveries GROUP BY state"))


async def test_kill9_mid_fanout_loses_nothing(tmp_path: Path) -> None:
    """500 deliveries, SIGKILL after ~150 arrive, restart: all delivered, dupes <= in flight."""
    sink = WebhookSink(secret=HOOK_SECRET, latency_s=0.03)
    await sink.start()
    port, db = 0, tmp_path / "crash.db"  # any free port, before and after the restart
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
        deadline = time.monotonic() + 60
        while len(sink.received) < 150:
            assert time.monotonic() < deadline, daemon.log_path.read_text()[-2000:]
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
    # A send's slot is given back once its outcome is decided, before its record commits, so
    # the store may show up to twice the concurrency `sending`: those in flight and those
    # answered but not yet recorded (the recorder lets no more wait than the concurrency).
    assert duplicates <= at_kill.get("sending", 0) <= 2 * CONCURRENCY
    assert 0 < at_kill.get("delivered", 0) < len(ids)


async def test_kill9_mid_template_list_resumes_from_the_checkpoint(tmp_path: Path) -> None:
    """A WeChat template alert to 400 subscribers, SIGKILL after ~150, restart: everyone gets
    it, and repeats are bounded by one checkpoint window plus the sends in flight, not by
    everyone before the crash (the fake ignores client_msg_id, whose dedupe is UNCONFIRMED)."""
    from collections import Counter

    from alertcast.testing.fakes import FakeWechat, serve

    followers = [f"o-{n:04d}" for n in range(400)]
    fake = FakeWechat(
        {"wx-app": "wx-secret"},
        followers=followers,
        template_dedupe=False,
        template_latency_s=0.01,
    )
    port, db = 0, tmp_path / "crash.db"  # any free port, before and after the restart
    async with serve(fake) as url:
        touser = ", ".join(f'"{o}"' for o in followers)
        account = (
            '\n[[accounts]]\nid = "wechat-service"\nchannel = "wechat_oa"\n'
            f'base_url = "{url}"\napp_id = "wx-app"\napp_secret_env = "T_WX"\n'
            'account_type = "service"\nmode = "template"\nformat = "wechat_template"\n'
            f'template_id = "TPL-ALERT"\ntemplate_concurrency = 4\ntemplate_to = [{touser}]\n'
        )
        config = write_config(tmp_path / "c.toml", db, port, [], extra=account)
        daemon = DaemonProcess(config, port, tmp_path / "daemon.log", env={"T_WX": "wx-secret"})
        try:
            await daemon.start()
            status, answer = await daemon.request(
                "POST",
                "/v1/incidents",
                data=json.dumps(incident()),
                headers={"Content-Type": "application/json"},
            )
            assert status == 202, answer
            deadline = time.monotonic() + 60
            while len(fake.template_sent) < 150:
                assert time.monotonic() < deadline, daemon.log_path.read_text()[-2000:]
                await asyncio.sleep(0.002)
            daemon.kill9()
            at_kill = len(fake.template_sent)
            await daemon.start()
            deadline = time.monotonic() + 60
            while _states(db) != {"delivered": 1}:
                assert time.monotonic() < deadline, _states(db)
                await asyncio.sleep(0.1)
        finally:
            daemon.stop()
    assert at_kill < len(followers)  # the kill came in the middle of the list
    alerted = Counter(str(b["touser"]) for b in fake.template_sent)
    assert set(alerted) == set(followers)
    repeats = sum(alerted.values()) - len(followers)
    # Checkpoints come every 50 sends (or second); 4 are in flight at the kill.
    assert repeats <= 50 + 4, (repeats, at_kill)
