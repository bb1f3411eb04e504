"""``decide``: every wait is capped by ``backoff_max_s`` and by the delivery's expiry."""

from __future__ import annotations

from dataclasses import replace

import pytest

from alertcast.channels.base import (
    AuthExpired,
    ChannelError,
    Permanent,
    RateLimited,
    Receipt,
    Transient,
)
from alertcast.fate import RetryPolicy, decide
from alertcast.models import DeliveryState
from alertcast.store.base import DeliveryRow

NOW = 1_700_000_000.0
POLICY = RetryPolicy(initial_s=1.0, max_s=300.0)
ROW = DeliveryRow(
    id="dlv_1",
    incident_id="inc_1",
    account="hook",
    channel="webhook",
    state=DeliveryState.sending,
    payload={"text": "x"},
    idempotency_key="k",
    attempts=1,
    max_attempts=5,
    next_attempt_at=None,
    created_at=NOW - 10,
    updated_at=NOW - 10,
)
DAY = 86_400.0
ASKED_A_DAY = RateLimited("HTTP 429", retry_after=DAY)


@pytest.mark.parametrize(
    ("result", "expires_in_s", "state", "wait_s"),
    [
        (ASKED_A_DAY, None, DeliveryState.retrying, 300.0),
        (Transient("HTTP 503", retry_after=DAY), None, DeliveryState.retrying, 300.0),
        (RateLimited("HTTP 429", retry_after=7.0), None, DeliveryState.retrying, 7.0),
        (RateLimited("HTTP 429", retry_after=-3.0), None, DeliveryState.retrying, 0.0),
        (ASKED_A_DAY, 3600.0, DeliveryState.retrying, 300.0),
        (ASKED_A_DAY, 60.0, DeliveryState.dead, None),
        (ASKED_A_DAY, 300.0, DeliveryState.dead, None),
        (RateLimited("HTTP 429", retry_after=5.0), 60.0, DeliveryState.retrying, 5.0),
        (Transient("HTTP 502"), -1.0, DeliveryState.dead, None),
        (AuthExpired("token rejected"), -1.0, DeliveryState.dead, None),
        (AuthExpired("token rejected"), 60.0, DeliveryState.retrying, 1.0),
    ],
    ids=[
        "retry-after-a-day-capped",
        "transient-retry-after-capped",
        "short-retry-after-kept",
        "negative-retry-after-now",
        "capped-wait-before-expiry",
        "capped-wait-after-expiry",
        "wait-ending-at-expiry",
        "short-wait-before-expiry",
        "already-expired",
        "paused-and-expired",
        "paused-before-expiry",
    ],
)
def test_waits(
    result: ChannelError, expires_in_s: float | None, state: DeliveryState, wait_s: float | None
) -> None:
    """A table of errors and expiries: the state, and the wait when it is retried."""
    row = replace(ROW, expires_at=None if expires_in_s is None else NOW + expires_in_s)
    outcome = decide(row, result, result.reason, POLICY, NOW)
    assert outcome.state is state
    if wait_s is None:
        assert outcome.next_attempt_at is None
    else:
        assert outcome.next_attempt_at == pytest.approx(NOW + wait_s)


@pytest.mark.parametrize("attempt", [1, 2, 3, 4, 8, 20])
def test_backoff_never_passes_the_cap(attempt: int) -> None:
    """Exponential backoff with jitter stays within max_s at every attempt."""
    policy = RetryPolicy(initial_s=1.0, max_s=5.0)
    row = replace(ROW, attempts=attempt, max_attempts=100)
    outcome = decide(row, Transient("HTTP 500"), "HTTP 500", policy, NOW)
    assert outcome.next_attempt_at is not None and outcome.next_attempt_at - NOW <= 5.0


def test_a_too_late_retry_says_why() -> None:
    """Dead for expiry names the expiry and the wait that would have passed it."""
    row = replace(ROW, expires_at=NOW + 60)
    outcome = decide(row, ASKED_A_DAY, "HTTP 429", POLICY, NOW)
    assert outcome.reason is not None and "2023-11-14T22:14:20Z" in outcome.reason
    assert "300 s" in outcome.reason and "too late" in outcome.reason
    assert outcome.last_error == "HTTP 429"


def test_an_expired_delivery_says_it_expired() -> None:
    """An attempt that failed after the expiry: dead, 'expired at …'."""
    row = replace(ROW, expires_at=NOW - 1)
    outcome = decide(row, Transient("HTTP 502"), "HTTP 502", POLICY, NOW)
    assert outcome.reason == "expired at 2023-11-14T22:13:19Z before it could be delivered"


def test_a_capped_wait_says_what_the_platform_asked() -> None:
    """A retry that waits less than the platform asked shows both waits to operators."""
    outcome = decide(ROW, ASKED_A_DAY, "HTTP 429", POLICY, NOW)
    assert outcome.reason == (
        "the platform asked to wait 86400 s; retrying in 300 s (backoff_max_s)"
    )


@pytest.mark.parametrize(
    ("result", "state"),
    [
        (Receipt(remote_id="r1"), DeliveryState.delivered),
        (Permanent("HTTP 400"), DeliveryState.failed),
    ],
    ids=["delivered", "failed"],
)
def test_expiry_does_not_touch_final_outcomes(
    result: Receipt | ChannelError, state: DeliveryState
) -> None:
    """A send that got through, or was refused for good, is what it is, expiry or not."""
    row = replace(ROW, expires_at=NOW - 1)
    error = None if isinstance(result, Receipt) else result.reason
    assert decide(row, result, error, POLICY, NOW).state is state


def test_the_retry_budget_still_ends_dead() -> None:
    """The last allowed attempt failing: dead, 'gave up', whatever the expiry."""
    row = replace(ROW, attempts=5, expires_at=NOW + 3600)
    outcome = decide(row, Transient("HTTP 500"), "HTTP 500", POLICY, NOW)
    assert outcome.state is DeliveryState.dead and outcome.reason == "gave up after 5 attempts"
