"""Planning cancellations: withdraw what has not gone out, follow every public post.

A cancellation of a chain that needed approval is itself bound by the two-person rule: it waits
for a second approver, unless its author is an approver and ``[approval]
approver_cancels_at_once`` (the default) lets a correction go at once. A held cancellation is
stored with no deliveries and changes nothing; when it is approved it is planned anew on the
chain as it then stands, so it withdraws and follows exactly what exists at that moment.
"""

from __future__ import annotations

from alertcast.errors import Conflict
from alertcast.models import Incident, IncidentState, MsgType
from alertcast.plan.authority import chain_needs_approval, chain_scope
from alertcast.plan.common import idempotency, incident_event, replayed
from alertcast.plan.drafts import Drafter, answer, public_post, stopped, unsent
from alertcast.plan.followups import (
    delivered_targets,
    follow_context,
    follow_row,
    follow_up_plan,
    parsed,
    root_of,
)
from alertcast.plan.model import Asker, Authority, Chain, Moment, Plan
from alertcast.plan.reach import Correcting, carried_only, correction_deliveries
from alertcast.preview import Memo
from alertcast.render import RenderContext
from alertcast.store.base import AuditRow, Effects, IncidentRow, NewDelivery, Write

__all__ = ["CANCEL_PRIORITY", "plan_cancel", "plan_release_cancel"]

CANCEL_PRIORITY = 10
WITHDRAWN = "withdrawn: the incident was cancelled"


def plan_cancel(drafter: Drafter, chain: Chain, reason: str, asker: Asker, moment: Moment) -> Plan:
    """Cancel the incident now, or hold the cancellation for a second approver; only a chain
    within the asker's scope as it stands (the original and every update)."""
    root = root_of(chain)
    incident = parsed(dict(root.body))
    authority = chain_scope(asker, [root, *chain.follow_ups], drafter.regions)
    if not authority.allowed:
        return Plan(authority)
    if chain.replay is not None:
        return replayed(chain.replay, asker, authority)
    if root.state == IncidentState.cancelled.value:
        raise Conflict(f"incident {root.id} is already cancelled")
    cancel_id = moment.ids("inc")
    if _waits(drafter, chain, root, asker):
        return _held(authority, incident, root, cancel_id, reason, asker, moment)
    ctx = follow_context(drafter, incident, cancel_id, MsgType.cancel, root.id, reason)
    (withdraw, stop), deliveries = _cancel_deliveries(drafter, incident, ctx, chain, moment)
    state = IncidentState.cancelled
    row = follow_row(incident, cancel_id, asker, moment, root, (MsgType.cancel, state), reason)
    effects = Effects(
        tuple(withdraw), WITHDRAWN, (root.id, state.value), withdraw_recipients_of=tuple(stop)
    )
    detail = {"reason": reason, "cancellation": cancel_id, "withdrawn": len(withdraw)}
    audit = AuditRow(moment.at, asker.name, "incident.cancel", root.id, detail=detail)
    body = {**answer(cancel_id, state, deliveries), "references": root.id, "withdrawn": withdraw}
    return follow_up_plan(authority, chain, row, deliveries, body, effects, audit, asker)


def _waits(drafter: Drafter, chain: Chain, root: IncidentRow, asker: Asker) -> bool:
    """Whether a person's cancellation of a released chain that needed approval waits."""
    rule = drafter.config.approval
    if asker.issuer is None or root.state != IncidentState.active.value:
        return False  # the daemon's own jobs; a held incident is withdrawn whole at once
    if asker.issuer.approver and rule.approver_cancels_at_once:
        return False
    return chain_needs_approval(rule, [root, *chain.follow_ups])


def _held(
    authority: Authority,
    incident: Incident,
    root: IncidentRow,
    cancel_id: str,
    reason: str,
    asker: Asker,
    moment: Moment,
) -> Plan:
    """The cancellation stored awaiting a second approver: no delivery, nothing withdrawn."""
    state = IncidentState.awaiting_approval
    row = follow_row(incident, cancel_id, asker, moment, root, (MsgType.cancel, state), reason)
    detail = {"reason": reason, "cancellation": cancel_id, "held": "awaiting a second approver"}
    audit = AuditRow(moment.at, asker.name, "incident.cancel", root.id, detail=detail)
    body = {**answer(cancel_id, state, []), "references": root.id, "withdrawn": []}
    key = idempotency(asker, body, moment.at)
    write = Write(incident=row, idempotency=key, audit=(audit,))
    held = Authority(True, f"{authority.reason}; the cancellation waits for a second approver")
    return Plan(held, write, body, (incident_event(row),))


def plan_release_cancel(
    drafter: Drafter,
    chain: Chain,
    held: IncidentRow,
    asker: Asker,
    authority: Authority,
    moment: Moment,
) -> Plan:
    """A held cancellation approved: planned on the chain as it stands now, as its own."""
    root = root_of(chain)
    if root.state == IncidentState.cancelled.value:
        raise Conflict(f"incident {root.id} is already cancelled")
    incident = parsed(dict(root.body))
    ctx = follow_context(drafter, incident, held.id, MsgType.cancel, root.id, held.reason)
    (withdraw, stop), deliveries = _cancel_deliveries(drafter, incident, ctx, chain, moment)
    effects = Effects(
        tuple(withdraw),
        WITHDRAWN,
        (root.id, IncidentState.cancelled.value),
        released=held.id,
        withdraw_recipients_of=tuple(stop),
    )
    approver = asker.name
    detail = {"cancellation": held.id, "withdrawn": len(withdraw), "deliveries": len(deliveries)}
    audit = AuditRow(moment.at, approver, "incident.approve", held.id, detail=detail)
    write = Write(deliveries=deliveries, attach_to=held.id, effects=effects, audit=(audit,))
    body = {
        **answer(held.id, IncidentState.cancelled, deliveries),
        "references": root.id,
        "withdrawn": withdraw,
        "approved_by": approver,
    }
    event = {"type": "incident", "id": held.id, "state": IncidentState.cancelled.value}
    return Plan(authority, write, body, (event,), delivered_targets(chain))


def _cancel_deliveries(
    drafter: Drafter, incident: Incident, ctx: RenderContext, chain: Chain, moment: Moment
) -> tuple[tuple[list[str], list[str]], list[NewDelivery]]:
    """Withdraw what has not gone out, and stop per-recipient parents half way; follow every
    public post by the cancellation's steps (and the accounts paired with it). Returns
    ``((withdrawn, stopped), deliveries)``."""
    withdraw: list[str] = []
    stop: list[str] = []
    deliveries: list[NewDelivery] = []
    memo: Memo = {}
    origins = chain.by_account()
    have = {a for a, rows in origins.items() if not carried_only(rows)}
    c = Correcting(drafter, incident, ctx, moment, MsgType.cancel.value, CANCEL_PRIORITY)
    for account_id, rows in origins.items():
        account = drafter.config.account(account_id)
        each = account is not None and drafter.per_recipient(account)
        withdraw += unsent(rows, each)
        stop += stopped(rows, each)
        if carried_only(rows):
            continue  # a paired account: paired again by the account it serves
        origin = public_post(rows, each)
        if origin is None or account is None:
            continue
        deliveries += correction_deliveries(c, account, origin, have, memo)
    return (withdraw, stop), deliveries
