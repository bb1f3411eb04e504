"""Who may make a change: issuer scope, ``can_approve`` and the two-person rule, as decisions.

Each function answers with an :class:`~alertcast.plan.model.Authority` carrying the rule that
decided, so a refusal names its reason and an acceptance can be audited.
"""

from __future__ import annotations

from alertcast.config import ApprovalConfig, IssuerConfig
from alertcast.models import Incident, IncidentState, Kind
from alertcast.plan.model import Asker, Authority
from alertcast.regions import Hierarchy
from alertcast.store.base import IncidentRow

__all__ = ["ALLOWED", "may_approve", "needs_approval", "scope"]

ALLOWED = Authority(True, "allowed")


def scope(asker: Asker, incident: Incident, regions: Hierarchy) -> Authority:
    """Whether the issuer behind ``asker`` may speak about ``incident``: its kind and every
    area code within the issuer's ``kinds`` and ``regions`` (the daemon's jobs: their config)."""
    issuer = asker.issuer
    if issuer is None:
        return Authority(True, f"{asker.name}: bound by its configuration")
    if Kind(incident.kind) not in issuer.kinds:
        return Authority(False, f"issuer {issuer.name} may not raise {incident.kind} incidents")
    return _regions(issuer, incident, regions)


def _regions(issuer: IssuerConfig, incident: Incident, regions: Hierarchy) -> Authority:
    if not issuer.regions:
        return Authority(True, f"issuer {issuer.name}: {incident.kind} in every region")
    codes = incident.area.codes
    outside = [c for c in codes if not regions.any_covers(issuer.regions, [c])]
    if outside or not codes:
        return Authority(
            False,
            f"issuer {issuer.name} may only raise incidents in regions "
            f"{', '.join(issuer.regions)}; area codes {outside or '(none)'} are outside",
        )
    return Authority(True, f"issuer {issuer.name}: {incident.kind} in {', '.join(codes)}")


def needs_approval(rule: ApprovalConfig, incident: Incident, source: str) -> bool:
    """The two-person rule: incidents of an approval severity (extreme by default), and feed
    quakes from ``feed_min_magnitude`` up, wait for a second issuer."""
    if incident.severity in rule.severities:
        return True
    magnitude = getattr(incident.details, "magnitude", None)
    return (
        source.startswith("feed:")
        and rule.feed_min_magnitude is not None
        and magnitude is not None
        and magnitude >= rule.feed_min_magnitude
    )


def may_approve(asker: Asker, held: IncidentRow) -> Authority:
    """A second issuer with ``can_approve`` may release an incident someone else raised."""
    issuer = asker.issuer
    if issuer is None or not issuer.can_approve:
        return Authority(False, f"issuer {asker.name} may not approve (can_approve)")
    if held.issuer == issuer.name:
        return Authority(
            False, "two-person rule: the issuer who raised an incident cannot approve it"
        )
    if held.state != IncidentState.awaiting_approval.value:
        return Authority(True, f"issuer {issuer.name} may approve; nothing is held")
    return Authority(True, f"approved by {issuer.name}, second to {held.issuer}")
