"""A feed is trusted: its official report never waits for a second person (by default), its
automatic one follows ``[approval]``, and ``approval = "always" | "never"`` on the feed decides
for every report of that feed."""

from __future__ import annotations

from typing import Any

import pytest

from alertcast.config import Config
from alertcast.feedconfig import FeedConfig
from alertcast.models import parse_incident
from alertcast.plan import Asker, Chain, Planner

from .world import CONFIG, PLANNER, chain, moment, originals, quake, stored

FEED = Asker("feed:cenc", source="feed:cenc")
AUTOMATIC = {"magnitude": 6.8, "report": "automatic"}
OFFICIAL = {"magnitude": 7.1, "report": "official"}


def planner(mode: str) -> Planner:
    """The planner world with one CENC feed whose ``approval`` is ``mode``."""
    feed = FeedConfig(name="cenc", type="cenc", approval=mode)  # type: ignore[arg-type]
    approval = CONFIG.approval.model_copy(update={"feeds": {"cenc": mode}})
    config = CONFIG.model_copy(update={"approval": approval, "feeds": [feed]})
    return Planner(config, PLANNER.drafter.renderer)


def alert_state(p: Planner, details: dict[str, Any], **changes: Any) -> str:
    plan = p.alert(parse_incident(quake(details=details, **changes)), Chain(), FEED, moment())
    assert plan.write is not None and plan.write.incident is not None
    return plan.write.incident.state


@pytest.mark.parametrize(
    ("mode", "details", "changes", "state"),
    [
        ("default", AUTOMATIC, {}, "awaiting_approval"),  # feed_min_magnitude 6.0 binds it
        ("default", OFFICIAL, {}, "active"),  # the network's own review is the first person
        ("default", OFFICIAL, {"severity": "extreme"}, "active"),
        ("always", OFFICIAL, {}, "awaiting_approval"),
        ("always", {"magnitude": 5.0, "report": "automatic"}, {}, "awaiting_approval"),
        ("never", AUTOMATIC, {"severity": "extreme"}, "active"),
    ],
)
def test_feed_alert(
    mode: str, details: dict[str, Any], changes: dict[str, Any], state: str
) -> None:
    """Whether a feed's new alert waits, by the feed's approval and the report it is."""
    assert alert_state(planner(mode), details, **changes) == state


def test_official_update_of_a_released_automatic_goes_at_once() -> None:
    """The automatic M5.2 went out; the official M7.1 (extreme) corrects it without waiting."""
    root = stored(quake(details={"report": "automatic"}), source="feed:cenc", issuer="feed:cenc")
    patch = {"severity": "extreme", "details": OFFICIAL}
    plan = planner("default").update(chain(root, originals("delivered")), patch, FEED, moment())
    assert plan.write is not None and plan.write.incident is not None
    assert plan.write.incident.state == "active"
    assert plan.write.deliveries and not any(d.hold for d in plan.write.deliveries)


def test_official_update_of_a_held_automatic_waits_with_it() -> None:
    """An automatic report still awaiting its second person: the official one is released with
    it by the one approval (never later than the automatic it corrects)."""
    held = {"details": AUTOMATIC}
    root = stored(quake(**held), "awaiting_approval", source="feed:cenc", issuer="feed:cenc")
    update = planner("default").update(chain(root), {"details": OFFICIAL}, FEED, moment())
    assert update.write is not None and update.write.incident is not None
    assert update.write.incident.state == "awaiting_approval"


def test_approval_feeds_is_set_on_the_feed() -> None:
    """``[approval] feeds`` is filled from each feed's ``approval``; set otherwise, refused."""
    feeds = [{"name": "cenc", "type": "cenc", "approval": "never"}, {"name": "u", "type": "usgs"}]
    assert Config.model_validate({"feeds": feeds}).approval.feeds == {
        "cenc": "never",
        "u": "default",
    }
    with pytest.raises(ValueError, match="set approval on each"):
        Config.model_validate({"approval": {"feeds": {"cenc": "always"}}, "feeds": feeds})
