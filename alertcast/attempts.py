"""One attempt as the dispatcher opens and closes it: the message a claim sends (with its
progress checkpoint), the outcome with what the send noted, the event of where a delivery is."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

from alertcast.channels.base import ChannelError, Outgoing, Receipt
from alertcast.models import DeliveryState
from alertcast.store.base import ActiveClaim, AttemptRow, DeliveryRow, Outcome

__all__ = ["attempt_row", "delivery_event", "noted", "outgoing"]

Save = Callable[[str, dict[str, Any]], Awaitable[bool]]


def outgoing(claim: ActiveClaim, action: str, target: str | None, save: Save) -> Outgoing:
    """What the adapter sends for ``claim``: its own copy of the stored progress, and a
    checkpoint that ``save``s it (a multi-recipient send's cursor)."""
    d = claim.delivery
    progress: dict[str, Any] = json.loads(json.dumps(d.progress)) if d.progress else {}

    async def checkpoint() -> bool:
        return await save(d.id, progress)

    return Outgoing(
        delivery_id=d.id,
        incident_id=d.incident_id,
        idempotency_key=d.idempotency_key,
        payload=d.payload,
        action=action,  # type: ignore[arg-type]
        target_remote_id=target,
        attempt=d.attempts,
        progress=progress,
        checkpoint=checkpoint,
    )


def attempt_row(
    d: DeliveryRow,
    started: float,
    duration_ms: float,
    result: Receipt | ChannelError,
    outcome: Outcome,
    redact: Callable[[str], str],
) -> AttemptRow:
    """The record of one attempt: when, how long, what came of it (its error ``redact``ed)."""
    return AttemptRow(
        delivery_id=d.id,
        number=d.attempts,
        started_at=started,
        duration_ms=duration_ms,
        outcome=outcome.state.value,
        http_status=result.http_status,
        error_code=result.code if isinstance(result, ChannelError) else None,
        error=redact(result.reason) if isinstance(result, ChannelError) else None,
        next_attempt_at=outcome.next_attempt_at,
    )


def noted(outcome: Outcome, progress: dict[str, Any] | None, alone: str | None) -> Outcome:
    """The outcome with a multi-recipient send's ``progress`` and, for a cluster member that
    posted alone, why (kept on its retries, so it stays alone)."""
    if progress is not None:
        outcome = replace(outcome, progress=progress)
    if alone is not None:
        outcome = replace(outcome, reason="; ".join(filter(None, (alone, outcome.reason))))
    return outcome


def delivery_event(d: DeliveryRow, state: DeliveryState) -> dict[str, Any]:
    return {
        "type": "delivery",
        "id": d.id,
        "incident_id": d.incident_id,
        "account": d.account,
        "channel": d.channel,
        "state": state.value,
        "attempts": d.attempts,
        "last_error": d.last_error,
        "remote_id": d.remote_id,
        "reason": d.reason,
        "path": d.path,
    }
