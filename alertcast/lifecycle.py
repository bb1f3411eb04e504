"""Updates, cancellations and approvals: follow-ups that reach every account the original did.

A follow-up is threaded to the original post where the platform allows (each account says how:
``on_update``, ``on_cancel``) and waits for the original's delivery on the same account. What has
not gone out yet is withdrawn instead of being followed: a cancellation of an original still
retrying means neither is posted; an update of one still pending replaces it with the new facts.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import structlog
from aiohttp import web

from alertcast.config import AccountConfig, IssuerConfig
from alertcast.ids import new_id
from alertcast.models import DeliveryState, Incident, IncidentState, MsgType, parse_incident
from alertcast.preview import Memo
from alertcast.render import RenderContext
from alertcast.service import Service, Submission
from alertcast.store.base import (
    AuditRow,
    DeliveryRow,
    Effects,
    IdempotencyConflict,
    IdempotencyRecord,
    IncidentRow,
    NewDelivery,
    StaleRead,
    StateConflict,
)

__all__ = ["FollowUps", "merge"]

UNSENT = (DeliveryState.pending, DeliveryState.retrying)
CANCEL_PRIORITY, UPDATE_PRIORITY = 10, 5
FIXED = ("kind", "status")
log = structlog.get_logger("alertcast.lifecycle")


def merge(base: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """``patch`` over ``base``, one level deep for objects (``details``, ``area``)."""
    out = dict(base)
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = {**out[key], **value}
        else:
            out[key] = value
    return out


class FollowUps:
    def __init__(self, service: Service) -> None:
        self.service = service
        self.store = service.store

    async def _root(self, incident_id: str) -> IncidentRow:
        row = await self.store.get_incident(incident_id)
        if row is not None and row.references:
            row = await self.store.get_incident(row.references)
        if row is None:
            raise web.HTTPNotFound(text=f"no incident {incident_id}")
        return row

    async def _origins(self, root: IncidentRow) -> dict[str, list[DeliveryRow]]:
        """Per account, the deliveries of the original and its updates, oldest first."""
        rows = list(await self.store.list_deliveries(incident_id=root.id, limit=1_000_000))
        for follow in await self.store.follow_ups(root.id):
            rows += await self.store.list_deliveries(incident_id=follow.id, limit=1_000_000)
        by_account: dict[str, list[DeliveryRow]] = {}
        for row in sorted(rows, key=lambda r: r.created_at):
            by_account.setdefault(row.account, []).append(row)
        return by_account

    async def _commit(
        self,
        row: IncidentRow,
        deliveries: list[NewDelivery],
        audit: AuditRow,
        effects: Effects,
        sub: Submission,
        answer: dict[str, Any],
        origins: dict[str, list[DeliveryRow]],
    ) -> dict[str, Any]:
        """Store the follow-up in one transaction; a replayed key returns the first answer.

        Follow-ups threaded to an original already delivered go to the dispatcher in that
        transaction, like a new alert's posts: a correction is never slower than the mistake.
        """
        idem = None
        if sub.idempotency_key:
            idem = IdempotencyRecord(
                sub.issuer, sub.idempotency_key, sub.body_sha256, answer, row.created_at
            )
        targets = {
            r.id: r.remote_id
            for rows in origins.values()
            for r in rows
            if r.state is DeliveryState.delivered
        }
        try:
            await self.service.commit_new(
                row, deliveries, idempotency=idem, audit=audit, effects=effects, targets=targets
            )
        except IdempotencyConflict as exc:
            return self.service.replay(exc.record, sub)[1]
        except StateConflict as exc:  # a concurrent cancellation won
            raise web.HTTPConflict(text=str(exc)) from None
        return answer

    async def _replayed(self, sub: Submission) -> dict[str, Any] | None:
        if not sub.idempotency_key:
            return None
        first = await self.store.get_idempotency(sub.issuer, sub.idempotency_key)
        return None if first is None else self.service.replay(first, sub)[1]

    # -- cancel -----------------------------------------------------------------------------
    async def cancel(self, incident_id: str, reason: str, sub: Submission) -> dict[str, Any]:
        """Cancel the incident ``incident_id`` names (or its root) on behalf of ``sub``."""
        return await _replanned(lambda: self._cancel(incident_id, reason, sub))

    async def _cancel(self, incident_id: str, reason: str, sub: Submission) -> dict[str, Any]:
        if (first := await self._replayed(sub)) is not None:
            return first
        root = await self._root(incident_id)
        if root.state == IncidentState.cancelled.value:
            raise web.HTTPConflict(text=f"incident {root.id} is already cancelled")
        incident = parse_incident(dict(root.body))
        cancel_id, now = new_id("inc"), time.time()
        ctx = RenderContext(
            incident_id=cancel_id,
            msg_type=MsgType.cancel,
            references=root.id,
            reason=reason,
            link=self.service.public_link(incident, root.id),
        )
        withdraw, deliveries = [], []
        memo: Memo = {}
        origins = await self._origins(root)
        for account_id, rows in origins.items():
            withdraw += [r.id for r in rows if r.state in UNSENT]
            origin = _public_post(rows)
            account = self.service.config.account(account_id)
            if origin is None or account is None:
                continue
            deliveries += self._cancel_deliveries(incident, account, ctx, origin, memo)
        row = self.service.incident_row(
            incident,
            cancel_id,
            sub,
            now,
            msg_type=MsgType.cancel,
            references=root.id,
            reason=reason,
            state=IncidentState.cancelled,
        )
        effects = Effects(
            tuple(withdraw),
            "withdrawn: the incident was cancelled",
            (root.id, IncidentState.cancelled.value),
        )
        audit = AuditRow(
            now,
            sub.issuer,
            "incident.cancel",
            root.id,
            detail={
                "reason": reason,
                "cancellation": cancel_id,
                "withdrawn": len(withdraw),
                "deliveries": len(deliveries),
            },
        )
        answer = {
            **self.service.answer(cancel_id, IncidentState.cancelled, deliveries),
            "references": root.id,
            "withdrawn": withdraw,
        }
        return await self._commit(row, deliveries, audit, effects, sub, answer, origins)

    def _cancel_deliveries(
        self,
        incident: Incident,
        account: AccountConfig,
        ctx: RenderContext,
        origin: DeliveryRow,
        memo: Memo,
    ) -> list[NewDelivery]:
        wait = origin.id if origin.state is DeliveryState.sending else None
        action = {"reply_and_delete": "reply"}.get(account.on_cancel, account.on_cancel)
        first = self.service.delivery(
            incident,
            account,
            ctx,
            action=action,
            target_delivery_id=origin.id,
            wait_for=wait,
            priority=CANCEL_PRIORITY,
            memo=memo,
        )
        if account.on_cancel != "reply_and_delete":
            return [first]
        delete = self.service.delivery(
            incident,
            account,
            ctx,
            action="delete",
            target_delivery_id=origin.id,
            wait_for=first.id,
            priority=CANCEL_PRIORITY,
            memo=memo,
        )
        return [first, delete]

    # -- update -----------------------------------------------------------------------------
    async def update(
        self, incident_id: str, patch: dict[str, Any], sub: Submission
    ) -> dict[str, Any]:
        """New facts for the incident on behalf of ``sub``; a replayed key answers as before."""
        return await _replanned(lambda: self._update(incident_id, patch, sub))

    async def _update(
        self, incident_id: str, patch: dict[str, Any], sub: Submission
    ) -> dict[str, Any]:
        if (first := await self._replayed(sub)) is not None:
            return first
        root = await self._root(incident_id)
        if root.state == IncidentState.cancelled.value:
            raise web.HTTPConflict(text=f"incident {root.id} is cancelled; raise a new one")
        changed = [k for k in FIXED if k in patch and patch[k] != root.body.get(k)]
        if changed:
            raise web.HTTPUnprocessableEntity(
                text=f"an update cannot change {', '.join(changed)}; cancel and raise anew"
            )
        incident = parse_incident(merge(dict(root.body), patch))
        update_id, now = new_id("inc"), time.time()
        ctx = RenderContext(
            incident_id=update_id,
            msg_type=MsgType.update,
            references=root.id,
            link=self.service.public_link(incident, root.id),
        )
        # The two-person rule holds for updates too: of an unapproved incident, or to extreme.
        held = root.state == IncidentState.awaiting_approval.value or (
            self.service.needs_approval(incident, sub)
            and root.severity not in {s.value for s in self.service.config.approval.severities}
        )
        origins = await self._origins(root)
        withdraw, deliveries = self._update_plan(incident, ctx, origins, hold=held)
        state = IncidentState.awaiting_approval if held else IncidentState.active
        row = self.service.incident_row(
            incident,
            update_id,
            sub,
            now,
            msg_type=MsgType.update,
            references=root.id,
            state=state,
        )
        effects = Effects(tuple(withdraw), "superseded by an update", live=root.id)
        audit = AuditRow(
            now,
            sub.issuer,
            "incident.update",
            root.id,
            detail={
                "update": update_id,
                "changed": sorted(patch),
                "superseded": len(withdraw),
                "deliveries": len(deliveries),
            },
        )
        answer = {
            **self.service.answer(update_id, state, deliveries),
            "references": root.id,
            "superseded": withdraw,
        }
        return await self._commit(row, deliveries, audit, effects, sub, answer, origins)

    def _update_plan(
        self,
        incident: Incident,
        ctx: RenderContext,
        origins: dict[str, list[DeliveryRow]],
        *,
        hold: bool = False,
    ) -> tuple[list[str], list[NewDelivery]]:
        chosen = {d.account.id for d in self.service.decisions(incident) if d.chosen}
        withdraw: list[str] = []
        deliveries: list[NewDelivery] = []
        memo: Memo = {}
        for account in self.service.config.accounts:
            rows = origins.get(account.id, [])
            withdraw += [r.id for r in rows if r.state in UNSENT]
            origin = _public_post(rows)
            if origin is not None:
                wait = origin.id if origin.state is DeliveryState.sending else None
                deliveries.append(
                    self.service.delivery(
                        incident,
                        account,
                        ctx,
                        action=account.on_update,
                        target_delivery_id=origin.id,
                        wait_for=wait,
                        priority=UPDATE_PRIORITY,
                        memo=memo,
                        hold=hold,
                    )
                )
            elif account.id in chosen or any(r.state in UNSENT for r in rows):
                deliveries.append(
                    self.service.delivery(
                        incident, account, ctx, priority=UPDATE_PRIORITY, memo=memo, hold=hold
                    )
                )
        return withdraw, deliveries

    # -- approve ----------------------------------------------------------------------------
    async def approve(self, incident_id: str, issuer: IssuerConfig) -> dict[str, Any]:
        row = await self.store.get_incident(incident_id)
        if row is None:
            raise web.HTTPNotFound(text=f"no incident {incident_id}")
        if not issuer.can_approve:
            raise web.HTTPForbidden(text=f"issuer {issuer.name} may not approve (can_approve)")
        if row.issuer == issuer.name:
            raise web.HTTPForbidden(
                text="two-person rule: the issuer who raised an incident cannot approve it"
            )
        if row.state != IncidentState.awaiting_approval.value:
            raise web.HTTPConflict(
                text=f"incident {incident_id} is {row.state}, not awaiting approval"
            )
        now = time.time()
        try:
            released = await self.store.release(
                incident_id, AuditRow(now, issuer.name, "incident.approve", incident_id), now=now
            )
        except StateConflict as exc:  # cancelled or approved meanwhile
            raise web.HTTPConflict(text=str(exc)) from None
        self.service.events.publish({"type": "incident", "id": incident_id, "state": "active"})
        self.service.wake()
        return {
            "id": incident_id,
            "state": IncidentState.active.value,
            "released": released,
            "approved_by": issuer.name,
        }


def _public_post(rows: Sequence[DeliveryRow]) -> DeliveryRow | None:
    """The delivery that put (or is putting) this incident on the account's public timeline."""
    posted = [
        r
        for r in rows
        if r.action in ("post", "repost")
        and r.state in (DeliveryState.delivered, DeliveryState.sending)
    ]
    return posted[0] if posted else None


REPLANS = 8


async def _replanned(plan: Callable[[], Awaitable[dict[str, Any]]]) -> dict[str, Any]:
    """Run a follow-up's read-plan-commit again while the originals it read change under it
    (an original to withdraw was claimed meanwhile: it must get a correction instead)."""
    for _ in range(REPLANS):
        try:
            return await plan()
        except StaleRead as exc:
            log.info("follow_up.replanned", why=str(exc))
    raise web.HTTPServiceUnavailable(
        text="the originals kept changing while this was planned; try again",
        headers={"Retry-After": "1"},
    )
