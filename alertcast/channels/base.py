"""The channel protocol: one platform's wire protocol behind one coroutine.

An adapter subclasses :class:`Channel`, declares its limits and capabilities as class variables
and its per-account options as a pydantic model, and implements :meth:`Channel.send`. It returns a
:class:`Receipt` or raises one of the typed errors below; it never retries by itself and never
returns a boolean that hides why. The dispatcher alone decides what happens next.
"""

from __future__ import annotations

import asyncio
import re
import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import aiohttp
import structlog
from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:
    from alertcast.config import AccountConfig
    from alertcast.secrets import Secrets

__all__ = [
    "Action",
    "AuthExpired",
    "Channel",
    "ChannelError",
    "Limits",
    "NoOptions",
    "Outgoing",
    "Permanent",
    "QuotaExhausted",
    "RateLimited",
    "Receipt",
    "Transient",
]

Action = Literal["post", "reply", "repost", "edit", "delete"]


_QUERY = re.compile(r"(https?://[^\s?#]+)[?#]\S*")


def scrub_urls(text: str) -> str:
    """``text`` with every URL's query string cut: platforms put tokens and keys there."""
    return _QUERY.sub(r"\1?…", text)


class ChannelError(Exception):
    """Base of every error an adapter raises; carries what the platform said."""

    def __init__(
        self, reason: str, *, http_status: int | None = None, code: str | int | None = None
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.http_status = http_status
        self.code = None if code is None else str(code)


class Transient(ChannelError):
    """Worth another try later (5xx, timeouts, connection errors, busy codes)."""

    def __init__(self, reason: str, *, retry_after: float | None = None, **kw: Any) -> None:
        super().__init__(reason, **kw)
        self.retry_after = retry_after


class RateLimited(Transient):
    """The platform asked us to slow down; ``retry_after`` seconds is its word, when it gave one."""


class QuotaExhausted(ChannelError):
    """A budget is spent (e.g. one mass send a day) until ``until``; a fallback may take over."""

    def __init__(self, reason: str, *, until: datetime | None = None, **kw: Any) -> None:
        super().__init__(reason, **kw)
        self.until = until


class Permanent(ChannelError):
    """The platform said no and will say no again: never retried."""


class AuthExpired(ChannelError):
    """Credentials are gone or expired: the account is unhealthy until they are replaced."""


@dataclass(frozen=True, slots=True)
class Receipt:
    """Proof of delivery: the platform's id for the post, for replies, edits and deletes later."""

    remote_id: str | None = None
    duplicate: bool = False
    http_status: int | None = None
    detail: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One delivery as an adapter sees it."""

    delivery_id: str
    incident_id: str
    idempotency_key: str
    payload: Mapping[str, Any]
    action: Action = "post"
    target_remote_id: str | None = None
    attempt: int = 1
    # A send that addresses many recipients one by one keeps its cursor here and updates it in
    # place as it goes; the dispatcher stores it with the attempt whatever the outcome (a
    # timeout included) and hands it back on the next attempt, which resumes from it.
    progress: dict[str, Any] = field(default_factory=dict)
    # Store ``progress`` durably now and extend the claim's lease; ``False`` means the claim is
    # lost (another worker may hold the delivery) and the send must stop at once.
    checkpoint: Callable[[], Awaitable[bool]] | None = None


@dataclass(frozen=True, slots=True)
class Limits:
    """Per-account sending limits; ``None`` means the platform sets none we know of."""

    concurrency: int = 4
    per_minute: float | None = None
    per_second: float | None = None


class NoOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Channel(ABC):
    """Base of every adapter. Subclasses implement :meth:`send` and nothing of the bookkeeping."""

    name: ClassVar[str]
    Options: ClassVar[type[BaseModel]] = NoOptions
    default_format: ClassVar[str] = "text"
    capabilities: ClassVar[frozenset[Action]] = frozenset({"post"})
    limits: ClassVar[Limits] = Limits()
    timeout_s: ClassVar[float] = 10.0

    def __init__(
        self,
        account: AccountConfig,
        options: BaseModel,
        session: aiohttp.ClientSession,
        secrets: Secrets,
    ) -> None:
        self.account = account
        self.options = options
        self.session = session
        self.secrets = secrets
        self.log = structlog.get_logger(f"alertcast.channels.{self.name}")

    @abstractmethod
    async def send(self, msg: Outgoing) -> Receipt:
        """Deliver ``msg`` once; return a receipt or raise a :class:`ChannelError`."""

    async def start(self) -> None:  # noqa: B027 - optional hook, deliberately empty
        """Open what the adapter keeps for its lifetime (token caches, servers)."""

    async def close(self) -> None:  # noqa: B027 - optional hook, deliberately empty
        """Release what :meth:`start` opened."""

    def send_timeout_s(self, msg: Outgoing) -> float:
        """The time one :meth:`send` of ``msg`` may take; longer for a send to many people."""
        return self.timeout_s

    async def deliver(self, msg: Outgoing) -> Receipt:
        """Call :meth:`send` with log context and the adapter's timeout; map network failures.

        Final: adapters override :meth:`send`, not this.
        """
        log = self.log.bind(delivery_id=msg.delivery_id, attempt=msg.attempt, action=msg.action)
        started = time.monotonic()
        timeout_s = self.send_timeout_s(msg)
        try:
            async with asyncio.timeout(timeout_s):
                receipt = await self.send(msg)
        except ChannelError as exc:
            log.debug("send.error", error=type(exc).__name__, reason=exc.reason, code=exc.code)
            raise
        except TimeoutError as exc:
            raise Transient(f"timed out after {timeout_s:g} s") from exc
        except aiohttp.ClientError as exc:
            detail = scrub_urls(f"{type(exc).__name__}: {exc}")
            raise Transient(f"connection error: {detail}") from exc
        log.debug(
            "send.ok", remote_id=receipt.remote_id, ms=round(1000 * (time.monotonic() - started))
        )
        return receipt
