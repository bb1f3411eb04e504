"""What the HTTP API answers, as pydantic models: the OpenAPI document is generated from these."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from alertcast.config import ExpiryConfig
from alertcast.expiry import EXPIRED, expires_at
from alertcast.models import IncidentState
from alertcast.store.base import AttemptRow, AuditRow, DeliveryRow, IncidentRow, RecipientSend

__all__ = [
    "AcceptedView",
    "AccountList",
    "AccountView",
    "ApprovedView",
    "AttemptView",
    "AuditView",
    "CancelBody",
    "DeliveryList",
    "DeliveryView",
    "FeedList",
    "FeedPushView",
    "FollowUpAccepted",
    "HealthView",
    "IncidentList",
    "IncidentSummary",
    "IncidentView",
    "PreviewView",
    "Problem",
    "RecipientPage",
    "RecipientSendView",
    "iso",
]


def iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class FieldProblem(BaseModel):
    """One refused field: its dotted path (``details.magnitude``, a header, ``(body)``) and why."""

    field: str
    message: str


class Problem(BaseModel):
    """RFC 9457 problem details, with the offending field paths for validation errors."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str
    errors: list[FieldProblem] | None = None


class AttemptView(BaseModel):
    number: int
    started_at: str | None
    duration_ms: float
    outcome: str
    http_status: int | None
    error_code: str | None
    error: str | None
    next_attempt_at: str | None

    @classmethod
    def of(cls, a: AttemptRow) -> AttemptView:
        return cls(
            number=a.number,
            started_at=iso(a.started_at),
            duration_ms=round(a.duration_ms, 1),
            outcome=a.outcome,
            http_status=a.http_status,
            error_code=a.error_code,
            error=a.error,
            next_attempt_at=iso(a.next_attempt_at),
        )


class DeliveryView(BaseModel):
    id: str
    incident_id: str
    account: str
    channel: str
    state: str
    reason: str | None
    action: str
    path: str | None = None  # how a correction reaches people: timeline, thread, withdraw, ...
    target_delivery_id: str | None = None
    wait_for: str | None = None
    attempts: int
    max_attempts: int
    last_error: str | None
    remote_id: str | None
    delivered_at: str | None
    next_attempt_at: str | None
    updated_at: str | None
    progress: dict[str, Any] | None = None  # a send to many recipients: how far it got
    recipients: dict[str, int] | None = None  # a per-recipient delivery's sends by state
    payload: dict[str, Any] | None = None
    attempt_log: list[AttemptView] | None = None

    @classmethod
    def of(
        cls, d: DeliveryRow, *, payload: bool = False, attempts: list[AttemptRow] | None = None
    ) -> DeliveryView:
        return cls(
            id=d.id,
            incident_id=d.incident_id,
            account=d.account,
            channel=d.channel,
            state=d.state.value,
            reason=d.reason,
            action=d.action,
            path=d.path,
            target_delivery_id=d.target_delivery_id,
            wait_for=d.wait_for,
            attempts=d.attempts,
            max_attempts=d.max_attempts,
            last_error=d.last_error,
            remote_id=d.remote_id,
            delivered_at=iso(d.delivered_at),
            next_attempt_at=iso(d.next_attempt_at) if not d.state.settled else None,
            updated_at=iso(d.updated_at),
            progress=_progress(d.progress),
            payload=dict(d.payload) if payload else None,
            attempt_log=None if attempts is None else [AttemptView.of(a) for a in attempts],
        )


