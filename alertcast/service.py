"""Intake: an incident in, one durable transaction out (incident + a delivery per account).

The HTTP API, the CLI, feeds and schedules all come through :meth:`Service.submit`, so every
entry point gets the same routing, rendering, idempotency and audit.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

import structlog

from alertcast import metrics
from alertcast.accounts import Accounts
from alertcast.config import AccountConfig, Config, IssuerConfig
from alertcast.events import EventBus
from alertcast.ids import new_id
from alertcast.models import (
    DeliveryState,
    Incident,
    IncidentState,
    MsgType,
    incident_json,
    parse_incident,
)
from alertcast.preview import Memo, preview, public_link, render_for, render_key
from alertcast.regions import Hierarchy
from alertcast.render import RenderContext, Renderer, RenderError
from alertcast.routing import Decision, route
from alertcast.store.base import (
    AuditRow,
    DeliveryRow,
    Effects,
    IdempotencyConflict,
    IdempotencyRecord,
    IncidentRow,
    NewDelivery,
    Store,
    Taken,
)

__all__ = ["Conflict", "Service", "Submission"]

log = structlog.get_logger("alertcast.service")


class Conflict(Exception):
    """The request contradicts what is stored (e.g. an idempotency key reused for another body)."""


@dataclass(frozen=True)
class Submission:
    """Who sent an incident and how to recognise a replay of it."""

    issuer: str
    source: str = "api"
    idempotency_key: str | None = None
    body_sha256: str = ""


class Handoff(Protocol):
    """What the service needs of the dispatcher to hand it new deliveries directly."""

    def reserve(
        self,
        deliveries: Sequence[NewDelivery],
        targets: Mapping[str, str | None] | None = None,
    ) -> Taken | None: ...
    def adopt(
        self,
        taken: Taken,
        incident: IncidentRow,
        deliveries: Sequence[NewDelivery],
        targets: Mapping[str, str | None] | None = None,
    ) -> None: ...
    def release(self, taken: Taken, deliveries: Sequence[NewDelivery]) -> None: ...


class Service:
    def __init__(
        self,
        config: Config,
        store: Store,
        accounts: Accounts,
        renderer: Renderer,
        events: EventBus,
        wake: Any = None,
    ) -> None:
        self.config = config
        self.store = store
        self.accounts = accounts
        self.renderer = renderer
        self.events = events
        self.regions = Hierarchy(config.regions.parents)
        self._wake = wake or (lambda: None)
        # The dispatcher, when there is one: it takes a new incident's deliveries in the
        # creating transaction (see Dispatcher.reserve), saving a round trip to the store.
        self.handoff: Handoff | None = None

    def wake(self) -> None:
        self._wake()

    def issuer(self, name: str) -> IssuerConfig | None:
        return next((i for i in self.config.issuers if i.name == name), None)

    def status_url(self, incident_id: str) -> str:
        return f"/v1/incidents/{incident_id}"

    def public_link(self, incident: Incident, incident_id: str) -> str | None:
        return public_link(self.config, incident, incident_id)

    # -- intake -----------------------------------------------------------------------------
    async def submit(self, incident: Incident, sub: Submission) -> tuple[int, dict[str, Any]]:
        """Store ``incident`` with its deliveries; ``(202, answer)`` or a replay's first answer."""
        if sub.idempotency_key:
            first = await self.store.get_idempotency(sub.issuer, sub.idempotency_key)
            if first is not None:
                return self.replay(first, sub)
        incident_id, now = new_id("inc"), time.time()
        held = self.needs_approval(incident, sub)
        state = IncidentState.awaiting_approval if held else IncidentState.active
        ctx = RenderContext(
            incident_id=incident_id,
            msg_type=MsgType.alert,
            link=self.public_link(incident, incident_id),
        )
        decisions = self.decisions(incident)
        deliveries = self.alert_deliveries(incident, ctx, hold=held, decisions=decisions)
        answer = self.answer(incident_id, state, deliveries)
        row = self.incident_row(incident, incident_id, sub, now, state=state)
        idem = (
            IdempotencyRecord(sub.issuer, sub.idempotency_key, sub.body_sha256, answer, now)
            if sub.idempotency_key
            else None
        )
        audit = AuditRow(
            now,
            sub.issuer,
            "incident.create",
            incident_id,
            detail={
                "source": sub.source,
                "deliveries": len(deliveries),
                "state": state.value,
                "routing": {
                    d.account.id: ("chosen: " if d.chosen else "not chosen: ") + d.why
                    for d in decisions
                },
            },
        )
        try:
            await self.commit_new(row, deliveries, idempotency=idem, audit=audit)
        except IdempotencyConflict as exc:  # a concurrent twin won the race
            return self.replay(exc.record, sub)
        return 202, answer

    async def commit_new(
        self,
        row: IncidentRow,
        deliveries: Sequence[NewDelivery],
        *,
        idempotency: IdempotencyRecord | None,
        audit: AuditRow,
        effects: Effects | None = None,
        targets: Mapping[str, str | None] | None = None,
    ) -> None:
        """Store an incident (an alert or a follow-up) and its deliveries in one transaction,
        handing the dispatcher the deliveries it took in that transaction (``targets``: the
        delivered originals a follow-up may thread to, by delivery id, with their remote ids).

        Shielded: a caller cancelled mid-commit must not leave deliveries claimed by this
        worker and never sent; the commit's outcome is always acted on.
        """
        commit = self._commit_new(row, deliveries, idempotency, audit, effects, targets)
        await asyncio.shield(asyncio.ensure_future(commit))

    async def _commit_new(
        self,
        row: IncidentRow,
        deliveries: Sequence[NewDelivery],
        idempotency: IdempotencyRecord | None,
        audit: AuditRow,
        effects: Effects | None,
        targets: Mapping[str, str | None] | None,
    ) -> None:
        handoff = self.handoff
        taken = handoff.reserve(deliveries, targets) if handoff is not None else None
        try:
            await self.store.create_incident(
                row, deliveries, idempotency=idempotency, audit=audit, effects=effects, taken=taken
            )
        except BaseException:
            if taken is not None and handoff is not None:
                handoff.release(taken, deliveries)
            raise
        if taken is not None and handoff is not None:
            handoff.adopt(taken, row, deliveries, targets)
        # Nothing left for the dispatcher to claim when it took every delivery.
        self.accepted(row, len(deliveries), wake=taken is None or len(taken.ids) < len(deliveries))

    def accepted(self, row: IncidentRow, deliveries: int, *, wake: bool = True) -> None:
        """After a commit: count, log, tell the live stream, wake the dispatcher."""
        metrics.INCIDENTS.labels(row.kind, row.msg_type).inc()
        log.info(
            "incident.accepted",
            incident_id=row.id,
            msg_type=row.msg_type,
            deliveries=deliveries,
            kind=row.kind,
            status=row.status,
            issuer=row.issuer,
            state=row.state,
            references=row.references,
        )
        self.events.publish(
            {
                "type": "incident",
                "id": row.id,
                "state": row.state,
                "msg_type": row.msg_type,
                "references": row.references,
            }
        )
        if wake:
            self._wake()

    def needs_approval(self, incident: Incident, sub: Submission) -> bool:
        """The two-person rule: extreme incidents (by default) wait for a second issuer."""
        rule = self.config.approval
        if incident.severity in rule.severities:
            return True
        magnitude = getattr(incident.details, "magnitude", None)
        return (
            sub.source.startswith("feed:")
            and rule.feed_min_magnitude is not None
            and magnitude is not None
            and magnitude >= rule.feed_min_magnitude
        )

    def replay(self, first: IdempotencyRecord, sub: Submission) -> tuple[int, dict[str, Any]]:
        if first.body_sha256 != sub.body_sha256:
            raise Conflict(
                f"Idempotency-Key {sub.idempotency_key!r} was already used with a different body"
            )
        return 202, dict(first.response)

    def incident_row(
        self,
        incident: Incident,
        incident_id: str,
        sub: Submission,
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
            issuer=sub.issuer,
            source=sub.source,
            body=incident_json(incident),
            created_at=now,
            expires_at=incident.expires_at.timestamp() if incident.expires_at else None,
            references=references,
            reason=reason,
        )

    def decisions(self, incident: Incident) -> list[Decision]:
        return route(incident, self.config.accounts, self.regions, self.config.routes)

    def alert_deliveries(
        self,
        incident: Incident,
        ctx: RenderContext,
        *,
        hold: bool = False,
        decisions: list[Decision] | None = None,
    ) -> list[NewDelivery]:
        """One delivery per chosen account; cluster members repost their lead's post."""
        expires = incident.expires_at.timestamp() if incident.expires_at else None
        decided = self.decisions(incident) if decisions is None else decisions
        chosen = [d.account for d in decided if d.chosen]
        memo: Memo = {}
        out = {
            a.id: self.delivery(incident, a, ctx, expires=expires, hold=hold, memo=memo)
            for a in chosen
        }
        for account in chosen:
            lead = out.get(account.lead or "")
            if lead is not None:
                out[account.id] = replace(
                    out[account.id], action="repost", target_delivery_id=lead.id, wait_for=lead.id
                )
        return list(out.values())

    def delivery(
        self,
        incident: Incident,
        account: AccountConfig,
        ctx: RenderContext,
        *,
        expires: float | None = None,
        hold: bool = False,
        memo: Memo | None = None,
        delivery_id: str | None = None,
        **kw: Any,
    ) -> NewDelivery:
        """A rendered delivery for ``account``; a render error fails it, never the incident.

        ``memo`` shares one payload between accounts that render alike (same format, language
        and rendering options), so a fan-out to a hundred webhooks renders once.
        """
        delivery_id = delivery_id or new_id("dlv")
        state, reason = DeliveryState.pending, "awaiting approval" if hold else None
        try:
            payload = self.render(incident, account, ctx, memo)
        except RenderError as exc:
            payload = {"format": account.format, "error": str(exc)}
            state, reason = DeliveryState.failed, f"render: {exc}"
        return NewDelivery(
            id=delivery_id,
            account=account.id,
            channel=account.channel,
            payload=payload,
            idempotency_key=delivery_id,
            state=state,
            reason=reason,
            hold=hold,
            max_attempts=account.max_attempts or self.config.dispatch.max_attempts,
            expires_at=expires,
            **kw,
        )

    def render(
        self,
        incident: Incident,
        account: AccountConfig,
        ctx: RenderContext,
        memo: Memo | None = None,
    ) -> dict[str, Any]:
        if memo is None:
            return render_for(self.renderer, incident, account, ctx)
        key = render_key(account)
        if key not in memo:
            memo[key] = render_for(self.renderer, incident, account, ctx)
        return memo[key]

    def answer(
        self, incident_id: str, state: IncidentState, deliveries: list[NewDelivery]
    ) -> dict[str, Any]:
        return {
            "id": incident_id,
            "state": state.value,
            "status_url": self.status_url(incident_id),
            "deliveries": [
                {
                    "id": d.id,
                    "account": d.account,
                    "channel": d.channel,
                    "state": d.state.value,
                    "reason": d.reason,
                }
                for d in deliveries
            ],
        }

    async def fallback(self, spent: DeliveryRow) -> None:
        """An account's quota is spent: its ``fallback`` accounts take the message over."""
        account = self.config.account(spent.account)
        row = await self.store.get_incident(spent.incident_id)
        if account is None or not account.fallback or row is None:
            return
        incident = parse_incident(dict(row.body))
        have = {d.account for d in await self.store.list_deliveries(incident_id=row.id)}
        targets = [
            a
            for i in account.fallback
            if (a := self.config.account(i)) is not None
            and a.id not in have
            and a.enabled
            and (a.exercise or not incident.status.is_drill)
        ]
        if not targets:
            return
        ctx = RenderContext(
            incident_id=row.id,
            msg_type=MsgType(row.msg_type),
            references=row.references,
            reason=row.reason,
            link=self.public_link(incident, row.references or row.id),
        )
        memo: Memo = {}
        # One fallback delivery per account and message, whichever spent account asks first:
        # two accounts sharing a fallback, spent at the same moment, add it once.
        deliveries = [
            self.delivery(
                incident,
                a,
                ctx,
                priority=spent.priority,
                memo=memo,
                delivery_id=f"dlv_{row.id.removeprefix('inc_')}_fb_{a.id}",
            )
            for a in targets
        ]
        audit = AuditRow(
            time.time(),
            "alertcast",
            "delivery.fallback",
            row.id,
            spent.id,
            detail={
                "from": spent.account,
                "to": [a.id for a in targets],
                "why": spent.reason or "quota exhausted",
            },
        )
        await self.store.add_deliveries(row.id, deliveries, audit)
        log.info(
            "delivery.fallback",
            incident_id=row.id,
            account=spent.account,
            to=[a.id for a in targets],
        )
        self._wake()

    async def latest(
        self, kind: str | None, regions: list[str], limit: int
    ) -> list[dict[str, Any]]:
        """Active, actual incidents in ``regions`` (newest first), with their latest facts.

        Feeds the WeChat keyword reply: drills never appear here.
        """
        rows = await self.store.list_incidents(
            limit=200, kind=kind, state="active", status="actual"
        )
        out: list[dict[str, Any]] = []
        for row in rows:
            if row.msg_type != MsgType.alert.value:
                continue
            codes = list(row.body.get("area", {}).get("codes", []))
            if regions and not self.regions.any_covers(regions, codes):
                continue
            updates = await self.store.follow_ups(row.id)
            body = dict(updates[-1].body) if updates else dict(row.body)
            out.append({"id": row.id, **body})
            if len(out) >= limit:
                break
        return out

    # -- preview ----------------------------------------------------------------------------
    def preview(self, incident: Incident, account_id: str | None = None) -> dict[str, Any]:
        return preview(self.config, self.renderer, incident, account_id, self.regions)
