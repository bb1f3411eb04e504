"""Planning a rejection: the second person refuses a held message, and none of it goes out.

Who may reject is who may approve (:func:`alertcast.plan.operate.approver`): an approver in
scope of the chain who wrote neither the message nor what it changes. A held incident is
cancelled whole with the reason, as a cancellation of a held incident is (its held updates'
deliveries withdrawn with it); a held update or held cancellation of a released incident is
withdrawn alone: its held deliveries withdrawn, its own state ``cancelled``, the incident as
it was.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from alertcast.errors import Conflict, NotFound
from alertcast.models import IncidentState
from alertcast.plan.cancel import plan_cancel
from alertcast.plan.common import idempotency, replayed
from alertcast.plan.drafts import Drafter, unsent
from alertcast.plan.model import Asker, Authority, Chain, Moment, Plan
from alertcast.plan.operate import approver
from alertcast.store.base import AuditRow, Effects, IncidentRow, Write

__all__ = ["REJECTED", "plan_reject"]

REJECTED = "withdrawn: rejected by a second person"
HELD = IncidentState.awaiting_approval.value
CANCELLED = IncidentState.cancelled.value


def plan_reject(drafter: Drafter, chain: Chain, reason: str, asker: Asker, moment: Moment) -> Plan:
    """A second person in scope of the chain withdraws a held message with a reason."""
    held = chain.named
    if held is None:
        raise NotFound(f"no incident {chain.asked}")
    root = chain.root or held
    if held.id != root.id and root.state == HELD:
        raise Conflict(
            f"incident {root.id} awaits approval itself: reject {root.id}, which withdraws "
            f"its held updates with it"
        )
    authority = approver(drafter, chain, asker, held, root)
    if not authority.allowed:
        return Plan(authority)
    authority = Authority(True, "rejected" + authority.reason.removeprefix("approved"))
    if chain.replay is not None:
        return replayed(chain.replay, asker, authority)
    if held.state != HELD:
        raise Conflict(f"incident {held.id} is {held.state}, not awaiting approval")
    if held.id == root.id:
        return _whole(drafter, chain, reason, asker, authority, moment)
    return _alone(chain, held, reason, asker, authority, moment)


def _whole(
    drafter: Drafter, chain: Chain, reason: str, asker: Asker, authority: Authority, moment: Moment
) -> Plan:
    """A held incident: cancelled as a cancellation of it would (nothing of it was posted, so
    nothing follows), audited as the rejection it is."""
    cancelled = plan_cancel(drafter, chain, reason, asker, moment)
    write = cancelled.write
    assert write is not None and write.incident is not None and write.effects is not None
    root_id, cancel_id = write.incident.references or "", write.incident.id
    withdrawn = list(write.effects.withdraw)
    body = _answer(root_id, reason, asker, withdrawn, cancel_id)
    audit = _audit(moment, asker, root_id, reason, withdrawn, cancel_id)
    write = replace(
        write,
        effects=replace(write.effects, withdraw_reason=REJECTED),
        idempotency=idempotency(asker, body, moment.at),
        audit=(audit,),
    )
    events = (*cancelled.events, {"type": "incident", "id": root_id, "state": CANCELLED})
    return Plan(authority, write, body, events)


def _alone(
    chain: Chain,
    held: IncidentRow,
    reason: str,
    asker: Asker,
    authority: Authority,
    moment: Moment,
) -> Plan:
    """A held update or cancellation of a released incident: it alone is withdrawn."""
    withdrawn = unsent([d for d in chain.deliveries if d.incident_id == held.id])
    effects = Effects(tuple(withdrawn), REJECTED, (held.id, CANCELLED))
    body = _answer(held.id, reason, asker, withdrawn, None)
    audit = _audit(moment, asker, held.id, reason, withdrawn, None)
    key = idempotency(asker, body, moment.at)
    write = Write(effects=effects, idempotency=key, audit=(audit,))
    event = {"type": "incident", "id": held.id, "state": CANCELLED, "references": held.references}
    return Plan(authority, write, body, (event,))


def _answer(
    held_id: str, reason: str, asker: Asker, withdrawn: list[str], cancellation: str | None
) -> dict[str, Any]:
    return {
        "id": held_id,
        "state": CANCELLED,
        "rejected_by": asker.name,
        "reason": reason,
        "withdrawn": withdrawn,
        "cancellation": cancellation,
    }


def _audit(
    moment: Moment,
    asker: Asker,
    held_id: str,
    reason: str,
    withdrawn: list[str],
    cancellation: str | None,
) -> AuditRow:
    detail = {"reason": reason, "withdrawn": len(withdrawn), "cancellation": cancellation}
    return AuditRow(moment.at, asker.name, "incident.reject", held_id, detail=detail)
