"""Planning a new alert: who may raise it, whether it waits for approval, where it goes."""

from __future__ import annotations

from alertcast.config import ApprovalConfig
from alertcast.models import Incident, IncidentState, MsgType
from alertcast.plan.authority import floor, needs_approval, scope
from alertcast.plan.common import idempotency, incident_event, incident_row, replayed
from alertcast.plan.drafts import Drafter, answer
from alertcast.plan.model import Asker, Chain, Moment, Plan
from alertcast.render import RenderContext
from alertcast.routing import Decision
from alertcast.store.base import AuditRow, Write

__all__ = ["plan_alert"]


def plan_alert(
    drafter: Drafter,
    approval: ApprovalConfig,
    incident: Incident,
    chain: Chain,
    asker: Asker,
    moment: Moment,
) -> Plan:
    """A new incident and one delivery per chosen account, held when it needs approval; its
    severity no lower than its facts allow."""
    drafter.check_codes(incident)
    incident, raised = floor(incident, drafter.config.severity.earthquake)
    authority = scope(asker, incident, drafter.regions)
    if not authority.allowed:
        return Plan(authority)
    if chain.replay is not None:
        return replayed(chain.replay, asker, authority)
    incident_id = moment.ids("inc")
    held = needs_approval(approval, incident, asker.source)
    state = IncidentState.awaiting_approval if held else IncidentState.active
    link = drafter.link(incident, incident_id)
    ctx = RenderContext(incident_id=incident_id, msg_type=MsgType.alert, link=link)
    decisions = drafter.decisions(incident)
    deliveries = drafter.alert(incident, ctx, decisions, moment, hold=held)
    body = answer(incident_id, state, deliveries)
    row = incident_row(incident, incident_id, asker, moment.at, state=state)
    detail = {
        "source": asker.source,
        "deliveries": len(deliveries),
        "state": state.value,
        "authority": authority.reason,
        "routing": _routing(decisions),
    }
    if raised is not None:
        detail["severity"] = raised
    audit = AuditRow(moment.at, asker.name, "incident.create", incident_id, detail=detail)
    key = idempotency(asker, body, moment.at)
    write = Write(incident=row, deliveries=deliveries, idempotency=key, audit=(audit,))
    return Plan(authority, write, body, (incident_event(row),))


def _routing(decisions: list[Decision]) -> dict[str, str]:
    return {d.account.id: ("chosen: " if d.chosen else "not chosen: ") + d.why for d in decisions}
