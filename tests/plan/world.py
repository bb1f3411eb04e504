"""The world the planner tests plan in: one configuration, its issuers, stored chains.

Deliveries are compared as :class:`D` rows. A stored delivery is named by its id
(``dlv_lead``: the original on ``lead``); a delivery a plan creates is named ``+account.action``
(``+lead.post``), so a cluster member's ``target`` and ``wait`` read as what they point at.
A stored delivered delivery has the remote id ``r-<its id>``.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any, NamedTuple

from alertcast.config import Config
from alertcast.models import DeliveryState, incident_json, parse_incident
from alertcast.plan import Asker, Chain, Moment, Plan, Planner
from alertcast.render import Renderer
from alertcast.store.base import DeliveryRow, Effects, IdempotencyRecord, IncidentRow

# -- the world: issuers, accounts, incidents --------------------------------------------------
#
# issuers   city, chief: every kind and region, can_approve; clerk: every kind and region,
#           no can_approve; desk: every kind and region, the submit role only; fire: fire in
#           510100 only; chengdu: can_approve in 510100 only
# accounts  lead (webhook) and member (lead = "lead"): a cluster; board (file): on_update
#           edit, on_cancel reply_and_delete; quota (console): fallback off, lead, spare,
#           dry; sirens (webhook): severe and up, on_update repost, on_cancel delete; spare
#           (webhook): police only, a fallback; off: disabled; drills (console): exercise,
#           fallback spare, dry; dry (file): exercise (so drills only), police only
# routes    weather goes without lead
# STRICT    the same world with [approval] approver_cancels_at_once = false


def _hook(account_id: str, **options: Any) -> dict[str, Any]:
    url = f"http://127.0.0.1:9/{account_id}"
    return {"id": account_id, "channel": "webhook", "url": url, "secret_env": "T_HOOK", **options}


CONFIG = Config.model_validate(
    {
        "server": {"public_url": "https://alerts.example.org"},
        "dispatch": {"max_attempts": 7},
        "approval": {"feed_min_magnitude": 6.0},
        "issuers": [
            {"name": "city", "token_env": "T_CITY", "can_approve": True},
            {"name": "chief", "token_env": "T_CHIEF", "can_approve": True},
            {"name": "clerk", "token_env": "T_CLERK"},
            {"name": "desk", "token_env": "T_DESK", "roles": ["submit"]},
            {"name": "fire", "token_env": "T_FIRE", "kinds": ["fire"], "regions": ["510100"]},
            {
                "name": "chengdu",
                "token_env": "T_CHENGDU",
                "regions": ["510100"],
                "can_approve": True,
            },
        ],
        "accounts": [
            _hook("lead"),
            _hook("member", lead="lead"),
            {
                "id": "board",
                "channel": "file",
                "path": "/nonexistent/board.jsonl",
                "on_update": "edit",
                "on_cancel": "reply_and_delete",
            },
            {"id": "quota", "channel": "console", "fallback": ["off", "lead", "spare", "dry"]},
            _hook("sirens", min_severity="severe", on_update="repost", on_cancel="delete"),
            _hook("spare", kinds=["police"]),
            _hook("off", enabled=False),
            {"id": "drills", "channel": "console", "exercise": True, "fallback": ["spare", "dry"]},
            {
                "id": "dry",
                "channel": "file",
                "path": "/nonexistent/dry.jsonl",
                "exercise": True,
                "kinds": ["police"],
            },
        ],
        "routes": [{"name": "weather-without-lead", "kinds": ["weather"], "exclude": ["lead"]}],
    }
)
PLANNER = Planner(CONFIG, Renderer(CONFIG.render))
STRICT_APPROVAL = CONFIG.approval.model_copy(update={"approver_cancels_at_once": False})
STRICT = Planner(CONFIG.model_copy(update={"approval": STRICT_APPROVAL}), PLANNER.drafter.renderer)
ISSUERS = {i.name: i for i in CONFIG.issuers}

QUAKE: dict[str, Any] = {
    "kind": "earthquake",
    "severity": "moderate",
    "headline": "四川甘孜州泸定县发生5.2级地震",
    "area": {"name": "四川省甘孜藏族自治州泸定县", "codes": ["513322"]},
    "occurred_at": "2022-09-05T12:52:18+08:00",
    "details": {
        "magnitude": 5.2,
        "depth_km": 16,
        "latitude": 29.59,
        "longitude": 102.08,
        "place": "四川甘孜州泸定县",
    },
}
FIRE: dict[str, Any] = {
    "kind": "fire",
    "severity": "moderate",
    "headline": "成都市武侯区某小区火灾",
    "area": {"name": "成都市武侯区", "codes": ["510107"]},
    "occurred_at": "2024-03-01T09:10:00+08:00",
    "details": {"address": "武侯区某路1号"},
}
WEATHER: dict[str, Any] = {
    "kind": "weather",
    "severity": "moderate",
    "headline": "成都市暴雨黄色预警",
    "area": {"name": "成都市", "codes": ["510100"]},
    "occurred_at": "2024-07-01T06:00:00+08:00",
    "details": {"hazard": "暴雨", "level": "yellow"},
}


def quake(**changes: Any) -> dict[str, Any]:
    return _changed(QUAKE, changes)


def fire(**changes: Any) -> dict[str, Any]:
    return _changed(FIRE, changes)


def _changed(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in changes.items():
        out[key] = {**out[key], **value} if isinstance(value, dict) and key in out else value
    return out


# -- who asks -------------------------------------------------------------------------------


def by(name: str, key: str | None = None, body: str = "sha-first") -> Asker:
    """An issuer asking over the API (with an idempotency key and body digest, if given)."""
    return Asker(name, "api", key, body, ISSUERS[name])


FEED = Asker("feed:cenc", source="feed:cenc")  # the daemon's own job: bound by its config
SCHEDULE = Asker("schedule:drill", source="schedule:drill")


def moment() -> Moment:
    """1000 s, with ids from a counter: ``inc_1``, ``dlv_2``, …"""
    counter = itertools.count(1)
    return Moment(1000.0, lambda prefix: f"{prefix}_{next(counter)}")


# -- what is stored -------------------------------------------------------------------------

ROOT = "inc_root"


def stored(
    body: dict[str, Any] | None = None,
    state: str = "active",
    *,
    issuer: str = "city",
    source: str = "api",
    incident_id: str = ROOT,
    msg_type: str = "alert",
    references: str | None = None,
    reason: str | None = None,
) -> IncidentRow:
    incident = parse_incident(body or QUAKE)
    return IncidentRow(
        id=incident_id,
        kind=incident.kind,
        status=incident.status.value,
        severity=incident.severity.value,
        msg_type=msg_type,
        state=state,
        issuer=issuer,
        source=source,
        body=incident_json(incident),
        created_at=1.0,
        references=references,
        reason=reason,
    )


def update_row(
    state: str = "active", body: dict[str, Any] | None = None, *, issuer: str = "city"
) -> IncidentRow:
    return stored(
        body, state, issuer=issuer, incident_id="inc_u1", msg_type="update", references=ROOT
    )


def cancel_row(body: dict[str, Any] | None = None) -> IncidentRow:
    """The cancellation of ``inc_root``: stored, like every cancellation, as cancelled."""
    return stored(body, "cancelled", incident_id="inc_c", msg_type="cancel", references=ROOT)


def held_cancel(
    body: dict[str, Any] | None = None, *, issuer: str = "clerk", state: str = "awaiting_approval"
) -> IncidentRow:
    """A cancellation of ``inc_root`` stored awaiting a second approver (no deliveries)."""
    return stored(
        body,
        state,
        issuer=issuer,
        incident_id="inc_c",
        msg_type="cancel",
        references=ROOT,
        reason="误报",
    )


def dlv(
    account: str,
    state: str,
    *,
    of: str = ROOT,
    delivery_id: str | None = None,
    action: str = "post",
    target: str | None = None,
    wait: str | None = None,
    reason: str | None = None,
    at: float = 1.0,
    priority: int = 0,
) -> DeliveryRow:
    """A stored delivery; a delivered one has the remote id ``r-<delivery id>``."""
    did = delivery_id or f"dlv_{account}"
    configured = CONFIG.account(account)
    return DeliveryRow(
        id=did,
        incident_id=of,
        account=account,
        channel=configured.channel if configured else "webhook",
        state=DeliveryState(state),
        payload={"format": "webhook"},
        idempotency_key=did,
        attempts=1,
        max_attempts=7,
        next_attempt_at=None,
        created_at=at,
        updated_at=at,
        reason=reason,
        action=action,
        target_delivery_id=target,
        wait_for=wait,
        remote_id=f"r-{did}" if state == "delivered" else None,
        priority=priority,
    )


def originals(state: str, reason: str | None = None) -> list[DeliveryRow]:
    """The alert's deliveries to the accounts a moderate quake reaches, all in ``state``."""
    return [
        dlv("lead", state, reason=reason),
        dlv("member", state, action="repost", target="dlv_lead", reason=reason),
        dlv("board", state, reason=reason),
        dlv("quota", state, reason=reason),
    ]


