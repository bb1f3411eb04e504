"""SQL and row mapping of per-recipient accounts (migration 0008), shared by every engine.

Written with ``?`` placeholders like :mod:`alertcast.store.sql`; PostgreSQL rewrites them with
:func:`alertcast.store.sql.numbered`.

An import goes through a staging table (``recipients_import``, temporary: each connection has
its own) so a file is taken whole or not at all: its rows are streamed in (COPY on PostgreSQL,
chunked ``executemany`` on SQLite), an id given twice is refused naming both lines, then one
``INSERT … SELECT`` merges them (``replace``: the account's recipients become exactly the file's).

The expansion of a delivery to the recipients in its incident's area, and the parts it writes
(ranges of the sends any replica may take), are in :mod:`alertcast.store.part_sql`. A page of
due sends is read within a part's range (:data:`PAGE_DUE_IN`) or over the whole delivery; a
batch of outcomes is recorded in one transaction with the parts it completes.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from alertcast.store import followup_sql, part_sql
from alertcast.store.base import DuplicateRecipient, Recipient, RecipientSend, SendOutcome
from alertcast.store.driver import Conn

__all__ = [
    "COUNT",
    "CREATE_STAGING",
    "DELETE_ACCOUNT",
    "DROP_STAGING",
    "DUPLICATE",
    "GIVE_UP",
    "HELD_NEXT_DUE",
    "LIST",
    "MERGE",
    "NEXT_DUE",
    "PAGE_DUE",
    "PAGE_DUE_IN",
    "RECORD",
    "SENDS",
    "STAGING_COLUMNS",
    "SUMMARY",
    "correction_page",
    "count_op",
    "due_from",
    "give_up_op",
    "import_op",
    "list_op",
    "next_due_op",
    "page_op",
    "recipient_from",
    "record_op",
    "record_params",
    "send_from",
    "sends_op",
    "sends_query",
    "staging_rows",
    "summary_op",
]

STAGING_COLUMNS = ("line", "id", "region", "data")
CREATE_STAGING = """
CREATE TEMPORARY TABLE recipients_import (
    line   INTEGER NOT NULL,
    id     TEXT NOT NULL,
    region TEXT,
    data   TEXT NOT NULL
)"""
DROP_STAGING = "DROP TABLE IF EXISTS recipients_import"
INSERT_STAGING = "INSERT INTO recipients_import (line, id, region, data) VALUES (?, ?, ?, ?)"
DUPLICATE = """
SELECT id, MIN(line) AS first, MAX(line) AS again FROM recipients_import
GROUP BY id HAVING COUNT(*) > 1 ORDER BY MAX(line) LIMIT 1"""
DELETE_ACCOUNT = "DELETE FROM recipients WHERE account = ?"
MERGE = """
INSERT INTO recipients (account, id, region, data)
SELECT CAST(? AS TEXT), id, region, data FROM recipients_import WHERE true
ON CONFLICT (account, id) DO UPDATE SET region = excluded.region, data = excluded.data"""
COUNT = "SELECT COUNT(*) FROM recipients WHERE account = ?"
LIST = """
SELECT id, region, data FROM recipients WHERE account = ? AND id > ? ORDER BY id LIMIT ?"""

# Due rows of one delivery, with what the send needs of each recipient (data NULL: the
# recipient was removed from the account since the expansion). The page is chosen first (by
# recipient_sends_due, in order), then joined: a plan that joins first would read every
# recipient. PAGE_DUE_IN: within a part's range, (after, last]. A correction's page
# (:func:`correction_page`) replies to what its family's sends have now and leaves out ({held})
# the sends to a recipient the family has on the wire (alertcast/store/followup_sql.py).
_PAGE_DUE = """
SELECT s.recipient_id, s.state, s.attempts, s.next_attempt_at, s.http_status, s.last_error,
       s.updated_at, r.region, r.data, {reply_to}
FROM (
    SELECT recipient_id, state, attempts, next_attempt_at, http_status, last_error, updated_at,
           reply_to
    FROM recipient_sends
    WHERE delivery_id = ? AND recipient_id > ?{upto} AND state IN ('pending', 'retrying')
      AND (next_attempt_at IS NULL OR next_attempt_at <= ?){held}
    ORDER BY recipient_id
    LIMIT ?
) s
LEFT JOIN recipients r ON r.account = ? AND r.id = s.recipient_id
ORDER BY s.recipient_id"""
PAGE_DUE = _PAGE_DUE.format(reply_to="s.reply_to", upto="", held="")
PAGE_DUE_IN = _PAGE_DUE.format(reply_to="s.reply_to", upto=" AND recipient_id <= ?", held="")

# A delivered row stays delivered: a late write of a worker that lost its claim never undoes it.
# The receipt's remote id is kept (a correction names it), a later NULL not overwriting it.
RECORD = """
UPDATE recipient_sends SET state = ?, attempts = ?, next_attempt_at = ?, http_status = ?,
       last_error = ?, updated_at = ?, remote_id = COALESCE(?, remote_id)
