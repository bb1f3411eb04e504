"""Per-recipient accounts: an incident's one delivery to an account fanned out to each recipient.

An account whose channel sends one message per person (a webhook with ``per_recipient = true``)
has recipients in the store (``alertcast recipients import``). The incident's delivery to it is
one ordinary delivery row, the *parent*; when the dispatcher sends it, :class:`Bulk` takes over:

1. **Expansion**, a durable step: a chunk at a time, the recipients whose region lies in the
   incident's area (or who have none) are copied into the parent's sends, by id, and the chunk's
   last id is saved in the parent's ``progress`` (which renews the claim's lease). A chunk copied
   twice changes nothing, so ``kill -9`` at any point resumes without loss or duplicates.
2. **Sending**: the due sends are paged by recipient id and sent with the account's concurrency
   (at most the dispatcher's); outcomes are recorded in batched UPDATEs, one transaction each.
   A transient failure retries that recipient alone, on the dispatcher's backoff; the pass waits
   for retries due soon and hands the rest back to the dispatcher (the parent ``retrying``).
3. **The verdict**: the parent is delivered when every recipient is, else failed with the counts
   in its reason; the dispatcher records it as any other attempt.

Memory stays flat: a page, a bounded queue and a batch of outcomes, never the recipient list.
The live stream gets a ``recipients`` summary of a parent at most once a second and a final one
when a pass ends, never an event per recipient.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any

import structlog

from alertcast.accounts import AccountRuntime
from alertcast.channels.base import (
    AuthExpired,
    ChannelError,
    Outgoing,
    Permanent,
    QuotaExhausted,
    Receipt,
    Transient,
)
from alertcast.config import DispatchConfig
from alertcast.events import EventBus
from alertcast.fate import RetryPolicy, Skipped, decide
from alertcast.store.base import DeliveryRow, RecipientSend, SendOutcome, Store

__all__ = ["Bulk", "Deliver", "summary_event"]

log = structlog.get_logger("alertcast.bulk")

Deliver = Callable[[Outgoing], Awaitable[Receipt]]
CHUNK = 5000  # recipients copied into a delivery's sends per expansion step
PAGE = 500  # sends read per page
BATCH = 256  # outcomes per recorded batch
BATCH_S = 0.1  # ... or after this long, whichever first
SUMMARY_S = 1.0  # at most one stream summary per delivery per second
WAIT_INLINE_S = 30.0  # retries due sooner are waited for; later ones go back to the dispatcher
GONE = "no longer a recipient of the account"


@dataclass
class _Pass:
    """One attempt at a parent delivery: what it knows, counts and why it stopped."""

    runtime: AccountRuntime
    msg: Outgoing
    parent: DeliveryRow
    codes: Sequence[str]
    policy: RetryPolicy
    counts: Counter[str] = field(default_factory=Counter)
    halted: ChannelError | None = None  # the account cannot send (credentials, quota)
    lost: bool = False  # the claim's lease was lost: another worker may hold the parent
    grew: asyncio.Event = field(default_factory=asyncio.Event)  # the expansion added sends
    published_at: float = 0.0
    checkpointed_at: float = field(default_factory=time.monotonic)

    @property
    def state(self) -> dict[str, Any]:
        """The parent's progress: the expansion's cursor and whether it is complete."""
        found = self.msg.progress.setdefault("recipients", {"after": "", "expanded": False})
        assert isinstance(found, dict)
        return found

    @property
    def stopped(self) -> bool:
        return self.lost or self.halted is not None


class Bulk:
    """Sends a per-recipient account's deliveries (see the module's docstring)."""

    def __init__(
        self, store: Store, events: EventBus, config: DispatchConfig, concurrency: int
    ) -> None:
        self.store = store
        self.events = events
        self.policy = RetryPolicy(config.backoff_initial_s, config.backoff_max_s)  # the one
        self.concurrency = concurrency  # the dispatcher's, the most any account uses
        self.checkpoint_s = min(5.0, config.lease_s / 4)

    def deliver_for(self, runtime: AccountRuntime) -> Deliver:
        """How the dispatcher sends a delivery of ``runtime``'s account: to each recipient,
        when the account is per-recipient; else the adapter's own ``deliver``."""
        channel = runtime.channel
        if not channel.per_recipient(channel.options):
            return channel.deliver
        return partial(self.send, runtime)

    async def send(self, runtime: AccountRuntime, msg: Outgoing) -> Receipt:
        """One attempt at a parent: expand, send what is due, wait for retries due soon;
        the verdict as a receipt or a channel error (the dispatcher decides its fate)."""
        p = await self._open(runtime, msg)
        try:
            while True:
                await self._sweep(p)
                if p.halted is not None:
                    raise p.halted
                if p.lost:
                    raise Transient("the claim was lost; another worker carries on")
                due = await self.store.next_recipient_due(p.parent.id)
                if due is None:
                    return self._verdict(p)
                await self._wait_or_hand_back(p, due)
        finally:
            self._publish(p, final=True)

    # -- a pass -----------------------------------------------------------------------------
    async def _open(self, runtime: AccountRuntime, msg: Outgoing) -> _Pass:
        parent = await self.store.get_delivery(msg.delivery_id)
        incident = await self.store.get_incident(msg.incident_id)
        if parent is None or incident is None:
            raise Permanent(f"delivery {msg.delivery_id} is not stored")
        parent = replace(parent, attempts=msg.attempt)
        cap = runtime.config.backoff_max_s
        policy = self.policy if cap is None else replace(self.policy, max_s=cap)
        area = incident.body.get("area") or {}
        codes = [str(c) for c in area.get("codes") or ()]
        p = _Pass(runtime, msg, parent, codes, policy)
        p.counts.update(await self.store.recipient_summary(parent.id))
        return p

    async def _sweep(self, p: _Pass) -> None:
        """Send every send due now once: a producer pages them into a bounded queue (expanding
        as it goes), workers send, a recorder writes their outcomes in batches."""
        width = max(1, min(p.runtime.limits.concurrency, self.concurrency))
        queue: asyncio.Queue[RecipientSend | None] = asyncio.Queue(2 * width)
        recorder = _Recorder(self, p)
        async with asyncio.TaskGroup() as tg:
            if not p.state["expanded"]:
                tg.create_task(self._expand_all(p))
            for _ in range(width):
                tg.create_task(self._work(p, queue, recorder))
            await self._produce(p, queue)
            for _ in range(width):  # once everything due is queued: each worker ends
                await queue.put(None)
        await recorder.flush()

    async def _produce(self, p: _Pass, queue: asyncio.Queue[RecipientSend | None]) -> None:
        after = ""
        while not p.stopped:
            expanded = p.state["expanded"]  # before the read: then the read sees every send
            page = await self.store.due_recipients(
                p.parent.id, p.parent.account, now=time.time(), after=after, limit=PAGE
            )
            if not page:
                if expanded or p.stopped:
                    return
                await p.grew.wait()  # the expansion, ahead of us, adds more
                p.grew.clear()
                continue
            for row in page:
                await queue.put(row)
            after = page[-1].recipient_id

    async def _expand_all(self, p: _Pass) -> None:
        """Expand to the end (ahead of the sending, which pages what is there)."""
        try:
            while not p.state["expanded"] and not p.stopped:
                await self._expand(p)
                p.grew.set()
        finally:
            p.grew.set()

    async def _expand(self, p: _Pass) -> None:
        """One durable expansion step: a chunk of sends, then the cursor saved after it."""
        state = p.state
        last, added = await self.store.expand_recipients(
            p.parent.id,
            p.parent.account,
            p.codes,
            after=str(state["after"]),
            limit=CHUNK,
            now=time.time(),
        )
        if last is None:
            state["expanded"] = True
        else:
            state["after"] = last
        p.counts["pending"] += added
        await self.checkpoint(p)

    async def checkpoint(self, p: _Pass) -> None:
        """Save the parent's progress and renew its lease; a lost claim stops the pass."""
        p.checkpointed_at = time.monotonic()
        if p.msg.checkpoint is not None and not await p.msg.checkpoint():
            p.lost = True

    async def _work(
        self, p: _Pass, queue: asyncio.Queue[RecipientSend | None], recorder: _Recorder
    ) -> None:
        while (row := await queue.get()) is not None:
            if p.stopped:
                continue  # drain: what is not sent stays due
            outcome = await self._one(p, row)
            if outcome is not None:
                await recorder.add(row, outcome)

    async def _one(self, p: _Pass, row: RecipientSend) -> SendOutcome | None:
        """Send to one recipient; its outcome (None: the account cannot send, nothing noted)."""
        attempts = row.attempts + 1
        if row.data is None:
            return SendOutcome(row.recipient_id, "failed", attempts, last_error=GONE)
        result = await self._attempt(p, row, attempts)
        if isinstance(result, Receipt):  # the common case, without building a row to decide on
            return SendOutcome(row.recipient_id, "delivered", attempts, None, result.http_status)
        if isinstance(result, AuthExpired | QuotaExhausted):
            p.halted = result
            return None
        reason = result.reason if isinstance(result, ChannelError) else None
        outcome = decide(
            replace(p.parent, attempts=attempts), result, reason, p.policy, time.time()
        )
        return SendOutcome(
            row.recipient_id,
            outcome.state.value,
            attempts,
            outcome.next_attempt_at,
            result.http_status,
            outcome.last_error,
        )

    async def _attempt(self, p: _Pass, row: RecipientSend, attempts: int) -> Receipt | ChannelError:
        msg = p.msg
        out = Outgoing(
            delivery_id=msg.delivery_id,
            incident_id=msg.incident_id,
            idempotency_key=f"{msg.idempotency_key}:{row.recipient_id}",
            payload=msg.payload,
            action=msg.action,
            target_remote_id=msg.target_remote_id,
            attempt=attempts,
            recipient={"id": row.recipient_id, "region": row.region, **(row.data or {})},
        )
        try:
            return await p.runtime.channel.deliver(out)
        except ChannelError as exc:
            return exc
        except Exception as exc:  # an adapter bug must not lose the recipient
            log.exception("bulk.adapter_bug", recipient=row.recipient_id)
            return Transient(f"internal error in adapter: {type(exc).__name__}")

    async def _wait_or_hand_back(self, p: _Pass, due: float) -> None:
        """Wait for retries due soon (renewing the lease); hand later ones back as a
        transient error with their time. On the parent's last attempt, or past its expiry,
        the rest are given up instead (the parent's verdict then counts them)."""
        wait_s = max(0.0, due - time.time())
        last = p.parent.attempts >= p.parent.max_attempts
        late = p.parent.expires_at is not None and due >= p.parent.expires_at
        if wait_s > WAIT_INLINE_S and (last or late):
            why = "too late: past the delivery's expiry" if late else "the delivery gave up"
            given_up = await self.store.give_up_recipients(p.parent.id, why, now=time.time())
            p.counts["retrying"] -= given_up
            p.counts["dead"] += given_up
            return
        if wait_s > WAIT_INLINE_S:
            raise Transient(_tally(p.counts), retry_after=wait_s)
        while (left := due - time.time()) > 0:
            await asyncio.sleep(min(left, self.checkpoint_s))
            await self.checkpoint(p)
            if p.lost:
                return

    def _verdict(self, p: _Pass) -> Receipt:
        counts = +p.counts
        total = sum(counts.values())
        if total == 0:
            raise Skipped("no recipient of the account is in the incident's area")
        if counts["delivered"] == total:
            return Receipt(detail={"recipients": dict(counts)})
        raise Permanent(_tally(counts))

    def _publish(self, p: _Pass, *, final: bool = False) -> None:
        now = time.monotonic()
        if not final and now - p.published_at < SUMMARY_S:
            return
        p.published_at = now
        self.events.publish(summary_event(p.parent, p.counts, final=final))


