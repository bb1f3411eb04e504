"""SQL of a per-recipient delivery's parts (migration 0009), shared by every engine.

Written with ``?`` placeholders like :mod:`alertcast.store.sql`; PostgreSQL rewrites them with
:func:`alertcast.store.sql.numbered`.

The expansion copies the recipients in the incident's area into the delivery's sends a chunk at
a time, by id (:func:`expand_op`), in one transaction: where the last chunk ended (the highest
``last_id`` of the parts: the parts *are* the cursor), the part row of the next chunk (first:
a second writer of the same chunk, whose claim was lost, finds it taken and writes nothing),
then its sends. A crash between two chunks loses nothing and repeats nothing.

A part is then taken like a delivery: :func:`take_op` (one delivery's, for the worker holding
the delivery) or :func:`take_any_op` (any delivery being sent, for a replica with room), locked
with ``FOR UPDATE SKIP LOCKED`` on PostgreSQL, leased, renewed while it is sent
(:func:`renew_op`), marked done in the transaction that records its last outcome
(:func:`done_statement`), or released for another to take.

A region lies in an incident's area when its code starts with an area code's stem (``510000``
-> ``51``: GB/T 2260 codes nest by prefix, as :class:`alertcast.regions.Hierarchy` has it);
codes of other hierarchies match exactly; a recipient without a region is everywhere.
"""

from __future__ import annotations

from collections.abc import Sequence, Set
from typing import Any

from alertcast.store import followup_sql
from alertcast.store.base import RecipientPart
from alertcast.store.driver import Conn

__all__ = [
    "OPEN",
    "area_clause",
    "correction_due_op",
    "done_statement",
    "expand_last",
    "expand_op",
    "expand_statement",
    "give_back_op",
    "open_op",
    "release_lost_op",
    "release_op",
    "renew_op",
    "start_op",
    "take_any_op",
    "take_op",
    "unstart_op",
]

CURSOR = "SELECT MAX(last_id) FROM recipient_parts WHERE delivery_id = ?"
INSERT_PART = """
INSERT INTO recipient_parts (delivery_id, after_id, last_id, size) VALUES (?, ?, ?, 0)
ON CONFLICT DO NOTHING"""
SIZE_PART = "UPDATE recipient_parts SET size = ? WHERE delivery_id = ? AND after_id = ?"
# After a delivery's first chunk: PostgreSQL's planner must know the sends are many, or it
# reads a page by sorting every due send instead of walking recipient_sends_due in order.
ANALYZE = "ANALYZE recipient_sends"

_FREE = "done_at IS NULL AND (lease_until IS NULL OR lease_until < ?)"
TAKABLE = f"""
SELECT delivery_id, after_id, last_id FROM recipient_parts
WHERE delivery_id = ? AND {_FREE} ORDER BY after_id LIMIT 1"""
# Any part of a delivery being sent (its holder alive or not) on one of ``accounts``; the
# corrections' parts first (a higher priority), then by delivery and id.
TAKABLE_ANY = """
SELECT p.delivery_id, p.after_id, p.last_id FROM recipient_parts p
JOIN deliveries d ON d.id = p.delivery_id
WHERE p.done_at IS NULL AND (p.lease_until IS NULL OR p.lease_until < ?)
  AND d.state = 'sending' AND d.account {accounts}{skip}
ORDER BY d.priority DESC, p.delivery_id, p.after_id LIMIT 1"""
TAKE = (
    "UPDATE recipient_parts SET worker = ?, lease_until = ? WHERE delivery_id = ? AND after_id = ?"
)
_MINE = "delivery_id = ? AND worker = ? AND done_at IS NULL AND after_id {ids}"
RENEW = f"UPDATE recipient_parts SET lease_until = ? WHERE {_MINE} RETURNING after_id"
RELEASE = f"UPDATE recipient_parts SET worker = NULL, lease_until = NULL WHERE {_MINE}"
DONE = f"UPDATE recipient_parts SET done_at = ?, lease_until = NULL WHERE {_MINE}"
OPEN = "SELECT COUNT(*) FROM recipient_parts WHERE delivery_id = ? AND done_at IS NULL"
# The parts leased to a worker now (a lease run out is anyone's already), locked on
# PostgreSQL so that no take by another worker lands between the read and the release.
LEASED_TO = """
SELECT delivery_id, after_id FROM recipient_parts
WHERE worker = ? AND done_at IS NULL AND lease_until >= ?"""

