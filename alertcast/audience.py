"""Who a ``custom`` delivery addresses: the followers inside the platform's interaction window.

A WeChat subscription account has one mass send a day; once the alert spent it, a correction
reaches followers by customer-service messages, each admitted only inside the follower's
interaction window (facts §2.6). The WeChat callback notes every follower's message, click,
follow and scan in the store; here, at send time, a ``custom`` delivery is addressed to the
followers the store has inside a window with sends left (``Outgoing.recipients``, at most
:data:`MAX_RECIPIENTS`), and what it sent is noted back, so later corrections respect the
5-in-48-hours and 3-in-a-minute allowances. Every other delivery passes through untouched.

What an attempt sent is read from the adapter's cursor (``Outgoing.progress``: ``after`` and
the ``ahead`` ranges over the recipients' sorted ids, see ``alertcast.channels._fanout``): the
recipients it marks done now and did not before the attempt. They are noted before each
checkpoint stores the cursor, and once more when the attempt ends, so a crash may let a
follower be counted twice (one allowance lost), never a send go uncounted once its cursor is
stored. A refusal is done in the cursor too and is counted like a send: it can only lower a
follower's allowance, never raise it.

A per-recipient account (a webhook with ``per_recipient = true``) addresses its recipients in
the store instead: :meth:`Audience.deliver_for` hands its deliveries to
:class:`alertcast.bulk.Bulk`.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any

import structlog

from alertcast.accounts import AccountRuntime
from alertcast.bulk import Bulk
from alertcast.channels.base import Outgoing, Receipt, Transient
from alertcast.config import DEFAULT_CONCURRENCY, DispatchConfig
from alertcast.events import EventBus
from alertcast.store.base import Store

__all__ = ["MAX_RECIPIENTS", "Audience", "done"]

MAX_RECIPIENTS = 100_000  # one delivery's followers; the platform takes 500,000 calls a day
PAGE = 1_000

log = structlog.get_logger("alertcast.audience")

Deliver = Callable[[Outgoing], Awaitable[Receipt]]
Checkpoint = Callable[[], Awaitable[bool]]


class Audience:
    """Addresses ``custom`` sends from the store's interaction windows and notes their sends."""

    def __init__(
        self,
        store: Store,
        events: EventBus | None = None,
        config: DispatchConfig | None = None,
        *,
        concurrency: int = DEFAULT_CONCURRENCY,
        most: int = MAX_RECIPIENTS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.most = most
        self.clock = clock
        self.bulk = (
            None if events is None or config is None else Bulk(store, events, config, concurrency)
        )

    def deliver_for(self, runtime: AccountRuntime) -> Deliver:
        """How a delivery of ``runtime``'s account is sent: to each of its recipients when it
        is per-recipient (:mod:`alertcast.bulk`), else by the adapter's own ``deliver``."""
        if self.bulk is None:
            return runtime.channel.deliver
        return self.bulk.deliver_for(runtime)

    async def send(self, account: str, msg: Outgoing, deliver: Deliver) -> Receipt:
        """``deliver(msg)``; a ``custom`` one addressed first, and its sends noted."""
        if msg.action != "custom":
            return await deliver(msg)
        recipients = await self.inside(account)
        sends = _Sends(self.store, account, recipients, msg.progress, self.clock)
        addressed = replace(msg, recipients=recipients, checkpoint=sends.before(msg.checkpoint))
        try:
            return await deliver(addressed)
        finally:
            await sends.note_quietly()

    async def inside(self, account: str) -> list[str]:
        """The followers of ``account`` inside a window with sends left now, by openid;
        :class:`Transient` when the store cannot say."""
        now, found = self.clock(), list[str]()
        try:
            while len(found) < self.most:
                after = found[-1] if found else ""
                limit = min(PAGE, self.most - len(found))
                page = await self.store.window(account, now=now, limit=limit, after=after)
                found += [w.openid for w in page]
                if len(page) < limit:
                    break
        except Exception as exc:
            why = f"could not read who is inside the window: {type(exc).__name__}"
            raise Transient(why) from exc
        return found


class _Sends:
    """One attempt's sends, noted in the store as the adapter's cursor marks them done."""

    def __init__(
        self,
        store: Store,
        account: str,
        recipients: Sequence[str],
        progress: Mapping[str, Any],
        clock: Callable[[], float],
    ) -> None:
        self.store, self.account, self.clock = store, account, clock
        self.recipients, self.progress = recipients, progress
        self.noted = done(progress, recipients)  # done before this attempt: counted then

    async def note(self) -> None:
        fresh = sorted(done(self.progress, self.recipients) - self.noted)
        if fresh:
            await self.store.note_custom_sent(self.account, fresh, at=self.clock())
            self.noted.update(fresh)

    async def note_quietly(self) -> None:
        """:meth:`note`, logging a failure: the attempt's outcome must be recorded anyway."""
        try:
            await self.note()
        except Exception as exc:
            log.warning("audience.sends_not_noted", account=self.account, error=type(exc).__name__)

    def before(self, checkpoint: Checkpoint | None) -> Checkpoint | None:
        """``checkpoint``, noting the sends so far first (a failure stops the send)."""
        if checkpoint is None:
            return None

        async def noted_then_saved() -> bool:
            await self.note()
            return await checkpoint()

        return noted_then_saved


def done(progress: Mapping[str, Any], ids: Iterable[str]) -> set[str]:
    """The ``ids`` a fan-out cursor in ``progress`` marks done (see ``_fanout``)."""
    after = progress.get("after")
    ahead = [(str(lo), str(hi)) for lo, hi in progress.get("ahead") or ()]
    return {
        i
        for i in ids
        if (after is not None and i <= after) or any(lo <= i <= hi for lo, hi in ahead)
    }
