"""Planning updates and cancellations: follow-ups that reach every account the original did.

A follow-up reaches each account's followers and the people who open the original by the
steps of its platform's correction plan (:mod:`alertcast.plan.corrections`; an account may
override it with ``on_update``, ``on_cancel``), each threaded to the original and waiting for the
original's delivery on the same account. What has
not gone out yet is withdrawn instead of being followed: a cancellation of an original still
retrying means neither is posted; an update of one still pending replaces it with the new facts.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from pydantic import ValidationError

from alertcast.config import ApprovalConfig
from alertcast.errors import Conflict, Invalid, NotFound, invalid
from alertcast.feedconfig import SeverityBands
from alertcast.models import DeliveryState, Incident, IncidentState, MsgType, parse_incident
from alertcast.plan.authority import (
    chain_needs_approval,
    chain_scope,
    floor,
    needs_approval,
    scope,
)
from alertcast.plan.common import idempotency, incident_event, incident_row, replayed
from alertcast.plan.drafts import Draft, Drafter, answer, public_post, stopped, unsent
from alertcast.plan.model import Asker, Authority, Chain, Moment, Plan
from alertcast.plan.reach import Correcting, carried_only, correction_deliveries
from alertcast.preview import Memo
from alertcast.render import RenderContext
from alertcast.store.base import AuditRow, Effects, IncidentRow, NewDelivery, Write

__all__ = [
    "SUPERSEDED",
    "UPDATE_PRIORITY",
    "delivered_targets",
    "follow_context",
    "follow_row",
    "follow_up_plan",
    "merge",
    "parsed",
    "plan_update",
    "root_of",
]

UPDATE_PRIORITY = 5
SUPERSEDED = "superseded by an update"
FIXED = ("kind", "status")


def merge(base: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """``patch`` over ``base``, one level deep for objects (``details``, ``area``)."""
    out = dict(base)
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = {**out[key], **value}
        else:
            out[key] = value
    return out


def root_of(chain: Chain) -> IncidentRow:
    if chain.root is None:
        raise NotFound(f"no incident {chain.asked}")
    return chain.root


def parsed(body: dict[str, Any]) -> Incident:
    try:
        return parse_incident(body)
    except ValidationError as exc:
        raise invalid(exc) from None


def delivered_targets(chain: Chain) -> dict[str, str | None]:
    return {r.id: r.remote_id for r in chain.deliveries if r.state is DeliveryState.delivered}


def follow_context(
    drafter: Drafter,
    incident: Incident,
    message_id: str,
    msg_type: MsgType,
    root_id: str,
    reason: str | None = None,
) -> RenderContext:
    """A follow-up's message: its own id, the original it refers to, the original's link."""
    link = drafter.link(incident, root_id)
    return RenderContext(message_id, msg_type, link, references=root_id, reason=reason)


def follow_up_plan(
    authority: Authority,
    chain: Chain,
    row: IncidentRow,
    deliveries: list[NewDelivery],
    body: dict[str, Any],
    effects: Effects,
    audit: AuditRow,
    asker: Asker,
) -> Plan:
    """The plan of a follow-up: one write of the message, its deliveries and its effects;
    its deliveries to originals already delivered may be claimed at once."""
    audit = replace(audit, detail={**audit.detail, "deliveries": len(deliveries)})
    write = Write(
        incident=row,
        deliveries=deliveries,
        idempotency=idempotency(asker, body, row.created_at),
        effects=effects,
        audit=(audit,),
    )
    return Plan(authority, write, body, (incident_event(row),), delivered_targets(chain))


# -- update ---------------------------------------------------------------------------------
def updated(chain: Chain, patch: dict[str, Any], bands: SeverityBands) -> Incident:
    """The incident as the update would make it (what scope is checked against after), its
    severity no lower than its facts allow."""
    return _floored(chain, patch, bands)[0]


def _floored(
    chain: Chain, patch: dict[str, Any], bands: SeverityBands
) -> tuple[Incident, str | None]:
    """The incident as updated, and why its severity was raised (None when it stands)."""
    root = root_of(chain)
    changed = [k for k in FIXED if k in patch and patch[k] != root.body.get(k)]
    if changed:
        raise Invalid(
            f"an update cannot change {', '.join(changed)}; cancel and raise anew",
            (),
        )
    return floor(parsed(merge(dict(root.body), patch)), bands)


def before_and_after(drafter: Drafter, asker: Asker, chain: Chain, incident: Incident) -> Authority:
    """Scope holds before and after: the chain as it stands (the original and every update),
    and the incident as it would become."""
    before = chain_scope(asker, [root_of(chain), *chain.follow_ups], drafter.regions)
    if not before.allowed:
        return before
    after = scope(asker, incident, drafter.regions)
    if not after.allowed:
        return Authority(False, f"the incident as updated: {after.reason}")
    return after


def plan_update(
    drafter: Drafter,
    approval: ApprovalConfig,
    chain: Chain,
    patch: dict[str, Any],
    asker: Asker,
    moment: Moment,
) -> Plan:
    """New facts: supersede what has not gone out, follow every public post, reach newly
    matching accounts; held while the incident awaits approval, when it rises to approval, or
    when a person changes a chain that needed it. A held update of a released chain withdraws
    nothing (one person cannot stop an approved alert): its approval supersedes."""
    root = root_of(chain)
    incident, raised = _floored(chain, patch, drafter.config.severity.earthquake)
    if "area" in patch:
        drafter.check_codes(incident)  # the original's codes were checked when it was raised
    authority = before_and_after(drafter, asker, chain, incident)
    if not authority.allowed:
        return Plan(authority)
    if chain.replay is not None:
        return replayed(chain.replay, asker, authority)
    if root.state == IncidentState.cancelled.value:
        raise Conflict(f"incident {root.id} is cancelled; raise a new one")
    update_id = moment.ids("inc")
    ctx = follow_context(drafter, incident, update_id, MsgType.update, root.id)
    held = _held(approval, chain, incident, asker)
    (withdraw, stop), deliveries = _update_deliveries(drafter, incident, ctx, chain, moment, held)
    if held and root.state != IncidentState.awaiting_approval.value:
        withdraw, stop = [], []
    state = IncidentState.awaiting_approval if held else IncidentState.active
    row = follow_row(incident, update_id, asker, moment, root, (MsgType.update, state))
    effects = Effects(tuple(withdraw), SUPERSEDED, live=root.id, withdraw_recipients_of=tuple(stop))
    detail = {"update": update_id, "changed": sorted(patch), "superseded": len(withdraw)}
    if raised is not None:
        detail["severity"] = raised
    audit = AuditRow(moment.at, asker.name, "incident.update", root.id, detail=detail)
    body = {**answer(update_id, state, deliveries), "references": root.id, "superseded": withdraw}
    return follow_up_plan(authority, chain, row, deliveries, body, effects, audit, asker)


def follow_row(
    incident: Incident,
    message_id: str,
    asker: Asker,
    moment: Moment,
    root: IncidentRow,
    kind: tuple[MsgType, IncidentState],
    reason: str | None = None,
) -> IncidentRow:
    """A follow-up's own message row (an update or a cancellation), referring to the original."""
    msg_type, state = kind
    return incident_row(
        incident,
        message_id,
        asker,
        moment.at,
        msg_type=msg_type,
        references=root.id,
        reason=reason,
        state=state,
    )


