"""The lifecycle as the planners decide it: one row per message, incident state and asker.

Every planner is called directly on a stored chain built in :mod:`tests.plan.world`; nothing
is stored and nothing is sent. A row reads as a rule of the lifecycle; its description is the
test id. Deliveries are compared as :class:`~tests.plan.world.D` rows (``+lead.post``: a
delivery the plan creates; ``dlv_lead``: the stored original on ``lead``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import pytest

from alertcast.channels import channel_class
from alertcast.errors import Conflict, DomainError, Invalid, NotFound
from alertcast.models import DeliveryState, parse_incident
from alertcast.plan import Asker, Chain, Moment, Plan, Planner, Send, Skip, plan_send
from alertcast.store.base import (
    ActiveClaim,
    DeliveryRow,
    Effects,
    IdempotencyRecord,
    IncidentRow,
    Release,
    Requeue,
    Write,
)
from tests.plan.world import (
    CONFIG,
    FEED,
    FIRE,
    PLANNER,
    ROOT,
    SCHEDULE,
    STRICT,
    WEATHER,
    D,
    by,
    cancel_row,
    chain,
    created,
    dlv,
    effects,
    fire,
    first,
    held_cancel,
    message,
    moment,
    originals,
    quake,
    stored,
    update_row,
)

# == alert ==================================================================================

MODERATE = [D("lead"), D("member", "repost", "+lead.post", "+lead.post"), D("board"), D("quota")]
HELD = [d._replace(hold=True) for d in MODERATE]


@dataclass(frozen=True)
class AlertCase:
    desc: str
    body: dict[str, Any]
    asker: Asker
    reason: str
    state: str | None = None  # None: refused
    deliveries: Sequence[D] = ()


ALERTS = [
    AlertCase(
        "a moderate quake goes out at once; the cluster member reposts its lead's post",
        quake(),
        by("city"),
        "issuer city: earthquake in every region",
        "active",
        MODERATE,
    ),
    AlertCase(
        "an issuer without can_approve raises alerts like any other",
        quake(),
        by("clerk"),
        "issuer clerk: earthquake in every region",
        "active",
        MODERATE,
    ),
    AlertCase(
        "a severe quake also reaches the account that takes severe and above",
        quake(severity="severe"),
        by("city"),
        "earthquake in every region",
        "active",
        [*MODERATE, D("sirens")],
    ),
    AlertCase(
        "an extreme quake waits for approval: every delivery is stored held",
        quake(severity="extreme"),
        by("city"),
        "earthquake in every region",
        "awaiting_approval",
        [*HELD, D("sirens", hold=True)],
    ),
    AlertCase(
        "a feed's automatic quake from feed_min_magnitude up waits (M6.8 is severe at least)",
        quake(details={"magnitude": 6.8, "report": "automatic"}),
        FEED,
        "feed:cenc: bound by its configuration",
        "awaiting_approval",
        [*HELD, D("sirens", hold=True)],
    ),
    AlertCase(
        "a feed's quake below feed_min_magnitude goes out at once",
        quake(details={"magnitude": 5.9}),
        FEED,
        "feed:cenc: bound by its configuration",
        "active",
        MODERATE,
    ),
    AlertCase(
        "feed_min_magnitude binds feeds only: an issuer's M6.8 quake goes out, as severe",
        quake(details={"magnitude": 6.8}),
        by("city"),
        "earthquake in every region",
        "active",
        [*MODERATE, D("sirens")],
    ),
    AlertCase(
        "an exercise reaches only exercise accounts",
        quake(status="exercise"),
        by("city"),
        "earthquake in every region",
        "active",
        [D("drills")],
    ),
    AlertCase(
        "a schedule's test message reaches only exercise accounts",
        quake(status="test"),
        SCHEDULE,
        "schedule:drill: bound by its configuration",
        "active",
        [D("drills")],
    ),
    AlertCase(
        "a cluster member whose lead is not routed posts on its own",
        WEATHER,
        by("city"),
        "weather in every region",
        "active",
        [D("member"), D("board"), D("quota")],
    ),
    AlertCase(
        "the fire brigade raises a fire in its own region",
        FIRE,
        by("fire"),
        "issuer fire: fire in 510107",
        "active",
        MODERATE,
    ),
    AlertCase(
        "an issuer out of scope by kind is refused",
        quake(),
        by("fire"),
        "issuer fire may not raise earthquake incidents",
    ),
    AlertCase(
        "an issuer out of scope by region is refused",
        fire(area={"codes": ["513322"]}),
        by("fire"),
        "may only raise incidents in regions 510100; area codes ['513322'] are outside",
    ),
    AlertCase(
        "one area code outside the issuer's regions is enough to refuse",
        fire(area={"codes": ["510107", "513322"]}),
        by("fire"),
        "area codes ['513322'] are outside",
    ),
    AlertCase(
        "an issuer bound to regions cannot raise an incident without area codes",
        fire(area={"codes": []}),
        by("fire"),
        "area codes (none) are outside",
    ),
]


@pytest.mark.parametrize("case", ALERTS, ids=lambda c: c.desc)
def test_alert(case: AlertCase) -> None:
    """Who may raise an alert, whether it is held, and which deliveries it creates."""
    plan = PLANNER.alert(parse_incident(case.body), Chain(), case.asker, moment())
    assert plan.authority.allowed is (case.state is not None)
    assert case.reason in plan.authority.reason
    if case.state is None:
        assert plan.write is None and plan.answer == {}
        return
    assert plan.write is not None and plan.write.incident is not None
    row = plan.write.incident
    assert (row.msg_type, row.state, row.references) == ("alert", case.state, None)
    assert (row.issuer, row.source) == (case.asker.name, case.asker.source)
    assert created(plan) == list(case.deliveries)


def test_alert_answer_and_records() -> None:
    """The answer names every delivery; the key is recorded with it; held ones say why."""
    asker = by("city", key="key-1", body="sha-a")
    plan = PLANNER.alert(parse_incident(quake(severity="extreme")), Chain(), asker, moment())
    assert plan.write is not None and plan.write.incident is not None
    assert plan.answer["id"] == plan.write.incident.id == "inc_1"
    assert plan.answer["state"] == "awaiting_approval"
    assert plan.answer["status_url"] == "/v1/incidents/inc_1"
    assert [(d["account"], d["reason"]) for d in plan.answer["deliveries"]] == [
        (a, "awaiting approval") for a in ("lead", "member", "board", "quota", "sirens")
    ]
    assert plan.write.idempotency == IdempotencyRecord("city", "key-1", "sha-a", plan.answer, 1000)
    assert plan.events == (
        {
            "type": "incident",
            "id": "inc_1",
            "state": "awaiting_approval",
            "msg_type": "alert",
            "references": None,
        },
    )


def test_alert_without_key_records_none() -> None:
    """A request without an idempotency key leaves no record to replay."""
    plan = PLANNER.alert(parse_incident(quake()), Chain(), by("city"), moment())
    assert plan.write is not None and plan.write.idempotency is None


def _before(at: float) -> Moment:
    """``at``, with ids from a counter (see ``moment``)."""
    return Moment(at, moment().ids)


def test_alert_posts_lapse_with_the_incident() -> None:
    """An alert's deliveries expire when the incident does, if that comes first."""
    body = quake(expires_at="2022-09-05T18:00:00+08:00")
    plan = PLANNER.alert(parse_incident(body), Chain(), by("city"), _before(1662372000.0 - 600))
    assert plan.write is not None
    assert {d.expires_at for d in plan.write.deliveries} == {1662372000.0}


@pytest.mark.parametrize(
    ("body", "max_delay_s"),
    [
        (quake(), 1800.0),
        (quake(expires_at="2022-09-05T18:00:00+08:00"), 1800.0),
        (fire(), 3600.0),
    ],
    ids=["an earthquake without expiry", "an earthquake expiring later", "a fire"],
)
def test_alert_posts_lapse_at_their_kinds_max_delay(
    body: dict[str, Any], max_delay_s: float
) -> None:
    """An alert's posts lapse max_delay_s of their kind after they are queued, if that is first."""
    plan = PLANNER.alert(parse_incident(body), Chain(), by("city"), moment())
    assert plan.write is not None
    assert {d.expires_at for d in plan.write.deliveries} == {1000.0 + max_delay_s}


# == alert: a severity no lower than the facts ==============================================


def _raised(declared: str, least: str, magnitude: str) -> str:
    """The audit's note of a raised severity."""
    bands = f"M{magnitude} is {least} by the magnitude bands"
    return f"severity raised from {declared} to {least}: {bands}"


@dataclass(frozen=True)
class FloorCase:
    desc: str
    body: dict[str, Any]
    severity: str  # as stored (and so broadcast and judged for approval)
    note: str | None = None  # the audit's ``severity`` detail; None: the declaration stands


