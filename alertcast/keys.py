"""The application's typed keys: what the factory builds once and the handlers read.

A leaf: the types of what the keys hold are imported for the type checker only, so every
layer may read the keys without importing the layers that fill them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from alertcast.accounts import Accounts
    from alertcast.broadcasts import Schedules
    from alertcast.config import Config, IssuerConfig
    from alertcast.dispatch import Dispatcher
    from alertcast.door import Door
    from alertcast.events import EventBus
    from alertcast.feeds.runner import FeedRunner
    from alertcast.plan import Planner
    from alertcast.secrets import Secrets
    from alertcast.store.base import Store

__all__ = [
    "ACCOUNTS",
    "CONFIG",
    "DISPATCHER",
    "DOOR",
    "EVENTS",
    "FEEDS",
    "ISSUER",
    "PLANNER",
    "REPLAYS",
    "SCHEDULES",
    "SECRETS",
    "STORE",
    "TOKENS",
]

CONFIG: web.AppKey[Config] = web.AppKey("config")
SECRETS: web.AppKey[Secrets] = web.AppKey("secrets")
EVENTS: web.AppKey[EventBus] = web.AppKey("events")
STORE: web.AppKey[Store] = web.AppKey("store")
PLANNER: web.AppKey[Planner] = web.AppKey("planner")
DOOR: web.AppKey[Door] = web.AppKey("door")
DISPATCHER: web.AppKey[Dispatcher] = web.AppKey("dispatcher")
ACCOUNTS: web.AppKey[Accounts] = web.AppKey("accounts")
TOKENS: web.AppKey[list[tuple[bytes, IssuerConfig]]] = web.AppKey("tokens")
FEEDS: web.AppKey[FeedRunner] = web.AppKey("feeds")
SCHEDULES: web.AppKey[Schedules] = web.AppKey("schedules")
ISSUER: web.RequestKey[IssuerConfig] = web.RequestKey("issuer")
# A change recorded under a key: sent again with the same one (what this names: the
# Idempotency-Key, a CAP message's sender and identifier, a feed event's id and version), it
# is recognised and not done twice (a 503's advice, alertcast.outage.unknown).
REPLAYS: web.RequestKey[str] = web.RequestKey("replays")
