"""A delivery's fate after an attempt, decided as data: the dispatcher's one retry policy.

Vendor error codes have already been turned into typed channel errors by each adapter's table;
here each becomes a state: delivered, retrying at a time (tenacity's exponential backoff with
jitter, or the platform's ``Retry-After``), failed (the platform said no), dead (the retry budget
ran out, or the next attempt would come too late) or skipped (nothing to send, or the account's
quota is spent and its fallback takes over).

Every wait is capped by the policy's ``max_s`` (the dispatcher's ``backoff_max_s``), a
platform's ``Retry-After`` included: a gateway asking for a day does not hold an alert for a
day. A delivery whose next attempt would fall at or after its ``expires_at`` (an alert's own
post: the incident's expiry or its kind's ``max_delay_s`` after it was queued, whichever is
first) ends ``dead`` with that reason instead of being retried: nothing goes out stale.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime

import tenacity

from alertcast.channels.base import (
    AuthExpired,
    ChannelError,
    Permanent,
    QuotaExhausted,
    Receipt,
    Transient,
)
from alertcast.models import DeliveryState
from alertcast.store.base import DeliveryRow, Outcome

__all__ = ["AUTH_PAUSE_RETRY_S", "RetryPolicy", "Skipped", "Spent", "Waits", "decide"]

AUTH_PAUSE_RETRY_S = 1.0  # the account's pause, not this delay, holds it until credentials change


class Skipped(ChannelError):
    """Not an error of the platform: there is nothing (left) to send for this delivery."""


class Waits(QuotaExhausted):
    """Not an attempt at the platform: a correction whose action spends the quota of an
    account whose quota is spent; it waits for the quota to return (``until``), with the
    reason, and counts as no failure of the account."""


class Spent(QuotaExhausted):
    """Not an attempt at the platform: the account's quota was already spent (it is paused),
    so this alert goes to the account's fallback at once; ``reason`` names the pause and the
    fallback. It ends ``skipped`` and counts as no failure of the account."""


@dataclass(frozen=True)
class RetryPolicy:
    """When to try again: exponential backoff with jitter, unless the platform said when;
    never later than ``max_s``."""

    initial_s: float = 1.0
    max_s: float = 300.0

    def delay_s(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds before attempt ``attempt + 1``: the platform's ``retry_after`` if it gave
        one, else the backoff; at most ``max_s`` either way."""
        if retry_after is not None:
            return min(max(0.0, retry_after), self.max_s)
        wait = tenacity.wait_exponential(
            multiplier=self.initial_s, max=self.max_s
        ) + tenacity.wait_random(0, self.initial_s)
        state = tenacity.RetryCallState(retry_object=None, fn=None, args=(), kwargs={})  # type: ignore[arg-type]
        state.attempt_number = attempt
        return min(float(wait(state)), self.max_s)

    def capped(self, max_s: float | None) -> RetryPolicy:
        """This policy, never waiting longer than ``max_s`` (an account's own cap) if given."""
        return self if max_s is None else replace(self, max_s=max_s)


def decide(
    d: DeliveryRow,
    result: Receipt | ChannelError,
    error: str | None,
    policy: RetryPolicy,
    now: float,
) -> Outcome:
    """What attempt ``d.attempts`` leaves the delivery as (``error``: the reason, redacted)."""
    if isinstance(result, Receipt):
        duplicate = "duplicate: the platform already had it" if result.duplicate else None
        return Outcome(DeliveryState.delivered, remote_id=result.remote_id, reason=duplicate)
    if isinstance(result, Skipped | Spent):
        return Outcome(DeliveryState.skipped, reason=result.reason)
    if isinstance(result, AuthExpired):
        paused = "account paused until its credentials are replaced"
        return _retry(d, error, now, AUTH_PAUSE_RETRY_S, paused)
    if isinstance(result, QuotaExhausted):
        return _spent(d, result, error, now)
    if isinstance(result, Permanent):
        return Outcome(DeliveryState.failed, last_error=error, reason=error)
    if d.attempts >= d.max_attempts:
        reason = f"gave up after {d.attempts} attempts"
        return Outcome(DeliveryState.dead, last_error=error, reason=reason)
    asked = result.retry_after if isinstance(result, Transient) else None
    delay_s = policy.delay_s(d.attempts, asked)
    return _retry(d, error, now, delay_s, _capped(asked, delay_s))


QUOTA_UNKNOWN_RESET_S = 3600.0  # when the platform does not say when its quota returns


def _spent(d: DeliveryRow, result: QuotaExhausted, error: str | None, now: float) -> Outcome:
    """An alert on a spent quota is skipped (its fallback takes over); a correction is never
    dropped: it goes with the account's next send when the quota returns, unless a paired
    account reached the followers first (see plan_send)."""
    if d.path in (None, "fallback"):
        return Outcome(DeliveryState.skipped, last_error=error, reason=f"quota exhausted: {error}")
    at = result.until.timestamp() if result.until is not None else now + QUOTA_UNKNOWN_RESET_S
    why = f"waits for the quota ({error}); the correction goes with the next send at {_utc(at)}"
    return Outcome(DeliveryState.retrying, last_error=error, reason=why, next_attempt_at=at)


def _retry(
    d: DeliveryRow, error: str | None, now: float, delay_s: float, reason: str | None
) -> Outcome:
    """Retrying in ``delay_s``, or ``dead`` if that attempt would come at or after expiry."""
    at = now + delay_s
    if d.expires_at is not None and at >= d.expires_at:
        expiry = _utc(d.expires_at)
        why = (
            f"expired at {expiry} before it could be delivered"
            if now >= d.expires_at
            else f"too late: the next attempt (in {delay_s:g} s) would come after the alert "
            f"expires at {expiry}"
        )
        return Outcome(DeliveryState.dead, last_error=error, reason=why)
    return Outcome(DeliveryState.retrying, last_error=error, reason=reason, next_attempt_at=at)


def _capped(asked: float | None, delay_s: float) -> str | None:
    """Says so when the platform asked for a longer wait than the one kept."""
    if asked is None or asked <= delay_s:
        return None
    return f"the platform asked to wait {asked:g} s; retrying in {delay_s:g} s (backoff_max_s)"


def _utc(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