FLOORS = [
    FloorCase(
        "M7.0, the extreme band's edge: a moderate declaration is raised to extreme",
        quake(details={"magnitude": 7.0}),
        "extreme",
        _raised("moderate", "extreme", "7"),
    ),
    FloorCase(
        "M6.9, just below the extreme band: raised to severe, not extreme",
        quake(details={"magnitude": 6.9}),
        "severe",
        _raised("moderate", "severe", "6.9"),
    ),
    FloorCase(
        "M6.0, the severe band's edge: a minor declaration is raised to severe",
        quake(severity="minor", details={"magnitude": 6.0}),
        "severe",
        _raised("minor", "severe", "6"),
    ),
    FloorCase(
        "M5.9, just below the severe band: raised to moderate",
        quake(severity="minor", details={"magnitude": 5.9}),
        "moderate",
        _raised("minor", "moderate", "5.9"),
    ),
    FloorCase(
        "M5.0, the moderate band's edge: a minor declaration is raised to moderate",
        quake(severity="minor", details={"magnitude": 5.0}),
        "moderate",
        _raised("minor", "moderate", "5"),
    ),
    FloorCase(
        "M4.9, below every band: a minor declaration stands",
        quake(severity="minor", details={"magnitude": 4.9}),
        "minor",
    ),
    FloorCase(
        "below every band an unknown severity is raised to minor",
        quake(severity="unknown", details={"magnitude": 4.9}),
        "minor",
        _raised("unknown", "minor", "4.9"),
    ),
    FloorCase(
        "the floor never lowers: a severe M5.2 stays severe",
        quake(severity="severe"),
        "severe",
    ),
    FloorCase(
        "a declaration at the band stands with no note: extreme M7.5",
        quake(severity="extreme", details={"magnitude": 7.5}),
        "extreme",
    ),
    FloorCase(
        "a fire has no magnitude bands: its unknown severity stands",
        fire(severity="unknown"),
        "unknown",
    ),
    FloorCase(
        "weather has no magnitude bands: its minor severity stands",
        {**WEATHER, "severity": "minor"},
        "minor",
    ),
]


@pytest.mark.parametrize("case", FLOORS, ids=lambda c: c.desc)
def test_alert_severity_floor(case: FloorCase) -> None:
    """An earthquake's magnitude band sets its lowest severity; the audit trail says so; an
    alert floored into an approval severity waits for approval."""
    plan = PLANNER.alert(parse_incident(case.body), Chain(), by("clerk"), moment())
    assert plan.write is not None and plan.write.incident is not None
    row = plan.write.incident
    assert (row.severity, row.body["severity"]) == (case.severity, case.severity)
    (audit,) = plan.write.audit
    assert audit.detail.get("severity") == case.note
    assert (row.state == "awaiting_approval") is (case.severity == "extreme")


# == replays of every keyed request ==========================================================

PlanCall = Callable[[Chain, Asker], Plan]
CALLS: list[tuple[str, PlanCall, Chain]] = [
    (
        "alert",
        lambda c, a: PLANNER.alert(parse_incident(quake()), c, a, moment()),
        Chain(),
    ),
    (
        "update",
        lambda c, a: PLANNER.update(c, {"headline": "更正"}, a, moment()),
        chain(stored(), originals("delivered")),
    ),
    (
        "cancel",
        lambda c, a: PLANNER.cancel(c, "误报", a, moment()),
        chain(stored(), originals("delivered")),
    ),
]
FIRST_ANSWER = {"id": "inc_earlier", "state": "active"}


@pytest.mark.parametrize(("what", "call", "read"), CALLS, ids=[c[0] for c in CALLS])
def test_replay_answers_as_the_first_time(what: str, call: PlanCall, read: Chain) -> None:
    """The same key with the same body: the first answer again, and nothing to store."""
    replay = Chain(read.asked, read.named, read.root, (), read.deliveries, first(FIRST_ANSWER))
    plan = call(replay, by("city", key="key-1", body="sha-first"))
    assert plan.authority.allowed
    assert (plan.write, plan.answer) == (None, FIRST_ANSWER)


@pytest.mark.parametrize(("what", "call", "read"), CALLS, ids=[c[0] for c in CALLS])
def test_replay_with_another_body_conflicts(what: str, call: PlanCall, read: Chain) -> None:
    """The same key with another body is a conflict, not a second change."""
    replay = Chain(read.asked, read.named, read.root, (), read.deliveries, first(FIRST_ANSWER))
    with pytest.raises(Conflict, match="'key-1' was already used with a different body"):
        call(replay, by("city", key="key-1", body="sha-other"))


def test_replay_is_refused_to_an_issuer_out_of_scope() -> None:
    """Scope is decided before the replay: an out-of-scope issuer learns nothing of it."""
    replay = Chain(replay=first(FIRST_ANSWER))
    plan = PLANNER.alert(parse_incident(quake()), replay, by("fire", key="key-1"), moment())
    assert not plan.authority.allowed and plan.answer == {}


def test_replayed_cancel_of_a_cancelled_incident_answers_again() -> None:
    """A cancellation resent after it took effect gets its first answer, not a conflict."""
    read = chain(stored(state="cancelled"), originals("delivered"), replay=first(FIRST_ANSWER))
    plan = PLANNER.cancel(read, "误报", by("city", key="key-1"), moment())
    assert (plan.write, plan.answer) == (None, FIRST_ANSWER)


# == update: what follows each original ======================================================

NEWS = {"headline": "四川甘孜州泸定县发生5.2级地震（正式测定）"}
CALMER = {"severity": "moderate"}
WORSE = {"severity": "severe"}
SEVERE = quake(severity="severe")


@dataclass(frozen=True)
class FollowCase:
    desc: str
    account: str
    stored: Sequence[DeliveryRow]
    expect: Sequence[D]
    withdrawn: Sequence[str] = ()
    body: dict[str, Any] = field(default_factory=quake)
    patch: dict[str, Any] = field(default_factory=lambda: NEWS)


UPDATES = [
    FollowCase(
        "a delivered original is followed by a reply threaded to it",
        "lead",
        [dlv("lead", "delivered")],
        [D("lead", "reply", "dlv_lead", None, 5)],
    ),
    FollowCase(
        "an original being sent is followed by a reply that waits for it",
        "lead",
        [dlv("lead", "sending")],
        [D("lead", "reply", "dlv_lead", "dlv_lead", 5)],
    ),
    FollowCase(
        "a pending original is superseded: the update is posted instead",
        "lead",
        [dlv("lead", "pending")],
        [D("lead", "post", None, None, 5)],
        ["dlv_lead"],
    ),
    FollowCase(
        "a retrying original is superseded: the update is posted instead",
        "lead",
        [dlv("lead", "retrying")],
        [D("lead", "post", None, None, 5)],
        ["dlv_lead"],
    ),
    FollowCase(
        "a failed original is left alone: the update is posted on its own",
        "lead",
        [dlv("lead", "failed")],
        [D("lead", "post", None, None, 5)],
    ),
    FollowCase(
        "a dead original is left alone: the update is posted on its own",
        "lead",
        [dlv("lead", "dead")],
        [D("lead", "post", None, None, 5)],
    ),
    FollowCase(
        "an original superseded before is left alone: the update is posted on its own",
        "lead",
        [dlv("lead", "skipped", reason="superseded by an update")],
        [D("lead", "post", None, None, 5)],
    ),
    FollowCase(
        "an original that expired unsent is left alone: the update is posted on its own",
        "lead",
        [dlv("lead", "skipped", reason="expired")],
        [D("lead", "post", None, None, 5)],
    ),
    FollowCase(
        "the update follows the account's on_update (edit)",
        "board",
        [dlv("board", "delivered")],
        [D("board", "edit", "dlv_board", None, 5)],
    ),
    FollowCase(
        "a cluster member's delivered repost is followed on the member's own timeline",
        "member",
        [dlv("lead", "delivered"), dlv("member", "delivered", action="repost", target="dlv_lead")],
        [D("member", "reply", "dlv_member", None, 5)],
    ),
    FollowCase(
        "an account the update no longer matches still hears about its delivered original",
        "sirens",
        [dlv("sirens", "delivered")],
        [D("sirens", "repost", "dlv_sirens", None, 5)],
        body=SEVERE,
        patch=CALMER,
    ),
    FollowCase(
        "an account the update no longer matches gets the update of its pending original",
        "sirens",
        [dlv("sirens", "pending")],
        [D("sirens", "post", None, None, 5)],
        ["dlv_sirens"],
        body=SEVERE,
        patch=CALMER,
    ),
    FollowCase(
        "an account the update no longer matches and whose original failed hears nothing",
        "sirens",
        [dlv("sirens", "failed")],
        [],
        body=SEVERE,
        patch=CALMER,
    ),
    FollowCase(
        "an account the update newly matches gets it as a post",
        "sirens",
        [],
        [D("sirens", "post", None, None, 5)],
        patch=WORSE,
    ),
    FollowCase(
        "an account the incident never matched hears nothing",
        "spare",
        [],
        [],
    ),
    FollowCase(
        "a second update threads to the first update's post where the original never went out",
        "lead",
        [
            dlv("lead", "failed"),
            dlv("lead", "delivered", of="inc_u1", delivery_id="dlv_lead_u1", at=2.0),
        ],
        [D("lead", "reply", "dlv_lead_u1", None, 5)],
    ),
    FollowCase(
        "a second update supersedes the first update's unsent reply and threads to the original",
        "lead",
        [
            dlv("lead", "delivered"),
            dlv(
                "lead",
                "pending",
                of="inc_u1",
                delivery_id="dlv_lead_u1",
                action="reply",
                target="dlv_lead",
                at=2.0,
                priority=5,
            ),
        ],
        [D("lead", "reply", "dlv_lead", None, 5)],
        ["dlv_lead_u1"],
    ),
]


