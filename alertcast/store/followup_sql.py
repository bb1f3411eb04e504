"""SQL of a follow-up on a per-recipient account (migrations 0008, 0010), shared by every engine.

Written with ``?`` placeholders like :mod:`alertcast.store.sql`.

**The stop**, in the follow-up's own transaction (:func:`effect_statements`): the original's
parents still pending, retrying or being sent become ``skipped`` (``withdrawn: …``), and their
sends not yet sent too. A replica sending such a parent loses its claim at its next checkpoint
(the parent is no longer ``sending``) and its producer finds no send due any more, wherever the
follow-up was posted. A send that was on the wire records its outcome over ``skipped`` (a
delivered send stays delivered), so it counts as reached.

**The audience** of a correction's parent (:func:`audience_op`, a chunk at a time by recipient
id, idempotent like the expansion): every recipient the original's *family* reached — the
original and the account's other corrections of it, which may have given a recipient their first
message — copied into the correction's sends as ``pending`` with ``reply_to`` the remote id of
the send that reached them (the original's first); for an update also the family's withdrawn
sends (they get the update as their first message, ``reply_to`` NULL). Chunks are cut along the
original's own sends; the last chunk takes every family send after them. The update's newly
matching recipients are left to the ordinary expansion by area (``ON CONFLICT DO NOTHING`` keeps
what was copied first).

**Its sends, when they go** (the pages and the next due time of
:mod:`alertcast.store.recipient_sql`, through :func:`family_op`): a send the family had on the
wire at the copy has no remote id yet (its outcome is recorded over the stop, later), so a
correction's send replies to :data:`REPLY_TO`: the remote id copied, else the one recorded since
on the family's send to that recipient (the original's first). And a correction's send is not
due while a family send to the same recipient is on the wire (:data:`ON_THE_WIRE`: ``sending``,
stamped less than :data:`WIRE_S` ago; read once per page, never per send): it goes as soon as
that send's outcome is recorded, after the message it corrects and threaded to it, never
before it; the pass looks again every :data:`WIRE_LOOK_S`. A live pass stamps its sends on the
wire at every lease renewal (``Store.touch_recipients``, every 5 s at most), however long a
request or its rate window takes; a send not stamped for :data:`WIRE_S` (its pass died) holds
nothing: the correction goes, without a reply if it has no remote id.

**A send given back unmade.** A pass that stopped gives back the sends it had taken and will
never make (``part_sql.give_back_op``); in the same transaction a cancellation's sends to
those recipients, copied as reached while they were taken, are withdrawn when nothing of the
family may have reached them (:data:`NEVER_REACHED`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from alertcast.store.base import Effects
from alertcast.store.driver import Conn
from alertcast.store.sql import EffectSQL

__all__ = [
    "AUDIENCE_LAST",
    "NEVER_REACHED",
    "NEVER_REACHED_WHY",
    "ON_THE_WIRE",
    "REACHED",
    "REPLY_TO",
    "STOP_PARENTS",
    "WIRE_LOOK_S",
    "WIRE_S",
    "WITHDRAWN",
    "WITHDRAW_SENDS",
    "Family",
    "audience_op",
    "audience_params",
    "audience_statements",
    "effect_statements",
    "family_op",
    "never_reached_op",
]

STOP_PARENTS = """
UPDATE deliveries SET state = 'skipped', reason = ?, next_attempt_at = NULL, claimed_by = NULL,
       lease_until = NULL, updated_at = ?
WHERE id IN ({ids}) AND state IN ('pending', 'retrying', 'sending')"""

WITHDRAW_SENDS = """
UPDATE recipient_sends SET state = 'skipped', next_attempt_at = NULL, last_error = ?,
       updated_at = ?
