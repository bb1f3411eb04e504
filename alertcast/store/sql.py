"""SQL text and row mapping shared by every engine (written with ``?`` placeholders).

Statements are plain, portable SQL; :func:`numbered` rewrites the placeholders to ``$1, $2, …``
for PostgreSQL. Keeping one copy of each statement keeps the engines honest with each other.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from importlib import resources
from typing import Any

from alertcast.models import DeliveryState
from alertcast.store.base import (
    SETTLED,
    ActiveClaim,
    DeliveryRow,
    Effects,
    IncidentRow,
    NewDelivery,
    Outcome,
    Release,
    StaleRead,
    StateConflict,
    Taken,
    Write,
)
from alertcast.store.records import ATTEMPT, DELIVERY, to_json

_SETTLED_SQL = ", ".join(f"'{s}'" for s in SETTLED)

IF_NEW = " ON CONFLICT (id) DO NOTHING"  # SQLite 3.24+ and PostgreSQL alike
NOTHING = " ON CONFLICT DO NOTHING"

INSERT_DELIVERY = DELIVERY.insert
INSERT_ATTEMPT = ATTEMPT.insert + NOTHING  # a retried record of the same attempt is one row
SELECT_DELIVERY = "SELECT * FROM deliveries WHERE id = ?"
SELECT_IDEMPOTENCY = "SELECT * FROM idempotency_keys WHERE issuer = ? AND key = ?"

CLAIM = """
UPDATE deliveries SET state = 'sending', attempts = attempts + 1, claimed_by = ?, lease_until = ?,
       updated_at = ?
WHERE id {ids}"""

# Where another process may claim too (PostgreSQL), lock only what we take: rows another
# replica holds, or just took, are skipped.
LOCK_CLAIMABLE = """
SELECT id FROM deliveries WHERE id {ids} AND state IN ('pending', 'retrying')
FOR UPDATE SKIP LOCKED"""

# The claims of a batch of finished attempts ``worker`` still holds (locked until the batch
# commits where another process could take them over).
HELD = """
SELECT id FROM deliveries WHERE id {ids} AND state = 'sending' AND claimed_by = ?"""

# An alert's own post not sent by its ``expires_at`` (the incident's expiry, or its kind's
# ``max_delay_s`` after it was queued, whichever was first) ends dead, saying which limit passed.
# ``{via}``: the index of the due rows that may expire (:meth:`alertcast.store.driver.Conn.via`).
EXPIRE_DUE = """
UPDATE deliveries {via} SET state = 'dead', updated_at = ?, reason = (
    SELECT CASE WHEN i.expires_at IS NOT NULL AND i.expires_at <= deliveries.expires_at
           THEN 'expired: the incident''s expires_at passed before it could be sent'
           ELSE 'too late: not sent within max_delay_s for ' || i.kind || ' ('
                || CAST(CAST(ROUND(deliveries.expires_at - deliveries.created_at) AS INTEGER)
                        AS TEXT) || ' s) of being queued'
           END
    FROM incidents i WHERE i.id = deliveries.incident_id)
WHERE state IN ('pending', 'retrying') AND expires_at IS NOT NULL AND expires_at <= ?"""

# A delivery that waits for another is due once that one is settled. A cluster member (it
# waits for another account's delivery: its lead's) is also due once it was tried before (it
# chose its way then) or once it has been due its account's wait (``{waited}``, see select_due).
# One priority level at a time, the oldest due first: a range of ``deliveries_due`` (``{via}``,
# migration 0012), so neither the rows held (no next_attempt_at) nor those due later are read.
SELECT_DUE = f"""
SELECT d.id, d.account, d.priority, d.action FROM deliveries d {{via}}
WHERE d.state IN ('pending', 'retrying') AND d.next_attempt_at IS NOT NULL
  AND d.priority = ? AND d.next_attempt_at <= ?
  AND (d.wait_for IS NULL OR EXISTS (
        SELECT 1 FROM deliveries w WHERE w.id = d.wait_for
          AND (w.state IN ({_SETTLED_SQL})
               OR (w.account <> d.account AND (d.attempts > 0 OR {{waited}})))))