@pytest.mark.parametrize("case", UPDATES, ids=lambda c: c.desc)
def test_update_follows_each_original(case: FollowCase) -> None:
    """Per account, what an update does about the original's delivery there."""
    read = chain(stored(case.body), case.stored, follow_ups=[update_row()])
    plan = PLANNER.update(read, case.patch, by("city"), moment())
    assert created(plan, case.account) == list(case.expect)
    assert effects(plan).withdraw == tuple(case.withdrawn)


def test_update_of_a_delivered_alert() -> None:
    """The whole fan-out: every original answered, the threads' remote ids handed over."""
    plan = PLANNER.update(chain(stored(), originals("delivered")), NEWS, by("city"), moment())
    assert created(plan) == [
        D("lead", "reply", "dlv_lead", None, 5),
        D("member", "reply", "dlv_member", None, 5),
        D("board", "edit", "dlv_board", None, 5),
        D("quota", "reply", "dlv_quota", None, 5),
    ]
    assert plan.targets == {d.id: f"r-{d.id}" for d in originals("delivered")}
    assert effects(plan) == Effects((), "superseded by an update", None, ROOT)
    assert plan.answer["references"] == ROOT and plan.answer["superseded"] == []


def test_update_of_a_pending_alert() -> None:
    """Nothing went out yet: every original is superseded and nothing is threaded."""
    plan = PLANNER.update(chain(stored(), originals("pending")), NEWS, by("city"), moment())
    assert created(plan) == [D(a, priority=5) for a in ("lead", "member", "board", "quota")]
    assert plan.targets == {}
    ids = ("dlv_lead", "dlv_member", "dlv_board", "dlv_quota")
    assert effects(plan).withdraw == ids
    assert plan.answer["superseded"] == list(ids)


# == update: who asks, in which state ========================================================


@dataclass(frozen=True)
class UpdateCase:
    desc: str
    root: IncidentRow | None
    asker: Asker
    patch: dict[str, Any]
    state: str | None = None  # the update's state; None: refused
    reason: str = ""
    raises: type[DomainError] | None = None
    match: str = ""
    named: IncidentRow | None = None
    follow_ups: Sequence[IncidentRow] = ()


HELD_QUAKE = stored(quake(severity="extreme"), "awaiting_approval")
HELD_ORIGINALS = [*originals("pending", "awaiting approval"), dlv("sirens", "pending")]
APPROVED_EXTREME = stored(quake(severity="extreme"), "active")
FEED_QUAKE = stored(source="feed:cenc", issuer="feed:cenc")
FEED_EXTREME = stored(quake(severity="extreme"), source="feed:cenc", issuer="feed:cenc")
CITY_FIRE = stored(FIRE, issuer="fire")
BEIJING = {"name": "北京市东城区", "codes": ["110101"]}
BEIJING_FIRE = stored(fire(area=BEIJING))
MOVED_TO_BEIJING = update_row(body=fire(area=BEIJING))  # the city's update of CITY_FIRE
RAISED_TO_EXTREME = update_row(body=quake(severity="extreme"))  # released: the chain needs two
OUTSIDE_CHENGDU = "issuer fire may only raise incidents in regions 510100; area codes ['110101']"

UPDATE_AUTHORITY = [
    UpdateCase(
        "an update of an active incident is active at once",
        stored(),
        by("city"),
        NEWS,
        "active",
        "issuer city: earthquake in every region",
    ),
    UpdateCase(
        "an issuer without can_approve updates an active moderate incident",
        stored(),
        by("clerk"),
        NEWS,
        "active",
        "issuer clerk",
    ),
    UpdateCase(
        "the daemon's own job updates within its configuration",
        FEED_QUAKE,
        FEED,
        {"details": {"depth_km": 10}},
        "active",
        "feed:cenc: bound by its configuration",
    ),
    UpdateCase(
        "an update of an incident awaiting approval is held with it",
        HELD_QUAKE,
        by("city"),
        NEWS,
        "awaiting_approval",
        "issuer city",
    ),
    UpdateCase(
        "an update that raises the severity to extreme is held for approval",
        stored(),
        by("city"),
        {"severity": "extreme"},
        "awaiting_approval",
        "issuer city",
    ),
    UpdateCase(
        "a person's update of an approved extreme incident waits for a second person",
        APPROVED_EXTREME,
        by("city"),
        NEWS,
        "awaiting_approval",
        "issuer city",
    ),
    UpdateCase(
        "a feed's automatic update that raises the magnitude past feed_min_magnitude is held",
        FEED_QUAKE,
        FEED,
        {"details": {"magnitude": 6.5, "report": "automatic"}},
        "awaiting_approval",
        "feed:cenc",
    ),
    UpdateCase(
        "an update named by a follow-up's id is an update of the original",
        stored(),
        by("city"),
        NEWS,
        "active",
        "issuer city",
        named=update_row(),
    ),
    UpdateCase(
        "the fire brigade updates its own fire",
        CITY_FIRE,
        by("fire"),
        {"instruction": "请绕行"},
        "active",
        "issuer fire: fire in 510107",
    ),
    UpdateCase(
        "an issuer out of scope by kind may not update",
        stored(),
        by("fire"),
        NEWS,
        None,
        "issuer fire may not raise earthquake incidents",
    ),
    UpdateCase(
        "an update that moves the area out of the issuer's regions is refused",
        CITY_FIRE,
        by("fire"),
        {"area": {"codes": ["513322"]}},
        None,
        "area codes ['513322'] are outside",
    ),
    UpdateCase(
        "scope before and after: the fire brigade moves its fire within Chengdu",
        CITY_FIRE,
        by("fire"),
        {"area": {"codes": ["510104"]}},
        "active",
        "issuer fire: fire in 510104",
    ),
    UpdateCase(
        "in scope before but not after: the brigade cannot move its fire to Beijing",
        CITY_FIRE,
        by("fire"),
        {"area": BEIJING},
        None,
        f"the incident as updated: {OUTSIDE_CHENGDU}",
    ),
    UpdateCase(
        "in scope after but not before: the brigade cannot move a Beijing fire into Chengdu",
        BEIJING_FIRE,
        by("fire"),
        {"area": {"name": "成都市武侯区", "codes": ["510107"]}},
        None,
        f"the incident as it stands: {OUTSIDE_CHENGDU}",
    ),
    UpdateCase(
        "in scope neither before nor after: refused as the incident stands",
        BEIJING_FIRE,
        by("fire"),
        {"instruction": "请绕行"},
        None,
        f"the incident as it stands: {OUTSIDE_CHENGDU}",
    ),
    UpdateCase(
        "the chain as it stands is every message: once moved to Beijing by the city, the "
        "brigade cannot update its fire, not even back into Chengdu",
        CITY_FIRE,
        by("fire"),
        {"area": {"codes": ["510104"]}},
        None,
        f"the incident as it stands (inc_u1): {OUTSIDE_CHENGDU}",
        follow_ups=[MOVED_TO_BEIJING],
    ),
    UpdateCase(
        "a feed's update of its approved chain goes at once (the two-person rule binds people)",
        FEED_EXTREME,
        FEED,
        NEWS,
        "active",
        "feed:cenc: bound by its configuration",
    ),
    UpdateCase(
        "a person's update of a feed's approved chain waits for a second person",
        FEED_EXTREME,
        by("clerk"),
        NEWS,
        "awaiting_approval",
        "issuer clerk",
    ),
    UpdateCase(
        "an approver's own update of an approved chain waits for a second person too",
        APPROVED_EXTREME,
        by("chief"),
        CALMER,
        "awaiting_approval",
        "issuer chief",
    ),
    UpdateCase(
        "a chain raised to approval by an earlier update binds every later one",
        stored(),
        by("clerk"),
        NEWS,
        "awaiting_approval",
        "issuer clerk",
        follow_ups=[RAISED_TO_EXTREME],
    ),
    UpdateCase(
        "an update whose magnitude reaches the extreme band raises the chain to approval",
        stored(),
        by("city"),
        {"details": {"magnitude": 7.2}},
        "awaiting_approval",
        "issuer city",
    ),
    UpdateCase(
        "a cancelled incident cannot be updated",
        stored(state="cancelled"),
        by("city"),
        NEWS,
        raises=Conflict,
        match="incident inc_root is cancelled; raise a new one",
    ),
    UpdateCase(
        "an incident that does not exist cannot be updated",
        None,
        by("city"),
        NEWS,
        raises=NotFound,
        match="no incident inc_missing",
    ),
    UpdateCase(
        "an update cannot change the kind",
        stored(),
        by("city"),
        {"kind": "fire"},
        raises=Invalid,
        match="an update cannot change kind; cancel and raise anew",
    ),
    UpdateCase(
        "an update cannot turn an exercise into an actual alert",
        stored(quake(status="exercise")),
        by("city"),
        {"status": "actual"},
        raises=Invalid,
        match="an update cannot change status",
    ),
    UpdateCase(
        "an update that makes the incident invalid is refused with the field",
        stored(),
        by("city"),
        {"details": {"magnitude": 11}},
        raises=Invalid,
        match="details.magnitude",
    ),
]


def _stored_with(root: IncidentRow | None) -> list[DeliveryRow]:
    """The deliveries an incident in that state has: held ones, or delivered ones."""
    if root is None:
        return []
    return HELD_ORIGINALS if root.state == "awaiting_approval" else originals("delivered")


