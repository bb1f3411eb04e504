"""Planning what operators and the daemon do to stored incidents: approve, retry, fall back."""

from __future__ import annotations

from pydantic import ValidationError

from alertcast.config import AccountConfig
from alertcast.errors import Conflict, NotFound, invalid
from alertcast.models import DeliveryState, Incident, IncidentState, MsgType, parse_incident
from alertcast.plan.authority import may_approve, scope
from alertcast.plan.drafts import Draft, Drafter
from alertcast.plan.model import DAEMON, Asker, Authority, Chain, Moment, Plan
from alertcast.preview import Memo
from alertcast.render import RenderContext
from alertcast.store.base import AuditRow, DeliveryRow, IncidentRow, Requeue, Write

__all__ = ["RETRYABLE", "plan_approve", "plan_fallback", "plan_retry"]

RETRYABLE = (DeliveryState.failed, DeliveryState.dead, DeliveryState.skipped)
NOT_RETRIED = ("withdrawn", "superseded")  # a correction decided these must not go out
HELD_OR_GONE = (IncidentState.cancelled.value, IncidentState.awaiting_approval.value)


def _parsed(row: IncidentRow) -> Incident:
    try:
        return parse_incident(dict(row.body))
    except ValidationError as exc:  # stored bodies were valid once; the models may have moved
        raise invalid(exc, "stored incident") from None


def plan_approve(drafter: Drafter, chain: Chain, asker: Asker, moment: Moment) -> Plan:
    """The two-person rule: a second issuer releases a held incident and its held updates."""
    held = chain.named
    if held is None:
        raise NotFound(f"no incident {chain.asked}")
    authority = scope(asker, _parsed(held), drafter.regions)
    if authority.allowed:
        authority = may_approve(asker, held)
    if not authority.allowed:
        return Plan(authority)
    if held.state != IncidentState.awaiting_approval.value:
        raise Conflict(f"incident {held.id} is {held.state}, not awaiting approval")
    audit = AuditRow(moment.at, asker.name, "incident.approve", held.id)
    body = {"id": held.id, "state": IncidentState.active.value, "approved_by": asker.name}
    event = {"type": "incident", "id": held.id, "state": IncidentState.active.value}
    return Plan(authority, Write(release=held.id, audit=(audit,)), body, (event,))


def plan_retry(chain: Chain, delivery_id: str, asker: Asker, budget: int, moment: Moment) -> Plan:
    """An operator re-drives a delivery that settled without reaching the platform."""
    row = next((d for d in chain.deliveries if d.id == delivery_id), None)
    if row is None or chain.named is None:
        raise NotFound(f"no delivery {delivery_id}")
    _retryable(row, chain.named)
    authority = Authority(True, f"issuer {asker.name} may re-drive deliveries")
    audit = AuditRow(moment.at, asker.name, "delivery.retry", row.incident_id, delivery_id)
    write = Write(requeue=Requeue(delivery_id, budget), audit=(audit,))
    return Plan(authority, write)


def _retryable(row: DeliveryRow, incident: IncidentRow) -> None:
    if row.state not in RETRYABLE:
        raise Conflict(
            f"delivery {row.id} is {row.state.value}; only failed, "
            "dead or skipped deliveries can be retried"
        )
    if (row.reason or "").startswith(NOT_RETRIED):
        raise Conflict(f"delivery {row.id} was {row.reason}; it must not go out")
    if incident.state in HELD_OR_GONE:
        raise Conflict(f"incident {incident.id} is {incident.state}; its deliveries wait")


def plan_fallback(drafter: Drafter, chain: Chain, spent: DeliveryRow, moment: Moment) -> Plan:
    """An account's quota is spent: its ``fallback`` accounts that do not have the message
    yet take it over (one delivery per account and message, whoever asks first)."""
    row, account = chain.named, drafter.config.account(spent.account)
    if row is None or account is None or not account.fallback:
        return Plan(Authority(True, "no fallback configured"))
    incident = _parsed(row)
    targets = _fallbacks(drafter, account, incident, {d.account for d in chain.deliveries})
    authority = Authority(True, f"{account.id}: quota spent; its configured fallback takes over")
    if not targets:
        return Plan(authority)
    ctx = RenderContext(
        incident_id=row.id,
        msg_type=MsgType(row.msg_type),
        references=row.references,
        reason=row.reason,
        link=drafter.link(incident, row.references or row.id),
    )
    memo: Memo = {}
    stem = row.id.removeprefix("inc_")
    deliveries = [
        drafter.delivery(
            incident,
            a,
            ctx,
            moment,
            Draft(priority=spent.priority, delivery_id=f"dlv_{stem}_fb_{a.id}"),
            memo,
        )
        for a in targets
    ]
    why = spent.reason or "quota exhausted"
    detail = {"from": spent.account, "to": [a.id for a in targets], "why": why}
    audit = AuditRow(moment.at, DAEMON, "delivery.fallback", row.id, spent.id, detail=detail)
    return Plan(authority, Write(deliveries=deliveries, attach_to=row.id, audit=(audit,)))


def _fallbacks(
    drafter: Drafter, account: AccountConfig, incident: Incident, have: set[str]
) -> list[AccountConfig]:
    """The enabled fallback accounts without the message (drills only to exercise accounts)."""
    return [
        a
        for i in account.fallback
        if (a := drafter.config.account(i)) is not None
        and a.id not in have
        and a.enabled
        and (a.exercise or not incident.status.is_drill)
    ]
