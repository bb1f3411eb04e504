"""Account pauses that outlive the process, and what a spent account does with its alerts.

An account is paused when the platform rejects its credentials (until they are replaced or an
operator resumes it), its quota is spent (until the quota returns: WeChat's next midnight in
Asia/Shanghai), or an operator paused it (``POST /v1/channels/{id}/pause``, until resumed).
:class:`Pauses` keeps every pause in the store (``account_state``, migration 0005):
:meth:`Pauses.restore` adopts the stored ones at start-up (and, on a shared PostgreSQL, the ones
other replicas wrote since), :meth:`Pauses.save` writes each change, so a restart neither
forgets a pause nor hides the problem. A pause for rejected credentials is restored only while
the credentials are the ones rejected: the store keeps a salted digest of their fingerprint,
never the credentials.

A correction that reached no one on an account flags it (``correction_failed``) until the
correction is re-driven and delivered or an operator resumes the account. The flag is kept
in the same row (migration 0011) with when it was last set or cleared: every replica and a
restart show it, a pause that lifts by itself (credentials replaced, a quota back) leaves it,
an operator's resume on any replica clears it on all, and the newest setting or clearing wins.

While an account's quota is spent, an original alert due on it does not wait for the quota (it
would go out hours late): if the account has a ``fallback``, :meth:`Pauses.handover` settles
it at once with :class:`~alertcast.fate.Spent`, and the dispatcher's fallback path (the door's
``plan_fallback``) takes it over. Updates and cancellations keep waiting for the quota.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable
from datetime import UTC, datetime

from alertcast.accounts import AccountRuntime
from alertcast.channels.base import AuthExpired, ChannelError, Permanent, QuotaExhausted, Receipt
from alertcast.fate import Skipped, Spent, Waits
from alertcast.models import MsgType
from alertcast.store.base import AccountState, ActiveClaim, DeliveryRow, Store

__all__ = ["Pauses", "note_attempt"]

Held = tuple[str | None, str | None, float | None, str | None]
NOT_HELD: Held = (None, None, None, None)
STALE: Held = ("stale", None, None, None)  # the store holds what this process does not
Flag = tuple[str | None, float | None]  # a failed correction's flag, when set or cleared
NO_FLAG: Flag = (None, None)
SALT_BYTES = 16


class Pauses:
    """Every account's pause, kept in the store; the accounts' health holds the live copy."""

    def __init__(self, store: Store, accounts: Iterable[AccountRuntime], *, lease_s: float) -> None:
        self.store = store
        self.lease_s = lease_s
        self._accounts = {a.id: a for a in accounts}
        self._written: dict[str, Held] = {}  # what the store holds of each account, as known
        self._flags: dict[str, Flag] = {}  # the failed correction's flag it holds, as known
        self._seen: dict[str, float] = {}  # the newest row's updated_at adopted or written

    async def restore(self, now: float) -> int:
        """Adopt every stored state newer than the one known (all of them at start-up), and
        every stored flag newer than the account's; returns how many accounts are paused now."""
        for account, state in (await self.store.account_states()).items():
            runtime = self._accounts.get(account)
            if runtime is None:
                continue
            self._flags[account] = _adopt_flag(runtime, state)
            if state.updated_at > self._seen.get(account, float("-inf")):
                self._written[account] = _adopt(runtime, state, now)
                self._seen[account] = state.updated_at
        return sum(1 for a in self._accounts.values() if a.health.paused(now))

    async def save(self, now: float, only: Iterable[AccountRuntime] | None = None) -> None:
        """Write the state of each account (of ``only``) whose pause or failed correction's
        flag changed since the store last heard of it: paused, resumed, its credentials
        replaced, its quota back, a correction failed or re-driven."""
        for runtime in self._accounts.values() if only is None else only:
            held, flag = _held(runtime, now), _flag(runtime)
            if (held, flag) == (self._written.get(runtime.id, NOT_HELD), self._known(runtime)):
                continue
            state = _state(runtime, now)
            await self.store.put_account_state(state)
            self._written[runtime.id], self._seen[runtime.id] = held, state.updated_at
            self._flags[runtime.id] = flag  # or a newer one the store kept: restore adopts it

    def _known(self, runtime: AccountRuntime) -> Flag:
        return self._flags.get(runtime.id, NO_FLAG)

    def paused(self, now: float) -> dict[str, str]:
        """The paused accounts and why (a cluster's members do not wait for a paused lead)."""
        return {
            a.id: a.health.paused_reason or "paused"
            for a in self._accounts.values()
            if a.health.paused(now)
        }

    def spent(self, now: float) -> list[str]:
        """The accounts whose quota is spent and that have a fallback to hand alerts to."""
        return [a.id for a in self._accounts.values() if _hands_over(a, now)]

    def quota_spent(self, now: float) -> list[str]:
        """The accounts paused because their quota is spent (with a fallback or not)."""
        return [a.id for a in self._accounts.values() if _quota_paused(a, now)]

    async def claim_spent(self, now: float, room: int, worker: str) -> list[ActiveClaim]:
        """Up to ``room`` due alerts of the :meth:`spent` accounts, and due corrections of
        every account whose quota is spent, claimed by ``worker``."""
        spent, corrections = self.spent(now), self.quota_spent(now)
        if not (spent or corrections) or room <= 0:
            return []
        return await self.store.claim_spent(
            accounts=spent,
            now=now,
            limit=room,
            lease_s=self.lease_s,
            worker=worker,
            corrections=corrections,
        )

    def waits(
        self, claim: ActiveClaim, runtime: AccountRuntime, action: str, now: float
    ) -> Waits | None:
        """What holds a correction claimed for an account whose quota is spent when its
        ``action`` spends that quota: it waits for the quota (None: it goes now, by an
        action that spends none, such as a WeChat withdrawal)."""
        if claim.msg_type == MsgType.alert.value or not _quota_paused(runtime, now):
            return None
        if not runtime.channel.spends_quota(action):
            return None
        h = runtime.health
        until = None if h.paused_until is None else datetime.fromtimestamp(h.paused_until, UTC)
        return Waits(h.paused_reason or "the account's quota is spent", until=until)

    def handover(self, claim: ActiveClaim, runtime: AccountRuntime, now: float) -> Spent | None:
        """What settles an original alert claimed for a spent account with a fallback (its
        fallback takes it at once); None for any other claim."""
        if claim.msg_type != MsgType.alert.value or not _hands_over(runtime, now):
            return None
        h = runtime.health
        until = None if h.paused_until is None else datetime.fromtimestamp(h.paused_until, UTC)
        when = "" if until is None else f" until {_utc(until)}"
        fallback = ", ".join(runtime.config.fallback)
        reason = f"account paused{when} ({h.paused_reason}); handed at once to its fallback: "
        return Spent(reason + fallback, until=until)


