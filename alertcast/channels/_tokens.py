"""A shared access-token cache with single-flight refresh.

Platforms such as WeChat hand out one valid token per app at a time: fetching a new one retires the
old, so every user of an app must share one cache (the platform calls it a "central control
server"). :class:`TokenCache` refreshes proactively before expiry, and on a rejected token refreshes
once however many callers saw the rejection: a caller passes the token that failed, and if another
caller already replaced it the fresh one is returned without a second fetch. Every token fetched
is handed to ``remember`` (the process's redactor, :meth:`alertcast.secrets.Secrets.remember`)
before anyone uses it, so it is scrubbed from errors and logs like a configured secret.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

import aiohttp

__all__ = ["Fetched", "PerSession", "TokenCache"]

MAX_EARLY_S = 300.0
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Fetched:
    token: str
    expires_in_s: float


class TokenCache:
    """One token, fetched by ``fetch(rejected)``: ``rejected`` is the token the platform refused
    (``None`` for a routine refresh), so a fetcher that may be handed the same token back knows to
    insist on a new one. ``remember`` registers each token fetched with the redactor."""

    def __init__(
        self,
        fetch: Callable[[str | None], Awaitable[Fetched]],
        *,
        remember: Callable[[str], object],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._fetch = fetch
        self._remember = remember
        self._clock = clock
        self._token: str | None = None
        self._refresh_at = 0.0
        self._lock = asyncio.Lock()
        self.fetches = 0

    async def get(self) -> str:
        """A token believed valid, fetched now if there is none or it is about to expire."""
        if self._fresh():
            assert self._token is not None
            return self._token
        async with self._lock:
            if not self._fresh():
                await self._refresh(None)
            assert self._token is not None
            return self._token

    async def renew(self, rejected: str) -> str:
        """A token other than ``rejected``; fetches only if nobody has replaced it yet."""
        async with self._lock:
            if self._token is None or self._token == rejected or not self._fresh():
                await self._refresh(rejected)
            assert self._token is not None
            return self._token

    def _fresh(self) -> bool:
        return self._token is not None and self._clock() < self._refresh_at

    async def _refresh(self, rejected: str | None) -> None:
        got = await self._fetch(rejected)
        self._remember(got.token)
        self.fetches += 1
        early_s = min(MAX_EARLY_S, got.expires_in_s / 2)
        self._token = got.token
        self._refresh_at = self._clock() + got.expires_in_s - early_s


class PerSession(Generic[T]):
    """State shared by every adapter that uses one HTTP session (one process, one event loop)."""

    def __init__(self) -> None:
        self._by_session: weakref.WeakKeyDictionary[aiohttp.ClientSession, dict[Hashable, T]] = (
            weakref.WeakKeyDictionary()
        )

    def get(self, session: aiohttp.ClientSession, key: Hashable, make: Callable[[], T]) -> T:
        table = self._by_session.setdefault(session, {})
        if key not in table:
            table[key] = make()
        return table[key]