ORDER BY d.next_attempt_at
LIMIT ?"""

# The highest priority of the deliveries still to send below the param: the next level a claim
# reads (the first: below PRIORITY_CEILING). One end of ``deliveries_due``, not a scan.
NEXT_PRIORITY = """
SELECT MAX(priority) FROM deliveries {via}
WHERE state IN ('pending', 'retrying') AND next_attempt_at IS NOT NULL AND priority < ?"""
PRIORITY_CEILING = 2**31 - 1  # above any priority (an INTEGER column on PostgreSQL)

SELECT_CLAIMED = """
SELECT d.*, t.remote_id AS target_remote_id, t.state AS target_state,
       t.account AS target_account, i.msg_type AS msg_type,
       w.state AS wait_state, w.account AS wait_account,
       EXISTS (SELECT 1 FROM recipient_sends s
               WHERE s.delivery_id = d.target_delivery_id
                 AND s.state IN ('delivered', 'sending'))
           AS target_reached
FROM deliveries d
JOIN incidents i ON i.id = d.incident_id
LEFT JOIN deliveries t ON t.id = d.target_delivery_id
LEFT JOIN deliveries w ON w.id = d.wait_for
WHERE d.id {ids}"""

WITHDRAW = """
UPDATE deliveries SET state = 'skipped', reason = ?, next_attempt_at = NULL, updated_at = ?
WHERE id IN ({ids}) AND state IN ('pending', 'retrying')"""

SET_INCIDENT_STATE = "UPDATE incidents SET state = ? WHERE id = ? AND state <> 'cancelled'"

RELEASE_CANCELLATION = """
UPDATE incidents SET state = 'cancelled'
WHERE id = ? AND msg_type = 'cancel' AND state = 'awaiting_approval'"""

GUARD_LIVE = "UPDATE incidents SET state = state WHERE id = ? AND state <> 'cancelled'"

APPROVE_MESSAGES = """
UPDATE incidents SET state = 'active' WHERE id IN ({ids}) AND state = 'awaiting_approval'"""

HELD_UNSEEN = """
SELECT COUNT(*) FROM incidents
WHERE (id = ? OR refs = ?) AND state = 'awaiting_approval' AND msg_type <> 'cancel'
  AND id NOT IN ({ids})"""

RELEASE = """
UPDATE deliveries SET next_attempt_at = ?, reason = NULL, updated_at = ?
WHERE incident_id IN ({ids}) AND state = 'pending' AND next_attempt_at IS NULL"""

FINISH_DELIVERY = """
UPDATE deliveries SET state = ?, next_attempt_at = ?, last_error = ?,
       remote_id = COALESCE(?, remote_id), delivered_at = ?, reason = ?,
       progress = COALESCE(?, progress), claimed_by = NULL, lease_until = NULL, updated_at = ?
WHERE id = ? AND state = 'sending' AND claimed_by = ?"""

SAVE_PROGRESS = """
UPDATE deliveries SET progress = ?, lease_until = ?, updated_at = ?
WHERE id = ? AND state = 'sending' AND claimed_by = ?"""

# A claim given back before anything was sent: the attempt it counted is taken back too.
UNCLAIM = """
UPDATE deliveries SET state = CASE WHEN attempts > 1 THEN 'retrying' ELSE 'pending' END,
       attempts = attempts - 1, next_attempt_at = ?, claimed_by = NULL, lease_until = NULL,
       reason = ?, progress = COALESCE(?, progress), updated_at = ?
WHERE id = ? AND state = 'sending' AND claimed_by = ?"""

# A claim whose answer was lost (see Store.release_lost): as UNCLAIM, for every row of the
# worker's claimed before the bound and not held (``{held}``: the ids it holds, or TRUE).
RELEASE_LOST = """
UPDATE deliveries SET state = CASE WHEN attempts > 1 THEN 'retrying' ELSE 'pending' END,
       attempts = attempts - 1, next_attempt_at = ?, claimed_by = NULL, lease_until = NULL,
       updated_at = ?
WHERE state = 'sending' AND claimed_by = ? AND updated_at < ? AND {held}"""

NEXT_DUE = "SELECT MIN(next_attempt_at) FROM deliveries WHERE state IN ('pending', 'retrying')"

RECOVER_DEAD = """
UPDATE deliveries SET state = 'dead', claimed_by = NULL, lease_until = NULL, updated_at = ?,
       last_error = 'interrupted during send; retry budget spent'
