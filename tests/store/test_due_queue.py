"""The due queue: a claim reads what it takes, not the whole queue behind it.

A claim walks the due deliveries in the order it sends them (``deliveries_due``: priority
first, then the oldest due) and stops once it has what fits; it reads deeper only when
accounts at their limit fill the first page. Expiry reads only the expired
(``deliveries_expiring``). On SQLite the work is counted in the engine's own instructions (its
progress handler), so the test measures work, not time.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from alertcast.store import open_store
from alertcast.store.base import IncidentRow, NewDelivery, Store, Write
from tests.conftest import fresh_schema


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    if request.param == "sqlite":
        s = open_store(f"sqlite:///{tmp_path / 'due.db'}")
        await s.open()
        yield s
        await s.close()
        return
    async with fresh_schema() as url:
        s = open_store(url)
        await s.open()
        yield s
        await s.close()


def _incident(n: int) -> IncidentRow:
    return IncidentRow(
        id=f"inc_{n}",
        kind="earthquake",
        status="actual",
        severity="severe",
        msg_type="alert",
        state="active",
        issuer="city",
        source="api",
        body={"headline": f"h{n}"},
        created_at=time.time(),
    )


async def _queue(store: Store, n: int, accounts: list[str], first: int = 0, **kw: Any) -> None:
    """``n`` due deliveries in one incident, the accounts taken in turn, oldest first."""
    deliveries = [
        NewDelivery(
            id=f"d_{first + i:05d}",
            account=accounts[i % len(accounts)],
            channel="webhook",
            payload={"n": i},
            idempotency_key=f"d_{first + i}",
            max_attempts=3,
            **kw,
        )
        for i in range(n)
    ]
    await store.apply(Write(incident=_incident(first), deliveries=deliveries))


async def _claim(store: Store, limit: int, free: dict[str, int]) -> list[str]:
    claims = await store.claim_due(
        now=time.time() + 1, limit=limit, lease_s=30, worker="w1", free=free
    )
    return sorted(c.delivery.account for c in claims)


async def test_a_claim_finds_room_behind_a_page_of_full_accounts(store: Store) -> None:
    """The first 200 due rows belong to an account with room for one: the claim still finds
    the other account's delivery behind them, and takes no more of the full one's."""
    await _queue(store, 200, ["full"])
    await _queue(store, 1, ["other"], first=200)
    assert await _claim(store, limit=5, free={"full": 1, "other": 5}) == ["full", "other"]
    assert await _claim(store, limit=5, free={"full": 0, "other": 5}) == []


async def test_a_claim_takes_in_priority_order_then_the_oldest(store: Store) -> None:
    """Read along the due index, a claim still takes corrections first, then the oldest."""
    await _queue(store, 2, ["a"])
    await _queue(store, 48, ["a"], first=2)
    await _queue(store, 3, ["a"], first=50, priority=1)
    claims = await store.claim_due(now=time.time() + 1, limit=5, lease_s=30, worker="w", free={})
    assert sorted(c.delivery.id for c in claims) == [
        "d_00000",
        "d_00001",
        "d_00050",
        "d_00051",
        "d_00052",
    ]


def _instructions(store: Store) -> tuple[sqlite3.Connection, list[int]]:
    """The SQLite writer's connection, and a counter of its VM instructions (by hundreds)."""
    conn = store._db._w.conn  # type: ignore[attr-defined]
    count = [0]

    def tick() -> int:
        count[0] += 1
        return 0

    conn.set_progress_handler(tick, 100)
    return conn, count


async def test_a_claims_work_does_not_grow_with_the_queue_behind_it(tmp_path: Path) -> None:
    """Claiming 10 of 30 due deliveries and claiming 10 of ``queued`` take about the same
    work, as does the expiry check each claim runs (it reads only the expired). Before the
    due indexes a claim read and sorted every due row: about 30 times the work here."""
    work, queued = [], 3000
    for n in (30, queued):
        store = open_store(f"sqlite:///{tmp_path / f'q{n}.db'}")
        await store.open()
        try:
            await _queue(store, n, [f"acc{i}" for i in range(100)], expires_at=time.time() + 600)
            conn, count = _instructions(store)
            assert len(await _claim(store, limit=10, free={})) == 10
            conn.set_progress_handler(None, 0)
            work.append(count[0])
        finally:
            await store.close()
    small, large = work
    assert large < 2 * small, f"claim work {small} (30 due) vs {large} ({queued} due)"