# A correction due on the account, of a higher priority than a delivery being sent there.
CORRECTION_DUE = """
SELECT 1 FROM deliveries
WHERE account = ? AND state IN ('pending', 'retrying') AND next_attempt_at <= ?
  AND priority > ? AND wait_for IS NULL
LIMIT 1"""

# A page's sends are taken ``width`` at a time just before they are sent (:func:`start_op`):
# ``sending``, only those still due, so a follow-up's stop (which withdraws what is due) leaves
# a pass the few it has taken, and counts them as reached. Taken but never sent (the pass
# stopped, or died): due again (:data:`UNSTART`; withdrawn instead when the parent was) when
# their part is given back or taken again, or the parent's next pass opens.
START = """
UPDATE recipient_sends SET state = 'sending', updated_at = ?, taken = taken + 1, taken_by = ?
WHERE delivery_id = ? AND state IN ('pending', 'retrying') AND recipient_id {ids}
RETURNING recipient_id"""
# A pass's sends on the wire (taken, outcome not recorded yet) stay fresh while it lives
# (:func:`touch_op`, at each lease renewal): a correction waits for them however long the
# request or its rate window takes (``followup_sql.WIRE_S`` bounds only a dead pass's).
TOUCH = """
UPDATE recipient_sends SET updated_at = ?
WHERE delivery_id = ? AND state = 'sending' AND recipient_id {ids}"""
# What a send given back becomes (param: its delivery): due again, or withdrawn with it.
_BACK = """CASE
    WHEN (SELECT state FROM deliveries WHERE id = ?) = 'skipped' THEN 'skipped' ELSE 'pending'
END"""
_UNSTART = f"""
UPDATE recipient_sends SET updated_at = ?, state = {_BACK}
WHERE delivery_id = ? AND state = 'sending'"""
_IN_PART = """
    SELECT 1 FROM recipient_parts p WHERE p.delivery_id = recipient_sends.delivery_id
      AND recipient_sends.recipient_id > p.after_id AND recipient_sends.recipient_id <= p.last_id"""
UNSTART_RANGE = _UNSTART + " AND recipient_id > ? AND recipient_id <= ?"
# A stopped pass's sends given back unmade (params: now, the delivery twice, the ids, the
# pass's token): only those it took itself and still has ``sending`` (a part whose lease ran
# out may have been taken since, its send on the wire), one take fewer (migration 0013).
GIVE_BACK = f"""
UPDATE recipient_sends SET updated_at = ?, taken = taken - 1, state = {_BACK}
WHERE delivery_id = ? AND state = 'sending' AND recipient_id {{ids}} AND taken_by = ?
RETURNING recipient_id"""
UNSTART_PARTS = _UNSTART + f" AND EXISTS ({_IN_PART} AND p.after_id {{ids}})"
UNSTART_UNHELD = (
    _UNSTART
    + f"""
  AND NOT EXISTS ({_IN_PART} AND p.done_at IS NULL AND p.lease_until >= ?)"""
)


def _stem(code: str) -> str:
    while len(code) > 2 and code.endswith("00"):
        code = code[:-2]
    return code


def area_clause(codes: Sequence[str]) -> tuple[str, list[Any]]:
    """``(condition, params)`` on ``region``: inside any of the area ``codes``, or none given
    (no codes: everyone)."""
    if not codes:
        return "true", []
    parts, params = ["region IS NULL"], []
    for code in sorted(set(codes)):
        if code.isdigit():
            parts.append("region LIKE ?")
            params.append(_stem(code) + "%")
        else:
            parts.append("region = ?")
            params.append(code)
    return "(" + " OR ".join(parts) + ")", params