WHERE state = 'sending' AND attempts >= max_attempts AND ({cond})"""

RECOVER_RETRY = """
UPDATE deliveries SET state = 'retrying', claimed_by = NULL, lease_until = NULL, updated_at = ?,
       next_attempt_at = ?, last_error = 'interrupted during send (daemon stopped); resent'
WHERE state = 'sending' AND ({cond})"""

# A re-drive is refused while the delivery's message awaits approval and, once the incident
# (the message or its root) is cancelled, unless it is the cancellation's own delivery: a
# correction that failed must be re-drivable.
REQUEUE = f"""
UPDATE deliveries SET state = 'pending', reason = NULL, next_attempt_at = ?,
       max_attempts = attempts + ?, updated_at = ?
WHERE id = ? AND state IN ({_SETTLED_SQL}) AND state <> 'delivered'
  AND COALESCE(reason, '') NOT LIKE 'withdrawn%' AND COALESCE(reason, '') NOT LIKE 'superseded%'
  AND NOT EXISTS (
      SELECT 1 FROM incidents m LEFT JOIN incidents r ON r.id = m.refs
      WHERE m.id = deliveries.incident_id
        AND (m.state = 'awaiting_approval'
             OR (m.msg_type <> 'cancel' AND (m.state = 'cancelled' OR r.state = 'cancelled'))))"""


def select_due(
    now: float, priority: int, limit: int, waits: Mapping[str, float] | None, via: str = ""
) -> tuple[str, list[Any]]:
    """SELECT_DUE of one ``priority`` and its parameters: the members of ``waits`` (account ->
    seconds) are due once they have been due that long, whatever their lead's delivery is
    doing; ``via``: the connection's hint for ``deliveries_due``."""
    by_wait: dict[float, list[str]] = {}
    for account, wait_s in sorted((waits or {}).items()):
        by_wait.setdefault(wait_s, []).append(account)
    waited = [
        f"(d.account IN ({', '.join('?' * len(accounts))}) AND d.next_attempt_at <= ?)"
        for accounts in by_wait.values()
    ]
    params = [p for wait_s, accounts in by_wait.items() for p in (*accounts, now - wait_s)]
    query = SELECT_DUE.format(waited=" OR ".join(waited) or "1 = 0", via=via)
    return query, [priority, now, *params, limit]


def marks(n: int) -> str:
    """``?, ?, …`` for ``n`` values."""
    return ", ".join("?" * n)


def numbered(sql: str) -> str:
    """Rewrite ``?`` placeholders as ``$1 … $n`` (PostgreSQL)."""
    counter = iter(range(1, 10_000))
    return re.sub(r"\?", lambda _: f"${next(counter)}", sql)


def migrations() -> list[tuple[int, str]]:
    """``(version, sql)`` for every packaged migration, in order."""
    folder = resources.files("alertcast.store") / "migrations"
    found = []
    for entry in folder.iterdir():
        match = re.fullmatch(r"(\d{4})_\w+\.sql", entry.name)
        if match:
            found.append((int(match.group(1)), entry.read_text(encoding="utf-8")))
    return sorted(found)


def release_statements(r: Release, now: float) -> list[tuple[str, tuple[Any, ...]]]:
    """``(statement, params)`` of a release: approve exactly ``r.ids``, then make their held
    deliveries due. The first must touch every id (:class:`StateConflict` otherwise); when
    ``r.whole`` is set, :data:`HELD_UNSEEN` must count 0 first (:class:`StaleRead`)."""
    marks = ", ".join("?" * len(r.ids))
    return [
        (APPROVE_MESSAGES.format(ids=marks), tuple(r.ids)),
        (RELEASE.format(ids=marks), (now, now, *r.ids)),
    ]


def unseen_statement(r: Release) -> tuple[str, tuple[Any, ...]] | None:
    """The count of held messages of ``r.whole`` the approver did not see, if it applies."""
    if r.whole is None:
        return None
    marks = ", ".join("?" * len(r.ids))
    return HELD_UNSEEN.format(ids=marks), (r.whole, r.whole, *r.ids)


def release_conflict(r: Release, touched: int) -> None:
    if touched < len(r.ids):
        raise StateConflict(f"incident {r.ids[0]} is not awaiting approval")


def unseen_conflict(r: Release, held: int) -> None:
    if held:
        raise StaleRead(f"{held} held message(s) of {r.whole} were written after the approval read")