def chain(
    root: IncidentRow | None,
    deliveries: Sequence[DeliveryRow] = (),
    *,
    named: IncidentRow | None = None,
    follow_ups: Sequence[IncidentRow] = (),
    replay: IdempotencyRecord | None = None,
) -> Chain:
    """What the store holds of an incident, as the door reads it for a follow-up."""
    shown = named or root
    asked = shown.id if shown else "inc_missing"
    return Chain(asked, shown, root, follow_ups, deliveries, replay)


def message(
    row: IncidentRow | None,
    deliveries: Sequence[DeliveryRow] = (),
    *,
    root: IncidentRow | None = None,
) -> Chain:
    """One stored message, its root (itself, for an original) and its own deliveries
    (approve, fallback, retry)."""
    if root is None and row is not None and row.references is None:
        root = row
    return Chain(row.id if row else "inc_missing", row, root, deliveries=deliveries)


def first(answer: dict[str, Any], body: str = "sha-first") -> IdempotencyRecord:
    return IdempotencyRecord("city", "key-1", body, answer, 500.0)


# -- what a plan says, compared as data -----------------------------------------------------


class D(NamedTuple):
    """A delivery the plan creates: ``+account.action`` names another new one."""

    account: str
    action: str = "post"
    target: str | None = None
    wait: str | None = None
    priority: int = 0
    hold: bool = False


def created(plan: Plan, account: str | None = None) -> list[D]:
    """The plan's new deliveries (on ``account`` only, if named), as :class:`D` rows."""
    write = plan.write
    assert write is not None, plan.authority
    names = {d.id: f"+{d.account}.{d.action}" for d in write.deliveries}
    return [
        D(
            d.account,
            d.action,
            names.get(d.target_delivery_id or "", d.target_delivery_id),
            names.get(d.wait_for or "", d.wait_for),
            d.priority,
            d.hold,
        )
        for d in write.deliveries
        if account is None or d.account == account
    ]


def effects(plan: Plan) -> Effects:
    assert plan.write is not None and plan.write.effects is not None
    return plan.write.effects
