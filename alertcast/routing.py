"""Which accounts an incident goes to, and why (or why not) for each.

Each account's own filters decide first (kinds, statuses, severity, regions); then every
``[[routes]]`` rule that matches the incident adds or excludes accounts by id. The exercise rule
comes before both and nothing overrides it: a drill (``status`` exercise or test) reaches only
accounts marked ``exercise = true``.

Regions match upward: an account of ``510000`` (Sichuan) takes an incident of ``511826`` (a
county in it). An account with ``downward = true`` also takes an incident whose area covers one
of its regions: a district account (``510107``) takes a city-wide alert (``510100``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from alertcast.config import AccountConfig, RouteConfig
from alertcast.models import Incident, Kind
from alertcast.regions import Hierarchy

__all__ = ["Decision", "decide", "route"]


@dataclass(frozen=True, slots=True)
class Decision:
    account: AccountConfig
    chosen: bool
    why: str


def decide(incident: Incident, account: AccountConfig, regions: Hierarchy) -> Decision:
    """Whether ``account`` takes ``incident`` by its own filters, with the reason."""
    kind = Kind(incident.kind)
    if incident.status.is_drill and not account.exercise:
        return Decision(account, False, f"{incident.status.value}: not an exercise account")
    if not account.enabled:
        return Decision(account, False, "account disabled")
    if incident.status not in account.takes:
        return Decision(account, False, f"does not take status {incident.status.value}")
    if kind not in account.kinds:
        return Decision(account, False, f"does not take kind {kind.value}")
    if incident.severity.rank < account.min_severity.rank:
        return Decision(account, False, f"severity below {account.min_severity.value}")
    if account.regions and not _in_regions(account, incident, regions):
        return Decision(account, False, "area outside the account's regions")
    where = "all regions" if not account.regions else "region " + ",".join(account.regions)
    return Decision(account, True, f"takes {kind.value}/{incident.status.value} in {where}")


def _in_regions(account: AccountConfig, incident: Incident, regions: Hierarchy) -> bool:
    """The area lies in the account's regions; or, for a ``downward`` account, covers one."""
    codes = incident.area.codes
    if regions.any_covers(account.regions, codes):
        return True
    return account.downward and regions.any_covers(codes, account.regions)


def _rule_matches(rule: RouteConfig, incident: Incident, regions: Hierarchy) -> bool:
    rank = incident.severity.rank
    return (
        Kind(incident.kind) in rule.kinds
        and rule.min_severity.rank <= rank <= rule.max_severity.rank
        and (not rule.regions or regions.any_covers(rule.regions, incident.area.codes))
    )


def _apply(rule: RouteConfig, decision: Decision, incident: Incident) -> Decision:
    account = decision.account
    if account.id in rule.exclude and decision.chosen:
        return Decision(account, False, f"excluded by route {rule.name}")
    if account.id in rule.add and not decision.chosen:
        if incident.status.is_drill and not account.exercise:
            return decision  # a route can never send a drill to the public
        if not account.enabled:
            return decision
        return Decision(account, True, f"added by route {rule.name}")
    return decision


def route(
    incident: Incident,
    accounts: Sequence[AccountConfig],
    regions: Hierarchy | None = None,
    rules: Sequence[RouteConfig] = (),
) -> list[Decision]:
    """A decision for every configured account, in configuration order."""
    hierarchy = regions or Hierarchy()
    decisions = [decide(incident, a, hierarchy) for a in accounts]
    for rule in rules:
        if _rule_matches(rule, incident, hierarchy):
            decisions = [_apply(rule, d, incident) for d in decisions]
    return decisions