@pytest.mark.parametrize("case", UPDATE_AUTHORITY, ids=lambda c: c.desc)
def test_update(case: UpdateCase) -> None:
    """Who may update, and whether the update is held for approval."""
    read = chain(case.root, _stored_with(case.root), named=case.named, follow_ups=case.follow_ups)
    if case.raises is not None:
        with pytest.raises(case.raises, match=case.match):
            PLANNER.update(read, case.patch, case.asker, moment())
        return
    plan = PLANNER.update(read, case.patch, case.asker, moment())
    assert plan.authority.allowed is (case.state is not None)
    assert case.reason in plan.authority.reason
    if case.state is None:
        assert plan.write is None
        return
    assert plan.write is not None and plan.write.incident is not None
    row = plan.write.incident
    assert (row.msg_type, row.state, row.references) == ("update", case.state, ROOT)
    held = case.state == "awaiting_approval"
    assert {d.hold for d in plan.write.deliveries} == {held}
    assert effects(plan).live == ROOT


def test_held_update_supersedes_the_held_originals() -> None:
    """An update of a held incident replaces its held originals with held posts."""
    plan = PLANNER.update(chain(HELD_QUAKE, HELD_ORIGINALS), NEWS, by("city"), moment())
    assert created(plan) == [
        *(D(a, priority=5, hold=True) for a in ("lead", "member", "board", "quota")),
        D("sirens", priority=5, hold=True),
    ]
    assert effects(plan).withdraw == tuple(d.id for d in HELD_ORIGINALS)


def test_held_update_of_a_released_chain_withdraws_nothing() -> None:
    """One person cannot stop an approved alert: a held update of a released chain leaves
    what has not gone out to go out; it supersedes nothing until it is approved."""
    unsent = [*originals("pending"), dlv("sirens", "retrying")]
    plan = PLANNER.update(chain(APPROVED_EXTREME, unsent), NEWS, by("clerk"), moment())
    assert plan.write is not None and plan.write.incident is not None
    assert plan.write.incident.state == "awaiting_approval"
    assert effects(plan).withdraw == ()
    assert plan.answer["superseded"] == []


@dataclass(frozen=True)
class UpdateFloorCase:
    desc: str
    patch: dict[str, Any]
    severity: str  # the update's, as stored
    state: str
    note: str | None = None  # the audit's ``severity`` detail


UPDATE_FLOORS = [
    UpdateFloorCase(
        "a new magnitude in the severe band raises a moderate incident to severe",
        {"details": {"magnitude": 6.1}},
        "severe",
        "active",
        _raised("moderate", "severe", "6.1"),
    ),
    UpdateFloorCase(
        "a new magnitude in the extreme band raises it to extreme, held for approval",
        {"details": {"magnitude": 7.1}},
        "extreme",
        "awaiting_approval",
        _raised("moderate", "extreme", "7.1"),
    ),
    UpdateFloorCase(
        "a severity declared below the new facts is raised to them",
        {"severity": "minor", "details": {"magnitude": 6.1}},
        "severe",
        "active",
        _raised("minor", "severe", "6.1"),
    ),
    UpdateFloorCase(
        "a lower magnitude does not lower the declared severity",
        {"details": {"magnitude": 4.0}},
        "moderate",
        "active",
    ),
]


@pytest.mark.parametrize("case", UPDATE_FLOORS, ids=lambda c: c.desc)
def test_update_severity_floor(case: UpdateFloorCase) -> None:
    """An update is floored by its facts like an alert, and the audit trail says so."""
    plan = PLANNER.update(chain(stored(), originals("delivered")), case.patch, by("city"), moment())
    assert plan.write is not None and plan.write.incident is not None
    row = plan.write.incident
    assert (row.severity, row.body["severity"], row.state) == (
        case.severity,
        case.severity,
        case.state,
    )
    (audit,) = plan.write.audit
    assert audit.detail.get("severity") == case.note


# == cancel: what follows each original ======================================================

CANCELS = [
    FollowCase(
        "a delivered original is answered by a cancellation threaded to it",
        "lead",
        [dlv("lead", "delivered")],
        [D("lead", "reply", "dlv_lead", None, 10)],
    ),
    FollowCase(
        "an original being sent is answered by a cancellation that waits for it",
        "lead",
        [dlv("lead", "sending")],
        [D("lead", "reply", "dlv_lead", "dlv_lead", 10)],
    ),
    FollowCase(
        "a pending original is withdrawn and nothing is posted",
        "lead",
        [dlv("lead", "pending")],
        [],
        ["dlv_lead"],
    ),
    FollowCase(
        "a retrying original is withdrawn and nothing is posted",
        "lead",
        [dlv("lead", "retrying")],
        [],
        ["dlv_lead"],
    ),
    FollowCase(
        "a failed original needs no cancellation",
        "lead",
        [dlv("lead", "failed")],
        [],
    ),
    FollowCase(
        "a dead original needs no cancellation",
        "lead",
        [dlv("lead", "dead")],
        [],
    ),
    FollowCase(
        "a superseded original needs no cancellation",
        "lead",
        [dlv("lead", "skipped", reason="superseded by an update")],
        [],
    ),
    FollowCase(
        "reply_and_delete: a cancellation reply, then the original deleted after it",
        "board",
        [dlv("board", "delivered")],
        [
            D("board", "reply", "dlv_board", None, 10),
            D("board", "delete", "dlv_board", "+board.reply", 10),
        ],
    ),
    FollowCase(
        "reply_and_delete of an original being sent: the reply waits for it, the delete after",
        "board",
        [dlv("board", "sending")],
        [
            D("board", "reply", "dlv_board", "dlv_board", 10),
            D("board", "delete", "dlv_board", "+board.reply", 10),
        ],
    ),
    FollowCase(
        "on_cancel delete: the cancellation, then the original deleted once it is delivered "
        "(a deletion alone would make the alarm vanish uncorrected)",
        "sirens",
        [dlv("sirens", "delivered")],
        [
            D("sirens", "reply", "dlv_sirens", None, 10),
            D("sirens", "delete", "dlv_sirens", "+sirens.reply", 10),
        ],
    ),
    FollowCase(
        "a cluster member's delivered repost is cancelled on the member's own timeline",
        "member",
        [dlv("lead", "delivered"), dlv("member", "delivered", action="repost", target="dlv_lead")],
        [D("member", "reply", "dlv_member", None, 10)],
    ),
    FollowCase(
        "the cancellation threads to the update's post where the original never went out",
        "lead",
        [
            dlv("lead", "dead"),
            dlv("lead", "delivered", of="inc_u1", delivery_id="dlv_lead_u1", at=2.0),
        ],
        [D("lead", "reply", "dlv_lead_u1", None, 10)],
    ),
    FollowCase(
        "an update's unsent reply is withdrawn; the cancellation threads to the original",
        "lead",
        [
            dlv("lead", "delivered"),
            dlv(
                "lead",
                "retrying",
                of="inc_u1",
                delivery_id="dlv_lead_u1",
                action="reply",
                target="dlv_lead",
                at=2.0,
            ),
        ],
        [D("lead", "reply", "dlv_lead", None, 10)],
        ["dlv_lead_u1"],
    ),
    FollowCase(
        "an account no longer configured gets no cancellation; its unsent ones are withdrawn",
        "gone",
        [dlv("gone", "delivered"), dlv("gone", "pending", delivery_id="dlv_gone_2", at=2.0)],
        [],
        ["dlv_gone_2"],
    ),
]


@pytest.mark.parametrize("case", CANCELS, ids=lambda c: c.desc)
def test_cancel_follows_each_original(case: FollowCase) -> None:
    """Per account, what a cancellation does about the original's delivery there."""
    read = chain(stored(case.body), case.stored, follow_ups=[update_row()])
    plan = PLANNER.cancel(read, "误报", by("city"), moment())
    assert created(plan, case.account) == list(case.expect)
    assert effects(plan).withdraw == tuple(case.withdrawn)


def test_cancel_of_a_delivered_alert() -> None:
    """The whole fan-out: one cancellation per public post, the incident marked cancelled."""
    plan = PLANNER.cancel(chain(stored(), originals("delivered")), "误报", by("city"), moment())
    assert created(plan) == [
        D("lead", "reply", "dlv_lead", None, 10),
        D("member", "reply", "dlv_member", None, 10),
        D("board", "reply", "dlv_board", None, 10),
        D("board", "delete", "dlv_board", "+board.reply", 10),
        D("quota", "reply", "dlv_quota", None, 10),
    ]
    assert effects(plan) == Effects(
        (), "withdrawn: the incident was cancelled", (ROOT, "cancelled"), None
    )
    assert plan.targets == {d.id: f"r-{d.id}" for d in originals("delivered")}
    assert plan.answer["references"] == ROOT and plan.answer["withdrawn"] == []


# == cancel: who asks, in which state ========================================================


@dataclass(frozen=True)
class CancelCase:
    desc: str
    root: IncidentRow | None
    asker: Asker
    allowed: bool = True
    reason: str = ""
    raises: type[DomainError] | None = None
    match: str = ""
    named: IncidentRow | None = None
    state: str = "cancelled"  # the cancellation's: cancelled at once, or awaiting_approval
    follow_ups: Sequence[IncidentRow] = ()
    planner: Planner = PLANNER


WAITS = "the cancellation waits for a second approver"


