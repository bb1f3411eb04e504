"""The last decision before a send: thread to the original, stand alone, or not go out.

A member of a cluster reposts its lead's post; a follow-up replies to (comments on, edits,
deletes) the original on the same account. When there is nothing to thread to — the lead's post
never reached the platform, or the platform cannot do that action — the delivery is handed over
to a post of its own: the members of a cluster still speak when their lead does not. A
cancellation (or deletion) of an original that never reached the account does not go out, nor
does a deletion after the account's own cancellation when there is no post to delete.
"""

from __future__ import annotations

from collections.abc import Set
from dataclasses import dataclass

from alertcast.store.base import ActiveClaim

__all__ = ["Send", "Skip", "plan_send"]


@dataclass(frozen=True, slots=True)
class Send:
    action: str
    target_remote_id: str | None = None


@dataclass(frozen=True, slots=True)
class Skip:
    reason: str


def plan_send(claim: ActiveClaim, channel: str, capabilities: Set[str]) -> Send | Skip:
    """How the claimed delivery goes out on a ``channel`` that can do ``capabilities``."""
    d = claim.delivery
    if d.target_delivery_id is not None and not claim.target_delivered:
        if claim.msg_type == "cancel":
            return Skip("the original never reached this account; there is nothing to cancel")
        if d.action == "delete":
            return Skip("the original was never posted on this account; nothing to delete")
    if d.action == "delete" and "delete" not in capabilities:
        return Skip(f"{channel} cannot delete a post; the cancellation stands alone")
    if d.action == "delete" and claim.target_remote_id is None and _after_correction(claim):
        return Skip("the original was delivered without a remote id; nothing to delete")
    if d.action == "post" or claim.target_remote_id is None or d.action not in capabilities:
        return Send("post")  # nothing to thread to, or the platform cannot: stand alone
    return Send(d.action, claim.target_remote_id)


def _after_correction(claim: ActiveClaim) -> bool:
    """A deletion that waits for a delivery other than its original: it follows the
    account's own cancellation (``reply_and_delete``), which already says it all. A deletion
    that is the account's only cancellation (``delete``) stands alone instead."""
    d = claim.delivery
    return d.wait_for is not None and d.wait_for != d.target_delivery_id
