"""Planning what operators and the daemon do to stored incidents: approve, retry, fall back."""

from __future__ import annotations

from pydantic import ValidationError

from alertcast.config import AccountConfig
from alertcast.errors import Conflict, NotFound, invalid
from alertcast.models import DeliveryState, Incident, IncidentState, MsgType, parse_incident
from alertcast.plan.authority import chain_scope, codes_of, covers, may_approve
from alertcast.plan.cancel import plan_release_cancel
from alertcast.plan.drafts import Draft, Drafter, unsent
from alertcast.plan.followups import SUPERSEDED
from alertcast.plan.model import DAEMON, Asker, Authority, Chain, Moment, Plan
from alertcast.preview import Memo
from alertcast.render import RenderContext
from alertcast.store.base import (
    AuditRow,
    DeliveryRow,
    Effects,
    IncidentRow,
    NewDelivery,
    Release,
    Requeue,
    Write,
)

__all__ = ["RETRYABLE", "approver", "plan_approve", "plan_fallback", "plan_retry"]

RETRYABLE = (DeliveryState.failed, DeliveryState.dead, DeliveryState.skipped)
NOT_RETRIED = ("withdrawn", "superseded")  # a correction decided these must not go out
CANCELLED = IncidentState.cancelled.value
ACTIVE = IncidentState.active.value


def _parsed(row: IncidentRow) -> Incident:
    try:
        return parse_incident(dict(row.body))
    except ValidationError as exc:  # stored bodies were valid once; the models may have moved
        raise invalid(exc, "stored incident") from None


def plan_approve(drafter: Drafter, chain: Chain, asker: Asker, moment: Moment) -> Plan:
    """The two-person rule: a second person in scope of the whole chain releases a held
    message — the original with its held updates, a held update of an approved incident
    (superseding then what the chain has not sent yet), or a held cancellation."""
    held = chain.named
    if held is None:
        raise NotFound(f"no incident {chain.asked}")
    root = chain.root or held
    if held.id != root.id and root.state == IncidentState.awaiting_approval.value:
        raise Conflict(
            f"incident {root.id} awaits approval itself: approve {root.id}, which releases "
            f"its held updates with it"
        )
    authority = approver(drafter, chain, asker, held, root)
    if not authority.allowed:
        return Plan(authority)
    if held.state != IncidentState.awaiting_approval.value:
        raise Conflict(f"incident {held.id} is {held.state}, not awaiting approval")
    if held.msg_type == MsgType.cancel.value:
        return plan_release_cancel(drafter, chain, held, asker, authority, moment)
    effects = None if held.id == root.id else _superseding(chain, held, root)
    audit = AuditRow(moment.at, asker.name, "incident.approve", held.id)
    body = {"id": held.id, "state": ACTIVE, "approved_by": asker.name}
    event = {"type": "incident", "id": held.id, "state": ACTIVE}
    write = Write(release=_release(chain, held, root), effects=effects, audit=(audit,))
    return Plan(authority, write, body, (event,))


def _release(chain: Chain, held: IncidentRow, root: IncidentRow) -> Release:
    """Exactly what the approver saw held: the incident with its held updates (and nothing
    written after), or one held update."""
    if held.id != root.id:
        return Release((held.id,))
    waiting = IncidentState.awaiting_approval.value
    updates = [f.id for f in chain.follow_ups if f.state == waiting and f.msg_type != "cancel"]
    return Release((root.id, *updates), whole=root.id)


def approver(
    drafter: Drafter, chain: Chain, asker: Asker, held: IncidentRow, root: IncidentRow
) -> Authority:
    """In scope of the chain as it stands (every message of it, and what the approval
    releases), and a second person to everyone whose words it releases."""
    rows = [root, *chain.follow_ups]
    rows += [held] if all(r.id != held.id for r in rows) else []
    authority = chain_scope(asker, rows, drafter.regions)
    if not authority.allowed:
        return authority
    return may_approve(asker, held, _authors(chain, held, root))


def _superseding(chain: Chain, held: IncidentRow, root: IncidentRow) -> Effects:
    """A held update, released, supersedes what the chain's released messages before it have
    not sent yet (the update withdrew nothing while it waited), and the incident is live."""
    if root.state == CANCELLED:
        raise Conflict(f"incident {root.id} is cancelled; its held update {held.id} stays unsent")
    before = {root.id} | {
        f.id
        for f in chain.follow_ups
        if f.id != held.id and f.state == ACTIVE and f.created_at <= held.created_at
    }
    withdraw = unsent([d for d in chain.deliveries if d.incident_id in before])
    return Effects(tuple(withdraw), SUPERSEDED, live=root.id)


def _authors(chain: Chain, held: IncidentRow, root: IncidentRow) -> set[str]:
    """Who wrote what an approval of ``held`` releases, or what it changes."""
    if held.id != root.id:
        return {held.issuer, root.issuer}
    waiting = IncidentState.awaiting_approval.value
    return {root.issuer} | {f.issuer for f in chain.follow_ups if f.state == waiting}


