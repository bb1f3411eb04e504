"""Two ``alertcast serve`` processes on one PostgreSQL share an account's rate window (issue 15
item 1), as two machines of a province would: each its own interpreter, pool and clock reading,
the window counted only in the store."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from alertcast.testing.sink import WebhookSink
from tests.conftest import HOOK_SECRET, incident
from tests.spine.daemon_proc import DaemonProcess

pytestmark = pytest.mark.postgres

PER_SECOND = 3
SENDS = 12


def _config(path: Path, url: str, sink: str) -> Path:
    path.write_text(
        '[server]\nhost = "127.0.0.1"\nport = 0\n'
        f'[store]\nurl = "{url}"\n'
        "[dispatch]\nbackoff_initial_s = 0.05\nbackoff_max_s = 0.2\npoll_interval_s = 0.2\n"
        '[logging]\nformat = "json"\nlevel = "info"\n'
        '[[issuers]]\nname = "city"\ntoken_env = "T_TOKEN"\n'
        f'[[accounts]]\nid = "limited"\nchannel = "webhook"\nurl = "{sink}"\n'
        f'secret_env = "T_HOOK_SECRET"\nper_second = {PER_SECOND}\n',
        encoding="utf-8",
    )
    return path


def _most_in_one_second(sink: WebhookSink) -> int:
    times = sorted(r.at for r in sink.received)
    return max(sum(1 for u in times if t <= u < t + 1.0) for t in times)


@pytest.mark.timeout(180)
async def test_two_daemon_processes_never_exceed_the_window_together(
    tmp_path: Path, pg_url: str
) -> None:
    """Twelve alerts raised on two daemon processes at once, to an account of 3 a second: no
    second of the sink's holds more than 3, every alert arrives once, and both processes sent
    (each recorded some as delivered)."""
    sink = WebhookSink(secret=HOOK_SECRET)
    await sink.start()
    daemons = [
        DaemonProcess(_config(tmp_path / f"{n}.toml", pg_url, sink.url), 0, tmp_path / f"{n}.log")
        for n in ("a", "b")
    ]
    try:
        await asyncio.gather(*(d.start() for d in daemons))
        posted = await asyncio.gather(
            *(d.request("POST", "/v1/incidents", json=incident()) for d in daemons * (SENDS // 2))
        )
        assert [status for status, _ in posted] == [202] * SENDS, posted
        deadline = time.monotonic() + 60
        while len(sink.received) < SENDS:
            assert time.monotonic() < deadline, f"only {len(sink.received)} of {SENDS} arrived"
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)  # nothing more arrives
        assert len(sink.received) == SENDS
        assert sorted(sink.keys().values()) == [1] * SENDS
        assert _most_in_one_second(sink) <= PER_SECOND
        for d in daemons:
            status, channels = await d.request("GET", "/v1/channels")
            assert status == 200
            (row,) = [a for a in channels["accounts"] if a["id"] == "limited"]
            assert row["delivered"] > 0, f"{d.url} sent nothing"
    finally:
        for d in daemons:
            if d.proc is not None:
                d.stop()
        await sink.stop()