CANCEL_AUTHORITY = [
    CancelCase("the issuer cancels its incident", stored(), by("city"), reason="issuer city"),
    CancelCase(
        "an issuer without can_approve cancels an active incident in its scope",
        stored(),
        by("clerk"),
        reason="issuer clerk",
    ),
    CancelCase(
        "the author withdraws its own incident while it awaits approval",
        HELD_QUAKE,
        by("city"),
        reason="issuer city",
    ),
    CancelCase(
        "the daemon's own job cancels within its configuration",
        FEED_QUAKE,
        FEED,
        reason="feed:cenc: bound by its configuration",
    ),
    CancelCase(
        "the fire brigade cancels its own fire",
        CITY_FIRE,
        by("fire"),
        reason="issuer fire: fire in 510107",
    ),
    CancelCase(
        "a cancellation named by a follow-up's id cancels the original",
        stored(),
        by("city"),
        reason="issuer city",
        named=update_row(),
    ),
    CancelCase(
        "an issuer out of scope by kind may not cancel",
        stored(),
        by("fire"),
        False,
        "issuer fire may not raise earthquake incidents",
    ),
    CancelCase(
        "an issuer out of scope by region may not cancel",
        stored(fire(area={"codes": ["513322"]})),
        by("fire"),
        False,
        "area codes ['513322'] are outside",
    ),
    CancelCase(
        "a non-approver's cancellation of an approved extreme chain waits for a second approver",
        APPROVED_EXTREME,
        by("clerk"),
        reason=WAITS,
        state="awaiting_approval",
    ),
    CancelCase(
        "a submit-only issuer's cancellation of an approved chain waits",
        APPROVED_EXTREME,
        by("desk"),
        reason=WAITS,
        state="awaiting_approval",
    ),
    CancelCase(
        "an approver's own cancellation of an approved chain goes at once (speed of correction)",
        APPROVED_EXTREME,
        by("chief"),
        reason="issuer chief",
    ),
    CancelCase(
        "with approver_cancels_at_once = false an approver's cancellation waits too",
        APPROVED_EXTREME,
        by("chief"),
        reason=WAITS,
        state="awaiting_approval",
        planner=STRICT,
    ),
    CancelCase(
        "with approver_cancels_at_once = false a chain that never needed approval is "
        "still cancelled at once",
        stored(),
        by("clerk"),
        reason="issuer clerk",
        planner=STRICT,
    ),
    CancelCase(
        "a chain raised to approval by an update binds its cancellation",
        stored(),
        by("clerk"),
        reason=WAITS,
        state="awaiting_approval",
        follow_ups=[RAISED_TO_EXTREME],
    ),
    CancelCase(
        "anyone in scope withdraws a held incident at once: nothing of it went out",
        HELD_QUAKE,
        by("clerk"),
        reason="issuer clerk",
    ),
    CancelCase(
        "a feed's cancellation of its approved chain goes at once (the daemon's own job)",
        FEED_EXTREME,
        FEED,
        reason="feed:cenc: bound by its configuration",
    ),
    CancelCase(
        "the chain as it stands is every message: once moved to Beijing by the city, the "
        "brigade cannot cancel its fire",
        CITY_FIRE,
        by("fire"),
        False,
        f"the incident as it stands (inc_u1): {OUTSIDE_CHENGDU}",
        follow_ups=[MOVED_TO_BEIJING],
    ),
    CancelCase(
        "an incident cannot be cancelled twice",
        stored(state="cancelled"),
        by("city"),
        raises=Conflict,
        match="incident inc_root is already cancelled",
    ),
    CancelCase(
        "an incident that does not exist cannot be cancelled",
        None,
        by("city"),
        raises=NotFound,
        match="no incident inc_missing",
    ),
]


@pytest.mark.parametrize("case", CANCEL_AUTHORITY, ids=lambda c: c.desc)
def test_cancel(case: CancelCase) -> None:
    """Who may cancel, and the cancellation's own row."""
    read = chain(case.root, _stored_with(case.root), named=case.named, follow_ups=case.follow_ups)
    if case.raises is not None:
        with pytest.raises(case.raises, match=case.match):
            case.planner.cancel(read, "误报", case.asker, moment())
        return
    plan = case.planner.cancel(read, "误报", case.asker, moment())
    assert plan.authority.allowed is case.allowed
    assert case.reason in plan.authority.reason
    if not case.allowed:
        assert plan.write is None
        return
    assert plan.write is not None and plan.write.incident is not None
    row = plan.write.incident
    assert (row.msg_type, row.state, row.references, row.reason) == (
        "cancel",
        case.state,
        ROOT,
        "误报",
    )
    if case.state == "cancelled":
        assert effects(plan).incident_state == (ROOT, "cancelled")
        return
    assert (plan.write.deliveries, plan.write.effects) == ((), None)  # nothing changes yet
    assert (plan.answer["deliveries"], plan.answer["withdrawn"]) == ([], [])


def test_cancel_of_a_held_incident_withdraws_everything() -> None:
    """Nothing of a held incident went out: all is withdrawn and nothing is posted."""
    plan = PLANNER.cancel(chain(HELD_QUAKE, HELD_ORIGINALS), "误报", by("city"), moment())
    assert created(plan) == []
    assert effects(plan).withdraw == tuple(d.id for d in HELD_ORIGINALS)
    assert plan.answer["withdrawn"] == [d.id for d in HELD_ORIGINALS]


# == approve =================================================================================


@dataclass(frozen=True)
class ApproveCase:
    desc: str
    held: IncidentRow | None
    asker: Asker
    allowed: bool = True
    reason: str = ""
    raises: type[DomainError] | None = None
    match: str = ""
    root: IncidentRow | None = None  # the held message's original, when not itself
    follow_ups: Sequence[IncidentRow] = ()  # the original's, as stored


FEED_HELD = stored(quake(details={"magnitude": 6.8}), "awaiting_approval", issuer="feed:cenc")
HELD_BY_CLERK = update_row("awaiting_approval", quake(severity="extreme"), issuer="clerk")
HELD_BY_CHIEF = update_row("awaiting_approval", quake(severity="extreme"), issuer="chief")
HELD_CHENGDU_FIRE = stored(fire(severity="extreme"), "awaiting_approval")
HELD_TO_BEIJING = update_row("awaiting_approval", fire(severity="extreme", area=BEIJING))
CANCELLED_EXTREME = stored(quake(severity="extreme"), "cancelled")
HELD_CANCEL = held_cancel(quake(severity="extreme"))
WROTE_PART = "two-person rule: issuer {} wrote part of what {} would release"