def write_time(write: Write) -> float:
    """The time a write is stamped with: its incident's, else its first audit row's."""
    if write.incident is not None:
        return write.incident.created_at
    return write.audit[0].at if write.audit else 0.0


def stored_values(incident_id: str, d: NewDelivery, now: float, claimed: bool) -> dict[str, Any]:
    """What a new delivery's stored row holds beside the fields of ``d``: claimed at creation
    (``sending``, first attempt) when ``claimed``; due now unless held (``hold``), not before
    ``not_before``, or settled already (``skipped``)."""
    next_at = now if d.state is DeliveryState.pending and not d.hold else None
    if next_at is not None and d.not_before is not None:
        next_at = max(next_at, d.not_before)
    return {
        "incident_id": incident_id,
        "state": DeliveryState.sending if claimed else d.state,
        "attempts": 1 if claimed else 0,
        "next_attempt_at": next_at,
        "created_at": now,
        "updated_at": now,
    }


def deliveries_params(
    incident_id: str, deliveries: Sequence[NewDelivery], now: float, taken: Taken | None
) -> list[tuple[Any, ...]]:
    """INSERT_DELIVERY's rows, ``claimed_by`` and ``lease_until`` set for those ``taken``
    names; a payload shared by many deliveries is serialised once."""
    shared: dict[tuple[str, int], Any] = {}
    out = []
    for d in deliveries:
        claim = (taken.worker, taken.lease_until) if taken and d.id in taken.ids else None
        values = stored_values(incident_id, d, now, claim is not None)
        out.append(DELIVERY.params_of(d, values, *(claim or (None, None)), shared=shared))
    return out


def taken_claims(
    incident: IncidentRow, deliveries: Sequence[NewDelivery], taken: Taken | None
) -> list[ActiveClaim]:
    """The deliveries claimed at creation, as stored (see ``deliveries_params``), with what
    the adapter needs of the originals they thread to (``taken.targets``: remote id by
    delivery)."""
    if taken is None:
        return []
    return [
        ActiveClaim(
            DELIVERY.build(d, stored_values(incident.id, d, incident.created_at, True)),
            target_remote_id=taken.targets.get(d.target_delivery_id)
            if d.target_delivery_id
            else None,
            msg_type=incident.msg_type,
            target_delivered=d.target_delivery_id is not None,
        )
        for d in deliveries
        if d.id in taken.ids
    ]


def finish_params(
    claim: DeliveryRow, outcome: Outcome, now: float, worker: str
) -> tuple[float | None, tuple[Any, ...]]:
    """``(delivered_at, FINISH_DELIVERY's params)`` of one attempt's outcome."""
    delivered_at = now if outcome.state is DeliveryState.delivered else claim.delivered_at
    progress = None if outcome.progress is None else to_json(outcome.progress)
    return delivered_at, (
        outcome.state.value,
        outcome.next_attempt_at,
        outcome.last_error,
        outcome.remote_id,
        delivered_at,
        outcome.reason,
        progress,
        now,
        claim.id,
        worker,
    )


def finished(
    claim: DeliveryRow, outcome: Outcome, now: float, delivered_at: float | None
) -> DeliveryRow:
    """The row as FINISH_DELIVERY left it, without reading it back (payload JSON is large)."""
    return replace(
        claim,
        state=outcome.state,
        next_attempt_at=outcome.next_attempt_at,
        last_error=outcome.last_error,
        remote_id=outcome.remote_id or claim.remote_id,
        delivered_at=delivered_at,
        reason=outcome.reason,
        progress=outcome.progress if outcome.progress is not None else claim.progress,
        updated_at=now,
    )


def claim_from(r: Any) -> ActiveClaim:
    """A SELECT_CLAIMED row: the delivery and where what it threads to, or waits for, stands.
    A per-recipient original reached the platform when any of its recipients' sends did, or
    is on the wire (``sending``: its answer may come after the follow-up's stop), whatever
    its own state (a follow-up may have stopped it half way)."""
    delivered = r["target_state"] == DeliveryState.delivered.value
    return ActiveClaim(
        DELIVERY.from_row(r),
        target_remote_id=r["target_remote_id"] if delivered else None,
        msg_type=r["msg_type"],
        target_delivered=delivered or bool(r["target_reached"]),
        target_state=DeliveryState(r["target_state"]) if r["target_state"] else None,
        target_account=r["target_account"],
        wait_state=DeliveryState(r["wait_state"]) if r["wait_state"] else None,
        wait_account=r["wait_account"],
    )