class _Recorder:
    """Outcomes of one sweep, written in batches (one transaction each)."""

    def __init__(self, bulk: Bulk, p: _Pass) -> None:
        self.bulk, self.p = bulk, p
        self.batch: list[SendOutcome] = []
        self.since = time.monotonic()
        self.lock = asyncio.Lock()

    async def add(self, row: RecipientSend, outcome: SendOutcome) -> None:
        self.batch.append(outcome)
        self.p.counts[row.state] -= 1
        self.p.counts[outcome.state] += 1
        if len(self.batch) >= BATCH or time.monotonic() - self.since >= BATCH_S:
            await self.flush()

    async def flush(self) -> None:
        async with self.lock:
            batch, self.batch, self.since = self.batch, [], time.monotonic()
            if batch:
                await self.bulk.store.record_recipients(self.p.parent.id, batch, now=time.time())
            if time.monotonic() - self.p.checkpointed_at >= self.bulk.checkpoint_s:
                await self.bulk.checkpoint(self.p)
        self.bulk._publish(self.p)


def _tally(counts: Counter[str]) -> str:
    """``1998 of 2000 recipients delivered; 1 failed, 1 dead`` (states with none left out)."""
    counts = +counts
    total = sum(counts.values())
    rest = ", ".join(f"{n} {state}" for state, n in sorted(counts.items()) if state != "delivered")
    head = f"{counts['delivered']} of {total} recipients delivered"
    return f"{head}; {rest}" if rest else head


def summary_event(d: DeliveryRow, counts: Counter[str], *, final: bool) -> dict[str, Any]:
    """A ``recipients`` stream event: where a parent's sends stand, by state."""
    shown = {state: n for state, n in sorted(counts.items()) if n > 0}
    return {
        "type": "recipients",
        "id": d.id,
        "incident_id": d.incident_id,
        "account": d.account,
        "channel": d.channel,
        "recipients": shown,
        "total": sum(shown.values()),
        "final": final,
    }