APPROVALS = [
    ApproveCase(
        "a second issuer with can_approve releases a held incident",
        HELD_QUAKE,
        by("chief"),
        reason="approved by chief, second to city",
    ),
    ApproveCase(
        "an issuer with can_approve releases a feed's held quake",
        FEED_HELD,
        by("city"),
        reason="approved by city, second to feed:cenc",
    ),
    ApproveCase(
        "two-person rule: the author cannot approve its own incident",
        HELD_QUAKE,
        by("city"),
        False,
        "two-person rule: the issuer who raised an incident cannot approve it",
    ),
    ApproveCase(
        "an issuer without can_approve cannot approve",
        HELD_QUAKE,
        by("clerk"),
        False,
        "issuer clerk may not approve (the approve role)",
    ),
    ApproveCase(
        "the daemon's own jobs cannot approve",
        FEED_HELD,
        FEED,
        False,
        "issuer feed:cenc may not approve (the approve role)",
    ),
    ApproveCase(
        "an approver out of scope by kind cannot approve",
        HELD_QUAKE,
        by("fire"),
        False,
        "issuer fire may not raise earthquake incidents",
    ),
    ApproveCase(
        "an approver out of scope by region cannot approve",
        HELD_QUAKE,
        by("chengdu"),
        False,
        "issuer chengdu may only raise incidents in regions 510100",
    ),
    ApproveCase(
        "authority is decided first: the author is refused even when nothing is held",
        stored(),
        by("city"),
        False,
        "two-person rule",
    ),
    ApproveCase(
        "an active incident has nothing to approve",
        stored(),
        by("chief"),
        raises=Conflict,
        match="incident inc_root is active, not awaiting approval",
    ),
    ApproveCase(
        "a cancelled incident has nothing to approve",
        stored(state="cancelled"),
        by("chief"),
        raises=Conflict,
        match="incident inc_root is cancelled, not awaiting approval",
    ),
    ApproveCase(
        "an incident that does not exist cannot be approved",
        None,
        by("chief"),
        raises=NotFound,
        match="no incident inc_missing",
    ),
    # -- approval binds the chain: updates
    ApproveCase(
        "an update of an incident awaiting approval cannot be approved alone: approve the "
        "incident, which releases it",
        HELD_BY_CLERK,
        by("chief"),
        raises=Conflict,
        match="incident inc_root awaits approval itself: approve inc_root",
        root=HELD_QUAKE,
        follow_ups=[HELD_BY_CLERK],
    ),
    ApproveCase(
        "a held update of an approved chain is released by an approver who wrote neither it "
        "nor the original",
        HELD_BY_CLERK,
        by("chief"),
        reason="approved by chief, second to city, clerk",
        root=APPROVED_EXTREME,
        follow_ups=[HELD_BY_CLERK],
    ),
    ApproveCase(
        "the original's author cannot release a held update of its chain",
        HELD_BY_CLERK,
        by("city"),
        False,
        WROTE_PART.format("city", "inc_u1"),
        root=APPROVED_EXTREME,
        follow_ups=[HELD_BY_CLERK],
    ),
    ApproveCase(
        "the update's author cannot release it, though an approver",
        HELD_BY_CHIEF,
        by("chief"),
        False,
        "two-person rule: the issuer who raised an incident cannot approve it",
        root=APPROVED_EXTREME,
        follow_ups=[HELD_BY_CHIEF],
    ),
    ApproveCase(
        "a non-approver cannot release a held update",
        HELD_BY_CHIEF,
        by("desk"),
        False,
        "issuer desk may not approve (the approve role)",
        root=APPROVED_EXTREME,
        follow_ups=[HELD_BY_CHIEF],
    ),
    ApproveCase(
        "a held update of a chain cancelled meanwhile has nothing left to release",
        HELD_BY_CLERK,
        by("chief"),
        raises=Conflict,
        match="incident inc_root is cancelled",
        root=CANCELLED_EXTREME,
        follow_ups=[HELD_BY_CLERK],
    ),
    ApproveCase(
        "approving an incident releases its held updates: a second person to every author",
        HELD_QUAKE,
        by("chief"),
        reason="approved by chief, second to city, clerk",
        follow_ups=[HELD_BY_CLERK],
    ),
    ApproveCase(
        "the author of a held update cannot approve the incident it would be released with",
        HELD_QUAKE,
        by("chief"),
        False,
        WROTE_PART.format("chief", "inc_root"),
        follow_ups=[HELD_BY_CHIEF],
    ),
    ApproveCase(
        "a Chengdu approver releases a held Chengdu fire",
        HELD_CHENGDU_FIRE,
        by("chengdu"),
        reason="approved by chengdu, second to city",
    ),
    ApproveCase(
        "approving an incident releases its held updates: the approver must be in scope of "
        "each (one moved it to Beijing)",
        HELD_CHENGDU_FIRE,
        by("chengdu"),
        False,
        "issuer chengdu may only raise incidents in regions 510100; area codes ['110101']",
        follow_ups=[HELD_TO_BEIJING],
    ),
    ApproveCase(
        "an approver out of scope of a held update cannot release it",
        HELD_TO_BEIJING,
        by("chengdu"),
        False,
        "issuer chengdu may only raise incidents in regions 510100; area codes ['110101']",
        root=stored(fire(severity="extreme")),
        follow_ups=[HELD_TO_BEIJING],
    ),
    # -- approval binds the chain: cancellations
    ApproveCase(
        "a held cancellation cannot be approved by its author",
        held_cancel(issuer="chief"),
        by("chief"),
        False,
        "two-person rule: the issuer who raised an incident cannot approve it",
        root=APPROVED_EXTREME,
    ),
    ApproveCase(
        "a held cancellation cannot be approved by the author of the incident it cancels",
        HELD_CANCEL,
        by("city"),
        False,
        WROTE_PART.format("city", "inc_c"),
        root=APPROVED_EXTREME,
    ),
    ApproveCase(
        "a held cancellation cannot be approved by a non-approver",
        HELD_CANCEL,
        by("desk"),
        False,
        "issuer desk may not approve (the approve role)",
        root=APPROVED_EXTREME,
    ),
    ApproveCase(
        "a held cancellation approved twice: the second finds it cancelled",
        held_cancel(quake(severity="extreme"), state="cancelled"),
        by("chief"),
        raises=Conflict,
        match="incident inc_c is cancelled, not awaiting approval",
        root=CANCELLED_EXTREME,
    ),
    ApproveCase(
        "a held cancellation of an incident someone else cancelled meanwhile is refused",
        HELD_CANCEL,
        by("chief"),
        raises=Conflict,
        match="incident inc_root is already cancelled",
        root=CANCELLED_EXTREME,
    ),
]


@pytest.mark.parametrize("case", APPROVALS, ids=lambda c: c.desc)
def test_approve(case: ApproveCase) -> None:
    """The two-person rule: who may release a held message of a chain."""
    read = chain(case.root or case.held, named=case.held, follow_ups=case.follow_ups)
    if case.raises is not None:
        with pytest.raises(case.raises, match=case.match):
            PLANNER.approve(read, case.asker, moment())
        return
    plan = PLANNER.approve(read, case.asker, moment())
    assert plan.authority.allowed is case.allowed
    assert case.reason in plan.authority.reason
    if not case.allowed:
        assert plan.write is None
        return
    assert plan.write is not None and case.held is not None
    held = case.held.id
    assert plan.write.release is not None and plan.write.release.ids[0] == held
    assert (plan.write.incident, plan.write.deliveries) == (None, ())
    assert plan.answer == {"id": held, "state": "active", "approved_by": case.asker.name}
    assert plan.events == ({"type": "incident", "id": held, "state": "active"},)


def test_approving_a_held_cancellation_cancels_the_chain_as_it_stands() -> None:
    """Released, a held cancellation is planned anew: one cancellation per public original,
    what has not gone out withdrawn, the cancellation and the incident marked cancelled."""
    have = [*originals("delivered"), dlv("sirens", "pending")]
    read = chain(APPROVED_EXTREME, have, named=HELD_CANCEL, follow_ups=[HELD_CANCEL])
    plan = PLANNER.approve(read, by("chief"), moment())
    assert plan.authority.allowed
    assert "approved by chief, second to city, clerk" in plan.authority.reason
    assert plan.write is not None
    assert (plan.write.incident, plan.write.release, plan.write.attach_to) == (None, None, "inc_c")
    assert created(plan) == [
        D("lead", "reply", "dlv_lead", None, 10),
        D("member", "reply", "dlv_member", None, 10),
        D("board", "reply", "dlv_board", None, 10),
        D("board", "delete", "dlv_board", "+board.reply", 10),
        D("quota", "reply", "dlv_quota", None, 10),
    ]
    assert effects(plan) == Effects(
        ("dlv_sirens",),
        "withdrawn: the incident was cancelled",
        (ROOT, "cancelled"),
        released="inc_c",
    )
    assert plan.answer["state"] == "cancelled" and plan.answer["withdrawn"] == ["dlv_sirens"]
    assert plan.events == ({"type": "incident", "id": "inc_c", "state": "cancelled"},)
    assert plan.targets == {d.id: f"r-{d.id}" for d in originals("delivered")}


def test_approving_a_held_update_supersedes_what_has_not_gone_out() -> None:
    """The held update's supersession, deferred to its release: the chain's released
    messages' unsent deliveries are withdrawn then, the incident still live."""
    own = dlv("lead", "pending", of="inc_u1", delivery_id="dlv_lead_u1", at=2.0, priority=5)
    have = [*originals("pending"), dlv("sirens", "delivered"), own]
    read = chain(APPROVED_EXTREME, have, named=HELD_BY_CLERK, follow_ups=[HELD_BY_CLERK])
    plan = PLANNER.approve(read, by("chief"), moment())
    assert plan.write is not None and plan.write.release == Release(("inc_u1",))
    ids = ("dlv_lead", "dlv_member", "dlv_board", "dlv_quota")
    assert effects(plan) == Effects(ids, "superseded by an update", None, ROOT)


# == retry ===================================================================================


@dataclass(frozen=True)
class RetryCase:
    desc: str
    delivery: DeliveryRow | None
    incident_state: str = "active"  # the original's
    raises: type[DomainError] | None = None
    match: str = ""
    named: IncidentRow | None = None  # the delivery's message, when not the original


RETRIES = [
    RetryCase("a failed delivery is re-driven", dlv("lead", "failed")),
    RetryCase("a dead delivery is re-driven", dlv("lead", "dead")),
    RetryCase(
        "a delivery that expired unsent is re-driven",
        dlv("lead", "skipped", reason="expired"),
    ),
    RetryCase(
        "a cluster member's skipped repost is re-driven",
        dlv("member", "skipped", action="repost", target="dlv_lead", reason="lead failed"),
    ),
    *(
        RetryCase(
            f"a {state} delivery is not settled and cannot be retried",
            dlv("lead", state),
            raises=Conflict,
            match=f"delivery dlv_lead is {state}; only failed, dead or skipped",
        )
        for state in ("pending", "retrying", "sending")
    ),
    RetryCase(
        "a delivered delivery cannot be sent again",
        dlv("lead", "delivered"),
        raises=Conflict,
        match="delivery dlv_lead is delivered; only failed, dead or skipped",
    ),
    RetryCase(
        "a delivery withdrawn by a cancellation must not go out",
        dlv("lead", "skipped", reason="withdrawn: the incident was cancelled"),
        raises=Conflict,
        match="was withdrawn: the incident was cancelled; it must not go out",
    ),
    RetryCase(
        "a delivery superseded by an update must not go out",
        dlv("lead", "skipped", reason="superseded by an update"),
        raises=Conflict,
        match="was superseded by an update; it must not go out",
    ),
    RetryCase(
        "a delivery of a held incident waits for approval",
        dlv("lead", "failed"),
        "awaiting_approval",
        Conflict,
        "incident inc_root is awaiting_approval; its deliveries wait",
    ),
    RetryCase(
        "a failed original of a cancelled incident must not go out",
        dlv("lead", "failed"),
        "cancelled",
        Conflict,
        "incident inc_root is cancelled; its deliveries wait",
    ),
    RetryCase(
        "a failed update of a cancelled incident must not go out",
        dlv("lead", "failed", of="inc_u1"),
        "cancelled",
        Conflict,
        "incident inc_root is cancelled; its deliveries wait",
        update_row(),
    ),
    RetryCase(
        "a failed update awaiting approval waits for it, though its original is active",
        dlv("lead", "failed", of="inc_u1"),
        "active",
        Conflict,
        "incident inc_u1 is awaiting_approval; its deliveries wait",
        update_row("awaiting_approval"),
    ),
    RetryCase(
        "a failed cancellation is re-driven: the correction must reach the account",
        dlv("lead", "failed", of="inc_c", action="reply", target="dlv_lead", priority=10),
        "cancelled",
        named=cancel_row(),
    ),
    RetryCase(
        "a dead deletion after a cancellation is re-driven",
        dlv("board", "dead", of="inc_c", action="delete", target="dlv_board", priority=10),
        "cancelled",
        named=cancel_row(),
    ),
    RetryCase(
        "a delivery that does not exist cannot be retried",
        None,
        raises=NotFound,
        match="no delivery dlv_lead",
    ),
]


