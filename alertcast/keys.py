"""The application's typed keys: what the factory builds once and the handlers read."""

from __future__ import annotations

from aiohttp import web

from alertcast.accounts import Accounts
from alertcast.config import Config, IssuerConfig
from alertcast.dispatch import Dispatcher
from alertcast.door import Door
from alertcast.events import EventBus
from alertcast.plan import Planner
from alertcast.secrets import Secrets
from alertcast.store.base import Store

__all__ = [
    "ACCOUNTS",
    "CONFIG",
    "DISPATCHER",
    "DOOR",
    "EVENTS",
    "ISSUER",
    "PLANNER",
    "SECRETS",
    "STORE",
    "TOKENS",
]

CONFIG = web.AppKey("config", Config)
SECRETS = web.AppKey("secrets", Secrets)
EVENTS = web.AppKey("events", EventBus)
STORE = web.AppKey("store", Store)
PLANNER = web.AppKey("planner", Planner)
DOOR = web.AppKey("door", Door)
DISPATCHER = web.AppKey("dispatcher", Dispatcher)
ACCOUNTS = web.AppKey("accounts", Accounts)
TOKENS = web.AppKey("tokens", list[tuple[bytes, IssuerConfig]])
ISSUER = web.RequestKey("issuer", IssuerConfig)
