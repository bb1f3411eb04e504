"""Per-recipient accounts in the store (migration 0008), on every engine: imports all or
nothing, the expansion by region and by chunk, sends recorded in batches."""

from __future__ import annotations

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


async def test_the_expansion_takes_the_area_by_chunk_and_twice_changes_nothing(
    store: Store,
) -> None:
    """Chengdu's districts and the region-less are in 510100's area; Beijing's are not; a
    chunk copied again adds nothing."""
    rows = _people(5, "510105") + _people(3, None, start=5) + _people(4, "110101", start=8)
    rows += _people(2, "510000", start=12)  # the province: wider than the area, not inside it
    await store.import_recipients(ACCOUNT, iter(rows))
    parent = await _parent(store)
    now = time.time()
    last, added = await store.expand_recipients(
        parent, ACCOUNT, ["510100"], after="", limit=6, now=now
    )
    assert (last, added) == ("r00005", 6)
    again = await store.expand_recipients(parent, ACCOUNT, ["510100"], after="", limit=6, now=now)
    assert again == ("r00005", 0)
    rest = await store.expand_recipients(
        parent, ACCOUNT, ["510100"], after="r00005", limit=6, now=now
    )
    assert rest == ("r00007", 2)
    assert await store.expand_recipients(
        parent, ACCOUNT, ["510100"], after="r00007", limit=6, now=now
    ) == (None, 0)
    assert await store.recipient_summary(parent) == {"pending": 8}


async def test_sends_are_paged_recorded_and_given_up(store: Store) -> None:
    """Due sends come by id with their data; a recorded batch moves them; a delivered send is
    never overwritten; giving up ends the rest dead; paging by state and cursor."""
    await store.import_recipients(ACCOUNT, iter(_people(6)))
    parent = await _parent(store)
    now = time.time()
    await store.expand_recipients(parent, ACCOUNT, [], after="", limit=100, now=now)
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
    await store.expand_recipients(parent, ACCOUNT, [], after="", limit=100, now=now)
    await store.import_recipients(ACCOUNT, iter(_people(1)), replace=True)
    page = await store.due_recipients(parent, ACCOUNT, now=now, limit=10)
    assert [(s.recipient_id, s.data is None) for s in page] == [("r00000", False), ("r00001", True)]