WHERE delivery_id IN ({ids}) AND state IN ('pending', 'retrying')"""

# The family of an original on one account: the original (first param) and the deliveries that
# correct it (target), but not the correction being expanded (params: account, original,
# original, correction).
_FAMILY = """
SELECT id FROM deliveries
WHERE account = ? AND (id = ? OR target_delivery_id = ?) AND id <> ?"""

# What a delivery corrects, if anything (params: the delivery).
TARGET = "SELECT account, target_delivery_id FROM deliveries WHERE id = ?"

# Where the next chunk ends: the original's sends in recipient order (its primary key).
AUDIENCE_LAST = """
SELECT MAX(recipient_id) FROM (
    SELECT recipient_id FROM recipient_sends WHERE delivery_id = ? AND recipient_id > ?
    ORDER BY recipient_id LIMIT ?
) chunk"""

_COPY = """
INSERT INTO recipient_sends (delivery_id, recipient_id, state, attempts, updated_at, reply_to)
SELECT CAST(? AS TEXT), recipient_id, 'pending', 0, CAST(? AS DOUBLE PRECISION), {reply_to}
FROM recipient_sends
WHERE {source} AND state IN ({state}) AND recipient_id > ?{upto}
ON CONFLICT (delivery_id, recipient_id) DO NOTHING"""

# Reached: delivered, or on the wire when a follow-up stopped the original (a pass marks the
# few it is about to send ``sending``: alertcast/store/part_sql.py, START).
REACHED = "'delivered', 'sending'"
WITHDRAWN = "'skipped'"

# A correction's send (``s``) replies to the remote id copied, else to the one a send of the
# family ({family}: ids) to that recipient has now, the original's (the param) first.
REPLY_TO = """COALESCE(s.reply_to, (
    SELECT f.remote_id FROM recipient_sends f
    WHERE f.delivery_id {family} AND f.recipient_id = s.recipient_id AND f.remote_id IS NOT NULL
    ORDER BY CASE WHEN f.delivery_id = ? THEN 0 ELSE 1 END
    LIMIT 1
))"""
# The recipients a send of the family ({family}: ids) is on the wire to: taken for sending,
# or stamped by its live pass, after the param (now - WIRE_S), and its outcome not recorded yet
# (few: a pass takes ``width`` at a time).
ON_THE_WIRE = """
SELECT DISTINCT recipient_id FROM recipient_sends
WHERE delivery_id {family} AND state = 'sending' AND updated_at > ?"""
WIRE_S = 30.0  # a send not stamped this long is its dead pass's (a live one stamps every <=5 s)
WIRE_LOOK_S = 0.2  # how often a correction's pass looks whether such a send has ended

# A cancellation's sends copied from a send on the wire that its stopped pass then gave back
# unmade (``Store.give_back_recipients``; params: reason, now, the given-back ids, the
# account and the original, then the family's: account, original twice): withdrawn, since
# the recipient never got the message it cancels, if no send of the family to that recipient
# may have left: each is known never to have (every take of it given back unmade: ``taken``
# 0, migration 0013; never recorded: ``attempts`` 0; no remote id; still to go, or withdrawn).
# They were held meanwhile (a send on the wire holds its recipient's correction), so none of
# them has gone; an update's stay (the recipient's first message, as for any send the update
# found withdrawn).
NEVER_REACHED = """
UPDATE recipient_sends SET state = 'skipped', last_error = ?, updated_at = ?
WHERE state = 'pending' AND reply_to IS NULL AND recipient_id {ids}
  AND delivery_id IN (
    SELECT d.id FROM deliveries d JOIN incidents i ON i.id = d.incident_id
    WHERE d.account = ? AND d.target_delivery_id = ? AND i.msg_type = 'cancel')
  AND NOT EXISTS (
    SELECT 1 FROM recipient_sends f JOIN deliveries fd ON fd.id = f.delivery_id
    WHERE f.recipient_id = recipient_sends.recipient_id
      AND fd.account = ? AND (fd.id = ? OR fd.target_delivery_id = ?)
      AND f.delivery_id <> recipient_sends.delivery_id
      AND (f.taken > 0 OR f.attempts > 0 OR f.remote_id IS NOT NULL
           OR f.state NOT IN ('pending', 'skipped')))"""
NEVER_REACHED_WHY = "the alert it cancels never reached this recipient (its send was not made)"


def effect_statements(effects: Effects | None, now: float) -> list[EffectSQL]:
    """The stop of a follow-up's per-recipient parents (``withdraw_recipients_of``): each
    parent not settled is withdrawn, then its sends not yet sent. Neither must touch a row:
    a parent that ended meanwhile has nothing left to stop."""
    if effects is None or not effects.withdraw_recipients_of:
        return []
    ids = effects.withdraw_recipients_of
    marks = ", ".join("?" * len(ids))
    reason = effects.withdraw_reason or "withdrawn by a follow-up"
    never = RuntimeError("unreachable: must_touch is 0")
    return [
        EffectSQL(STOP_PARENTS.format(ids=marks), (reason, now, *ids), 0, never),
        EffectSQL(WITHDRAW_SENDS.format(ids=marks), (reason, now, *ids), 0, never),
    ]


def audience_statements(*, first: bool, bounded: bool) -> list[str]:
    """The copies of one chunk, in order of precedence (params of each: see
    :func:`audience_params`): the original's reached sends, the rest of the family's, and
    (``first``: an update) the family's withdrawn ones; ``bounded``: up to the chunk's last id,
    else every one after ``after``."""
    upto = " AND recipient_id <= ?" if bounded else ""
    own = "delivery_id = ?"
    family = f"delivery_id IN ({_FAMILY}) AND delivery_id <> ?"
    out = [
        _COPY.format(reply_to="remote_id", source=own, state=REACHED, upto=upto),
        _COPY.format(reply_to="remote_id", source=family, state=REACHED, upto=upto),
    ]
    if first:
        every = f"delivery_id IN ({_FAMILY})"
        out.append(_COPY.format(reply_to="NULL", source=every, state=WITHDRAWN, upto=upto))
    return out


def audience_params(
    index: int,
    correction: str,
    original: str,
    account: str,
    span: tuple[str, str | None],
    now: float,
) -> tuple[Any, ...]:
    """The params of :func:`audience_statements`' ``index``-th statement."""
    after, last = span
    head: tuple[Any, ...]
    if index == 0:
        head = (original,)
    elif index == 1:
        head = (account, original, original, correction, original)
    else:
        head = (account, original, original, correction)
    tail = (after,) if last is None else (after, last)
    return (correction, now, *head, *tail)


