"""Who may make a change: issuer scope, ``can_approve`` and the two-person rule, as decisions.

Each function answers with an :class:`~alertcast.plan.model.Authority` carrying the rule that
decided, so a refusal names its reason and an acceptance can be audited.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence

from alertcast.config import AccountConfig, ApprovalConfig, IssuerConfig
from alertcast.feedconfig import SeverityBands
from alertcast.models import Incident, Kind, parse_incident
from alertcast.plan.model import Asker, Authority
from alertcast.regions import Hierarchy
from alertcast.store.base import IncidentRow

__all__ = [
    "ALLOWED",
    "chain_needs_approval",
    "chain_scope",
    "codes_of",
    "covers",
    "floor",
    "may_approve",
    "needs_approval",
    "operates",
    "scope",
    "sees",
]

ALLOWED = Authority(True, "allowed")


def scope(asker: Asker, incident: Incident, regions: Hierarchy) -> Authority:
    """Whether the issuer behind ``asker`` may speak about ``incident``: its kind and every
    area code within the issuer's ``kinds`` and ``regions`` (the daemon's jobs: their config)."""
    if asker.issuer is None:
        return Authority(True, f"{asker.name}: bound by its configuration")
    return covers(asker.issuer, incident.kind, incident.area.codes, regions)


def covers(issuer: IssuerConfig, kind: str, codes: Sequence[str], regions: Hierarchy) -> Authority:
    """Whether ``kind`` in the area ``codes`` lies within the issuer's kinds and regions."""
    if Kind(kind) not in issuer.kinds:
        return Authority(False, f"issuer {issuer.name} may not raise {kind} incidents")
    if not issuer.regions:
        return Authority(True, f"issuer {issuer.name}: {kind} in every region")
    outside = [c for c in codes if not regions.any_covers(issuer.regions, [c])]
    if outside or not codes:
        return Authority(
            False,
            f"issuer {issuer.name} may only raise incidents in regions "
            f"{', '.join(issuer.regions)}; area codes {list(outside) or '(none)'} are outside",
        )
    return Authority(True, f"issuer {issuer.name}: {kind} in {', '.join(codes)}")


def codes_of(row: IncidentRow) -> list[str]:
    """The area codes of a stored message."""
    area = row.body.get("area")
    codes = area.get("codes", []) if isinstance(area, Mapping) else []
    return [str(c) for c in codes]


def sees(issuer: IssuerConfig, row: IncidentRow, regions: Hierarchy) -> bool:
    """Whether the issuer may read the stored message ``row`` (its kind and area in scope)."""
    return covers(issuer, row.kind, codes_of(row), regions).allowed


def chain_scope(asker: Asker, rows: Iterable[IncidentRow], regions: Hierarchy) -> Authority:
    """Whether the issuer behind ``asker`` may speak about a chain as it stands: every stored
    message of it (the original, each update) within its kinds and regions. An update that
    moved the area elsewhere takes the chain out of the scope of whoever cannot speak there."""
    if asker.issuer is None:
        return Authority(True, f"{asker.name}: bound by its configuration")
    authority = ALLOWED
    for row in rows:
        authority = covers(asker.issuer, row.kind, codes_of(row), regions)
        if not authority.allowed:
            which = "" if row.references is None else f" ({row.id})"
            return Authority(False, f"the incident as it stands{which}: {authority.reason}")
    return authority


def operates(issuer: IssuerConfig, account: AccountConfig, regions: Hierarchy) -> bool:
    """Whether the issuer may see and operate ``account``: every kind the account takes is one
    of the issuer's, and a regional issuer only accounts of regions within its own."""
    if not set(account.kinds) <= set(issuer.kinds):
        return False
    if not issuer.regions:
        return True
    return bool(account.regions) and all(
        regions.any_covers(issuer.regions, [r]) for r in account.regions
    )


def needs_approval(rule: ApprovalConfig, incident: Incident, source: str) -> bool:
    """The two-person rule: incidents of an approval severity (extreme by default), and feed
    quakes from ``feed_min_magnitude`` up, wait for a second issuer.

    A feed is configured by the office and trusted (its ``approval``): by default its official
    report never waits (the network's own review is the first person) and its automatic one
    follows the rule; ``always`` holds every report of the feed, ``never`` none."""
    if source.startswith("feed:"):
        mode = rule.feeds.get(source.removeprefix("feed:"), "default")
        if mode != "default":
            return mode == "always"
        if getattr(incident.details, "report", None) == "official":
            return False
    if incident.severity in rule.severities:
        return True
    magnitude = getattr(incident.details, "magnitude", None)
    return (
        source.startswith("feed:")
        and rule.feed_min_magnitude is not None
        and magnitude is not None
        and magnitude >= rule.feed_min_magnitude
    )


def chain_needs_approval(rule: ApprovalConfig, rows: Iterable[IncidentRow]) -> bool:
    """Whether any message of a chain (the original, its updates) needs a second person."""
    return any(needs_approval(rule, _incident(row), row.source) for row in rows)


def _incident(row: IncidentRow) -> Incident:
    return parse_incident(dict(row.body))


def floor(incident: Incident, bands: SeverityBands) -> tuple[Incident, str | None]:
    """The incident with its severity raised to the least its facts allow, and why (None when
    the declared severity stands): an earthquake's magnitude band."""
    magnitude = getattr(incident.details, "magnitude", None)
    if incident.kind != Kind.earthquake.value or magnitude is None:
        return incident, None
    least = bands.of(round(magnitude, 1))
    if least.rank <= incident.severity.rank:
        return incident, None
    why = (
        f"severity raised from {incident.severity.value} to {least.value}: "
        f"M{magnitude:g} is {least.value} by the magnitude bands"
    )
    return incident.model_copy(update={"severity": least}), why


def may_approve(asker: Asker, held: IncidentRow, authors: Collection[str]) -> Authority:
    """A second person releases a held message: an approver (the ``approve`` role, or
    ``can_approve``) who wrote neither it nor what it changes (``authors``)."""
    issuer = asker.issuer
    if issuer is None or not issuer.approver:
        return Authority(False, f"issuer {asker.name} may not approve (the approve role)")
    if held.issuer == issuer.name:
        return Authority(
            False, "two-person rule: the issuer who raised an incident cannot approve it"
        )
    if issuer.name in authors:
        return Authority(
            False,
            f"two-person rule: issuer {issuer.name} wrote part of what {held.id} would release",
        )
    return Authority(True, f"approved by {issuer.name}, second to {', '.join(sorted(authors))}")