def expand_last(codes: Sequence[str]) -> tuple[str, list[Any]]:
    """The query for the last id of the next chunk (params then: account, after, limit)."""
    where, params = area_clause(codes)
    query = f"""
SELECT MAX(id) FROM (
    SELECT id FROM recipients WHERE account = ? AND id > ? AND {where} ORDER BY id LIMIT ?
) chunk"""
    return query, params


def expand_statement(codes: Sequence[str]) -> tuple[str, list[Any]]:
    """Copy the chunk into ``recipient_sends`` (params then: delivery, now, account, after,
    last). ``ON CONFLICT DO NOTHING``: a send written already stays as it is."""
    where, params = area_clause(codes)
    statement = f"""
INSERT INTO recipient_sends (delivery_id, recipient_id, state, attempts, updated_at)
SELECT CAST(? AS TEXT), id, 'pending', 0, CAST(? AS DOUBLE PRECISION) FROM recipients
WHERE account = ? AND id > ? AND id <= ? AND {where}
ON CONFLICT (delivery_id, recipient_id) DO NOTHING"""
    return statement, params


def done_statement(
    c: Conn, delivery_id: str, worker: str, parts: Sequence[str], now: float
) -> tuple[str, tuple[Any, ...]]:
    """Mark ``parts`` (by ``after_id``) of ``worker`` done (in the outcomes' transaction)."""
    clause, params = c.any_of(parts)
    return DONE.format(ids=clause), (now, delivery_id, worker, *params)


async def expand_op(
    c: Conn, delivery_id: str, account: str, codes: Sequence[str], limit: int, now: float
) -> tuple[str | None, int]:
    """The next chunk of the account's recipients in the area, as a part and its sends:
    ``(the chunk's last id, sends added)``; ``(None, 0)`` when no recipient is left."""
    row = await c.fetchone(CURSOR, (delivery_id,))
    after = "" if row is None or row[0] is None else str(row[0])
    query, params = expand_last(codes)
    row = await c.fetchone(query, (account, after, *params, limit))
    if row is None or row[0] is None:
        return None, 0
    last = str(row[0])
    if await c.execute(INSERT_PART, (delivery_id, after, last)) == 0:
        return last, 0  # written meanwhile by another worker (ours was a lost claim)
    statement, params = expand_statement(codes)
    added = await c.execute(statement, (delivery_id, now, account, after, last, *params))
    await c.execute(SIZE_PART, (added, delivery_id, after))
    if c.locks and not after:  # PostgreSQL: fresh statistics, or pages are read by sorting all
        await c.execute(ANALYZE)
    return last, added


async def take_op(
    c: Conn, delivery_id: str, worker: str, now: float, lease_s: float
) -> RecipientPart | None:
    lock = " FOR UPDATE SKIP LOCKED" if c.locks else ""
    return await _take(c, TAKABLE + lock, (delivery_id, now), worker, (now, lease_s))


async def take_any_op(
    c: Conn,
    accounts: Sequence[str],
    skip: Sequence[str],
    worker: str,
    now: float,
    lease_s: float,
) -> RecipientPart | None:
    if not accounts:
        return None
    in_accounts, params = c.any_of(accounts)
    skip_clause = ""
    if skip:
        in_skip, skipped = c.any_of(skip)
        skip_clause, params = f" AND NOT (d.id {in_skip})", (*params, *skipped)
    query = TAKABLE_ANY.format(accounts=in_accounts, skip=skip_clause)
    lock = " FOR UPDATE OF p SKIP LOCKED" if c.locks else ""
    return await _take(c, query + lock, (now, *params), worker, (now, lease_s))


