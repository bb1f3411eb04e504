"""``alertcast.bulk.lost.LostParts`` on a real PostgreSQL store: which failed takes schedule the
check for parts leased and never received, and which parts the check leaves alone."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from functools import partial

import pytest

from alertcast.bulk.lost import LostParts
from alertcast.store import open_store
from alertcast.store.base import RecipientPart, Store
from tests.store.test_recipients import ACCOUNT, _parent, _people

pytestmark = pytest.mark.postgres


@pytest.fixture
async def store(pg_url: str) -> AsyncIterator[Store]:
    s = open_store(pg_url)
    await s.open()
    yield s
    await s.close()


async def _parts(store: Store, n: int) -> str:
    """A parent with ``n`` parts of four recipients each."""
    await store.import_recipients(ACCOUNT, iter(_people(4 * n)))
    parent = await _parent(store)
    for _ in range(n):
        await store.expand_recipients(parent, ACCOUNT, [], limit=4, now=time.time())
    return parent


async def test_a_take_cancelled_after_its_commit_is_given_back_at_the_check(store: Store) -> None:
    """The take commits, then its caller is cancelled (a sweep torn down while the store was
    away): the check is scheduled all the same, and, once due, the part goes back."""
    parent = await _parts(store, 2)
    lost = LostParts(store, "w-1")
    take = partial(store.take_recipient_part, parent, worker="w-1", now=time.time(), lease_s=60)

    async def committed_then_cancelled() -> RecipientPart | None:
        await take()
        raise asyncio.CancelledError

    with pytest.raises(asyncio.CancelledError):
        await lost.take(committed_then_cancelled)
    assert lost.check_at is not None and lost.check_at > time.time()
    assert await lost.release() == 0  # not due yet: two bounds after the failure
    lost.check_at = time.time()  # (the bounds passed)
    assert await lost.release() == 1
    again = await store.take_recipient_part(parent, worker="w-2", now=time.time(), lease_s=60)
    assert again is not None and again.after == ""


async def test_a_part_two_sweeps_hold_stays_held_until_both_let_go(store: Store) -> None:
    """A part held by two sweeps of this worker (a lease run out, taken again) is not given
    back when the first lets go; a take's failure then schedules a check that keeps it."""
    parent = await _parts(store, 1)
    lost = LostParts(store, "w-1")
    now = time.time()
    take = partial(store.take_recipient_part, parent, worker="w-1", now=now, lease_s=1)
    first = await lost.take(take)
    later = partial(store.take_recipient_part, parent, worker="w-1", now=now + 2, lease_s=60)
    second = await lost.take(later)  # the first lease ran out at now + 1: taken again
    assert first is not None and second is not None and first.after == second.after
    lost.let_go(parent, [first.after])

    async def failed() -> RecipientPart | None:
        raise ConnectionResetError

    with pytest.raises(ConnectionResetError):
        await lost.take(failed)
    lost.check_at = time.time()
    assert await lost.release() == 0  # still held by the second sweep
    lost.let_go(parent, [second.after])
    assert not lost.held