def _held(approval: ApprovalConfig, chain: Chain, incident: Incident, asker: Asker) -> bool:
    """The two-person rule binds the chain: an update waits while the incident awaits
    approval; a person's update of a chain that needed approval waits for a second person;
    and any update raising the chain to approval waits. (A feed's own update of a chain
    already approved goes at once: an official report is never slower than the automatic.)"""
    root = root_of(chain)
    if root.state == IncidentState.awaiting_approval.value:
        return True
    needed = chain_needs_approval(approval, [root, *chain.follow_ups])
    if needed and asker.issuer is not None:
        return True
    return needs_approval(approval, incident, asker.source) and not needed


def _update_deliveries(
    drafter: Drafter,
    incident: Incident,
    ctx: RenderContext,
    chain: Chain,
    moment: Moment,
    hold: bool,
) -> tuple[tuple[list[str], list[str]], list[NewDelivery]]:
    """Every public post followed by the update's steps (and its paired accounts); a newly
    matching account, or one whose original had not gone out, gets the update as its post.
    Per-recipient parents half way are stopped (their recipients not yet sent get the update
    as their first message). Returns ``((withdrawn, stopped), deliveries)``."""
    chosen = {d.account.id for d in drafter.decisions(incident) if d.chosen}
    origins = chain.by_account()
    have = {a for a, rows in origins.items() if not carried_only(rows)}
    c = Correcting(drafter, incident, ctx, moment, MsgType.update.value, UPDATE_PRIORITY, hold)
    withdraw: list[str] = []
    stop: list[str] = []
    deliveries: list[NewDelivery] = []
    memo: Memo = {}
    for account in drafter.config.accounts:
        rows = origins.get(account.id, [])
        each = drafter.per_recipient(account)
        withdraw += unsent(rows, each)
        stop += stopped(rows, each)
        if carried_only(rows):
            continue  # a paired account: the update is paired again by the account it serves
        origin = public_post(rows, each)
        if origin is not None:
            deliveries += correction_deliveries(c, account, origin, have, memo)
        elif account.id in chosen or unsent(rows):
            draft = Draft(priority=UPDATE_PRIORITY, hold=hold, path="timeline")
            deliveries.append(drafter.delivery(incident, account, ctx, moment, draft, memo))
    return (withdraw, stop), deliveries
