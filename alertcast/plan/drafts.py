"""Deliveries drafted: which accounts an incident reaches and the payload each one gets.

The :class:`Drafter` is the planners' one tool for routing and rendering: a render error
fails that delivery (with the reason), never the incident; accounts that render alike share
one payload, so a fan-out to a hundred webhooks renders once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from pydantic import ValidationError

from alertcast.channels import channel_class
from alertcast.config import AccountConfig, Config
from alertcast.errors import FieldError, Invalid
from alertcast.models import DeliveryState, Incident, IncidentState
from alertcast.plan.model import Moment
from alertcast.preview import Memo, public_link, render_for, render_key
from alertcast.regions import Hierarchy
from alertcast.render import RenderContext, Renderer, RenderError
from alertcast.routing import Decision, route
from alertcast.store.base import DeliveryRow, NewDelivery

__all__ = [
    "Draft",
    "Drafter",
    "answer",
    "may_have_reached",
    "public_post",
    "status_url",
    "stopped",
    "unsent",
]

UNSENT = (DeliveryState.pending, DeliveryState.retrying)
UNSETTLED = (DeliveryState.pending, DeliveryState.retrying, DeliveryState.sending)


@dataclass(frozen=True, slots=True)
class Draft:
    """What a new delivery is for, besides its account and message."""

    action: str = "post"
    target_delivery_id: str | None = None
    wait_for: str | None = None
    priority: int = 0
    hold: bool = False
    delivery_id: str | None = None
    expires: bool = False  # an alert's own posts lapse with the incident; corrections do not
    path: str | None = None  # how a correction reaches people (alertcast.plan.corrections)
    format: str | None = None  # rendered in this format instead of the account's own
    wait_s: float = 0.0  # due this long after it is written (an automatic report's wait)


class Drafter:
    def __init__(
        self, config: Config, renderer: Renderer, known: frozenset[str] | None = None
    ) -> None:
        self.config = config
        self.renderer = renderer
        self.regions = Hierarchy(config.regions.parents)
        # The GB/T 2260 divisions an area code may name (the bundled data, [regions] known and
        # parents); None: any well-formed code (the model checks the form).
        extra = {*config.regions.known, *config.regions.parents, *config.regions.parents.values()}
        self.known = None if known is None else frozenset({*known, *extra})
        self._each: dict[str, bool] = {}  # account id -> per-recipient (see per_recipient)

    def check_codes(self, incident: Incident) -> None:
        """Refuse an area code that names no division (``area.codes.i``), by path."""
        if self.known is None:
            return
        wrong = [
            FieldError(
                f"area.codes.{i}",
                f"{code!r} is no GB/T 2260 division the bundled data knows "
                "(an office may list a newer one under [regions] known)",
            )
            for i, code in enumerate(incident.area.codes)
            if code[:1].isdigit() and code not in self.known
        ]
        if wrong:
            raise Invalid("area.codes: " + wrong[0].message, wrong)

    def per_recipient(self, account: AccountConfig) -> bool:
        """Whether ``account`` sends to its recipients one by one (alertcast.bulk)."""
        if account.id not in self._each:
            cls = channel_class(account.channel)
            try:
                options = cls.Options.model_validate(account.channel_options)
            except ValidationError:  # options the channel refuses: it never sends at all
                options = None
            self._each[account.id] = options is not None and cls.per_recipient(options)
        return self._each[account.id]

    def decisions(self, incident: Incident) -> list[Decision]:
        return route(incident, self.config.accounts, self.regions, self.config.routes)

    def link(self, incident: Incident, incident_id: str) -> str | None:
        return public_link(self.config, incident, incident_id)

    def alert(
        self,
        incident: Incident,
        ctx: RenderContext,
        decisions: Sequence[Decision],
        moment: Moment,
        *,
        hold: bool,
    ) -> list[NewDelivery]:
        """One delivery per chosen account; cluster members repost their lead's post."""
        chosen = [d.account for d in decisions if d.chosen]
        memo: Memo = {}
        draft = Draft(hold=hold, expires=True)
        out = {
            a.id: self.delivery(incident, a, ctx, moment, _waiting(incident, a, draft), memo)
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
        moment: Moment,
        draft: Draft,
        memo: Memo,
    ) -> NewDelivery:
        """A rendered delivery for ``account``; a render error fails it with the reason."""
        delivery_id = draft.delivery_id or moment.ids("dlv")
        state, reason = DeliveryState.pending, "awaiting approval" if draft.hold else None
        if draft.wait_s > 0 and not draft.hold:
            reason = f"an automatic report: waits up to {draft.wait_s:g} s for the official one"
        shown = account
        if draft.format is not None:
            shown = account.model_copy(update={"format": draft.format})
        try:
            payload = self._render(incident, shown, ctx, memo)
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
            hold=draft.hold,
            max_attempts=account.max_attempts or self.config.dispatch.max_attempts,
            expires_at=_expiry(incident, moment.at, self.config) if draft.expires else None,
            action=draft.action,
            target_delivery_id=draft.target_delivery_id,
            wait_for=draft.wait_for,
            priority=draft.priority,
            path=draft.path,
            not_before=moment.at + draft.wait_s if draft.wait_s > 0 else None,
        )

    def _render(
        self, incident: Incident, account: AccountConfig, ctx: RenderContext, memo: Memo
    ) -> dict[str, Any]:
        key = render_key(account)
        if key not in memo:
            memo[key] = render_for(self.renderer, incident, account, ctx)
        return memo[key]


