"""The channel protocol: one platform's wire protocol behind one coroutine.

An adapter subclasses :class:`Channel`, declares its limits and capabilities as class variables
and its per-account options as a pydantic model, and implements :meth:`Channel.send`. It returns a
:class:`Receipt` or raises one of the typed errors below; it never retries by itself and never
returns a boolean that hides why. The dispatcher alone decides what happens next.

The formats a channel takes and the most each payload field may hold are class data too
(:attr:`Channel.formats`): the renderer fits its texts into them, and :meth:`Channel.deliver`
refuses a payload over them before :meth:`Channel.send` sees it. An adapter checks what it is
given and refuses it with the reason; it never rewrites it.
"""

from __future__ import annotations

import asyncio
import re
import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import aiohttp
from pydantic import BaseModel, ConfigDict

from alertcast.lengths import UNIT_NAMES, Limit
from alertcast.logs import HotLogger
from alertcast.slots import MemorySlots, Slots

if TYPE_CHECKING:
    from alertcast.config import AccountConfig
    from alertcast.secrets import Secrets

__all__ = [
    "Action",
    "AuthExpired",
    "Budget",
    "Channel",
    "ChannelError",
    "FieldLimits",
    "Limits",
    "NoOptions",
    "Outgoing",
    "Permanent",
    "QuotaExhausted",
    "RateLimited",
    "Receipt",
    "RecipientCheck",
    "Transient",
    "field_values",
]

FieldLimits = Mapping[str, Limit]
"""Payload field -> the most it may hold. A field is a dotted path into the payload, ``*``
standing for every key of a mapping (``template_data.*.value``)."""
RecipientCheck = Callable[[str], str]
"""A recipient column's check (:meth:`Channel.recipient_columns`): the value as stored, or
:class:`ValueError` saying why."""
Action = Literal["post", "reply", "repost", "edit", "delete", "custom"]
"""``custom``: a message to each person in ``Outgoing.recipients`` (WeChat customer-service
messages to the followers inside the interaction window)."""


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
    # The people a ``custom`` send addresses, resolved by the dispatcher at send time (the
    # followers who wrote to the account inside the platform's window); None for other actions.
    recipients: Sequence[str] | None = None
    # The one recipient of a per-recipient account's send (alertcast.bulk): ``id``, ``region``
    # and the channel's own columns of the account's recipients file; None for other accounts.
    recipient: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Limits:
    """Per-account sending limits; ``None`` means the platform sets none we know of."""

    concurrency: int = 4
    per_minute: float | None = None
    per_second: float | None = None


@dataclass(frozen=True, slots=True)
class Budget:
    """A platform's own hourly budget per user: at most ``per_hour`` calls of ``actions`` in
    any hour (no actions: every call counts, a total). Several actions listed in one budget
    spend it together."""

    per_hour: int
    actions: frozenset[Action] = frozenset()


def field_values(payload: Mapping[str, Any], path: str) -> list[tuple[str, object]]:
    """``(where, value)`` for every value of ``payload`` that the dotted ``path`` names."""
    found: list[tuple[str, object]] = [("", payload)]
    for part in path.split("."):
        deeper: list[tuple[str, object]] = []
        for where, node in found:
            if isinstance(node, Mapping):
                keys = list(node) if part == "*" else [part] if part in node else []
                deeper += [(f"{where}.{key}" if where else str(key), node[key]) for key in keys]
        found = deeper
    return found


class NoOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Channel(ABC):
    """Base of every adapter. Subclasses implement :meth:`send` and nothing of the bookkeeping."""

    name: ClassVar[str]
    Options: ClassVar[type[BaseModel]] = NoOptions
    default_format: ClassVar[str] = "text"
    capabilities: ClassVar[frozenset[Action]] = frozenset({"post"})
    limits: ClassVar[Limits] = Limits()
    budgets: ClassVar[Mapping[str, Budget]] = {}
    """The platform's hourly budgets by name, where it has its own per action (an account
    overrides each by name in ``budgets``); on top of :attr:`limits`."""
    timeout_s: ClassVar[float] = 10.0
    times_itself: ClassVar[bool] = False
    """The adapter's :meth:`send` bounds itself by :meth:`send_timeout_s` (its HTTP client's
    own timeout, raising :class:`TimeoutError`); the wrapper then sets no timer of its own."""
    formats: ClassVar[Mapping[str, FieldLimits] | None] = None
    """Every format the channel takes, with the most each payload field of it may hold.
    ``None``: any format, and no limits of its own (console, file, webhook)."""
    keyword_option: ClassVar[str | None] = None
    """The account option naming a keyword every text must contain (robots in keyword mode)."""
    link_domain_option: ClassVar[str | None] = None
    """The account option holding a URL on the domain every text must link to (Weibo)."""

    def __init__(
        self,
        account: AccountConfig,
        options: BaseModel,
        session: aiohttp.ClientSession,
        secrets: Secrets,
        *,
        slots: Slots | None = None,
    ) -> None:
        self.account = account
        self.options = options
        self.session = session
        self.secrets = secrets
        self.slots: Slots = MemorySlots() if slots is None else slots  # quotas' shared counts
        self.log = HotLogger(f"alertcast.channels.{self.name}")
        self._checked: Mapping[str, Any] | None = None  # the last payload :meth:`check` passed

    @abstractmethod
    async def send(self, msg: Outgoing) -> Receipt:
        """Deliver ``msg`` once; return a receipt or raise a :class:`ChannelError`."""

    @classmethod
    def takes(cls, fmt: str) -> bool:
        """True when the channel takes payloads of format ``fmt``."""
        return cls.formats is None or fmt in cls.formats

    @classmethod
    def field_limits(cls, fmt: str) -> FieldLimits:
        """The most each payload field of format ``fmt`` may hold here (``{}``: no limits)."""
        return (cls.formats or {}).get(fmt, {})

    @classmethod
    def check(cls, payload: Mapping[str, Any]) -> None:
        """Refuse a payload of a format the channel does not take, or with a field over its
        limit: :class:`Permanent`, naming the field and the limit. A payload without a
        ``format`` is taken as the channel's default format."""
        fmt = str(payload.get("format") or cls.default_format)
        if not cls.takes(fmt):
            known = ", ".join(sorted(cls.formats or {}))
            raise Permanent(f"{cls.name} takes the formats {known}; not {fmt!r}")
        for path, limit in cls.field_limits(fmt).items():
            for where, value in field_values(payload, path):
                cls.check_length(where, value, limit)

    @classmethod
    def check_length(cls, field: str, value: object, limit: Limit) -> None:
        """Refuse (:class:`Permanent`) a ``value`` of ``field`` over ``limit``."""
        used = limit.size(value)
        if used > limit.most:
            raise Permanent(
                f"{field} is {used} {UNIT_NAMES[limit.unit]}; {cls.name} takes at most {limit}"
            )

    async def start(self) -> None:  # noqa: B027 - optional hook, deliberately empty
        """Open what the adapter keeps for its lifetime (token caches, servers)."""

    async def close(self) -> None:  # noqa: B027 - optional hook, deliberately empty
        """Release what :meth:`start` opened."""

    @classmethod
    def per_recipient(cls, options: BaseModel) -> bool:
        """Whether an account with ``options`` sends each incident to each of its recipients
        in the store, one :meth:`send` per recipient (:mod:`alertcast.bulk`); no by default."""
        return False

    @classmethod
    def recipient_columns(cls, options: BaseModel) -> Mapping[str, RecipientCheck]:
        """The columns a per-recipient account with ``options`` needs in its recipients file
        (``alertcast recipients import``), each with its check: the value as stored, or
        :class:`ValueError` saying why (a number or an address masked as the channel masks it).
        The import refuses a header without them and a line whose value fails, by line and
        column; other columns are kept as they are. None by default: any columns."""
        return {}

    def send_timeout_s(self, msg: Outgoing) -> float:
        """The time one :meth:`send` of ``msg`` may take; longer for a send to many people."""
        return self.timeout_s

    def quota_left(self) -> dict[str, int]:
        """What is left of the platform's daily budgets, by name, as counted here (none by
        default; rate windows are the account's, see :meth:`AccountRuntime.describe`)."""
        return {}

    def spends_quota(self, action: str) -> bool:
        """Whether ``action`` spends the budget whose exhaustion pauses the account (by
        default every action does: a spent account sends nothing until it returns)."""
        return True

    async def deliver(self, msg: Outgoing) -> Receipt:
        """:meth:`check` the payload, then call :meth:`send` with log context and the adapter's
        timeout; map network failures. Every error's reason is scrubbed of the account's
        secrets and of credentials the adapter obtained or put in a URL, before it is logged
        or raised.

        Final: adapters override :meth:`send`, not this.
        """
        started = time.monotonic()
        try:
            receipt = await self._checked_send(msg)
        except ChannelError as exc:
            exc.reason = self.secrets.redact(exc.reason)
            exc.args = (exc.reason,)
            self.log.debug(
                "send.error",
                **_sent(msg),
                error=type(exc).__name__,
                reason=exc.reason,
                code=exc.code,
            )
            raise
        self.log.debug(
            "send.ok",
            **_sent(msg),
            remote_id=receipt.remote_id,
            ms=round(1000 * (time.monotonic() - started)),
        )
        return receipt

    async def _checked_send(self, msg: Outgoing) -> Receipt:
        timeout_s = self.send_timeout_s(msg)
        try:
            if msg.action != "delete" and msg.payload is not self._checked:  # no text to delete
                self.check(msg.payload)
                self._checked = msg.payload  # kept, so its id is not reused while compared
            if self.times_itself:
                return await self.send(msg)
            async with asyncio.timeout(timeout_s):
                return await self.send(msg)
        except TimeoutError as exc:
            raise Transient(f"timed out after {timeout_s:g} s") from exc
        except aiohttp.ClientError as exc:
            detail = scrub_urls(f"{type(exc).__name__}: {exc}")
            raise Transient(f"connection error: {detail}") from exc


def _sent(msg: Outgoing) -> dict[str, Any]:
    """What a send's log line says of it (the dispatcher binds the incident and account)."""
    return {"delivery_id": msg.delivery_id, "attempt": msg.attempt, "action": msg.action}