async def audience_op(
    c: Conn,
    correction: str,
    original: str,
    account: str,
    *,
    first: bool,
    after: str,
    limit: int,
    now: float,
) -> tuple[str | None, int]:
    """Copy the next chunk of the original family's audience into the correction's sends:
    ``(the chunk's last id, rows added)``; ``(None, added)`` once the last chunk (everything
    after the original's own sends) is copied."""
    row = await c.fetchone(AUDIENCE_LAST, (original, after, limit))
    last = None if row is None or row[0] is None else str(row[0])
    added = 0
    for i, statement in enumerate(audience_statements(first=first, bounded=last is not None)):
        params = audience_params(i, correction, original, account, (after, last), now)
        added += await c.execute(statement, params)
    return last, added


@dataclass(frozen=True, slots=True)
class Family:
    """What a correction's sends need of its family when they are read for sending."""

    original: str  # the delivery it corrects
    ids: list[str]  # the family's deliveries on the account, the correction left out
    on_the_wire: list[str]  # the recipients a send of the family is being sent to now


async def family_op(c: Conn, delivery_id: str, wire_now: float) -> Family | None:
    """The family of what the delivery corrects (see ``_FAMILY``), or None for a delivery
    that corrects nothing; on the wire: stamped less than :data:`WIRE_S` before ``wire_now``,
    read on the clock the stamps are written on (the store's, ``Store.clock``: replicas whose
    own clocks differ still agree on a stamp's age)."""
    row = await c.fetchone(TARGET, (delivery_id,))
    if row is None or row["target_delivery_id"] is None:
        return None
    account, original = str(row["account"]), str(row["target_delivery_id"])
    rows = await c.fetchall(_FAMILY, (account, original, original, delivery_id))
    ids = [str(r[0]) for r in rows]
    if not ids:
        return None
    clause, params = c.any_of(ids)
    wire = await c.fetchall(ON_THE_WIRE.format(family=clause), (*params, wire_now - WIRE_S))
    return Family(original, ids, sorted(str(r[0]) for r in wire))


async def never_reached_op(c: Conn, delivery_id: str, ids: Sequence[str], now: float) -> int:
    """After the delivery's sends ``ids`` were given back unmade (in the same transaction):
    the sends of its family's cancellations to those recipients withdrawn where the family
    may have reached none of them (:data:`NEVER_REACHED`); how many."""
    row = await c.fetchone(TARGET, (delivery_id,))
    if row is None or not ids:
        return 0
    account = str(row["account"])
    original = str(row["target_delivery_id"] or delivery_id)
    clause, params = c.any_of(ids)
    args = (NEVER_REACHED_WHY, now, *params, account, original, account, original, original)
    return await c.execute(NEVER_REACHED.format(ids=clause), args)