@pytest.mark.parametrize("case", RETRIES, ids=lambda c: c.desc)
def test_retry(case: RetryCase) -> None:
    """An operator re-drives a settled delivery with the configured budget."""
    rows = [case.delivery] if case.delivery else []
    root = stored(state=case.incident_state)
    read = message(case.named or root, rows, root=root)
    if case.raises is not None:
        with pytest.raises(case.raises, match=case.match):
            PLANNER.retry(read, "dlv_lead" if not rows else rows[0].id, by("city"), moment())
        return
    assert case.delivery is not None
    plan = PLANNER.retry(read, case.delivery.id, by("city"), moment())
    assert plan.authority.allowed and "city may re-drive deliveries" in plan.authority.reason
    assert plan.write is not None
    assert plan.write.requeue == Requeue(case.delivery.id, CONFIG.dispatch.max_attempts)
    assert [(a.action, a.incident_id, a.delivery_id) for a in plan.write.audit] == [
        ("delivery.retry", case.delivery.incident_id, case.delivery.id)
    ]


def test_retry_of_a_delivery_whose_message_is_gone() -> None:
    """A delivery whose message is not stored is not found."""
    with pytest.raises(NotFound, match="no delivery dlv_lead"):
        PLANNER.retry(message(None, [dlv("lead", "failed")]), "dlv_lead", by("city"), moment())


@dataclass(frozen=True)
class RetryScopeCase:
    desc: str
    asker: Asker
    root: IncidentRow
    reason: str
    allowed: bool = False
    named: IncidentRow | None = None  # the delivery's message, when not the original


RETRY_SCOPE = [
    RetryScopeCase(
        "the fire brigade re-drives a delivery of its own fire",
        by("fire"),
        CITY_FIRE,
        "issuer fire may re-drive deliveries of inc_root",
        True,
    ),
    RetryScopeCase(
        "an operator out of scope by kind cannot re-drive a delivery",
        by("fire"),
        stored(),
        "issuer fire may not operate this incident: issuer fire may not raise earthquake",
    ),
    RetryScopeCase(
        "an operator out of scope by region cannot re-drive a delivery",
        by("fire"),
        BEIJING_FIRE,
        f"issuer fire may not operate this incident: {OUTSIDE_CHENGDU}",
    ),
    RetryScopeCase(
        "an update's delivery out of the operator's scope cannot be re-driven, though the "
        "original is in it",
        by("fire"),
        CITY_FIRE,
        f"issuer fire may not operate this incident: {OUTSIDE_CHENGDU}",
        named=MOVED_TO_BEIJING,
    ),
]


@pytest.mark.parametrize("case", RETRY_SCOPE, ids=lambda c: c.desc)
def test_retry_scope(case: RetryScopeCase) -> None:
    """An operator re-drives only deliveries of messages within its kinds and regions."""
    named = case.named or case.root
    failed = dlv("lead", "failed", of=named.id)
    plan = PLANNER.retry(message(named, [failed], root=case.root), failed.id, case.asker, moment())
    assert plan.authority.allowed is case.allowed
    assert case.reason in plan.authority.reason
    assert (plan.write is not None) is case.allowed


# == fallback ================================================================================

QUOTA_SPENT = "quota exhausted: 0 of 100 left today"


@dataclass(frozen=True)
class FallbackCase:
    desc: str
    named: IncidentRow | None
    have: Sequence[DeliveryRow]
    spent: DeliveryRow
    expect: Sequence[tuple[str, str, int]]  # (account, delivery id, priority)
    reason: str = "quota spent; its configured fallback takes over"
    root: IncidentRow | None = None  # the named message's original, when not itself


FALLBACKS = [
    FallbackCase(
        "a spent account's message goes to the fallback that lacks it (not disabled ones)",
        stored(),
        originals("delivered")[:3],
        dlv("quota", "dead", reason=QUOTA_SPENT),
        [("spare", "dlv_root_fb_spare", 0)],
    ),
    FallbackCase(
        "an update's fallback keeps the update's priority and is named after the update",
        update_row(),
        [dlv("lead", "delivered", of="inc_u1", delivery_id="dlv_lead_u1")],
        dlv("quota", "dead", of="inc_u1", reason=QUOTA_SPENT, priority=5),
        [("spare", "dlv_u1_fb_spare", 5)],
    ),
    FallbackCase(
        "an actual alert's fallback skips an exercise account, which takes drills only",
        stored(),
        [dlv("lead", "delivered"), dlv("spare", "delivered")],
        dlv("quota", "dead", reason=QUOTA_SPENT),
        [],
    ),
    FallbackCase(
        "the original of a cancelled incident falls back to no one: no cancellation would follow",
        stored(state="cancelled"),
        originals("delivered")[:3],
        dlv("quota", "dead", reason=QUOTA_SPENT),
        [],
        "incident inc_root is cancelled; nothing falls back",
    ),
    FallbackCase(
        "an update of a cancelled incident falls back to no one",
        update_row(),
        [dlv("lead", "delivered", of="inc_u1", delivery_id="dlv_lead_u1")],
        dlv("quota", "dead", of="inc_u1", reason=QUOTA_SPENT, priority=5),
        [],
        "incident inc_root is cancelled; nothing falls back",
        stored(state="cancelled"),
    ),
    FallbackCase(
        "a cancellation falls back like any message, to the fallback that lacks it",
        cancel_row(),
        [dlv("lead", "delivered", of="inc_c", delivery_id="dlv_lead_c")],
        dlv("quota", "dead", of="inc_c", reason=QUOTA_SPENT, priority=10),
        [("spare", "dlv_c_fb_spare", 10)],
        root=stored(state="cancelled"),
    ),
    FallbackCase(
        "a fallback that has the message already takes nothing over",
        stored(),
        [dlv("lead", "delivered"), dlv("spare", "delivered")],
        dlv("quota", "dead", reason=QUOTA_SPENT),
        [],
    ),
    FallbackCase(
        "a drill's fallback goes only to exercise accounts",
        stored(quake(status="exercise")),
        [],
        dlv("drills", "dead", reason=QUOTA_SPENT),
        [("dry", "dlv_root_fb_dry", 0)],
    ),
    FallbackCase(
        "an account without fallback has nothing to fall back to",
        stored(),
        [],
        dlv("lead", "dead", reason=QUOTA_SPENT),
        [],
        "no fallback configured",
    ),
    FallbackCase(
        "a message no longer stored has nothing to fall back to",
        None,
        [],
        dlv("quota", "dead", reason=QUOTA_SPENT),
        [],
        "no fallback configured",
    ),
]


@pytest.mark.parametrize("case", FALLBACKS, ids=lambda c: c.desc)
def test_fallback(case: FallbackCase) -> None:
    """A spent account's fallback accounts take over its message, once each."""
    read = message(case.named, [*case.have, case.spent], root=case.root)
    plan = PLANNER.fallback(read, case.spent, moment())
    assert plan.authority.allowed and case.reason in plan.authority.reason
    if not case.expect:
        assert plan.write is None
        return
    assert plan.write is not None and plan.write.incident is None
    assert plan.write.attach_to == case.spent.incident_id
    assert [(d.account, d.id, d.priority) for d in plan.write.deliveries] == list(case.expect)
    assert created(plan) == [D(a, priority=p) for a, _, p in case.expect]
    (audit,) = plan.write.audit
    assert (audit.actor, audit.action, audit.delivery_id) == (
        "alertcast",
        "delivery.fallback",
        case.spent.id,
    )
    assert audit.detail == {
        "from": case.spent.account,
        "to": [a for a, _, _ in case.expect],
        "why": QUOTA_SPENT,
    }


def test_fallback_renders_the_message_it_takes_over() -> None:
    """The fallback speaks for the spent message: an update stays an update of its root."""
    spent = dlv("quota", "dead", of="inc_u1", reason=QUOTA_SPENT)
    read = message(update_row(), [dlv("lead", "delivered", of="inc_u1"), spent])
    plan = PLANNER.fallback(read, spent, moment())
    assert plan.write is not None
    (payload,) = (d.payload for d in plan.write.deliveries)
    assert (payload["msg_type"], payload["references"]) == ("update", ROOT)


