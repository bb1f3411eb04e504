"""A delivery's fate after an attempt, decided as data: the dispatcher's one retry policy.

Vendor error codes have already been turned into typed channel errors by each adapter's table;
here each becomes a state: delivered, retrying at a time (tenacity's exponential backoff with
jitter, or the platform's ``Retry-After``), failed (the platform said no), dead (the retry budget
ran out) or skipped (nothing to send, or the account's quota is spent and its fallback takes
over).
"""

from __future__ import annotations

from dataclasses import dataclass

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

__all__ = ["AUTH_PAUSE_RETRY_S", "RetryPolicy", "Skipped", "decide"]

AUTH_PAUSE_RETRY_S = 1.0  # the account's pause, not this delay, holds it until credentials change


class Skipped(ChannelError):
    """Not an error of the platform: there is nothing (left) to send for this delivery."""


@dataclass(frozen=True)
class RetryPolicy:
    """When to try again: exponential backoff with jitter, unless the platform said when."""

    initial_s: float = 1.0
    max_s: float = 300.0

    def delay_s(self, attempt: int, retry_after: float | None = None) -> float:
        if retry_after is not None:
            return max(0.0, retry_after)
        wait = tenacity.wait_exponential(
            multiplier=self.initial_s, max=self.max_s
        ) + tenacity.wait_random(0, self.initial_s)
        state = tenacity.RetryCallState(retry_object=None, fn=None, args=(), kwargs={})  # type: ignore[arg-type]
        state.attempt_number = attempt
        return min(float(wait(state)), self.max_s)


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
    if isinstance(result, Skipped):
        return Outcome(DeliveryState.skipped, reason=result.reason)
    if isinstance(result, AuthExpired):
        return Outcome(
            DeliveryState.retrying,
            last_error=error,
            reason="account paused until its credentials are replaced",
            next_attempt_at=now + AUTH_PAUSE_RETRY_S,
        )
    if isinstance(result, QuotaExhausted):
        return Outcome(DeliveryState.skipped, last_error=error, reason=f"quota exhausted: {error}")
    if isinstance(result, Permanent):
        return Outcome(DeliveryState.failed, last_error=error, reason=error)
    if d.attempts >= d.max_attempts:
        reason = f"gave up after {d.attempts} attempts"
        return Outcome(DeliveryState.dead, last_error=error, reason=reason)
    retry_after = result.retry_after if isinstance(result, Transient) else None
    delay_s = policy.delay_s(d.attempts, retry_after)
    return Outcome(DeliveryState.retrying, last_error=error, next_attempt_at=now + delay_s)