def _progress(progress: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """What an operator needs of a multi-recipient cursor: counts and who refused."""
    if not progress:
        return None
    keys = ("total", "sent", "refused", "refusals")
    return {k: progress[k] for k in keys if k in progress}


class RecipientSendView(BaseModel):
    """One recipient of a per-recipient delivery and where its send stands."""

    id: str
    state: str
    attempts: int
    http_status: int | None
    last_error: str | None
    next_attempt_at: str | None
    updated_at: str | None

    @classmethod
    def of(cls, s: RecipientSend) -> RecipientSendView:
        return cls(
            id=s.recipient_id,
            state=s.state,
            attempts=s.attempts,
            http_status=s.http_status,
            last_error=s.last_error,
            next_attempt_at=iso(s.next_attempt_at) if s.state == "retrying" else None,
            updated_at=iso(s.updated_at),
        )


class RecipientPage(BaseModel):
    """A page of a per-recipient delivery's sends; ``next``: the ``after`` of the next page."""

    delivery_id: str
    summary: dict[str, int]
    recipients: list[RecipientSendView]
    next: str | None


class AuditView(BaseModel):
    at: str | None
    actor: str
    action: str
    delivery_id: str | None
    detail: dict[str, Any]

    @classmethod
    def of(cls, a: AuditRow) -> AuditView:
        return cls(
            at=iso(a.at),
            actor=a.actor,
            action=a.action,
            delivery_id=a.delivery_id,
            detail=dict(a.detail),
        )


class IncidentSummary(BaseModel):
    id: str
    state: str
    msg_type: str
    kind: str
    status: str
    severity: str
    headline: str
    issuer: str
    source: str
    created_at: str | None
    references: str | None
    reason: str | None
    expires_at: str | None = None  # its own expires_at, else its kind's [expiry] default

    @classmethod
    def of(
        cls, r: IncidentRow, expiry: ExpiryConfig | None = None, now: float | None = None
    ) -> IncidentSummary:
        """The summary of ``r``; ``expired`` for an active incident past its validity."""
        end = expires_at(r.body, expiry) if expiry is not None else None
        lapsed = end is not None and now is not None and end.timestamp() <= now
        return cls(
            id=r.id,
            state=EXPIRED if lapsed and r.state == IncidentState.active.value else r.state,
            expires_at=end.isoformat() if end is not None else None,
            msg_type=r.msg_type,
            kind=r.kind,
            status=r.status,
            severity=r.severity,
            headline=str(r.body.get("headline", "")),
            issuer=r.issuer,
            source=r.source,
            created_at=iso(r.created_at),
            references=r.references,
            reason=r.reason,
        )


class IncidentView(IncidentSummary):
    incident: dict[str, Any]
    counts: dict[str, int]
    settled: bool
    deliveries: list[DeliveryView]
    follow_ups: list[str] = Field(default_factory=list)
    audit: list[AuditView] = Field(default_factory=list)


class CancelBody(BaseModel):
    """``POST /v1/incidents/{id}/cancel``: why the incident is withdrawn."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    reason: str = Field(min_length=1, max_length=500)


class AcceptedDelivery(BaseModel):
    id: str
    account: str
    channel: str
    state: str
    reason: str | None = None


class AcceptedView(BaseModel):
    id: str
    state: str
    status_url: str
    deliveries: list[AcceptedDelivery]


class FollowUpAccepted(AcceptedView):
    """``202`` to an update or a cancellation: the new message, threaded to ``references``."""

    references: str
    superseded: list[str] | None = None  # an update: what it replaced before it went out
    withdrawn: list[str] | None = None  # a cancellation: what it stopped before it went out


class ApprovedView(BaseModel):
    """``200`` to an approval: the message released, by whom, and how many deliveries it freed
    (an approved cancellation also carries its deliveries, as :class:`FollowUpAccepted`)."""

    id: str
    state: str
    approved_by: str
    released: int


class RejectedView(BaseModel):
    """``200`` to a rejection: the message withdrawn (``cancelled``), by whom and why, the
    deliveries it stopped, and the cancellation row of a held incident rejected whole."""

    id: str
    state: str
    rejected_by: str
    reason: str
    withdrawn: list[str]
    cancellation: str | None = None


class IncidentList(BaseModel):
    incidents: list[IncidentSummary]


class DeliveryList(BaseModel):
    deliveries: list[DeliveryView]


class AccountLimits(BaseModel):
    concurrency: int
    per_minute: float | None
    per_second: float | None


class AccountView(BaseModel):
    """One account's health (``GET /v1/channels``); times are Unix seconds."""

    id: str
    channel: str
    enabled: bool
    exercise: bool
    healthy: bool
    paused: str | None
    paused_until: float | None
    inflight: int
    consecutive_failures: int
    last_success_at: float | None
    silent_for_s: int | None
    last_error: str | None
    last_error_at: float | None
    delivered: int
    failed: int
    # A correction that ended failed or dead on this account (delivery, incident, why): the
    # account is unhealthy until it is re-driven and delivered, or the account is resumed.
    correction_failed: str | None = None
    # What is left: a daily quota (WeChat's mass sends today) and each per-action budget's
    # room in its window now (Weibo: post_this_hour, comment_this_hour).
    quota_left: dict[str, int] = Field(default_factory=dict)
    limits: AccountLimits


class AccountList(BaseModel):
    accounts: list[AccountView]


class PreviewEntry(BaseModel):
    """What one routed account would get: the payload, or why it cannot be rendered."""

    account: str
    channel: str
    chosen: bool
    why: str
    payload: dict[str, Any] | None = None
    error: str | None = None


class PreviewView(BaseModel):
    """``POST /v1/render``: the incident as validated and every account's payload."""

    incident: dict[str, Any]
    accounts: list[PreviewEntry]


class FeedList(BaseModel):
    """``GET /v1/feeds``: one object per feed (polling health, pushes, decisions)."""

    feeds: list[dict[str, Any]]


class FeedDecision(BaseModel):
    event_id: str
    action: str
    reason: str
    changed: list[str]
    incident_id: str | None
    message_id: str | None
    status_url: str | None


class FeedPushView(BaseModel):
    """``POST /v1/feeds/{name}/events``: what the feed's lifecycle decided for the event."""

    feed: str
    decisions: list[FeedDecision]


class HealthView(BaseModel):
    status: str
    store: str
    inflight: int | None = None
    unrecorded: int | None = None  # sent, outcome not yet taken by the store
    store_unreachable_since: str | None = None  # ISO 8601, while the store is away
    store_error: str | None = None  # its last error, redacted
