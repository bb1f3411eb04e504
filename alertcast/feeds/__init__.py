"""Seismic feed sources: parse real feeds into events, apply rules, decide each event's lifecycle.

- :mod:`.events`: :class:`QuakeEvent`, :func:`alert_facts`, the parse errors.
- :mod:`.usgs`, :mod:`.fdsn`, :mod:`.cenc`: one module per wire format.
- :mod:`.rules`: :class:`FeedConfig` (a ``[[feeds]]`` entry), :func:`matches`, :func:`to_incident`.
- :mod:`.lifecycle`: pure raise / update / cancel / ignore decisions.
- :mod:`.source`: :class:`FeedPoller` (conditional GET, outcome, health, backoff), push parsing.
"""

from alertcast.feeds.events import (
    AlertFacts,
    BadEvent,
    FeedError,
    MalformedFeed,
    ParseResult,
    QuakeEvent,
    alert_facts,
)
from alertcast.feeds.lifecycle import Action, Decision, KnownEvent, decide, find_known, remember
from alertcast.feeds.rules import FeedConfig, matches, severity, to_incident
from alertcast.feeds.source import FeedHealth, FeedPoller, Outcome, PollOutcome, parse_pushed

__all__ = [
    "Action",
    "AlertFacts",
    "BadEvent",
    "Decision",
    "FeedConfig",
    "FeedError",
    "FeedHealth",
    "FeedPoller",
    "KnownEvent",
    "MalformedFeed",
    "Outcome",
    "ParseResult",
    "PollOutcome",
    "QuakeEvent",
    "alert_facts",
    "decide",
    "find_known",
    "matches",
    "parse_pushed",
    "remember",
    "severity",
    "to_incident",
]
