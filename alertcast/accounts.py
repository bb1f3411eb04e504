"""Live accounts: each configured account's adapter, limits, in-flight count and health.

Health is what operators see in ``GET /v1/channels``: an account whose credentials expired is
paused (nothing is claimed for it) until they are replaced (noticed at the dispatcher's next
claim, at most ``poll_interval_s`` later) or an operator resumes it; a spent quota pauses it
until the quota resets; a run of failures and the time since its last success are shown so a
dormant or broken account is noticed before it matters. Pauses are kept in the store and
survive a restart (:mod:`alertcast.pauses`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Literal

import aiohttp

from alertcast.channels import channel_class
from alertcast.channels.base import Channel, Limits
from alertcast.config import AccountConfig, Config, ConfigError
from alertcast.ratelimit import CORRECTION, Limiter
from alertcast.secrets import Secrets
from alertcast.shared_limiter import SharedLimiter
from alertcast.slots import Slots

__all__ = ["AccountRuntime", "Accounts", "budget_problems"]


@dataclass
class Health:
    paused_for: Literal["quota", "credentials", "operator"] | None = None
    paused_reason: str | None = None
    paused_credentials: str | None = None  # fingerprint of the credentials that were rejected
    paused_until: float | None = None
    consecutive_failures: int = 0
    last_success_at: float | None = None
    last_error: str | None = None
    last_error_at: float | None = None
    delivered: int = 0
    failed: int = 0
    correction_failed: str | None = None  # "<delivery> (<incident>): why", until re-driven
    # When the flag was last set or cleared (here, or on a replica sharing the store): the
    # newest of every replica's wins (:mod:`alertcast.pauses` keeps it in the store).
    correction_failed_at: float | None = None

    def flag_correction(self, failed: str | None, at: float) -> None:
        """A correction ``failed`` here at ``at`` (which and why), or its flag cleared (None)."""
        self.correction_failed, self.correction_failed_at = failed, at

    def paused(self, now: float) -> bool:
        if self.paused_reason is None:
            return False
        if self.paused_until is not None and now >= self.paused_until:
            self.paused_reason = self.paused_until = self.paused_for = None
            return False
        return True


@dataclass
class AccountRuntime:
    config: AccountConfig
    channel: Channel
    limits: Limits
    limiter: Limiter
    inflight: int = 0
    waiting: int = 0  # claimed, not yet holding a rate-limit slot
    health: Health = field(default_factory=Health)
    credentials: Callable[[], str] = lambda: ""
    # The credentials' fingerprint as last observed (at a claim), and since when (wall-clock,
    # as the store stamps a claim): what a send claimed since then used, or newer ones.
    known: str = ""
    known_since: float = float("-inf")

    def __post_init__(self) -> None:
        self.known = self.credentials()

    @property
    def id(self) -> str:
        return self.config.id

    def observe(self, now: float) -> None:
        """Look at the credentials: replaced since last looked at, they are known from ``now``;
        an account paused for the ones rejected resumes (its sends try the new ones)."""
        current = self.credentials()
        if current != self.known:
            self.known, self.known_since = current, now
        rejected = self.health.paused_credentials
        if rejected is not None and current != rejected:
            self.lift()

    def rejected(self, reason: str, claimed_at: float) -> None:
        """The platform rejected the credentials of a send claimed at ``claimed_at``: pause
        until they are replaced. Those are the ones known at the claim, never the ones in the
        environment now, which no send may have tried yet (an operator's fix made while the
        send was on the wire). Replaced since the claim, nothing is paused: the next send
        tries the new ones, and pauses the account if they are rejected too."""
        if claimed_at >= self.known_since:
            self.pause(reason, credentials=True)
            self.health.paused_credentials = self.known

    def free(self, now: float, *, correction: str | None = None) -> int:
        """How many more may be claimed now: alerts, or updates and cancellations that take the
        action ``correction`` (they may spend its windows' reserve). Asked at every claim, it
        notices replaced credentials first (:meth:`observe`)."""
        self.observe(now)
        if not self.config.enabled or self.health.paused(now):
            return 0
        free = self.limits.concurrency - self.inflight
        if correction is None:
            room = self.limiter.room()
        else:
            room = self.limiter.room(CORRECTION, [correction])
        if room is not None:  # never claim what would wait for the rate window (and its lease)
            free = min(free, room - self.waiting)
        return max(0, free)

    def corrections_free(self, now: float) -> dict[str, int]:
        """Per action the channel takes, how many corrections taking it may be claimed now."""
        return {a: self.free(now, correction=a) for a in sorted(self.channel.capabilities)}

    def succeeded(self, now: float) -> None:
        self.health.consecutive_failures = 0
        self.health.last_success_at = now
        self.health.delivered += 1

    def errored(self, now: float, reason: str, *, final: bool) -> None:
        self.health.consecutive_failures += 1
        self.health.last_error, self.health.last_error_at = reason, now
        self.health.failed += int(final)

    def pause(
        self,
        reason: str,
        until: float | None = None,
        *,
        credentials: bool = False,
        operator: bool = False,
    ) -> None:
        """Hold the account: its credentials were rejected (until they are replaced), its
        quota is spent (until ``until``), or an operator paused it (until resumed). The
        dispatcher's pauses keep it in the store."""
        self.health.paused_reason, self.health.paused_until = reason, until
        self.health.paused_for = (
            "credentials" if credentials else "operator" if operator else "quota"
        )
        self.health.paused_credentials = self.credentials() if credentials else None

    def resume(self, at: float) -> None:
        """An operator's resume: the pause lifted, and a failed correction's flag with it (on
        every replica: the cleared flag is stored, newer than the failure); ``at``: now on the
        store's clock, which the flag's instants are compared on."""
        self.lift()
        self.health.flag_correction(None, at)

    def lift(self) -> None:
        """The pause lifted by itself (its credentials replaced): a correction that failed
        meanwhile still shows, until it is re-driven or an operator resumes the account."""
        self.health.paused_reason = self.health.paused_until = self.health.paused_for = None
        self.health.paused_credentials = None

    def quota_left(self) -> dict[str, int]:
        """The platform's daily budgets left, and each per-action budget's room in its window
        now (what a correction may still spend: Weibo's posts, comments, calls this hour)."""
        left = dict(self.channel.quota_left())
        for name, budget in sorted(type(self.channel).budgets.items()):
            room = self.limiter.room(CORRECTION, budget.actions)
            if room is not None:
                left[f"{name}_this_hour"] = room
        return left

    def describe(self, now: float) -> dict[str, Any]:
        h = self.health
        return {
            "id": self.id,
            "channel": self.config.channel,
            "enabled": self.config.enabled,
            "exercise": self.config.exercise,
            "healthy": self.config.enabled
            and not h.paused(now)
            and h.consecutive_failures < 3
            and h.correction_failed is None,
            "paused": h.paused_reason,
            "paused_until": h.paused_until,
            "inflight": self.inflight,
            "consecutive_failures": h.consecutive_failures,
            "last_success_at": h.last_success_at,
            "silent_for_s": None if h.last_success_at is None else round(now - h.last_success_at),
            "last_error": h.last_error,
            "last_error_at": h.last_error_at,
            "delivered": h.delivered,
            "failed": h.failed,
            "correction_failed": h.correction_failed,
            "quota_left": self.quota_left(),
            "limits": {
                "concurrency": self.limits.concurrency,
                "per_minute": self.limits.per_minute,
                "per_second": self.limits.per_second,
            },
        }


def _limits(cls: type[Channel], account: AccountConfig) -> Limits:
    base = cls.limits
    return Limits(
        concurrency=account.concurrency or base.concurrency,
        per_minute=account.per_minute or base.per_minute,
        per_second=account.per_second or base.per_second,
    )


def budget_problems(cls: type[Channel], account: AccountConfig) -> Iterator[tuple[str, str]]:
    """``(".budgets.<name>", message)`` for every budget the account sets that its channel
    does not have."""
    have = ", ".join(sorted(cls.budgets)) or "none"
    for name in sorted(set(account.budgets) - set(cls.budgets)):
        yield f".budgets.{name}", f"channel {cls.name} has no budget {name!r} (its budgets: {have})"


Shared = tuple[Slots, float]  # the store's slots, and the claims' lease (a send's longest wait)


def _limiter(
    cls: type[Channel], account: AccountConfig, limits: Limits, shared: Shared | None
) -> Limiter:
    """The account's windows: its rates, and the channel's budgets as the account sets them;
    counted in the store's slots when ``shared`` (an account without windows asks nothing)."""
    budgets = [
        (account.budgets.get(name, budget.per_hour), budget.actions)
        for name, budget in sorted(cls.budgets.items())
    ]
    clock = shared[0].clock if shared is not None else time.monotonic  # the store's: one clock
    rates = Limiter.per(
        per_minute=limits.per_minute, per_second=limits.per_second, budgets=budgets, clock=clock
    )
    if shared is None or not (rates.windows or rates.by_action):
        return rates
    slots, lease_s = shared
    return SharedLimiter(
        rates.windows, rates.by_action, key=account.id, slots=slots, lease_s=lease_s, clock=clock
    )


class Accounts:
    """Every configured account, built once at start-up around one shared HTTP session."""

    def __init__(
        self,
        config: Config,
        session: aiohttp.ClientSession,
        secrets: Secrets,
        *,
        slots: Slots | None = None,
    ) -> None:
        """``slots``: where rate windows and quotas are counted (the store, shared by every
        replica and kept across restarts); this process's memory when None."""
        self._by_id: dict[str, AccountRuntime] = {}
        shared = None if slots is None else (slots, config.dispatch.lease_s)
        for i, account in enumerate(config.accounts):
            cls = channel_class(account.channel)
            if problems := [(f"accounts[{i}]{k}", m) for k, m in budget_problems(cls, account)]:
                raise ConfigError(problems)
            limits = _limits(cls, account)
            options = cls.Options.model_validate(account.channel_options)
            channel = cls(account, options, session, secrets, slots=slots)
            variables = [
                v
                for k, v in sorted(account.channel_options.items())
                if k.endswith("_env") and isinstance(v, str)
            ]
            self._by_id[account.id] = AccountRuntime(
                account,
                channel,
                limits,
                _limiter(cls, account, limits, shared),
                credentials=partial(secrets.fingerprint, variables),
            )

    def get(self, account_id: str) -> AccountRuntime | None:
        return self._by_id.get(account_id)

    def __iter__(self) -> Iterator[AccountRuntime]:
        return iter(self._by_id.values())

    def free(self, now: float | None = None) -> dict[str, int]:
        now = time.time() if now is None else now
        return {a.id: a.free(now) for a in self._by_id.values()}

    def corrections_free(self, now: float) -> dict[str, dict[str, int]]:
        """Per account and action, how many corrections may be claimed now; an account with no
        rate window is left out (its corrections have the room its alerts have: ``free``)."""
        return {
            a.id: a.corrections_free(now)
            for a in self._by_id.values()
            if a.limiter.room() is not None
        }

    async def start(self) -> None:
        for runtime in self._by_id.values():
            await runtime.channel.start()
            if isinstance(runtime.limiter, SharedLimiter):
                await runtime.limiter.refresh()  # the sends before a restart still count

    async def close(self) -> None:
        for runtime in self._by_id.values():
            await runtime.channel.close()
