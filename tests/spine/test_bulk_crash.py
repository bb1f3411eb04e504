"""kill -9 of a daemon sending a per-recipient account's delivery, mid-expansion and mid-send,
then a restart: every recipient delivered, repeats only among the sends in flight at the kill."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from alertcast.store import open_store
from alertcast.store.base import Recipient
from alertcast.testing.sink import WebhookSink
from tests.conftest import HOOK_SECRET, incident
from tests.spine.daemon_proc import DaemonProcess

pytestmark = pytest.mark.slow

N, WIDTH = 10_001, 32  # three parts (the expansion writes 5,000 a part); the account's concurrency


class Sends:
    """The recipient_sends table read beside the daemon (the store admits one SQLite process)."""

    def __init__(self, url: str) -> None:
        self.url = url

    async def rows(self, query: str) -> list[Any]:
        if self.url.startswith("sqlite"):
            with sqlite3.connect(self.url.removeprefix("sqlite:///")) as conn:
                return conn.execute(query).fetchall()
        import asyncpg

        base, schema = self.url.split("?schema=")
        conn = await asyncpg.connect(base, server_settings={"search_path": schema})
        try:
            return [tuple(r) for r in await conn.fetch(query)]
        finally:
            await conn.close()

    async def count(self) -> int:
        try:
            return int((await self.rows("SELECT COUNT(*) FROM recipient_sends"))[0][0])
        except Exception:  # not migrated yet
            return 0

    async def delivered(self) -> set[str]:
        q = "SELECT recipient_id FROM recipient_sends WHERE state = 'delivered'"
        return {str(r[0]) for r in await self.rows(q)}

    async def attempts(self) -> dict[str, int]:
        q = "SELECT recipient_id, attempts FROM recipient_sends"
        return {str(r[0]): int(r[1]) for r in await self.rows(q)}

    async def progress(self) -> dict[str, Any]:
        (row,) = await self.rows("SELECT progress FROM deliveries WHERE account = 'people'")
        return dict(json.loads(row[0])["recipients"]) if row[0] else {}


def _config(tmp_path: Path, url: str, sink: str) -> Path:
    path = tmp_path / "bulk.toml"
    path.write_text(
        '[server]\nhost = "127.0.0.1"\nport = 0\n'
        f'[store]\nurl = "{url}"\n'
        "[dispatch]\nconcurrency = 64\nbackoff_initial_s = 0.05\nbackoff_max_s = 0.2\n"
        "poll_interval_s = 0.2\nlease_s = 5\n"
        '[logging]\nformat = "json"\nlevel = "info"\n'
        '[[issuers]]\nname = "city"\ntoken_env = "T_TOKEN"\n'
        f'[[accounts]]\nid = "people"\nchannel = "webhook"\nurl = "{sink}"\n'
        f'secret_env = "T_HOOK_SECRET"\nper_recipient = true\nconcurrency = {WIDTH}\n',
        encoding="utf-8",
    )
    return path


async def _load(url: str) -> None:
    store = open_store(url)
    await store.open()
    try:
        rows = ((i + 2, Recipient(f"p-{i:06d}", "510104", {})) for i in range(N))
        await store.import_recipients("people", rows)
    finally:
        await store.close()


async def _until(check: Any, what: str, timeout_s: float = 90.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not await check():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.002)


@pytest.mark.timeout(300)
@pytest.mark.parametrize("when", ["expansion", "send"])
async def test_kill9_mid_bulk_delivery_resumes_without_loss(
    tmp_path: Path, engine: str, when: str
) -> None:
    """SIGKILL while the 10,001 sends are still being written (expansion) or half sent; the
    restarted daemon delivers everyone; a recipient gets one request per recorded attempt,
    plus one if its send was in flight at the kill (reached the sink, not recorded)."""
    sink = WebhookSink(secret=HOOK_SECRET)
    await sink.start()
    await _load(engine)
    sends = Sends(engine)
    daemon = DaemonProcess(_config(tmp_path, engine, sink.url), 0, tmp_path / "daemon.log")
    try:
        await daemon.start()
        body = json.dumps(incident(area={"name": "成都市锦江区", "codes": ["510104"]}))
        status, answer = await daemon.request(
            "POST", "/v1/incidents", data=body, headers={"Content-Type": "application/json"}
        )
        assert status == 202, answer

        async def mid_expansion() -> bool:
            return 0 < await sends.count() < N

        async def half_sent() -> bool:
            return len(sink.received) >= N // 2

        await _until(mid_expansion if when == "expansion" else half_sent, when)
        daemon.kill9()
        # What the killed process wrote before it died is still in the sockets: let the sink
        # read it, so that "in flight at the kill" counts every request that left.
        await asyncio.sleep(0.5)
        seen = {r.key.rsplit(":", 1)[1] for r in sink.received}
        at_kill = await sends.count(), await sends.delivered(), await sends.progress()
        await daemon.start()

        async def everyone() -> bool:
            return len(await sends.delivered()) == N

        await _until(everyone, "everyone delivered", 200)
        attempts = await sends.attempts()
    finally:
        daemon.stop()
        await sink.stop()
    count, recorded, progress = at_kill
    if when == "expansion":
        assert 0 < count < N and progress.get("expanded") is not True, (count, progress)
    else:
        assert count == N and progress["expanded"] is True
    keys = Counter(r.key.rsplit(":", 1)[1] for r in sink.received)
    assert len(keys) == N and {r.key for r in sink.received} == sink.delivered_keys()
    in_flight = seen - recorded  # reached the sink, not recorded delivered when killed
    assert len(in_flight) <= WIDTH + 2 * 256  # the sends in flight and two batches unrecorded
    over = {rid: n for rid, n in keys.items() if n > attempts[rid] + (rid in in_flight)}
    assert over == {}
    repeats = sum(n - 1 for n in keys.values())
    again = sum(1 for rid, n in keys.items() if n > 1 and rid in in_flight)
    retried = sum(1 for n in attempts.values() if n > 1)  # a timeout under load, say
    print(f"\n{when}: {len(in_flight)} in flight at the kill, {again} of them sent again; ")
    print(f"{repeats} repeats in all, {retried} recipients retried")