def pick_within_capacity(
    due: Sequence[tuple[str, str, int, str]],
    free: Mapping[str, int],
    limit: int,
    corrections: Mapping[str, Mapping[str, int]] | None = None,
) -> list[str]:
    """Ids from ``due`` (``(id, account, priority, action)`` in priority order) that fit each
    account's free slots: ``free[account]`` for any delivery; for a correction (priority > 0)
    ``corrections[account][action]`` instead where given, which may be more (its action's own
    budget, a rate window's reserve). Every one taken spends a slot of each of its account's."""
    left = dict(free)
    more = {account: dict(rooms) for account, rooms in (corrections or {}).items()}
    chosen: list[str] = []
    for delivery_id, account, priority, action in due:
        if len(chosen) >= limit:
            break
        room = left.get(account, limit)
        if priority > 0 and action in more.get(account, {}):
            room = more[account][action]
        if room > 0:
            left[account] = left.get(account, limit) - 1
            more[account] = {a: n - 1 for a, n in more.get(account, {}).items()}
            chosen.append(delivery_id)
    return chosen


def incidents_query(
    kind: str | None, state: str | None, status: str | None, before: float | None, limit: int
) -> tuple[str, list[Any]]:
    """``list_incidents``: the newest first, filtered."""
    clauses, params = filters(kind=kind, state=state, status=status)
    if before is not None:
        clauses.append("created_at < ?")
        params.append(before)
    query = f"SELECT * FROM incidents {where(clauses)} ORDER BY created_at DESC LIMIT ?"
    return query, [*params, limit]


def deliveries_query(
    incident_id: str | None, state: str | None, account: str | None, limit: int
) -> tuple[str, list[Any]]:
    """``list_deliveries``: in creation order, filtered."""
    clauses, params = filters(incident_id=incident_id, state=state, account=account)
    query = f"SELECT * FROM deliveries {where(clauses)} ORDER BY created_at, id LIMIT ?"
    return query, [*params, limit]


def filters(**given: str | None) -> tuple[list[str], list[Any]]:
    """Equality clauses (``?`` placeholders) for the arguments that are not ``None``."""
    pairs = [(k, v) for k, v in given.items() if v is not None]
    return [f"{k} = ?" for k, _ in pairs], [v for _, v in pairs]


def where(clauses: list[str]) -> str:
    return ("WHERE " + " AND ".join(clauses)) if clauses else ""


@dataclass(frozen=True, slots=True)
class EffectSQL:
    """One statement of a follow-up's effects (``?`` placeholders) and the rows it must touch:
    fewer means the plan was made on a state that changed, and ``conflict`` is raised."""

    statement: str
    params: tuple[Any, ...]
    must_touch: int
    conflict: Exception

    def check(self, touched: int) -> None:
        if touched < self.must_touch:
            raise self.conflict


def effect_statements(effects: Effects | None, now: float) -> list[EffectSQL]:
    """The SQL that applies a follow-up's effects, in order.

    Every original to withdraw must still be unsent (:class:`StaleRead` otherwise: one
    claimed meanwhile would go out with no correction to follow it), and the incident must
    still be live (:class:`StateConflict`: it was cancelled meanwhile).
    """
    if effects is None:
        return []
    out: list[EffectSQL] = []
    if effects.withdraw:
        n = len(effects.withdraw)
        out.append(
            EffectSQL(
                WITHDRAW.format(ids=", ".join("?" * n)),
                (effects.withdraw_reason, now, *effects.withdraw),
                n,
                StaleRead(f"some of the {n} deliveries to withdraw changed"),
            )
        )
    if effects.incident_state is not None:
        incident_id, state = effects.incident_state
        cancelled = StateConflict(f"incident {incident_id} is already cancelled")
        out.append(EffectSQL(SET_INCIDENT_STATE, (state, incident_id), 1, cancelled))
    if effects.live is not None:
        cancelled = StateConflict(f"incident {effects.live} is already cancelled")
        out.append(EffectSQL(GUARD_LIVE, (effects.live,), 1, cancelled))
    if effects.released is not None:
        twice = StateConflict(f"cancellation {effects.released} is not awaiting approval")
        out.append(EffectSQL(RELEASE_CANCELLATION, (effects.released,), 1, twice))
    return out