def note_attempt(
    runtime: AccountRuntime,
    d: DeliveryRow,
    result: Receipt | ChannelError,
    error: str | None,
    now: float,
    stamp: float,
) -> None:
    """What an attempt tells of its account: a success, a failure in a row, a pause, a
    correction that reached no one (the account shows unhealthy until it is re-driven). The
    correction's flag is stamped ``stamp``, the store's clock (``Store.clock``): replicas keep
    the newest flag, so they compare instants of the clock they share, not their own."""
    h = runtime.health
    if isinstance(result, Receipt):
        runtime.succeeded(now)
        if h.correction_failed is not None and h.correction_failed.startswith(f"{d.id} "):
            h.flag_correction(None, stamp)  # the failed correction, re-driven, went out
        return
    if isinstance(result, Skipped | Spent | Waits) or error is None:
        return  # no attempt at the platform
    final = isinstance(result, Permanent) or d.attempts >= d.max_attempts
    runtime.errored(now, error, final=final)
    if final and d.path not in (None, "fallback"):  # a correction reached no one here
        h.flag_correction(f"{d.id} ({d.incident_id}): {error}", stamp)
    if isinstance(result, AuthExpired):  # d.updated_at: when this attempt was claimed
        runtime.rejected(f"credentials rejected: {error}", claimed_at=d.updated_at)
    elif isinstance(result, QuotaExhausted):
        until = result.until.timestamp() if result.until is not None else None
        runtime.pause(f"quota exhausted: {error}", until)


