"""Follow-ups of an incident on a per-recipient account, planned: a parent that may have
reached recipients (delivered, being sent, tried before) is followed at once and stopped,
never waited for; one never tried is withdrawn whole (docs/delivery.md, per-recipient)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from alertcast.config import Config
from alertcast.plan import Planner
from alertcast.render import Renderer
from alertcast.store.base import DeliveryRow
from tests.plan.world import CONFIG, D, by, chain, created, dlv, effects, moment, stored

PEOPLE = {
    "id": "people",
    "channel": "webhook",
    "url": "http://127.0.0.1:9/people",
    "secret_env": "T_HOOK",
    "per_recipient": True,
}
WORLD = Config.model_validate(
    {**CONFIG.model_dump(mode="json", exclude_unset=True), "accounts": [PEOPLE], "routes": []}
)
PLANNER = Planner(WORLD, Renderer(WORLD.render))


def _parent(state: str, attempts: int = 1) -> DeliveryRow:
    return replace(dlv("people", state), channel="webhook", attempts=attempts)


# (parent state, attempts) -> (stopped, withdrawn whole, followed)
CASES = [
    ("delivered", 1, [], [], True),
    ("sending", 1, ["dlv_people"], [], True),
    ("retrying", 1, ["dlv_people"], [], True),
    ("failed", 1, [], [], True),
    ("dead", 3, [], [], True),
    ("skipped", 1, [], [], True),  # stopped by an earlier follow-up, after reaching some
    ("pending", 0, [], ["dlv_people"], False),  # held or paused: nobody has it
    ("failed", 0, [], [], False),  # its render failed: never sent
]


@pytest.mark.parametrize(("state", "attempts", "stop", "withdraw", "followed"), CASES)
@pytest.mark.parametrize("msg_type", ["cancel", "update"])
def test_a_follow_up_of_a_per_recipient_parent(
    msg_type: str, state: str, attempts: int, stop: list[str], withdraw: list[str], followed: bool
) -> None:
    """Followed at once (never waiting) when it may have reached someone, stopped if not
    settled; withdrawn whole (and for an update replaced by a post) when never tried."""
    read = chain(stored(), [_parent(state, attempts)])
    if msg_type == "cancel":
        plan = PLANNER.cancel(read, "误报", by("city"), moment())
    else:
        plan = PLANNER.update(read, {"headline": "更正"}, by("city"), moment())
    e = effects(plan)
    assert (list(e.withdraw_recipients_of), list(e.withdraw)) == (stop, withdraw)
    if followed:
        assert [d.target for d in created(plan)] == ["dlv_people"]
        assert all(d.wait is None for d in created(plan))
    elif msg_type == "update":
        assert created(plan) == [D("people", "post", priority=5)]
    else:
        assert created(plan) == []
