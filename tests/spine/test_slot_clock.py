"""A running daemon reads its limit slots' instants on its store's clock, not its own: the
rate window's and WeChat's daily mass send's alike (issue 15 item 1)."""

from __future__ import annotations

import time
from typing import Any

import asyncpg
import pytest

from alertcast.keys import STORE
from alertcast.store.sqlstore import SQLStore
from alertcast.testing.fakes import FakeWechat
from tests.conftest import incident
from tests.spine.test_shared_limits import limited, subscription, wechat

__all__ = ["wechat"]  # the fake platform's fixture, shared with test_shared_limits

AHEAD_S = 3600.0


class HourAhead:
    """The store's clock as a database an hour ahead of this machine would give it."""

    def now(self) -> float:
        return time.time() + AHEAD_S

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None


async def slot_starts(pg_url: str, schema: str) -> dict[str, float]:
    """Per account key, when its slot started, as the store holds it."""
    conn = await asyncpg.connect(pg_url.split("?")[0], server_settings={"search_path": schema})
    try:
        rows = await conn.fetch("SELECT account, started_at FROM limit_slots")
    finally:
        await conn.close()
    return {str(r["account"]): float(r["started_at"]) for r in rows}


@pytest.mark.postgres
async def test_a_daemon_stamps_its_slots_on_the_stores_clock(
    start_daemon: Any, wechat: tuple[FakeWechat, str], pg_url: str
) -> None:
    """A store whose clock is an hour ahead of the daemon's: an alert to a webhook of 5 a
    minute and to a WeChat subscription account is delivered to both, and both slots (the
    window's, the day's mass send) start an hour ahead."""
    _, url = wechat
    accounts = [limited(per_minute=5), subscription(url)]
    d = await start_daemon(hooks=0, accounts=accounts, store={"url": pg_url})
    store = d.client.app[STORE]
    assert isinstance(store, SQLStore)
    await store.shared_clock.stop()
    store.shared_clock = HourAhead()
    answer = await (await d.post(incident())).json()
    assert (await d.settled(answer["id"]))["counts"] == {"delivered": 2}
    starts = await slot_starts(pg_url, pg_url.split("schema=")[1])
    assert sorted(starts) == ["limited", "wechat_oa:wx-app"]
    for key, started_at in starts.items():
        assert abs(started_at - time.time() - AHEAD_S) < 60, (key, started_at - time.time())
