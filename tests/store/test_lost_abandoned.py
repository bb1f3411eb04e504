"""A send given up on after it may have reached the platform is the lease sweep's, never a lost
claim: ``LostClaims`` keeps it out of every release until the sweep has taken it (PostgreSQL,
the only engine whose claims can be lost)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import replace

import pytest

from alertcast.lost import LostClaims
from alertcast.store import open_store
from alertcast.store.base import Store
from tests.conftest import fresh_schema
from tests.store.test_contract import _delivery, _incident, create

pytestmark = pytest.mark.postgres

LEASE_S = 120.0


@pytest.fixture
async def store() -> AsyncIterator[Store]:
    async with fresh_schema() as url:
        s = open_store(url)
        await s.open()
        yield s
        await s.close()


async def test_an_abandoned_last_attempt_past_its_lease_is_left_to_the_sweep(store: Store) -> None:
    """Abandoned on its last attempt, its lease run out, a check due before the next lease
    sweep leaves it claimed; the sweep ends it dead (not sent again)."""
    bound = store.claim_bound_s
    assert bound is not None
    await create(store, _incident(), [replace(_delivery(1), max_attempts=1)])
    t0 = time.time()
    (claim,) = await store.claim_due(now=t0, limit=1, lease_s=LEASE_S, worker="w1", free={})
    clock = [t0]
    lost = LostClaims(store, "w1", lease_s=LEASE_S, clock=lambda: clock[0])
    lost.abandoned(claim.delivery.id)  # its outcome could not be recorded: it may have gone out
    lost.unanswered()  # a claiming call failed meanwhile: a check is due two bounds later
    clock[0] = t0 + LEASE_S + bound + 2  # past the lease and the hold; no lease sweep yet
    assert lost.due_in() == 0
    assert await lost.release(list) == 0
    row = await store.get_delivery("d_1")
    assert row is not None and (row.state.value, row.attempts) == ("sending", 1)
    assert await store.recover(now=clock[0], everything=False) == 1  # the sweep
    assert await lost.release(list, swept_at=clock[0]) == 0
    row = await store.get_delivery("d_1")
    assert row is not None and row.state.value == "dead"  # interrupted on its last attempt
