"""Who is inside WeChat's interaction window: one contract, every engine (facts §2.6)."""

from __future__ import annotations

import sqlite3

import pytest

from alertcast.store.base import InWindow, Store
from tests.store.test_contract import store, store_url

__all__ = ["store", "store_url"]  # the engines' fixtures, parametrised over SQLite and PostgreSQL

T0 = 1_800_000_000.0
HOUR = 3600.0


async def stored(url: str) -> int:
    """Rows in the interaction table, read beside the store."""
    if url.startswith("sqlite"):
        with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
            return int(conn.execute("SELECT COUNT(*) FROM interactions").fetchone()[0])
    import asyncpg

    base, _, schema = url.partition("?schema=")
    conn = await asyncpg.connect(base, server_settings={"search_path": schema})
    try:
        return int(await conn.fetchval("SELECT COUNT(*) FROM interactions"))
    finally:
        await conn.close()


async def inside(store: Store, now: float, account: str = "wx") -> dict[str, int]:
    return {w.openid: w.left for w in await store.window(account, now=now, limit=100)}


async def test_a_message_opens_five_sends_for_48_hours(store: Store) -> None:
    """A follower's message: 5 sends left until 48 h after it, none from then on."""
    await store.note_interaction("wx", "o-alice", "message", T0)
    assert await inside(store, T0 + 1) == {"o-alice": 5}
    assert await inside(store, T0 + 48 * HOUR - 1) == {"o-alice": 5}
    assert await inside(store, T0 + 48 * HOUR) == {}


async def test_a_click_follow_or_scan_opens_three_sends_for_a_minute(store: Store) -> None:
    """An event (menu click, follow, scan): 3 sends left for 60 s."""
    await store.note_interaction("wx", "o-bob", "event", T0)
    assert await inside(store, T0 + 59) == {"o-bob": 3}
    assert await inside(store, T0 + 60) == {}


async def test_sends_are_counted_and_a_full_follower_leaves_the_window(store: Store) -> None:
    """Each noted send takes one; after 5 the follower is no longer offered."""
    await store.note_interaction("wx", "o-alice", "message", T0)
    await store.note_custom_sent("wx", ["o-alice"], at=T0 + 10)
    assert await inside(store, T0 + 11) == {"o-alice": 4}
    for n in range(4):
        await store.note_custom_sent("wx", ["o-alice"], at=T0 + 20 + n)
    assert await inside(store, T0 + 30) == {}


async def test_a_new_message_restarts_the_window_with_its_full_allowance(store: Store) -> None:
    """Writing again gives 5 sends anew, for 48 h from the new message."""
    await store.note_interaction("wx", "o-alice", "message", T0)
    await store.note_custom_sent("wx", ["o-alice"], at=T0 + 1)
    await store.note_interaction("wx", "o-alice", "message", T0 + 40 * HOUR)
    assert await inside(store, T0 + 50 * HOUR) == {"o-alice": 5}


async def test_a_late_note_of_an_older_message_changes_nothing(store: Store) -> None:
    """An interaction noted out of order never rolls the window back nor refills it."""
    await store.note_interaction("wx", "o-alice", "message", T0 + 100)
    await store.note_custom_sent("wx", ["o-alice"], at=T0 + 101)
    await store.note_interaction("wx", "o-alice", "message", T0)
    assert await inside(store, T0 + 48 * HOUR + 50) == {"o-alice": 4}


async def test_a_send_before_a_new_message_does_not_count_against_it(store: Store) -> None:
    """A send recorded with a time before the follower wrote again leaves them 5."""
    await store.note_interaction("wx", "o-alice", "message", T0 + 100)
    await store.note_custom_sent("wx", ["o-alice"], at=T0 + 50)
    assert await inside(store, T0 + 200) == {"o-alice": 5}


async def test_a_send_counts_against_both_open_windows(store: Store) -> None:
    """Inside both windows, a send spends from each; the larger allowance is left."""
    await store.note_interaction("wx", "o-bob", "message", T0)
    await store.note_interaction("wx", "o-bob", "event", T0 + 10)
    for n in range(3):
        await store.note_custom_sent("wx", ["o-bob"], at=T0 + 11 + n)
    assert await inside(store, T0 + 20) == {"o-bob": 2}
    await store.note_custom_sent("wx", ["o-bob"], at=T0 + 21)
    await store.note_custom_sent("wx", ["o-bob"], at=T0 + 22)
    assert await inside(store, T0 + 23) == {}


async def test_an_unfollow_forgets_the_follower(store: Store) -> None:
    """``gone`` removes the follower; coming back afterwards is a new interaction."""
    await store.note_interaction("wx", "o-alice", "message", T0)
    await store.note_interaction("wx", "o-alice", "gone", T0 + 5)
    assert await inside(store, T0 + 6) == {}
    await store.note_interaction("wx", "o-alice", "event", T0 + 7)
    assert await inside(store, T0 + 8) == {"o-alice": 3}


async def test_window_pages_by_openid_per_account(store: Store) -> None:
    """Followers come sorted by openid, after ``after``, ``limit`` at a time, one account's."""
    for n in range(7):
        await store.note_interaction("wx", f"o-{n}", "message", T0 + n)
    await store.note_interaction("other", "o-x", "message", T0)
    first = await store.window("wx", now=T0 + 10, limit=3)
    rest = await store.window("wx", now=T0 + 10, limit=10, after=first[-1].openid)
    assert [w.openid for w in first] == ["o-0", "o-1", "o-2"]
    assert rest == [InWindow(f"o-{n}", 5) for n in range(3, 7)]


async def test_rows_past_every_window_are_pruned_on_write(store: Store, store_url: str) -> None:
    """A note forgets the account's followers whose windows all closed; others stay."""
    for openid in ("o-1", "o-2", "o-3"):
        await store.note_interaction("wx", openid, "message", T0)
    await store.note_interaction("other", "o-1", "message", T0)
    assert await stored(store_url) == 4
    await store.note_interaction("wx", "o-new", "event", T0 + 48 * HOUR + 1)
    assert await stored(store_url) == 2  # wx's three are gone, other's is not wx's to prune
    assert await inside(store, T0 + 47 * HOUR, account="other") == {"o-1": 5}


async def test_an_unknown_kind_is_refused(store: Store) -> None:
    """Only message, event and gone are interactions."""
    with pytest.raises(ValueError, match="kind"):
        await store.note_interaction("wx", "o-alice", "wave", T0)
