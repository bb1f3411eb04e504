"""A second person rejects a held message with a reason: who may, and what is withdrawn."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pytest

from alertcast.errors import Conflict, DomainError, NotFound
from alertcast.plan import Asker
from alertcast.plan.reject import REJECTED
from alertcast.store.base import DeliveryRow, IncidentRow

from .world import PLANNER, by, chain, dlv, held_cancel, moment, quake, stored, update_row

WHY = "震级有误"
HELD_QUAKE = stored(quake(severity="extreme"), "awaiting_approval")
APPROVED = stored(quake(severity="extreme"), "active")
HELD_UPDATE = update_row("awaiting_approval", quake(severity="extreme"), issuer="clerk")
HELD_CANCEL = held_cancel(quake(severity="extreme"))
HELD_DLV = [dlv("lead", "pending"), dlv("board", "pending")]
UPDATE_DLV = [dlv("lead", "pending", of="inc_u1", delivery_id="dlv_u1_lead")]
SENT = [dlv("lead", "delivered"), dlv("board", "delivered")]


@dataclass(frozen=True)
class Case:
    desc: str
    root: IncidentRow | None
    asker: Asker
    named: IncidentRow | None = None
    follow_ups: Sequence[IncidentRow] = ()
    deliveries: Sequence[DeliveryRow] = ()
    withdrawn: Sequence[str] = ()
    state: tuple[str, str] | None = None  # the effect on a message's own state
    refused: str = ""
    raises: type[DomainError] | None = None


CASES = [
    Case(
        "a held incident is cancelled whole: its held deliveries withdrawn, nothing posted",
        HELD_QUAKE,
        by("chief"),
        deliveries=HELD_DLV,
        withdrawn=["dlv_lead", "dlv_board"],
        state=("inc_root", "cancelled"),
    ),
    Case(
        "a held update of a released incident is withdrawn alone",
        APPROVED,
        by("chief"),
        named=HELD_UPDATE,
        follow_ups=[HELD_UPDATE],
        deliveries=[*SENT, *UPDATE_DLV],
        withdrawn=["dlv_u1_lead"],
        state=("inc_u1", "cancelled"),
    ),
    Case(
        "a held cancellation is withdrawn alone: the incident stays active",
        APPROVED,
        by("chief"),
        named=HELD_CANCEL,
        follow_ups=[HELD_CANCEL],
        deliveries=SENT,
        state=("inc_c", "cancelled"),
    ),
    Case(
        "an active incident has nothing to reject",
        APPROVED,
        by("chief"),
        raises=Conflict,
        refused="incident inc_root is active, not awaiting approval",
    ),
    Case("an unknown incident", None, by("chief"), raises=NotFound, refused="no incident"),
    Case(
        "an update of a held incident is rejected with the incident",
        HELD_QUAKE,
        by("chief"),
        named=HELD_UPDATE,
        follow_ups=[HELD_UPDATE],
        raises=Conflict,
        refused="reject inc_root, which withdraws its held updates",
    ),
    Case(
        "the author cannot reject its own",
        HELD_QUAKE,
        by("city"),
        refused="two-person rule: the issuer who raised an incident cannot approve it",
    ),
    Case(
        "the original's author cannot reject a held update of its chain",
        APPROVED,
        by("city"),
        named=HELD_UPDATE,
        follow_ups=[HELD_UPDATE],
        refused="two-person rule: issuer city wrote part of what inc_u1 would release",
    ),
    Case(
        "an issuer without the approve role cannot reject",
        HELD_QUAKE,
        by("clerk"),
        refused="issuer clerk may not approve (the approve role)",
    ),
    Case(
        "an approver outside the region cannot reject",
        HELD_QUAKE,
        by("chengdu"),
        refused="issuer chengdu may only raise incidents in regions 510100",
    ),
    Case(
        "an approver outside the kind cannot reject",
        HELD_QUAKE,
        by("fire"),
        refused="issuer fire may not raise earthquake incidents",
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.desc for c in CASES])
def test_reject(case: Case) -> None:
    """Who may reject a held message, and exactly what the rejection withdraws."""
    read = chain(case.root, case.deliveries, named=case.named, follow_ups=case.follow_ups)
    if case.raises is not None:
        with pytest.raises(case.raises, match=case.refused):
            PLANNER.reject(read, WHY, case.asker, moment())
        return
    plan = PLANNER.reject(read, WHY, case.asker, moment())
    if case.refused:
        assert not plan.authority.allowed and case.refused in plan.authority.reason
        assert plan.write is None
        return
    assert plan.authority.allowed and plan.authority.reason.startswith("rejected by chief")
    write, held = plan.write, case.named or case.root
    assert write is not None and write.effects is not None and held is not None
    assert list(write.deliveries) == [] and write.release is None
    assert list(write.effects.withdraw) == list(case.withdrawn)
    assert write.effects.withdraw_reason == REJECTED
    assert write.effects.incident_state == case.state
    [audit] = write.audit
    assert (audit.action, audit.actor, audit.incident_id) == ("incident.reject", "chief", held.id)
    assert audit.detail["reason"] == WHY
    assert plan.answer["id"] == held.id and plan.answer["state"] == "cancelled"
    assert (plan.answer["rejected_by"], plan.answer["reason"]) == ("chief", WHY)


def test_a_held_incident_rejected_keeps_its_reason_on_the_cancellation() -> None:
    """Rejected whole, a held incident carries the reason as a cancellation does."""
    plan = PLANNER.reject(chain(HELD_QUAKE, HELD_DLV), WHY, by("chief"), moment())
    assert plan.write is not None and plan.write.incident is not None
    row = plan.write.incident
    assert (row.msg_type, row.state, row.reason, row.references) == (
        "cancel",
        "cancelled",
        WHY,
        "inc_root",
    )
    assert plan.answer["cancellation"] == row.id
