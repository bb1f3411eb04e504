"""The last decision before a send: thread to the original, stand alone, or not go out.

A member of a cluster reposts its lead's post; a follow-up replies to (comments on, edits,
deletes) the original on the same account. When there is nothing to thread to — the lead's post
never reached the platform, or the platform cannot do that action — the delivery is handed over
to a post of its own: the members of a cluster still speak when their lead does not. A
cancellation (or deletion) of an original that never reached the account does not go out, nor
does a deletion after the account's own cancellation when there is no post to delete.

A member waits for its lead's post at most its ``lead_wait_s``, and not at all once the lead's
delivery is settled undelivered (failed, dead, skipped) or the lead's account is paused
(:func:`lead_waits` tells the store's claim how long); then it posts the text itself and says
why. Once it has gone alone it stays alone on its retries: a lead that delivers later never
makes it repost as well.
"""

from __future__ import annotations

from collections.abc import Callable, Container, Iterable, Set
from dataclasses import dataclass
from typing import Any, Protocol

from alertcast.config import AccountConfig
from alertcast.models import DeliveryState
from alertcast.store.base import ActiveClaim

__all__ = ["ALONE", "Lead", "Send", "Skip", "lead_waits", "plan_send"]

ALONE = "; posted alone"  # ends the reason of a member that did not repost its lead


@dataclass(frozen=True, slots=True)
class Send:
    action: str
    target_remote_id: str | None = None
    reason: str | None = None  # why a cluster member posts alone instead of reposting its lead


@dataclass(frozen=True, slots=True)
class Skip:
    reason: str


@dataclass(frozen=True, slots=True)
class Lead:
    """What the sender knows of a member's lead: the member's ``lead_wait_s`` and the lead
    account's pause (its reason), if it is paused."""

    wait_s: float = 60.0
    paused: str | None = None


class _Held(Protocol):
    """What a lead's pause is read from (an account's runtime)."""

    @property
    def health(self) -> Any: ...


def lead_of(
    member: AccountConfig, runtime_of: Callable[[str], _Held | None], now: float
) -> Lead | None:
    """What a cluster member's send knows of its lead: its wait, and the lead's pause."""
    if member.lead is None:
        return None
    lead = runtime_of(member.lead)
    if lead is None or not lead.health.paused(now):
        return Lead(member.lead_wait_s)
    return Lead(member.lead_wait_s, lead.health.paused_reason)


def lead_waits(accounts: Iterable[AccountConfig], paused: Container[str]) -> dict[str, float]:
    """Per member account, how long its deliveries wait for their lead's before they are due
    anyway: its ``lead_wait_s``, or nothing while the lead's account is paused."""
    return {a.id: 0.0 if a.lead in paused else a.lead_wait_s for a in accounts if a.lead}


def plan_send(
    claim: ActiveClaim, channel: str, capabilities: Set[str], lead: Lead | None = None
) -> Send | Skip:
    """How the claimed delivery goes out on a ``channel`` that can do ``capabilities``
    (``lead``: what is known of the lead of a cluster member)."""
    d = claim.delivery
    if d.target_delivery_id is not None and not claim.target_delivered:
        if claim.msg_type == "cancel":
            return Skip("the original never reached this account; there is nothing to cancel")
        if d.action == "delete":
            return Skip("the original was never posted on this account; nothing to delete")
    if (skip := _needless(claim, channel, capabilities)) is not None:
        return skip
    if d.action == "custom":
        return Send("custom", claim.target_remote_id)
    if (alone := _alone(claim, lead or Lead())) is not None:
        return Send("post", reason=alone)
    if d.action == "post" or claim.target_remote_id is None or d.action not in capabilities:
        return Send("post")  # nothing to thread to, or the platform cannot: stand alone
    return Send(d.action, claim.target_remote_id)


def _alone(claim: ActiveClaim, lead: Lead) -> str | None:
    """Why a cluster member posts the text itself instead of reposting its lead's post; None
    when it reposts, or is no member (a follow-up waits for its own account's original)."""
    d, who = claim.delivery, claim.target_account
    if d.wait_for is None or who is None or who == d.account:
        return None
    if d.reason is not None and ALONE in d.reason:  # it went alone before: it stays alone
        return d.reason[: d.reason.index(ALONE) + len(ALONE)]
    if claim.target_delivered:
        return None if claim.target_remote_id else f"lead {who} posted without a remote id{ALONE}"
    if claim.target_state is not None and claim.target_state.settled:
        return f"lead {who} {claim.target_state.value}{ALONE}"
    if lead.paused is not None:
        return f"lead {who} paused: {lead.paused}{ALONE}"
    return f"lead {who} not delivered within lead_wait_s ({lead.wait_s:g} s){ALONE}"


def _needless(claim: ActiveClaim, channel: str, capabilities: Set[str]) -> Skip | None:
    """Why a step of a correction does not go out: a deletion the platform cannot make, that
    follows a correction not delivered (the original stays up: deleting it would make the
    alarm vanish uncorrected) or has no post to delete; a message to followers one by one on
    a platform without it; an own send after a paired account already reached the followers."""
    d = claim.delivery
    if d.action == "delete" and "delete" not in capabilities:
        return Skip(f"{channel} cannot delete a post; the correction stands alone")
    if d.action == "delete" and _after_correction(claim):
        if claim.wait_state is not DeliveryState.delivered:
            state = claim.wait_state.value if claim.wait_state else "missing"
            return Skip(f"the correction was not delivered ({state}); the original stays up")
        if claim.target_remote_id is None:
            return Skip("the original was delivered without a remote id; nothing to delete")
    if d.action == "custom" and "custom" not in capabilities:
        return Skip(f"{channel} cannot message followers one by one")
    if _carried(claim):
        return Skip(f"carried to the same followers by {claim.wait_account} (paired)")
    return None


def _carried(claim: ActiveClaim) -> bool:
    """An account's own correction that waited for a paired account's, which was delivered."""
    d = claim.delivery
    return (
        d.path == "timeline"
        and d.wait_for is not None
        and d.wait_for != d.target_delivery_id
        and claim.wait_account not in (None, d.account)
        and claim.wait_state is DeliveryState.delivered
    )


def _after_correction(claim: ActiveClaim) -> bool:
    """A deletion that waits for a delivery other than its original: it follows the
    account's own cancellation (``reply_and_delete``), which already says it all. A deletion
    that is the account's only cancellation (``delete``) stands alone instead."""
    d = claim.delivery
    return d.wait_for is not None and d.wait_for != d.target_delivery_id
