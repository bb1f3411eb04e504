"""SQL and decisions of limit slots (migration 0007), shared by every engine.

Written with ``?`` placeholders like :mod:`alertcast.store.sql`; PostgreSQL rewrites them with
:func:`alertcast.store.sql.numbered`. A take is, in one transaction: on PostgreSQL
:data:`LOCK_ACCOUNT` (takes of one account queue behind each other; other accounts' do not),
then :func:`select_held` (the slots the needs count, and the slot itself if a retry already
took it), then — when :func:`decide` says so — :data:`INSERT_SLOT` for each budget and
:data:`PRUNE` of what no window counts any more. SQLite runs the same statements in its single
writer, which serialises every take already. The instants it is given (``now``, each need's
``since``) are read on the store's clock (:mod:`alertcast.store.clock`), as every replica's are.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from alertcast.slots import Answer, Need, SlotRow, has_room, oldest_since
from alertcast.store.driver import Conn

__all__ = [
    "DROP_SLOT",
    "FINISH_SLOT",
    "INSERT_SLOT",
    "LOCK_ACCOUNT",
    "PRUNE",
    "decide",
    "held",
    "held_params",
    "insert_params",
    "select_held",
    "slot_from",
    "take",
]

LOCK_NAMESPACE = 7401956  # pg_advisory_xact_lock's first key: the limit takes (migrations: 7401955)

LOCK_ACCOUNT = f"SELECT pg_advisory_xact_lock({LOCK_NAMESPACE}, hashtext(?))"

_SELECT_HELD = """
SELECT id, budget, started_at, ends_at, finished FROM limit_slots
WHERE account = ? AND ((budget IN ({budgets}) AND ends_at > ?) OR id = ?)"""

INSERT_SLOT = """
INSERT INTO limit_slots (account, budget, id, started_at, ends_at, finished)
VALUES (?, ?, ?, ?, ?, 0)
ON CONFLICT (account, budget, id) DO NOTHING"""

PRUNE = "DELETE FROM limit_slots WHERE account = ? AND budget = ? AND ends_at <= ?"

FINISH_SLOT = "UPDATE limit_slots SET ends_at = ?, finished = 1 WHERE account = ? AND id = ?"

DROP_SLOT = "DELETE FROM limit_slots WHERE account = ? AND id = ?"


def select_held(needs: Sequence[Need]) -> str:
    """The statement of :func:`held_params`: every slot a need may count, and the slot's own."""
    return _SELECT_HELD.format(budgets=", ".join("?" * len(oldest_since(needs))))


def held_params(account: str, needs: Sequence[Need], slot_id: str = "") -> tuple[Any, ...]:
    since = oldest_since(needs)
    return (account, *since, min(since.values(), default=0.0), slot_id)


def slot_from(row: Mapping[str, Any] | Sequence[Any]) -> SlotRow:
    """A row of :func:`select_held` (by name or by position)."""
    if isinstance(row, Mapping):
        row = [row[k] for k in ("id", "budget", "started_at", "ends_at", "finished")]
    slot_id, budget, started_at, ends_at, finished = row
    return SlotRow(str(slot_id), str(budget), float(started_at), float(ends_at), bool(finished))


def decide(
    rows: Iterable[SlotRow], needs: Sequence[Need], slot_id: str
) -> tuple[bool, tuple[SlotRow, ...]]:
    """Whether the take goes in (every need has room, or the slot was taken before: a retry),
    and the slots the needs count (the slot's own rows of other budgets left out)."""
    rows = list(rows)
    since = oldest_since(needs)
    held = tuple(r for r in rows if r.budget in since and r.ends_at > since[r.budget])
    retry = any(r.id == slot_id for r in rows)
    return retry or has_room(held, needs), held


def insert_params(
    account: str, needs: Sequence[Need], slot_id: str, now: float, lease_s: float
) -> list[tuple[Any, ...]]:
    """:data:`INSERT_SLOT`'s parameters, one row per budget the needs name."""
    return [(account, budget, slot_id, now, now + lease_s) for budget in oldest_since(needs)]


def prune_params(account: str, needs: Sequence[Need]) -> list[tuple[Any, ...]]:
    """:data:`PRUNE`'s parameters: per budget, what ends before every need's window."""
    return [(account, budget, since) for budget, since in oldest_since(needs).items()]


def taken(held: Sequence[SlotRow], new: Iterable[tuple[Any, ...]]) -> tuple[SlotRow, ...]:
    """What the needs count once the new slot is in (a retry's rows are already there)."""
    have = {(r.budget, r.id) for r in held}
    added = [
        SlotRow(slot_id, budget, start, ends, finished=False)
        for _, budget, slot_id, start, ends in new
        if (budget, slot_id) not in have
    ]
    return (*held, *added)


async def take(
    c: Conn, account: str, slot_id: str, needs: Sequence[Need], now: float, lease_s: float
) -> Answer:
    """The take, in the caller's transaction (see the module's docstring)."""
    if not needs:
        return Answer(True, ())
    if c.locks:  # other replicas take too: one take of this account at a time
        await c.execute(LOCK_ACCOUNT, (account,))
    rows = await c.fetchall(select_held(needs), held_params(account, needs, slot_id))
    ok, counted = decide((slot_from(r) for r in rows), needs, slot_id)
    if not ok:
        return Answer(False, counted)
    new = insert_params(account, needs, slot_id, now, lease_s)
    await c.executemany(INSERT_SLOT, new)
    await c.executemany(PRUNE, prune_params(account, needs))
    return Answer(True, taken(counted, new))


async def held(c: Conn, account: str, needs: Sequence[Need]) -> tuple[SlotRow, ...]:
    """The slots ``needs`` count now."""
    if not needs:
        return ()
    rows = await c.fetchall(select_held(needs), held_params(account, needs))
    return decide((slot_from(r) for r in rows), needs, "")[1]