WHERE delivery_id = ? AND recipient_id = ? AND state <> 'delivered'"""

ANALYZE_RECIPIENTS = "ANALYZE recipients"
SUMMARY = "SELECT state, COUNT(*) AS n FROM recipient_sends WHERE delivery_id = ? GROUP BY state"
# When the next send is due: a pending one at once (0). A correction's (HELD_NEXT_DUE): a send
# to a recipient its family has on the wire ({ids}) at the time given (when to look again).
NEXT_DUE = """
SELECT MIN(COALESCE(next_attempt_at, 0)) FROM recipient_sends
WHERE delivery_id = ? AND state IN ('pending', 'retrying')"""
HELD_NEXT_DUE = """
SELECT MIN(due) FROM (
    SELECT COALESCE(next_attempt_at, 0) AS due FROM recipient_sends
    WHERE delivery_id = ? AND state IN ('pending', 'retrying') AND NOT (recipient_id {ids})
    UNION ALL
    SELECT CAST(? AS DOUBLE PRECISION) AS due FROM recipient_sends
    WHERE delivery_id = ? AND state IN ('pending', 'retrying') AND recipient_id {ids}
) held"""
GIVE_UP = """
UPDATE recipient_sends SET state = 'dead', last_error = ?, updated_at = ?
WHERE delivery_id = ? AND state IN ('pending', 'retrying')"""
SENDS = """
SELECT recipient_id, state, attempts, next_attempt_at, http_status, last_error, updated_at
FROM recipient_sends WHERE delivery_id = ? AND recipient_id > ?"""


def staging_rows(rows: Iterable[tuple[int, Recipient]]) -> Iterable[tuple[Any, ...]]:
    """Each ``(line, recipient)`` as a staging row, lazily (a file is never held whole)."""
    for line, r in rows:
        yield (line, r.id, r.region, _dumps(r.data))


def record_params(
    delivery_id: str, outcomes: Sequence[SendOutcome], now: float
) -> list[tuple[Any, ...]]:
    return [
        (
            o.state,
            o.attempts,
            o.next_attempt_at,
            o.http_status,
            o.last_error,
            now,
            o.remote_id,
            delivery_id,
            o.recipient_id,
        )
        for o in outcomes
    ]


def sends_query(state: str | None) -> str:
    """:data:`SENDS` with an optional state filter (params: delivery, after[, state], limit)."""
    return SENDS + (" AND state = ?" if state else "") + " ORDER BY recipient_id LIMIT ?"


def recipient_from(r: Mapping[str, Any]) -> Recipient:
    return Recipient(str(r["id"]), r["region"], json.loads(r["data"]))


def send_from(r: Mapping[str, Any]) -> RecipientSend:
    data = r["data"] if "data" in r.keys() else None  # noqa: SIM118 - sqlite3.Row has no "in"
    return RecipientSend(
        recipient_id=str(r["recipient_id"]),
        state=str(r["state"]),
        attempts=int(r["attempts"]),
        next_attempt_at=r["next_attempt_at"],
        http_status=r["http_status"],
        last_error=r["last_error"],
        updated_at=float(r["updated_at"]),
        region=r["region"] if "region" in r.keys() else None,  # noqa: SIM118
        data=None if data is None else json.loads(data),
    )


def due_from(r: Sequence[Any], loads: Any = json.loads) -> RecipientSend:
    """A row of :data:`PAGE_DUE` by position (a page of them is read for every 500 sends)."""
    data = r[8]
    return RecipientSend(
        r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], None if data is None else loads(data), r[9]
    )


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True)


# -- operations (run by the store's driver: see alertcast.store.driver) -----------------------
async def import_op(
    c: Conn, account: str, rows: Iterable[tuple[int, Recipient]], *, replace: bool
) -> int:
    """Stage every row (an exception from ``rows`` aborts the whole write), refuse an id given
    twice, then merge; how many rows the file held."""
    await c.execute(DROP_STAGING)
    await c.execute(CREATE_STAGING)
    staged = await c.copy("recipients_import", STAGING_COLUMNS, staging_rows(rows))
    twice = await c.fetchone(DUPLICATE)
    if twice is not None:
        raise DuplicateRecipient(str(twice["id"]), int(twice["first"]), int(twice["again"]))
    if replace:
        await c.execute(DELETE_ACCOUNT, (account,))
    await c.execute(MERGE, (account,))
    await c.execute(DROP_STAGING)
    if c.locks:  # PostgreSQL: statistics for the joins of the sends' pages (see ANALYZE)
        await c.execute(ANALYZE_RECIPIENTS)
    return staged


async def count_op(c: Conn, account: str) -> int:
    row = await c.fetchone(COUNT, (account,))
    return 0 if row is None else int(row[0])


async def page_op(
    c: Conn,
    delivery_id: str,
    account: str,
    now: float,
    wire_now: float,
    after: str,
    last: str | None,
    limit: int,
) -> list[RecipientSend]:
    """A page of the sends due at ``now``; what is on the wire is read at ``wire_now``, on
    the clock its stamps are written on (``followup_sql.family_op``)."""
    span = (after,) if last is None else (after, last)
    family = await followup_sql.family_op(c, delivery_id, wire_now)
    if family is None:
        query = PAGE_DUE if last is None else PAGE_DUE_IN
        rows = await c.fetchall(query, (delivery_id, *span, now, limit, account))
    else:
        query, (fam, held) = correction_page(c, family, bounded=last is not None)
        params = (*fam, family.original, delivery_id, *span, now, *held, limit, account)
        rows = await c.fetchall(query, params)
    return [due_from(r) for r in rows]


def correction_page(
    c: Conn, family: followup_sql.Family, *, bounded: bool
) -> tuple[str, tuple[tuple[Any, ...], tuple[Any, ...]]]:
    """A correction's page: :data:`PAGE_DUE` (``bounded``: :data:`PAGE_DUE_IN`) replying to
    ``followup_sql.REPLY_TO``, without the sends to a recipient the family has on the wire;
    with the params of the family's match and of the recipients left out."""
    match, fam = c.any_of(family.ids)
    held, out = "", ()
    if family.on_the_wire:
        clause, out = c.any_of(family.on_the_wire)
        held = f" AND NOT (recipient_id {clause})"
    query = _PAGE_DUE.format(
        reply_to=followup_sql.REPLY_TO.format(family=match),
        upto=" AND recipient_id <= ?" if bounded else "",
        held=held,
    )
    return query, (fam, out)