def _utc(at: datetime) -> str:
    return at.isoformat(timespec="seconds").replace("+00:00", "Z")


def _hands_over(runtime: AccountRuntime, now: float) -> bool:
    return bool(runtime.config.fallback) and _quota_paused(runtime, now)


def _quota_paused(runtime: AccountRuntime, now: float) -> bool:
    h = runtime.health
    return h.paused(now) and h.paused_for == "quota"


def _held(runtime: AccountRuntime, now: float) -> Held:
    h = runtime.health
    if not h.paused(now):
        return NOT_HELD
    return (h.paused_for, h.paused_reason, h.paused_until, h.paused_credentials)


def _flag(runtime: AccountRuntime) -> Flag:
    return (runtime.health.correction_failed, runtime.health.correction_failed_at)


def _state(runtime: AccountRuntime, now: float) -> AccountState:
    paused_for, reason, until, credentials = _held(runtime, now)
    failed, failed_at = _flag(runtime)
    return AccountState(
        runtime.id,
        paused_for=paused_for,
        paused_reason=reason,
        paused_until=until,
        paused_credentials=None if credentials is None else _digest(credentials),
        updated_at=now,
        correction_failed=failed,
        correction_failed_at=failed_at,
    )


def _adopt_flag(runtime: AccountRuntime, state: AccountState) -> Flag:
    """Take the stored flag of a failed correction when it is newer than the account's (set
    or cleared later, on another replica or before a restart); the stored flag, as
    :meth:`Pauses.save` compares it."""
    stored = (state.correction_failed, state.correction_failed_at)
    at = runtime.health.correction_failed_at
    if state.correction_failed_at is not None and (at is None or state.correction_failed_at > at):
        runtime.health.flag_correction(state.correction_failed, state.correction_failed_at)
    return stored


def _adopt(runtime: AccountRuntime, state: AccountState, now: float) -> Held:
    """Pause or lift ``runtime`` as ``state`` says; what the store holds, as :meth:`save`
    compares it (:data:`STALE` when the credentials rejected there were replaced since).
    Lifted, never the operator's resume: another replica's state is unpaused also when its
    pause lifted by itself; a failed correction's flag follows its own time
    (:func:`_adopt_flag`)."""
    lapsed = state.paused_until is not None and state.paused_until <= now
    if state.paused_for is None or state.paused_reason is None or lapsed:
        runtime.lift()
        return NOT_HELD
    if state.paused_for == "credentials":
        if not _matches(state.paused_credentials, runtime.credentials()):
            runtime.lift()  # replaced while nobody watched: try them
            return STALE
        runtime.pause(state.paused_reason, state.paused_until, credentials=True)
    else:
        operator = state.paused_for == "operator"
        runtime.pause(state.paused_reason, state.paused_until, operator=operator)
    return _held(runtime, now)


def _digest(fingerprint: str, salt: bytes | None = None) -> str:
    """A salted digest of a credentials fingerprint: ``salt$mac``, both hex."""
    salt = secrets.token_bytes(SALT_BYTES) if salt is None else salt
    mac = hmac.new(salt, fingerprint.encode(), hashlib.sha256).hexdigest()
    return f"{salt.hex()}${mac}"


def _matches(stored: str | None, fingerprint: str) -> bool:
    salt, _, _ = (stored or "").partition("$")
    try:
        expected = _digest(fingerprint, bytes.fromhex(salt))
    except ValueError:
        return False
    return bool(salt) and hmac.compare_digest(expected, stored or "")