def _expiry(incident: Incident, created: float, config: Config) -> float:
    """When an alert's own post lapses: the incident's expiry, or ``max_delay_s`` of its kind
    after it was queued, whichever is first (nothing goes out stale)."""
    late = created + config.dispatch.max_delay_s.of(incident.kind)
    return min(incident.expires_at.timestamp(), late) if incident.expires_at else late


def _waiting(incident: Incident, account: AccountConfig, draft: Draft) -> Draft:
    """An automatic earthquake report waits on an account that spends a scarce send on it
    (``official_wait_s``): the official report, if it comes meanwhile, supersedes it."""
    details = incident.details
    automatic = getattr(details, "report", None) == "automatic"
    wait = account.automatic_waits_s if automatic else 0.0
    return replace(draft, wait_s=wait) if wait > 0 else draft


def status_url(incident_id: str) -> str:
    return f"/v1/incidents/{incident_id}"


def answer(
    incident_id: str, state: IncidentState, deliveries: Sequence[NewDelivery]
) -> dict[str, Any]:
    """The ``202`` body of a new message: its id, state, status URL and every delivery."""
    return {
        "id": incident_id,
        "state": state.value,
        "status_url": status_url(incident_id),
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


def public_post(rows: Sequence[DeliveryRow], each: bool = False) -> DeliveryRow | None:
    """The delivery that put (or is putting) the incident on the account's public timeline;
    on a per-recipient account (``each``), the parent that may have reached some recipients,
    whatever its state (sent to some, then failed, handed back or stopped half way)."""
    posted = [
        r
        for r in rows
        if r.action in ("post", "repost")
        and (r.state in (DeliveryState.delivered, DeliveryState.sending) or each)
        and may_have_reached(r)
    ]
    return posted[0] if posted else None


def may_have_reached(row: DeliveryRow) -> bool:
    """Whether a delivery may have reached someone: delivered, being sent, or tried before.
    (Of a per-recipient parent, only its sends know who; a correction copies them.)"""
    return row.state in (DeliveryState.delivered, DeliveryState.sending) or row.attempts > 0


def unsent(rows: Sequence[DeliveryRow], each: bool = False) -> list[str]:
    """The ids of deliveries that have not gone out yet (and so can still be withdrawn); on a
    per-recipient account (``each``) only those no recipient can have had (see stopped)."""
    return [r.id for r in rows if r.state in UNSENT and not (each and may_have_reached(r))]


def stopped(rows: Sequence[DeliveryRow], each: bool) -> list[str]:
    """On a per-recipient account (``each``), the parents a follow-up stops half way: not
    settled, and maybe seen by some recipients; their sends not yet sent are withdrawn, the
    recipients they reached get the correction (docs/delivery.md, per-recipient accounts)."""
    if not each:
        return []
    return [r.id for r in rows if r.state in UNSETTLED and may_have_reached(r)]