async def record_op(
    c: Conn,
    delivery_id: str,
    outcomes: Sequence[SendOutcome],
    now: float,
    worker: str,
    done: Sequence[str],
) -> None:
    """The outcomes, and ``worker``'s ``done`` parts marked so, in one transaction."""
    if outcomes:
        await c.executemany(RECORD, record_params(delivery_id, outcomes, now))
    if done:
        await c.execute(*part_sql.done_statement(c, delivery_id, worker, done, now))


async def summary_op(c: Conn, delivery_id: str) -> dict[str, int]:
    return {str(r["state"]): int(r["n"]) for r in await c.fetchall(SUMMARY, (delivery_id,))}


async def next_due_op(c: Conn, delivery_id: str, now: float, wire_now: float) -> float | None:
    """When the delivery's next send is due (None: none is); a correction's send to a
    recipient its family has on the wire (read at ``wire_now``), in
    ``followup_sql.WIRE_LOOK_S`` (to look again)."""
    family = await followup_sql.family_op(c, delivery_id, wire_now)
    if family is None or not family.on_the_wire:
        row = await c.fetchone(NEXT_DUE, (delivery_id,))
    else:
        clause, ids = c.any_of(family.on_the_wire)
        look = now + followup_sql.WIRE_LOOK_S
        params = (delivery_id, *ids, look, delivery_id, *ids)
        row = await c.fetchone(HELD_NEXT_DUE.format(ids=clause), params)
    return None if row is None or row[0] is None else float(row[0])


async def give_up_op(c: Conn, delivery_id: str, reason: str, now: float) -> int:
    return await c.execute(GIVE_UP, (reason, now, delivery_id))


async def sends_op(
    c: Conn, delivery_id: str, state: str | None, after: str, limit: int
) -> list[RecipientSend]:
    params = (delivery_id, after, *((state,) if state else ()), limit)
    return [send_from(r) for r in await c.fetchall(sends_query(state), params)]


async def list_op(c: Conn, account: str, after: str, limit: int) -> list[Recipient]:
    return [recipient_from(r) for r in await c.fetchall(LIST, (account, after, limit))]
