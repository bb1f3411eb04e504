"""The correction plan per platform, as a table: how an update and a cancellation reach the
followers (their timelines and chat lists) and the people who open the original, on Weibo,
WeChat and the robots, with each delivery's recorded path.

The world here: Weibo accounts with the platform's plan, with ``reply_and_delete`` and with
``repost_own``; a WeChat subscription account sending articles with a callback (so it sees who
writes to it) and a paired service account (``corrections_via``) that routing never chooses
itself; a WeChat subscription account sending texts with no other path; a WeCom robot.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, NamedTuple

import pytest

from alertcast.channels import BUILTINS, channel_class
from alertcast.config import Config
from alertcast.models import DeliveryState
from alertcast.plan import Planner
from alertcast.plan.corrections import PLATFORMS, steps
from alertcast.render import Renderer
from alertcast.store.base import DeliveryRow

from .world import by, chain, moment, stored

SAFE = "https://alerts.example.org/"


def _weibo(account_id: str, **options: Any) -> dict[str, Any]:
    return {
        "id": account_id,
        "channel": "weibo",
        "access_token_env": "T_WEIBO",
        "safe_domain_url": SAFE,
        **options,
    }


def _wechat(account_id: str, **options: Any) -> dict[str, Any]:
    return {
        "id": account_id,
        "channel": "wechat_oa",
        "app_id": account_id,
        "app_secret_env": "T_WX",
        **options,
    }


CONFIG = Config.model_validate(
    {
        "server": {"public_url": "https://alerts.example.org"},
        "issuers": [{"name": "city", "token_env": "T_CITY", "can_approve": True}],
        "accounts": [
            _weibo("wb"),
            _weibo("wb-del", on_cancel="reply_and_delete"),
            _weibo("wb-own", repost_own=True),
            _wechat(
                "wx",
                mode="article",
                thumb_media_id="thumb-1",
                callback_token_env="T_CB",
                corrections_via=["svc"],
            ),
            _wechat(
                "svc",
                account_type="service",
                mode="template",
                template_id="tpl-1",
                template_audience="followers",
                kinds=["police"],
            ),
            _wechat("wx-text"),
            {"id": "robot", "channel": "wecom_robot", "key_env": "T_WECOM"},
        ],
    }
)
PLANNER = Planner(CONFIG, Renderer(CONFIG.render))


class P(NamedTuple):
    """A new delivery: account, action, what it threads to and waits for, its path
    (``+account.action`` names another new delivery)."""

    account: str
    action: str
    target: str | None
    wait: str | None
    path: str | None


def original(account: str, state: str = "delivered", **payload: Any) -> DeliveryRow:
    configured = CONFIG.account(account)
    assert configured is not None
    did = f"dlv_{account}"
    return DeliveryRow(
        id=did,
        incident_id="inc_root",
        account=account,
        channel=configured.channel,
        state=DeliveryState(state),
        payload={"text": "…", **payload},
        idempotency_key=did,
        attempts=1,
        max_attempts=10,
        next_attempt_at=None,
        created_at=1.0,
        updated_at=1.0,
        remote_id=f"r-{did}" if state == "delivered" else None,
    )


ARTICLE = {"title": "四川甘孜州泸定县发生5.2级地震", "content_html": "<p>…</p>"}


def made(deliveries: Sequence[Any], *accounts: str) -> list[P]:
    names = {d.id: f"+{d.account}.{d.action}" for d in deliveries}
    return [
        P(
            d.account,
            d.action,
            names.get(d.target_delivery_id or "", d.target_delivery_id),
            names.get(d.wait_for or "", d.wait_for),
            d.path,
        )
        for d in deliveries
        if not accounts or d.account in accounts
    ]


@dataclass(frozen=True)
class Case:
    desc: str
    msg_type: str
    originals: Sequence[DeliveryRow]
    expect: Sequence[P]
    accounts: tuple[str, ...] = ()


CASES = [
    Case(
        "Weibo update: a new post in the followers' timelines, and a comment on the original",
        "update",
        [original("wb")],
        [P("wb", "post", "dlv_wb", None, "timeline"), P("wb", "reply", "dlv_wb", None, "thread")],
        ("wb",),
    ),
    Case(
        "Weibo cancellation: the same two paths",
        "cancel",
        [original("wb")],
        [P("wb", "post", "dlv_wb", None, "timeline"), P("wb", "reply", "dlv_wb", None, "thread")],
    ),
    Case(
        "Weibo with repost_own: the timeline step reposts the original (threaded to it)",
        "cancel",
        [original("wb-own")],
        [
            P("wb-own", "repost", "dlv_wb-own", None, "timeline"),
            P("wb-own", "reply", "dlv_wb-own", None, "thread"),
        ],
    ),
    Case(
        "Weibo reply_and_delete: the correction in the timeline, then the original deleted "
        "only after it (no comment: a comment goes with its post)",
        "cancel",
        [original("wb-del")],
        [
            P("wb-del", "post", "dlv_wb-del", None, "timeline"),
            P("wb-del", "delete", "dlv_wb-del", "+wb-del.post", "withdraw"),
        ],
    ),
    Case(
        "Weibo correction of an original still being sent waits for it",
        "update",
        [original("wb", "sending")],
        [
            P("wb", "post", "dlv_wb", "dlv_wb", "timeline"),
            P("wb", "reply", "dlv_wb", "dlv_wb", "thread"),
        ],
        ("wb",),
    ),
    Case(
        "WeChat article cancellation: the paired service account at once, the article "
        "withdrawn (no quota), the followers inside the window, and the next mass send only "
        "if the paired account did not reach them",
        "cancel",
        [original("wx", **ARTICLE)],
        [
            P("svc", "post", None, None, "paired"),
            P("wx", "delete", "dlv_wx", None, "withdraw"),
            P("wx", "custom", "dlv_wx", None, "window"),
            P("wx", "post", "dlv_wx", "+svc.post", "timeline"),
        ],
    ),
    Case(
        "WeChat article update: nothing to withdraw; paired, window, then the mass send",
        "update",
        [original("wx", **ARTICLE)],
        [
            P("svc", "post", None, None, "paired"),
            P("wx", "custom", "dlv_wx", None, "window"),
            P("wx", "post", "dlv_wx", "+svc.post", "timeline"),
        ],
        ("svc", "wx"),
    ),
    Case(
        "WeChat text mass send: nothing the platform can withdraw; with no other path the "
        "correction is the next mass send",
        "cancel",
        [original("wx-text")],
        [P("wx-text", "post", "dlv_wx-text", None, "timeline")],
    ),
    Case(
        "a robot cannot thread or delete: a new message in the group",
        "cancel",
        [original("robot")],
        [P("robot", "post", "dlv_robot", None, "timeline")],
    ),
    Case(
        "one paired account serves two accounts once",
        "cancel",
        [original("wx", **ARTICLE), original("wx-text")],
        [P("svc", "post", None, None, "paired")],
        ("svc",),
    ),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.desc)
def test_correction_paths(case: Case) -> None:
    read = chain(stored(), case.originals)
    if case.msg_type == "cancel":
        plan = PLANNER.cancel(read, "误报", by("city"), moment())
    else:
        plan = PLANNER.update(
            read, {"headline": "四川甘孜州泸定县发生5.3级地震"}, by("city"), moment()
        )
    assert plan.write is not None, plan.authority
    assert made(plan.write.deliveries, *case.accounts) == list(case.expect)


def test_the_window_step_is_rendered_as_text() -> None:
    """Customer-service messages take text, whatever the account's own format."""
    read = chain(stored(), [original("wx", **ARTICLE)])
    plan = PLANNER.cancel(read, "误报", by("city"), moment())
    assert plan.write is not None
    window = next(d for d in plan.write.deliveries if d.path == "window")
    assert window.payload.get("format") == "text" and window.payload.get("text")


