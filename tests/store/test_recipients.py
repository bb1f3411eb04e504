"""Per-recipient accounts in the store (migrations 0008 and 0009), on every engine: imports all
or nothing, the expansion by region and by chunk into parts, sends recorded in batches, parts
leased one worker at a time."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator

import pytest

from alertcast.models import DeliveryState
from alertcast.store import open_store
from alertcast.store.base import (
    DuplicateRecipient,
    IncidentRow,
    NewDelivery,
    Recipient,
    SendOutcome,
    Store,
    Write,
)


@pytest.fixture
async def store(engine: str) -> AsyncIterator[Store]:
    """The store on every engine (``engine``: tests.conftest's URL, SQLite or PostgreSQL)."""
    s = open_store(engine)
    await s.open()
    yield s
    await s.close()


ACCOUNT = "hook-people"


def _people(n: int, region: str | None = "510105", start: int = 0) -> list[tuple[int, Recipient]]:
    return [
        (i + 2, Recipient(f"r{i:05d}", region, {"name": f"n{i}"})) for i in range(start, start + n)
    ]


class Broken(ValueError):
    pass


def _broken_after(rows: list[tuple[int, Recipient]], n: int) -> Iterator[tuple[int, Recipient]]:
    for i, row in enumerate(rows):
        if i == n:
            raise Broken(f"line {row[0]}: bad")
        yield row


async def _parent(store: Store, delivery_id: str = "d-1") -> str:
    now = time.time()
    row = IncidentRow(
        id=f"inc-{delivery_id}",
        kind="earthquake",
        status="actual",
        severity="severe",
        msg_type="alert",
        state="active",
        issuer="city",
        source="api",
        body={"area": {"codes": ["510100"]}},
        created_at=now,
    )
    d = NewDelivery(
        id=delivery_id, account=ACCOUNT, channel="webhook", payload={}, idempotency_key="k"
    )
    await store.apply(Write(incident=row, deliveries=[d]))
    return delivery_id


async def test_an_import_is_stored_whole(store: Store) -> None:
    """2,500 rows (more than one chunk of the engine's batches) stored with region and data."""
    held = await store.import_recipients(ACCOUNT, iter(_people(2500)))
    assert held == 2500
    assert await store.count_recipients(ACCOUNT) == 2500
    first = await store.list_recipients(ACCOUNT, limit=2)
    assert first == [r for _, r in _people(2)]
    assert await store.count_recipients("another") == 0


async def test_a_bad_row_mid_file_imports_nothing(store: Store) -> None:
    """The reader raising at row 1,500 leaves the account as it was (its earlier rows too)."""
    await store.import_recipients(ACCOUNT, iter(_people(10)))
    with pytest.raises(Broken):
        await store.import_recipients(ACCOUNT, _broken_after(_people(3000, start=100), 1500))
    assert await store.count_recipients(ACCOUNT) == 10


async def test_an_id_twice_is_refused_naming_both_lines(store: Store) -> None:
    """The same id on lines 3 and 6: DuplicateRecipient, nothing stored."""
    rows = _people(5)
    rows.append((7, Recipient("r00001", None, {})))
    with pytest.raises(DuplicateRecipient) as caught:
        await store.import_recipients(ACCOUNT, iter(rows))
    assert (caught.value.first, caught.value.again, caught.value.recipient_id) == (3, 7, "r00001")
    assert await store.count_recipients(ACCOUNT) == 0


async def test_import_updates_and_replace_drops_the_rest(store: Store) -> None:
    """Without replace an id is updated and others kept; with replace only the file's stay."""
    await store.import_recipients(ACCOUNT, iter(_people(4)))
    await store.import_recipients(ACCOUNT, iter([(2, Recipient("r00000", "510000", {"x": "1"}))]))
    assert await store.count_recipients(ACCOUNT) == 4
    (changed,) = await store.list_recipients(ACCOUNT, limit=1)
    assert changed == Recipient("r00000", "510000", {"x": "1"})
    await store.import_recipients(ACCOUNT, iter(_people(2, start=10)), replace=True)
    assert [r.id for r in await store.list_recipients(ACCOUNT)] == ["r00010", "r00011"]


async def test_the_expansion_takes_the_area_by_chunk_into_parts(store: Store) -> None:
    """Chengdu's districts and the region-less are in 510100's area; Beijing's are not; each
    chunk is a part, and the parts are the cursor: the next call goes on after the last."""
    rows = _people(5, "510105") + _people(3, None, start=5) + _people(4, "110101", start=8)
    rows += _people(2, "510000", start=12)  # the province: wider than the area, not inside it
    await store.import_recipients(ACCOUNT, iter(rows))
    parent = await _parent(store)
    now = time.time()
    expand = store.expand_recipients
    assert await expand(parent, ACCOUNT, ["510100"], limit=6, now=now) == ("r00005", 6)
    assert await expand(parent, ACCOUNT, ["510100"], limit=6, now=now) == ("r00007", 2)
    assert await expand(parent, ACCOUNT, ["510100"], limit=6, now=now) == (None, 0)
    assert await store.recipient_summary(parent) == {"pending": 8}
    assert await store.open_recipient_parts(parent) == 2
    first = await store.take_recipient_part(parent, worker="a", now=now, lease_s=30)
    second = await store.take_recipient_part(parent, worker="a", now=now, lease_s=30)
    assert first is not None and second is not None
    assert [(first.after, first.last), (second.after, second.last)] == [
        ("", "r00005"),
        ("r00005", "r00007"),
    ]
    assert await store.take_recipient_part(parent, worker="b", now=now, lease_s=30) is None
    page = await store.due_recipients(
        parent, ACCOUNT, now=now, after="r00005", last="r00007", limit=9
    )
    assert [s.recipient_id for s in page] == ["r00006", "r00007"]


async def test_a_part_is_one_workers_until_done_or_its_lease_ends(store: Store) -> None:
    """Leased parts are not taken again; a renewal says which are still held; a lease run out
    lets another take it (the first then holds nothing); done parts are never taken."""
    await store.import_recipients(ACCOUNT, iter(_people(12)))
    parent = await _parent(store)
    now = time.time()
    for _ in range(3):
        await store.expand_recipients(parent, ACCOUNT, [], limit=4, now=now)
    a = await store.take_recipient_part(parent, worker="a", now=now, lease_s=10)
    assert a is not None and a.after == ""
    assert await store.renew_recipient_parts(parent, [""], worker="a", until=now + 20) == {""}
    b = await store.take_recipient_part(parent, worker="b", now=now + 15, lease_s=10)
    assert b is not None and b.after == "r00003"  # a's is still leased at now + 15
    stolen = await store.take_recipient_part(parent, worker="b", now=now + 25, lease_s=10)
    assert stolen is not None and stolen.after == ""  # a's lease ran out at now + 20
    assert await store.renew_recipient_parts(parent, [""], worker="a", until=now + 40) == set()
    await store.record_recipients(
        parent, [SendOutcome("r00000", "delivered", 1)], now=now, worker="b", done=["", "r00003"]
    )
    assert await store.open_recipient_parts(parent) == 1
    await store.release_recipient_parts(parent, ["r00007"], worker="a")  # not a's: no change
    c = await store.take_recipient_part(parent, worker="c", now=now + 60, lease_s=10)
    assert c is not None and c.after == "r00007"
    await store.release_recipient_parts(parent, ["r00007"], worker="c")
    again = await store.take_recipient_part(parent, worker="d", now=now + 60, lease_s=10)
    assert again is not None and again.after == "r00007"
    assert await store.take_recipient_part(parent, worker="e", now=now + 60, lease_s=10) is None


async def test_the_parts_a_worker_does_not_hold_are_given_back_on_every_engine(
    store: Store,
) -> None:
    """``release_lost_parts``: of the parts leased to a worker (not done), those it does not
    hold go back for anyone to take; the one it holds, another worker's and a done one stay."""
    await store.import_recipients(ACCOUNT, iter(_people(16)))
    parent = await _parent(store)
    now = time.time()
    for _ in range(4):
        await store.expand_recipients(parent, ACCOUNT, [], limit=4, now=now)
    parts = [
        await store.take_recipient_part(parent, worker=w, now=now, lease_s=60)
        for w in ("a", "a", "a", "b")
    ]
    assert [p.after if p else None for p in parts] == ["", "r00003", "r00007", "r00011"]
    done = SendOutcome("r00004", "delivered", 1)
    await store.record_recipients(parent, [done], now=now, worker="a", done=["r00003"])
    found = await store.release_lost_parts(worker="a", held=lambda: {(parent, "")}, now=now)
    assert found == 1  # r00007's: not held, not done
    again = await store.take_recipient_part(parent, worker="c", now=now, lease_s=60)
    assert again is not None and again.after == "r00007"
    assert await store.take_recipient_part(parent, worker="c", now=now, lease_s=60) is None
    assert await store.renew_recipient_parts(parent, [""], worker="a", until=now + 90) == {""}


async def test_any_part_is_of_a_delivery_being_sent_on_the_accounts_given(store: Store) -> None:
    """A replica helping takes parts only of deliveries being sent, of its accounts, not of
    those it skips (the ones it holds itself)."""
    await store.import_recipients(ACCOUNT, iter(_people(4)))
    parent = await _parent(store)
    now = time.time()
    await store.expand_recipients(parent, ACCOUNT, [], limit=10, now=now)
    take = store.take_any_recipient_part
    assert await take(accounts=[ACCOUNT], worker="h", now=now, lease_s=10) is None  # pending
    claimed = await store.claim_due(now=now, limit=5, lease_s=30, worker="w", free={ACCOUNT: 5})
    assert [c.delivery.id for c in claimed] == [parent]
    assert await take(accounts=["other"], worker="h", now=now, lease_s=10) is None
    assert await take(accounts=[ACCOUNT], skip=[parent], worker="h", now=now, lease_s=10) is None
    got = await take(accounts=[ACCOUNT], worker="h", now=now, lease_s=10)
    assert got is not None and (got.delivery_id, got.after, got.last) == (parent, "", "r00003")
    assert await take(accounts=[ACCOUNT], worker="h2", now=now, lease_s=10) is None


@pytest.mark.postgres
async def test_two_stores_taking_parts_at_once_never_share_one(pg_url: str) -> None:
    """Two store instances (two replicas) taking 40 parts at once: each part goes to exactly
    one of them."""
    stores = [open_store(pg_url) for _ in range(2)]
    for s in stores:
        await s.open()
    try:
        await stores[0].import_recipients(ACCOUNT, iter(_people(40)))
        parent = await _parent(stores[0])
        now = time.time()
        while (await stores[0].expand_recipients(parent, ACCOUNT, [], limit=1, now=now))[0]:
            pass

        async def take_all(s: Store, worker: str) -> list[str]:
            got: list[str] = []
            while p := await s.take_recipient_part(parent, worker=worker, now=now, lease_s=60):
                got.append(p.after)
            return got

        a, b = await asyncio.gather(take_all(stores[0], "a"), take_all(stores[1], "b"))
        assert sorted(a + b) == sorted(set(a + b)) and len(a + b) == 40
        assert a and b, (len(a), len(b))
    finally:
        for s in stores:
            await s.close()


async def test_sends_are_paged_recorded_and_given_up(store: Store) -> None:
    """Due sends come by id with their data; a recorded batch moves them; a delivered send is
    never overwritten; giving up ends the rest dead; paging by state and cursor."""
    await store.import_recipients(ACCOUNT, iter(_people(6)))
    parent = await _parent(store)
    now = time.time()
    await store.expand_recipients(parent, ACCOUNT, [], limit=100, now=now)
    page = await store.due_recipients(parent, ACCOUNT, now=now, after="r00001", limit=2)
    assert [(s.recipient_id, s.region, dict(s.data or {})) for s in page] == [
        ("r00002", "510105", {"name": "n2"}),
        ("r00003", "510105", {"name": "n3"}),
    ]
    await store.record_recipients(
        parent,
        [
            SendOutcome("r00000", "delivered", 1, http_status=200),
            SendOutcome("r00001", "retrying", 1, now + 60, 503, "HTTP 503"),
            SendOutcome("r00002", "failed", 1, None, 400, "HTTP 400"),
        ],
        now=now,
    )
    await store.record_recipients(parent, [SendOutcome("r00000", "retrying", 2)], now=now)
    assert await store.recipient_summary(parent) == {
        "delivered": 1,
        "retrying": 1,
        "failed": 1,
        "pending": 3,
    }
    due = await store.due_recipients(parent, ACCOUNT, now=now, limit=10)
    assert [s.recipient_id for s in due] == ["r00003", "r00004", "r00005"]
    assert await store.next_recipient_due(parent) == 0.0  # pending ones: at once
    (retrying,) = await store.recipient_sends(parent, state="retrying")
    assert (retrying.recipient_id, retrying.http_status, retrying.attempts) == ("r00001", 503, 1)
    assert [s.recipient_id for s in await store.recipient_sends(parent, after="r00003")] == [
        "r00004",
        "r00005",
    ]
    await store.record_recipients(parent, [SendOutcome("r00003", "delivered", 1)], now=now)
    await store.record_recipients(parent, [SendOutcome("r00004", "delivered", 1)], now=now)
    await store.record_recipients(parent, [SendOutcome("r00005", "delivered", 1)], now=now)
    assert await store.next_recipient_due(parent) == pytest.approx(now + 60)
    assert await store.give_up_recipients(parent, "the delivery gave up", now=now) == 1
    summary = await store.recipient_summary(parent)
    assert summary == {"delivered": 4, "failed": 1, "dead": 1}
    assert DeliveryState.dead.value in summary


async def test_a_removed_recipient_is_due_without_data(store: Store) -> None:
    """A recipient dropped by a replace after the expansion comes with no data (never sent)."""
    await store.import_recipients(ACCOUNT, iter(_people(2)))
    parent = await _parent(store)
    now = time.time()
    await store.expand_recipients(parent, ACCOUNT, [], limit=100, now=now)
    await store.import_recipients(ACCOUNT, iter(_people(1)), replace=True)
    page = await store.due_recipients(parent, ACCOUNT, now=now, limit=10)
    assert [(s.recipient_id, s.data is None) for s in page] == [("r00000", False), ("r00001", True)]
