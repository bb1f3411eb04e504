"""A correction's deliveries on one account that had the original: the steps of its
platform's plan (:mod:`alertcast.plan.corrections`) and the accounts paired with it.

Each delivery records its ``path``. Every step threads to the original (its target) and waits
for it while it is still being sent; a deletion waits for the correction it follows and goes
only if that was delivered (see :func:`alertcast.plan.sending.plan_send`). On an account with
``corrections_via``, the paired accounts carry the correction at once, and the account's own
timeline step (WeChat's next mass send) waits for the first of them: it goes only if that one
did not reach the followers.
"""

from __future__ import annotations

from dataclasses import dataclass

from alertcast.config import AccountConfig
from alertcast.models import DeliveryState, Incident
from alertcast.plan.corrections import Step, steps
from alertcast.plan.drafts import Draft, Drafter
from alertcast.plan.model import Moment
from alertcast.preview import Memo
from alertcast.render import RenderContext
from alertcast.store.base import DeliveryRow, NewDelivery

__all__ = ["Correcting", "carried_only", "correction_deliveries", "paired_accounts"]


@dataclass(frozen=True, slots=True)
class Correcting:
    """What every delivery of one correction shares."""

    drafter: Drafter
    incident: Incident
    ctx: RenderContext
    moment: Moment
    msg_type: str
    priority: int
    hold: bool = False


def correction_deliveries(
    c: Correcting, account: AccountConfig, origin: DeliveryRow, have: set[str], memo: Memo
) -> list[NewDelivery]:
    """The correction on ``account`` (whose original is ``origin``), and on the accounts
    paired with it that do not have the incident themselves (``have``: accounts that do, or
    already carry this correction; the paired ones are added to it). On a per-recipient
    account it never waits for the original: the follow-up stops what the original has not
    sent, and its correction goes at once to whom the original reached."""
    sending = origin.state is DeliveryState.sending
    wait = origin.id if sending and not c.drafter.per_recipient(account) else None
    pair = Draft("post", None, wait, c.priority, c.hold, path="paired")
    paired = []
    for a in paired_accounts(c.drafter, account, c.incident, have):
        paired.append(c.drafter.delivery(c.incident, a, c.ctx, c.moment, pair, memo))
        have.add(a.id)
    out: list[NewDelivery] = []
    for step in steps(account, c.msg_type, dict(origin.payload)):
        waits = _waits(step, out, wait, paired)
        fmt = "text" if step.action == "custom" else None
        draft = Draft(step.action, origin.id, waits, c.priority, c.hold, path=step.path, format=fmt)
        out.append(c.drafter.delivery(c.incident, account, c.ctx, c.moment, draft, memo))
    return [*paired, *out]


def _waits(
    step: Step, before: list[NewDelivery], origin: str | None, paired: list[NewDelivery]
) -> str | None:
    if step.after is not None and step.after < len(before):
        return before[step.after].id  # a deletion after its correction
    if step.path == "timeline" and paired:
        return paired[0].id  # the account's own send only if the paired one did not reach
    return origin


def carried_only(rows: list[DeliveryRow]) -> bool:
    """Whether an account's deliveries in the chain only ever carried another account's
    corrections (``paired``): it has no original of its own, and is paired again."""
    return bool(rows) and all(r.path == "paired" for r in rows)


def paired_accounts(
    drafter: Drafter, account: AccountConfig, incident: Incident, have: set[str]
) -> list[AccountConfig]:
    """``account``'s ``corrections_via`` accounts that can carry this correction: configured,
    enabled, taking its status (drills only ever to exercise accounts), and without the
    incident of their own (their own follow-up corrects it there)."""
    return [
        a
        for i in account.corrections_via
        if (a := drafter.config.account(i)) is not None
        and a.id not in have
        and a.enabled
        and (a.exercise or not incident.status.is_drill)
        and incident.status in a.takes
    ]
