"""A cluster member's hand-over, as a table: repost the lead's post, or post the text alone.

A member waits for its lead at most its ``lead_wait_s``, or until the lead's delivery is
settled undelivered or its account paused; the store makes it due (see ``lead_waits``), and
:func:`plan_send` says how it goes out and why. Rows use the planner world's ``lead`` and
``member`` (``lead = "lead"``, webhooks that can repost).
"""

from __future__ import annotations

from dataclasses import replace
from typing import NamedTuple

import pytest

from alertcast.channels import channel_class
from alertcast.config import AccountConfig
from alertcast.models import DeliveryState
from alertcast.plan.sending import Lead, Send, lead_waits, plan_send
from alertcast.store.base import ActiveClaim, DeliveryRow
from tests.plan.world import dlv

WAIT = Lead(wait_s=0.5)
PAUSED = Lead(wait_s=0.5, paused="credentials rejected: HTTP 401")
ALONE_BEFORE = "lead lead paused: credentials rejected; posted alone"


def member(reason: str | None = None, attempts: int = 1) -> DeliveryRow:
    """The member's repost of ``dlv_lead``, claimed for its attempt ``attempts``."""
    row = dlv("member", "sending", action="repost", target="dlv_lead", wait="dlv_lead")
    return replace(row, reason=reason, attempts=attempts)


class Case(NamedTuple):
    desc: str
    delivery: DeliveryRow
    lead_state: str  # the state of the delivery it threads to (on the account ``lead``)
    lead: Lead
    decision: Send
    channel: str = "webhook"
    remote_id: str | None = "r-dlv_lead"  # the delivered lead's post


def reposts() -> Send:
    return Send("repost", "r-dlv_lead")


CASES = [
    Case("a member reposts its delivered lead", member(), "delivered", WAIT, reposts()),
    Case("a delivered lead wins over its pause", member(), "delivered", PAUSED, reposts()),
    Case(
        "a member whose lead is still sending when its wait is over posts alone",
        member(),
        "sending",
        WAIT,
        Send("post", reason="lead lead not delivered within lead_wait_s (0.5 s); posted alone"),
    ),
    Case(
        "a member whose lead keeps retrying past the wait posts alone",
        member(),
        "retrying",
        Lead(wait_s=60),
        Send("post", reason="lead lead not delivered within lead_wait_s (60 s); posted alone"),
    ),
    Case(
        "a member of a paused lead posts alone, saying why",
        member(),
        "retrying",
        PAUSED,
        Send("post", reason="lead lead paused: credentials rejected: HTTP 401; posted alone"),
    ),
    Case(
        "a member of a paused lead that never went out posts alone",
        member(),
        "pending",
        PAUSED,
        Send("post", reason="lead lead paused: credentials rejected: HTTP 401; posted alone"),
    ),
    Case(
        "a member of a failed lead posts alone",
        member(),
        "failed",
        WAIT,
        Send("post", reason="lead lead failed; posted alone"),
    ),
    Case(
        "a member of a dead lead posts alone",
        member(),
        "dead",
        WAIT,
        Send("post", reason="lead lead dead; posted alone"),
    ),
    Case(
        "a member of a skipped lead (its quota spent) posts alone",
        member(),
        "skipped",
        PAUSED,
        Send("post", reason="lead lead skipped; posted alone"),
    ),
    Case(
        "a member of a lead delivered without a remote id posts alone",
        member(),
        "delivered",
        WAIT,
        Send("post", reason="lead lead posted without a remote id; posted alone"),
        remote_id=None,
    ),
    Case(
        "a member that went alone stays alone on its retry, though the lead delivered since",
        member(f"{ALONE_BEFORE}; HTTP 503", attempts=2),
        "delivered",
        WAIT,
        Send("post", reason=ALONE_BEFORE),
    ),
    Case(
        "a member whose repost failed once reposts again",
        member("the platform asked to wait 9 s; retrying in 1 s (backoff_max_s)", attempts=2),
        "delivered",
        WAIT,
        reposts(),
    ),
    Case(
        "a member on a platform that cannot repost posts on its own, with no hand-over",
        member(),
        "delivered",
        WAIT,
        Send("post"),
        channel="console",
    ),
    Case(
        "a follow-up waits for its own account's original: no lead, no hand-over",
        dlv("lead", "sending", of="inc_u1", delivery_id="dlv_u", action="reply", wait="dlv_lead"),
        "retrying",
        PAUSED,
        Send("post"),
    ),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.desc)
def test_hand_over(case: Case) -> None:
    """How a claimed member goes out: its lead's post reposted, or its own text and why."""
    state = DeliveryState(case.lead_state)
    delivered = state is DeliveryState.delivered
    claim = ActiveClaim(
        case.delivery,
        target_remote_id=case.remote_id if delivered else None,
        target_delivered=delivered,
        target_state=state,
        target_account="lead",
    )
    capabilities = channel_class(case.channel).capabilities
    assert plan_send(claim, case.channel, capabilities, case.lead) == case.decision


def _account(account_id: str, **keys: object) -> AccountConfig:
    return AccountConfig.model_validate({"id": account_id, "channel": "console", **keys})


ACCOUNTS = [
    _account("sichuan"),
    _account("chengdu", lead="sichuan", lead_wait_s=0.5),
    _account("mianyang", lead="sichuan"),
    _account("beijing"),
    _account("haidian", lead="beijing", lead_wait_s=5),
]


@pytest.mark.parametrize(
    ("desc", "paused", "waits"),
    [
        (
            "members wait their lead_wait_s (60 s unless set); others are not named",
            set(),
            {"chengdu": 0.5, "mianyang": 60.0, "haidian": 5.0},
        ),
        (
            "the members of a paused lead wait no more; other clusters wait on",
            {"sichuan"},
            {"chengdu": 0.0, "mianyang": 0.0, "haidian": 5.0},
        ),
        (
            "a paused member does not change its own wait",
            {"chengdu", "beijing"},
            {"chengdu": 0.5, "mianyang": 60.0, "haidian": 0.0},
        ),
    ],
)
def test_lead_waits(desc: str, paused: set[str], waits: dict[str, float]) -> None:
    """How long the store holds each member for its lead's post."""
    assert lead_waits(ACCOUNTS, paused) == waits


def test_lead_wait_s_needs_a_lead() -> None:
    """lead_wait_s on an account that is no member is a mistake, named as such."""
    with pytest.raises(ValueError, match="lead_wait_s is how long a member waits"):
        _account("sichuan", lead_wait_s=5)
    with pytest.raises(ValueError, match="lead_wait_s"):
        _account("chengdu", lead="sichuan", lead_wait_s=-1)
