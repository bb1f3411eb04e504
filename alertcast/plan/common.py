"""Pieces every planner shares: the incident row, the idempotency record, replays, events."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from alertcast.errors import Conflict
from alertcast.models import Incident, IncidentState, MsgType, incident_json
from alertcast.plan.model import Asker, Authority, Plan
from alertcast.store.base import IdempotencyRecord, IncidentRow

__all__ = ["idempotency", "incident_event", "incident_row", "replayed"]


def incident_row(
    incident: Incident,
    incident_id: str,
    asker: Asker,
    now: float,
    *,
    state: IncidentState = IncidentState.active,
    msg_type: MsgType = MsgType.alert,
    references: str | None = None,
    reason: str | None = None,
) -> IncidentRow:
    return IncidentRow(
        id=incident_id,
        kind=incident.kind,
        status=incident.status.value,
        severity=incident.severity.value,
        msg_type=msg_type.value,
        state=state.value,
        issuer=asker.name,
        source=asker.source,
        body=incident_json(incident),
        created_at=now,
        expires_at=incident.expires_at.timestamp() if incident.expires_at else None,
        references=references,
        reason=reason,
    )


def idempotency(asker: Asker, answer: Mapping[str, Any], now: float) -> IdempotencyRecord | None:
    """The record that makes a replay of this request answer as the first one did."""
    if not asker.idempotency_key:
        return None
    return IdempotencyRecord(asker.name, asker.idempotency_key, asker.body_sha256, answer, now)


def replayed(first: IdempotencyRecord, asker: Asker, authority: Authority) -> Plan:
    """A request seen before: its first answer, with nothing to store; the same key with
    another body is a conflict."""
    if first.body_sha256 != asker.body_sha256:
        raise Conflict(
            f"Idempotency-Key {asker.idempotency_key!r} was already used with a different body"
        )
    return Plan(authority, None, dict(first.response))


def incident_event(row: IncidentRow) -> dict[str, Any]:
    return {
        "type": "incident",
        "id": row.id,
        "state": row.state,
        "msg_type": row.msg_type,
        "references": row.references,
    }