def test_a_paired_account_that_has_the_incident_corrects_it_itself() -> None:
    """An account that got the original corrects it by its own follow-up, not as a pair."""
    paired = replace(original("svc"), payload={"text": "…"})
    read = chain(stored(), [original("wx", **ARTICLE), paired])
    plan = PLANNER.cancel(read, "误报", by("city"), moment())
    assert plan.write is not None
    svc = made(plan.write.deliveries, "svc")
    assert svc == [P("svc", "post", "dlv_svc", None, "timeline")]
    mass = made(plan.write.deliveries, "wx")[-1]
    assert mass == P("wx", "post", "dlv_wx", None, "timeline")  # no pair to wait for


def test_every_channel_has_a_plan_and_its_steps_are_actions_it_can_take() -> None:
    """The table names every channel, and each step is the channel's own action (a step
    the platform cannot take would never reach anyone)."""
    assert set(PLATFORMS) == set(BUILTINS)
    for name, plan in PLATFORMS.items():
        capabilities = channel_class(name).capabilities
        for step in (*plan.update, *plan.cancel):
            assert step.action in capabilities, (name, step)
            assert step.path in ("timeline", "thread", "withdraw", "edit")


def test_every_correction_reaches_the_followers() -> None:
    """Whatever an account configures, a cancellation has a step into the timeline (or
    is an edit of the original in place): deletion alone never stands."""
    for account in CONFIG.accounts:
        for on_cancel in (None, "reply", "reply_and_delete", "delete", "edit", "post"):
            configured = account.model_copy(update={"on_cancel": on_cancel})
            found = steps(configured, "cancel", ARTICLE)
            paths = {s.path for s in found}
            assert paths & {"timeline", "thread", "edit"}, (account.id, on_cancel, found)
            deletes = [s for s in found if s.action == "delete" and s.path == "withdraw"]
            if account.channel == "weibo":
                assert all(s.after is not None for s in deletes), (account.id, on_cancel)


def test_the_documented_table_is_the_plan() -> None:
    """docs/corrections.md shows PLATFORMS as it is: a reader checks the code by the doc."""
    from pathlib import Path

    doc = (Path(__file__).parents[2] / "docs" / "corrections.md").read_text(encoding="utf-8")
    table = doc.split("<!-- corrections-table")[1].split("<!-- /corrections-table -->")[0]
    rows = [line.strip("| ").split(" | ") for line in table.splitlines() if line.startswith("| `")]

    def shown(found: tuple[Any, ...]) -> str:
        return "; ".join(f"{s.action} → {s.path}" for s in found)

    documented = {name.strip("`"): (update, cancel) for name, update, cancel in rows}
    assert documented == {n: (shown(p.update), shown(p.cancel)) for n, p in PLATFORMS.items()}


def test_a_paired_account_stays_paired_through_the_chain() -> None:
    """After an update went to the followers by the paired account, the cancellation is paired
    again (not the pair's own correction of an original it never had), and the account's own
    mass send still waits for it, so the followers are not sent the same thing twice."""
    carried = replace(original("svc"), id="dlv_svc_u1", incident_id="inc_u1", path="paired")
    read = chain(stored(), [original("wx", **ARTICLE), carried])
    plan = PLANNER.cancel(read, "误报", by("city"), moment())
    assert plan.write is not None
    assert made(plan.write.deliveries, "svc") == [P("svc", "post", None, None, "paired")]
    own = made(plan.write.deliveries, "wx")[-1]
    assert own == P("wx", "post", "dlv_wx", "+svc.post", "timeline")