EXPIRING = quake(expires_at="2022-09-05T18:00:00+08:00")
LAPSES = [
    ("an alert's fallback post lapses with the incident", stored(EXPIRING), 1662372000.0),
    ("an update's fallback post never lapses", update_row(body=EXPIRING), None),
    ("a cancellation's fallback post never lapses", cancel_row(EXPIRING), None),
]


@pytest.mark.parametrize(("desc", "named", "expires_at"), LAPSES, ids=[c[0] for c in LAPSES])
def test_fallback_lapses_as_the_message_does(
    desc: str, named: IncidentRow, expires_at: float | None
) -> None:
    """Nothing goes out stale: a fallback alert expires with the incident; corrections never."""
    spent = dlv("quota", "dead", of=named.id, reason=QUOTA_SPENT)
    read = message(named, [spent], root=stored(EXPIRING))
    plan = PLANNER.fallback(read, spent, _before(1662372000.0 - 600))
    assert plan.write is not None
    lapses = {d.account: d.expires_at for d in plan.write.deliveries}
    assert lapses["spare"] == expires_at


# == send: the last decision, and the hand-over ==============================================


@dataclass(frozen=True)
class SendCase:
    desc: str
    channel: str
    delivery: DeliveryRow
    decision: Send | Skip
    msg_type: str = "alert"
    target_delivered: bool = False
    target_remote_id: str | None = None
    wait_state: str | None = None  # where the delivery it waits for stands
    wait_account: str | None = None


MEMBER = dlv("member", "sending", action="repost", target="dlv_lead")
REPLY = dlv("lead", "sending", of="inc_u1", delivery_id="dlv_u", action="reply", target="dlv_lead")
CANCEL = dlv("lead", "sending", of="inc_c", delivery_id="dlv_c", action="reply", target="dlv_lead")
DELETE = dlv(
    "board",
    "sending",
    of="inc_c",
    delivery_id="dlv_d",
    action="delete",
    target="dlv_b",
    wait="dlv_c",
)
PAIRED_WAIT = replace(
    dlv("w", "sending", of="inc_c", delivery_id="dlv_wc", target="dlv_w", wait="dlv_svc"),
    path="timeline",
)
WINDOW = replace(
    dlv("w", "sending", of="inc_c", delivery_id="dlv_wx", action="custom", target="dlv_w"),
    path="window",
)
LONE_DELETE = dlv("sirens", "sending", of="inc_c", action="delete", target="dlv_sirens")
NOTHING_TO_CANCEL = "the original never reached this account; there is nothing to cancel"

SENDS = [
    SendCase("an alert's post goes out as a post", "webhook", dlv("lead", "sending"), Send("post")),
    SendCase(
        "a cluster member reposts its lead's post",
        "webhook",
        MEMBER,
        Send("repost", "r-dlv_lead"),
        target_delivered=True,
        target_remote_id="r-dlv_lead",
    ),
    SendCase(
        "hand-over: a member whose lead's post never reached the platform posts on its own",
        "webhook",
        MEMBER,
        Send("post"),
    ),
    SendCase(
        "hand-over: a member whose lead was delivered without a remote id posts on its own",
        "webhook",
        MEMBER,
        Send("post"),
        target_delivered=True,
    ),
    SendCase(
        "a member on a platform that cannot repost posts on its own",
        "console",
        MEMBER,
        Send("post"),
        target_delivered=True,
        target_remote_id="r-dlv_lead",
    ),
    SendCase(
        "an update replies to the delivered original",
        "webhook",
        REPLY,
        Send("reply", "r-dlv_lead"),
        "update",
        True,
        "r-dlv_lead",
    ),
    SendCase(
        "an update whose original never went out stands alone",
        "webhook",
        REPLY,
        Send("post"),
        "update",
    ),
    SendCase(
        "an update edit on a platform that cannot edit stands alone",
        "file",
        dlv("board", "sending", of="inc_u1", action="edit", target="dlv_board"),
        Send("post"),
        "update",
        True,
        "r-dlv_board",
    ),
    SendCase(
        "a cancellation replies to the delivered original",
        "webhook",
        CANCEL,
        Send("reply", "r-dlv_lead"),
        "cancel",
        True,
        "r-dlv_lead",
    ),
    SendCase(
        "a cancellation of an original that never reached the account does not go out",
        "webhook",
        CANCEL,
        Skip(NOTHING_TO_CANCEL),
        "cancel",
    ),
    SendCase(
        "a cancellation of an original delivered without a remote id stands alone",
        "webhook",
        CANCEL,
        Send("post"),
        "cancel",
        True,
    ),
    SendCase(
        "on_cancel post: the cancellation is posted on its own beside the delivered original",
        "webhook",
        dlv("lead", "sending", of="inc_c", action="post", target="dlv_lead"),
        Send("post"),
        "cancel",
        True,
        "r-dlv_lead",
    ),
    SendCase(
        "the deletion after a cancellation deletes the delivered original",
        "file",
        DELETE,
        Send("delete", "r-dlv_b"),
        "cancel",
        True,
        "r-dlv_b",
        "delivered",
    ),
    SendCase(
        "the deletion after a cancellation that failed does not go out: the original stays "
        "up rather than vanish uncorrected",
        "file",
        DELETE,
        Skip("the correction was not delivered (failed); the original stays up"),
        "cancel",
        True,
        "r-dlv_b",
        "failed",
    ),
    SendCase(
        "an account's own correction goes out when its paired account's failed",
        "wechat_oa",
        PAIRED_WAIT,
        Send("post"),
        "cancel",
        True,
        "r-dlv_w",
        "failed",
        "svc",
    ),
    SendCase(
        "an account's own correction does not go out when its paired account reached the "
        "same followers",
        "wechat_oa",
        PAIRED_WAIT,
        Skip("carried to the same followers by svc (paired)"),
        "cancel",
        True,
        "r-dlv_w",
        "delivered",
        "svc",
    ),
    SendCase(
        "a message to the followers in the window goes as one",
        "wechat_oa",
        WINDOW,
        Send("custom", "r-dlv_w"),
        "cancel",
        True,
        "r-dlv_w",
    ),
    SendCase(
        "a message to followers one by one on a platform without it does not go out",
        "webhook",
        WINDOW,
        Skip("webhook cannot message followers one by one"),
        "cancel",
        True,
        "r-dlv_w",
    ),
    SendCase(
        "reply_and_delete of an original delivered without a remote id: the cancellation "
        "stood alone, so the deletion does not go out (no second cancellation text)",
        "file",
        DELETE,
        Skip("the original was delivered without a remote id; nothing to delete"),
        "cancel",
        True,
        None,
        "delivered",
    ),
    SendCase(
        "on_cancel delete of an original delivered without a remote id: the cancellation "
        "stands alone, as the account's only correction",
        "webhook",
        LONE_DELETE,
        Send("post"),
        "cancel",
        True,
    ),
    SendCase(
        "the deletion of an original never posted does not go out",
        "file",
        DELETE,
        Skip(NOTHING_TO_CANCEL),
        "cancel",
    ),
    SendCase(
        "a deletion on a platform that cannot delete does not go out",
        "console",
        dlv("quota", "sending", of="inc_c", action="delete", target="dlv_quota"),
        Skip("console cannot delete a post; the correction stands alone"),
        "cancel",
        True,
        "r-dlv_quota",
    ),
]


@pytest.mark.parametrize("case", SENDS, ids=lambda c: c.desc)
def test_send(case: SendCase) -> None:
    """How a claimed delivery goes out: threaded, on its own, or not at all."""
    waited = DeliveryState(case.wait_state) if case.wait_state else None
    claim = ActiveClaim(
        case.delivery,
        case.target_remote_id,
        case.msg_type,
        case.target_delivered,
        wait_state=waited,
        wait_account=case.wait_account or (case.delivery.account if waited else None),
    )
    capabilities = channel_class(case.channel).capabilities
    assert plan_send(claim, case.channel, capabilities) == case.decision


# == every plan is one write ================================================================


def test_a_refusal_writes_nothing_anywhere() -> None:
    """Refused by authority: no write, no answer, no events, whatever the planner."""
    read = chain(stored(), originals("delivered"))
    plans = [
        PLANNER.alert(parse_incident(quake()), Chain(), by("fire"), moment()),
        PLANNER.update(read, NEWS, by("fire"), moment()),
        PLANNER.cancel(read, "误报", by("fire"), moment()),
        PLANNER.approve(message(HELD_QUAKE), by("clerk"), moment()),
    ]
    assert [(p.authority.allowed, p.write, p.answer, p.events) for p in plans] == [
        (False, None, {}, ())
    ] * 4


def test_writes_are_one_kind_of_change_each() -> None:
    """An alert stores an incident, an approval releases, a retry requeues: nothing else."""
    alert = PLANNER.alert(parse_incident(quake()), Chain(), by("city"), moment()).write
    approve = PLANNER.approve(message(HELD_QUAKE), by("chief"), moment()).write
    retry = PLANNER.retry(
        message(stored(), [dlv("lead", "failed")]), "dlv_lead", by("city"), moment()
    ).write
    assert isinstance(alert, Write) and isinstance(approve, Write) and isinstance(retry, Write)
    assert (alert.release, alert.requeue, alert.effects, alert.attach_to) == (None,) * 4
    assert (approve.incident, approve.requeue, approve.effects) == (None,) * 3
    assert (retry.incident, retry.release, retry.effects, retry.deliveries) == (
        None,
        None,
        None,
        (),
    )
