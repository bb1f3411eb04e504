"""Fixtures for the channel contract tests: a shared HTTP session and adapters built from config."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any, TypeVar

import aiohttp
import pytest

from alertcast.channels.base import Action, Channel, Outgoing
from alertcast.config import AccountConfig
from alertcast.secrets import Secrets

C = TypeVar("C", bound=Channel)


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


def build(
    cls: type[C], session: aiohttp.ClientSession, env: Mapping[str, str], **options: Any
) -> C:
    """An adapter as the daemon builds it: account config -> validated options -> instance."""
    account = AccountConfig(id=options.pop("id", f"{cls.name}-1"), channel=cls.name, **options)
    return cls(account, cls.Options.model_validate(account.options), session, Secrets(env))


def outgoing(
    payload: Mapping[str, Any] | None = None,
    *,
    action: Action = "post",
    key: str = "idem-1",
    target: str | None = None,
    attempt: int = 1,
) -> Outgoing:
    return Outgoing(
        delivery_id=f"d-{key}",
        incident_id="inc-1",
        idempotency_key=key,
        payload=payload or {"format": "text", "text": "【地震】泸定县6.8级地震"},
        action=action,
        target_remote_id=target,
        attempt=attempt,
    )
