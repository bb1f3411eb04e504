"""Planning: every change to the world decided as data, by pure functions.

A planner reads the stored :class:`Chain`, the configuration, the :class:`Asker` and a
:class:`Moment`, and returns a :class:`Plan` — the authority decision with its reason, the one
write that makes the change, the answer and the events. It does no I/O and reads no clock;
:mod:`alertcast.commit` applies what it decides, :mod:`alertcast.door` is how callers ask.
"""

from __future__ import annotations

from typing import Any

from alertcast.config import Config
from alertcast.models import Incident
from alertcast.plan.alert import plan_alert
from alertcast.plan.cancel import plan_cancel
from alertcast.plan.drafts import Drafter
from alertcast.plan.followups import merge, plan_update, updated
from alertcast.plan.model import DAEMON, Asker, Authority, Chain, Moment, Plan
from alertcast.plan.operate import plan_approve, plan_fallback, plan_retry
from alertcast.plan.reject import plan_reject
from alertcast.plan.sending import Send, Skip, plan_send
from alertcast.regions import Hierarchy
from alertcast.render import Renderer
from alertcast.store.base import DeliveryRow

__all__ = [
    "DAEMON",
    "Asker",
    "Authority",
    "Chain",
    "Moment",
    "Plan",
    "Planner",
    "Send",
    "Skip",
    "merge",
    "plan_send",
    "updated",
]


class Planner:
    """The planners bound to one configuration and renderer."""

    def __init__(
        self, config: Config, renderer: Renderer, known: frozenset[str] | None = None
    ) -> None:
        self.config = config
        self.drafter = Drafter(config, renderer, known)

    @property
    def regions(self) -> Hierarchy:
        return self.drafter.regions

    def alert(self, incident: Incident, chain: Chain, asker: Asker, moment: Moment) -> Plan:
        return plan_alert(self.drafter, self.config.approval, incident, chain, asker, moment)

    def update(self, chain: Chain, patch: dict[str, Any], asker: Asker, moment: Moment) -> Plan:
        return plan_update(self.drafter, self.config.approval, chain, patch, asker, moment)

    def cancel(self, chain: Chain, reason: str, asker: Asker, moment: Moment) -> Plan:
        return plan_cancel(self.drafter, chain, reason, asker, moment)

    def approve(self, chain: Chain, asker: Asker, moment: Moment) -> Plan:
        return plan_approve(self.drafter, chain, asker, moment)

    def reject(self, chain: Chain, reason: str, asker: Asker, moment: Moment) -> Plan:
        return plan_reject(self.drafter, chain, reason, asker, moment)

    def retry(self, chain: Chain, delivery_id: str, asker: Asker, moment: Moment) -> Plan:
        budget = self.config.dispatch.max_attempts
        return plan_retry(self.drafter, chain, delivery_id, asker, budget, moment)

    def fallback(self, chain: Chain, spent: DeliveryRow, moment: Moment) -> Plan:
        return plan_fallback(self.drafter, chain, spent, moment)
