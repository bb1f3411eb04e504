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
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from alertcast.store import open_store
from alertcast.store.base import IncidentRow, NewDelivery, Store, Write
from tests.store.test_contract import _incident as _contract_incident
from tests.store.test_contract import store, store_url

__all__ = ["store", "store_url"]  # the contract suite's fixtures: SQLite and PostgreSQL


def _incident(n: int) -> IncidentRow:
    """The contract suite's incident, stored now (its own is dated ``n`` seconds ahead)."""
    return replace(_contract_incident(), id=f"inc_{n}", created_at=time.time())


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


@pytest.mark.parametrize(
    "behind",
    [
        pytest.param({}, id="3000-more-due"),
        pytest.param({"not_before": time.time() + 3600}, id="3000-due-in-an-hour"),
        pytest.param({"hold": True}, id="3000-held-for-approval"),
    ],
)
async def test_a_claims_work_does_not_grow_with_the_queue_behind_it(
    tmp_path: Path, behind: dict[str, Any]
) -> None:
    """Claiming 10 of 30 due deliveries takes about the same work with 3,000 more rows behind
    them in the store, whether those are due too, due only in an hour (retries backing off)
    or held for approval; so does the expiry check each claim runs (it reads only the
    expired). Before the due indexes a claim read and sorted every due row (about 30 times
    the work with 3,000 due); read along one index in its order it walked every row due later
    and every held one (the first version of this index)."""
    work = []
    for more in (0, 3000):
        store = open_store(f"sqlite:///{tmp_path / f'q{more}.db'}")
        await store.open()
        try:
            accounts = [f"acc{i}" for i in range(100)]
            await _queue(store, 30, accounts, expires_at=time.time() + 600)
            if more:
                await _queue(store, more, accounts, first=30, **behind)
            conn, count = _instructions(store)
            assert len(await _claim(store, limit=10, free={})) == 10
            conn.set_progress_handler(None, 0)
            work.append(count[0])
        finally:
            await store.close()
    alone, behind_them = work
    assert behind_them < 2 * alone, f"claim work {alone} (30 due) vs {behind_them} (3,030 rows)"
