"""SQL and row mapping of account state (migrations 0005, 0011), shared by every engine.

Written with ``?`` placeholders like :mod:`alertcast.store.sql`; PostgreSQL rewrites them with
:func:`alertcast.store.sql.numbered`. A write never goes back in time: a row written with an
older ``updated_at`` than the stored one (a replica that lagged) changes nothing, and a failed
correction's flag older than the stored one (``correction_failed_at``) leaves it as it is.

:func:`spent_alerts` selects what a spent account hands to its fallback at once: its due
deliveries of original alerts; and, of the accounts named for corrections, their due updates
and cancellations (each once what it waits for allows it), which go by the actions that spend
no quota (a WeChat withdrawal, customer-service messages) or wait for the quota, with the
reason, instead of sitting unclaimed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from alertcast.store.base import SETTLED
from alertcast.store.records import ACCOUNT_STATE
from alertcast.store.sql import CLAIM, SELECT_CLAIMED, marks

_SETTLED_SQL = ", ".join(f"'{s}'" for s in SETTLED)

__all__ = [
    "PUT_STATE",
    "SELECT_STATES",
    "claim_spent",
    "claimed",
    "spent_alerts",
]

SELECT_STATES = "SELECT * FROM account_state ORDER BY account"

# The flag of a failed correction is replaced only by a newer one: a replica that writes its
# pause before it has heard of another's failure (or its clearing) keeps the stored flag.
_NEWER_FLAG = (
    "excluded.correction_failed_at > account_state.correction_failed_at"
    " OR account_state.correction_failed_at IS NULL"
)

PUT_STATE = (
    ACCOUNT_STATE.insert
    + f"""
ON CONFLICT (account) DO UPDATE SET
    paused_for = excluded.paused_for, paused_reason = excluded.paused_reason,
    paused_until = excluded.paused_until, paused_credentials = excluded.paused_credentials,
    updated_at = excluded.updated_at,
    correction_failed = CASE WHEN {_NEWER_FLAG}
        THEN excluded.correction_failed ELSE account_state.correction_failed END,
    correction_failed_at = CASE WHEN {_NEWER_FLAG}
        THEN excluded.correction_failed_at ELSE account_state.correction_failed_at END
WHERE account_state.updated_at <= excluded.updated_at"""
)

_SPENT_ALERTS = f"""
SELECT d.id FROM deliveries d JOIN incidents i ON i.id = d.incident_id
WHERE d.state IN ('pending', 'retrying') AND d.next_attempt_at <= ?
  AND (d.expires_at IS NULL OR d.expires_at > ?)
  AND ((i.msg_type = 'alert' AND d.account IN ({{accounts}}))
       OR (i.msg_type <> 'alert' AND d.account IN ({{corrections}})
           AND (d.wait_for IS NULL OR EXISTS (
                SELECT 1 FROM deliveries w WHERE w.id = d.wait_for
                  AND (w.state IN ({_SETTLED_SQL})
                       OR (w.account <> d.account AND d.attempts > 0))))))
ORDER BY d.priority DESC, d.next_attempt_at
LIMIT ?"""

_CLAIM = CLAIM + " AND state IN ('pending', 'retrying')"


def spent_alerts(
    accounts: Sequence[str],
    now: float,
    limit: int,
    lock: str = "",
    corrections: Sequence[str] = (),
) -> tuple[str, tuple[Any, ...]]:
    """The due alerts of ``accounts`` and the due corrections of ``corrections``, highest
    priority first (``lock``: PostgreSQL's ``FOR UPDATE OF d SKIP LOCKED``, so replicas never
    take the same row)."""
    query = _SPENT_ALERTS.format(
        accounts=", ".join("?" * len(accounts)) or "NULL",
        corrections=", ".join("?" * len(corrections)) or "NULL",
    )
    return query + lock, (now, now, *accounts, *corrections, limit)


def claim_spent(
    ids: Sequence[str], worker: str, lease_s: float, now: float
) -> tuple[str, tuple[Any, ...]]:
    """Mark ``ids`` claimed by ``worker`` (``sending``, one more attempt) until the lease ends."""
    return _CLAIM.format(ids=f"IN ({marks(len(ids))})"), (worker, now + lease_s, now, *ids)


def claimed(ids: Sequence[str]) -> tuple[str, tuple[Any, ...]]:
    """The claims ``ids`` as the dispatcher takes them (see ``SELECT_CLAIMED``)."""
    return SELECT_CLAIMED.format(ids=f"IN ({marks(len(ids))})"), tuple(ids)