def plan_retry(
    drafter: Drafter, chain: Chain, delivery_id: str, asker: Asker, budget: int, moment: Moment
) -> Plan:
    """An operator re-drives a delivery that settled without reaching the platform."""
    row = next((d for d in chain.deliveries if d.id == delivery_id), None)
    if row is None or chain.named is None:
        raise NotFound(f"no delivery {delivery_id}")
    authority = _operator(drafter, chain, asker)
    if not authority.allowed:
        return Plan(authority)
    _retryable(row, chain.named, chain)
    audit = AuditRow(moment.at, asker.name, "delivery.retry", row.incident_id, delivery_id)
    write = Write(requeue=Requeue(delivery_id, budget), audit=(audit,))
    return Plan(authority, write)


def _operator(drafter: Drafter, chain: Chain, asker: Asker) -> Authority:
    """An operator may re-drive the deliveries of messages within its scope (the message and
    its original both)."""
    rows = [r for r in (chain.root, chain.named) if r is not None]
    if asker.issuer is None or not rows:
        return Authority(True, f"{asker.name}: bound by its configuration")
    for row in rows:
        authority = covers(asker.issuer, row.kind, codes_of(row), drafter.regions)
        if not authority.allowed:
            return Authority(
                False, f"issuer {asker.name} may not operate this incident: {authority.reason}"
            )
    return Authority(True, f"issuer {asker.name} may re-drive deliveries of {rows[0].id}")


def _retryable(row: DeliveryRow, named: IncidentRow, chain: Chain) -> None:
    if row.state not in RETRYABLE:
        raise Conflict(
            f"delivery {row.id} is {row.state.value}; only failed, "
            "dead or skipped deliveries can be retried"
        )
    if (row.reason or "").startswith(NOT_RETRIED):
        raise Conflict(f"delivery {row.id} was {row.reason}; it must not go out")
    if (held := _holding(named, chain)) is not None:
        raise Conflict(f"incident {held.id} is {held.state}; its deliveries wait")


def _holding(named: IncidentRow, chain: Chain) -> IncidentRow | None:
    """The row that holds the ``named`` message's deliveries: the message itself while it
    awaits approval; once the incident is cancelled, the original (or the message) — except
    for the cancellation's own deliveries, which must reach everyone who saw the alert."""
    if named.state == IncidentState.awaiting_approval.value:
        return named
    if named.msg_type == MsgType.cancel.value:
        return None
    return _cancelled(chain)


def _cancelled(chain: Chain) -> IncidentRow | None:
    """The named message, or its root, when it is cancelled."""
    rows = (chain.named, chain.root)
    return next((r for r in rows if r is not None and r.state == CANCELLED), None)


def plan_fallback(drafter: Drafter, chain: Chain, spent: DeliveryRow, moment: Moment) -> Plan:
    """An account's quota is spent: its ``fallback`` accounts that do not have the message
    yet take it over (one delivery per account and message, whoever asks first). An alert
    or update of a cancelled incident falls back to no one: its cancellation would not
    follow there; a cancellation falls back like any message."""
    row, account = chain.named, drafter.config.account(spent.account)
    if row is None or account is None or not account.fallback:
        return Plan(Authority(True, "no fallback configured"))
    if row.msg_type != MsgType.cancel.value and (gone := _cancelled(chain)) is not None:
        return Plan(Authority(True, f"incident {gone.id} is cancelled; nothing falls back"))
    incident = _parsed(row)
    targets = _fallbacks(drafter, account, incident, {d.account for d in chain.deliveries})
    authority = Authority(True, f"{account.id}: quota spent; its configured fallback takes over")
    if not targets:
        return Plan(authority)
    deliveries = _taken_over(drafter, row, incident, targets, spent, moment)
    why = spent.reason or "quota exhausted"
    detail = {"from": spent.account, "to": [a.id for a in targets], "why": why}
    audit = AuditRow(moment.at, DAEMON, "delivery.fallback", row.id, spent.id, detail=detail)
    return Plan(authority, Write(deliveries=deliveries, attach_to=row.id, audit=(audit,)))


def _taken_over(
    drafter: Drafter,
    row: IncidentRow,
    incident: Incident,
    targets: list[AccountConfig],
    spent: DeliveryRow,
    moment: Moment,
) -> list[NewDelivery]:
    """The message ``row`` as the fallback accounts post it: an alert's posts lapse with the
    incident, as its own posts do; an update's or a cancellation's never do."""
    msg_type = MsgType(row.msg_type)
    link = drafter.link(incident, row.references or row.id)
    ctx = RenderContext(row.id, msg_type, link, references=row.references, reason=row.reason)
    stem = row.id.removeprefix("inc_")
    memo: Memo = {}
    return [
        drafter.delivery(
            incident,
            a,
            ctx,
            moment,
            Draft(
                priority=spent.priority,
                delivery_id=f"dlv_{stem}_fb_{a.id}",
                expires=msg_type is MsgType.alert,
                path="fallback",
            ),
            memo,
        )
        for a in targets
    ]


def _fallbacks(
    drafter: Drafter, account: AccountConfig, incident: Incident, have: set[str]
) -> list[AccountConfig]:
    """The enabled fallback accounts without the message that take its status, as routing
    decides it (drills only ever to exercise accounts)."""
    return [
        a
        for i in account.fallback
        if (a := drafter.config.account(i)) is not None
        and a.id not in have
        and a.enabled
        and (a.exercise or not incident.status.is_drill)
        and incident.status in a.takes
    ]