async def _take(
    c: Conn, query: str, params: Sequence[Any], worker: str, lease: tuple[float, float]
) -> RecipientPart | None:
    row = await c.fetchone(query, params)
    if row is None:
        return None
    part = RecipientPart(str(row[0]), str(row[1]), str(row[2]))
    now, lease_s = lease
    await c.execute(TAKE, (worker, now + lease_s, part.delivery_id, part.after))
    # The sends a dead worker had taken: due again (a repeat only among what was in flight).
    await c.execute(UNSTART_RANGE, (now, part.delivery_id, part.delivery_id, part.after, part.last))
    return part


async def renew_op(
    c: Conn, delivery_id: str, parts: Sequence[str], worker: str, until: float
) -> set[str]:
    """Extend ``worker``'s lease on ``parts``; the ones it still holds."""
    clause, params = c.any_of(parts)
    rows = await c.fetchall(RENEW.format(ids=clause), (until, delivery_id, worker, *params))
    return {str(r[0]) for r in rows}


async def release_lost_op(c: Conn, worker: str, held: Set[tuple[str, str]], now: float) -> int:
    """Give back the parts leased to ``worker`` but those ``held`` (a take whose answer was
    lost leased the others); how many."""
    lost: dict[str, list[str]] = {}
    lock = " FOR UPDATE" if c.locks else ""
    for row in await c.fetchall(LEASED_TO + lock, (worker, now)):
        if (key := (str(row[0]), str(row[1]))) not in held:
            lost.setdefault(key[0], []).append(key[1])
    for delivery_id, parts in lost.items():
        await release_op(c, delivery_id, parts, worker, now)
    return sum(map(len, lost.values()))


async def release_op(
    c: Conn, delivery_id: str, parts: Sequence[str], worker: str, now: float
) -> None:
    """Give ``worker``'s ``parts`` back, the sends it took of them and did not send due again."""
    clause, params = c.any_of(parts)
    unstart = UNSTART_PARTS.format(ids=clause)
    await c.execute(unstart, (now, delivery_id, delivery_id, *params))
    await c.execute(RELEASE.format(ids=clause), (delivery_id, worker, *params))


async def start_op(
    c: Conn, delivery_id: str, ids: Sequence[str], now: float, by: str | None = None
) -> set[str]:
    """Mark ``ids`` ``sending``, taken by ``by`` (a pass's token), those still due: the ones
    to send."""
    clause, params = c.any_of(ids)
    rows = await c.fetchall(START.format(ids=clause), (now, by, delivery_id, *params))
    return {str(r[0]) for r in rows}


async def touch_op(c: Conn, delivery_id: str, ids: Sequence[str], now: float) -> int:
    """The sends ``ids`` still ``sending``, stamped ``now``: still on the wire."""
    clause, params = c.any_of(ids)
    return await c.execute(TOUCH.format(ids=clause), (now, delivery_id, *params))


async def unstart_op(c: Conn, delivery_id: str, now: float) -> int:
    """The delivery's sends taken and not sent, outside any part leased now: due again."""
    return await c.execute(UNSTART_UNHELD, (now, delivery_id, delivery_id, now))


async def give_back_op(c: Conn, delivery_id: str, ids: Sequence[str], by: str, now: float) -> int:
    """The sends ``ids`` that the pass ``by`` took, still ``sending``, and will not send (it
    stopped): due again, or withdrawn when the delivery was; and a cancellation's sends
    copied from those given back, to recipients nothing else may have reached, withdrawn too
    (``followup_sql.NEVER_REACHED``). How many were given back."""
    clause, params = c.any_of(ids)
    query = GIVE_BACK.format(ids=clause)
    rows = await c.fetchall(query, (now, delivery_id, delivery_id, *params, by))
    given = sorted(str(r[0]) for r in rows)
    await followup_sql.never_reached_op(c, delivery_id, given, now)
    return len(given)


async def correction_due_op(c: Conn, account: str, priority: int, now: float) -> bool:
    return await c.fetchone(CORRECTION_DUE, (account, now, priority)) is not None


async def open_op(c: Conn, delivery_id: str) -> int:
    row = await c.fetchone(OPEN, (delivery_id,))
    return 0 if row is None else int(row[0])
