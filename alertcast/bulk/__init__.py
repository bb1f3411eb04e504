"""Per-recipient accounts: an incident's one delivery to an account fanned out to each recipient.

An account whose channel sends one message per person (a webhook with ``per_recipient = true``)
has recipients in the store (``alertcast recipients import``). The incident's delivery to it is
one ordinary delivery row, the *parent*; when the dispatcher sends it, :class:`Bulk` takes over:

1. **Expansion**, a durable step: a chunk at a time, the recipients whose region lies in the
   incident's area (or who have none) are copied into the parent's sends, by id, each chunk a
   *part* of them (a range of recipient ids), in one transaction; the parts are the cursor, so
   ``kill -9`` at any point resumes without loss or duplicates.
2. **Sending, in parts any replica may take**: the worker holding the parent leases parts one
   after another (``FOR UPDATE SKIP LOCKED`` on PostgreSQL) and sends each part's due sends with
   the account's concurrency (at most the dispatcher's); every other replica with room does the
   same for the parents it does not hold (:meth:`Bulk.assist`). Outcomes are recorded in
   batched UPDATEs, each batch marking done the parts it completes; a part whose holder died is
   taken again once its lease runs out. The parent's holder then waits for the others' parts.
3. **Retries and the verdict**, by the parent's holder alone: a transient failure retries that
   recipient alone, on the dispatcher's backoff; the pass waits for retries due soon and hands
   the rest back to the dispatcher (the parent ``retrying``). The parent is delivered when every
   recipient is, else failed with the counts in its reason; the dispatcher records it as any
   other attempt, once.

Memory stays flat: a page, a bounded queue and a batch of outcomes, never the recipient list.
The live stream gets a ``recipients`` summary of a parent at most once a second and a final one
when a pass ends, never an event per recipient (from its holder: with helpers elsewhere, the
counts between two are re-read every few seconds, so they trail a little).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import replace
from functools import partial
from typing import Any

import structlog

from alertcast.accounts import AccountRuntime
from alertcast.bulk.lost import LostParts
from alertcast.bulk.redrive import SETTLED, requeue_refused
from alertcast.bulk.sweep import Part, Pass, Source, Sweep, tally
from alertcast.capacity import Capacity
from alertcast.channels.base import Outgoing, Permanent, Receipt, Transient
from alertcast.config import DispatchConfig
from alertcast.events import EventBus
from alertcast.fate import RetryPolicy, Skipped
from alertcast.store.base import DeliveryRow, RecipientPart, Store

__all__ = ["Bulk", "Deliver", "HandedBack", "summary_event"]

log = structlog.get_logger("alertcast.bulk")

Deliver = Callable[[Outgoing], Awaitable[Receipt]]
CHUNK = 5000  # recipients copied into a delivery's sends per expansion step: one part
SUMMARY_S = 1.0  # at most one stream summary per delivery per second
WAIT_INLINE_S = 30.0  # retries due sooner are waited for; later ones go back to the dispatcher
OTHERS_S = 0.25  # how often the parent's holder looks whether the others' parts are done


class HandedBack(Exception):
    """The pass stopped before its verdict for a reason that is no failure of the attempt (its
    account paused, a correction going first): the dispatcher gives the claim back uncounted,
    with ``reason`` shown on the parent and its ``progress`` kept; the rest stay due."""

    def __init__(self, reason: str, progress: dict[str, Any]) -> None:
        super().__init__(reason)
        self.reason, self.progress = reason, progress


class Bulk:
    """Sends a per-recipient account's deliveries (see the module's docstring)."""

    def __init__(
        self, store: Store, events: EventBus, config: DispatchConfig, concurrency: int
    ) -> None:
        self.store = store
        self.events = events
        self.policy = RetryPolicy(config.backoff_initial_s, config.backoff_max_s)  # the one
        self.concurrency = concurrency  # the dispatcher's, the most any account uses
        self.lease_s = config.lease_s
        self.poll_s = config.poll_interval_s
        self.keep_s = min(5.0, config.lease_s / 4)
        self.worker = f"b-{uuid.uuid4().hex[:12]}"  # who leases parts here
        self.holding: set[str] = set()  # parents this replica holds (it helps with them already)
        self.lost = LostParts(store, self.worker)  # the parts held, and lost takes' parts

    def deliver_for(self, runtime: AccountRuntime) -> Deliver:
        """How the dispatcher sends a delivery of ``runtime``'s account: to each recipient,
        when the account is per-recipient; else the adapter's own ``deliver``."""
        channel = runtime.channel
        if not channel.per_recipient(channel.options):
            return channel.deliver
        return partial(self.send, runtime)

    # -- the parent's holder ------------------------------------------------------------------
    async def send(self, runtime: AccountRuntime, msg: Outgoing) -> Receipt:
        """One attempt at a parent: expand, send the parts (with the helpers), then what is
        due anywhere, wait for retries due soon; the verdict as a receipt or a channel error
        (the dispatcher decides its fate)."""
        p = await self._open(runtime, msg)
        self.holding.add(p.parent.id)
        try:
            while True:
                await self._sweep(p, self._parts(p), expand=not p.state["expanded"])
                if not p.stopped:  # retries due, and sends a part given up left
                    await self._sweep(p, _whole())
                if p.stopped:
                    await p.recount(self.store)
                if p.halted is not None:
                    raise p.halted
                if p.paused is not None:  # the rest stay due, sent once it is resumed
                    raise HandedBack(f"account paused: {p.paused}", p.msg.progress)
                if p.making_way:  # the rest stay due, sent after the correction
                    raise HandedBack("handed back: a correction goes first", p.msg.progress)
                if p.lost:
                    raise Transient("the claim was lost; another worker carries on")
                due = await self.store.next_recipient_due(p.parent.id)
                if due is None:
                    return await self._verdict(p)
                await self._wait_or_hand_back(p, due)
        finally:
            if p.parent.attempts >= p.parent.max_attempts:
                p.state[SETTLED] = True  # its last attempt: settled whatever it raised
            self.holding.discard(p.parent.id)
            self._publish(p, final=True)

    async def _open(self, runtime: AccountRuntime, msg: Outgoing) -> Pass:
        parent = await self.store.get_delivery(msg.delivery_id)
        incident = await self.store.get_incident(msg.incident_id)
        if parent is None or incident is None:
            raise Permanent(f"delivery {msg.delivery_id} is not stored")
        parent = replace(parent, attempts=msg.attempt)
        area = incident.body.get("area") or {}
        codes = [str(c) for c in area.get("codes") or ()]
        p = Pass(runtime, msg, parent, self._policy(runtime), self.worker, codes=codes)
        await self.store.unstart_recipients(parent.id, now=time.time())  # a pass died with them
        p.counts.update(await self.store.recipient_summary(parent.id))
        correcting = incident.msg_type in ("update", "cancel")  # who the original reached
        if correcting and parent.target_delivery_id is not None and "of" not in p.state:
            first = incident.msg_type == "update"
            p.state.update(of=parent.target_delivery_id, first=first, audience="")
        how = {"action": msg.action, "target": msg.target_remote_id}
        if any(p.state.get(k) != v for k, v in how.items()):  # how the helpers send it
            p.state.update(how)
            await self._checkpoint(p)
        if p.state.pop(SETTLED, None):  # re-driven by an operator: the refused sends again
            await requeue_refused(self.store, parent, worker=self.worker, now=time.time())
            p.counts = Counter(await self.store.recipient_summary(parent.id))
            await self._checkpoint(p)
        return p

    async def take_part(self, p: Pass) -> Part | None:
        """A part of the pass's parent that nobody holds, leased to its worker, if any (a
        take whose answer is lost is given back later: :class:`LostParts`)."""
        take = partial(
            self.store.take_recipient_part,
            p.parent.id,
            worker=p.worker,
            now=time.time(),
            lease_s=self.lease_s,
        )
        got = await self.lost.take(take)
        return None if got is None else Part(got.after, got.last)

    def _parts(self, p: Pass) -> Source:
        """The parent's parts for its holder: any nobody holds, while the expansion adds
        them; then, until the others' are done, none (or theirs, once their lease ends)."""

        async def next_part(sweep: Sweep) -> Part | None:
            while not p.stopped:
                if (part := await self.take_part(p)) is not None:
                    return part
                if not p.state["expanded"]:
                    await p.grew.wait()  # the expansion, ahead of us, adds more
                    p.grew.clear()
                    continue
                await sweep.flush()  # our own parts finished, marked done
                if await self.store.open_recipient_parts(p.parent.id) == 0:
                    return None
                await asyncio.sleep(OTHERS_S)
            return None

        return next_part

    async def _expand_all(self, p: Pass) -> None:
        """Expand to the end (ahead of the sending, which takes the parts there are): a
        correction's audience first, then (an alert, an update) the recipients in the area."""
        try:
            await self._copy_audience(p)
            while not p.state["expanded"] and not p.stopped:
                last, added = await self.store.expand_recipients(
                    p.parent.id, p.parent.account, p.codes, limit=CHUNK, now=time.time()
                )
                p.counts["pending"] += added
                if last is None:
                    p.state["expanded"] = True
                    await self._checkpoint(p)
                p.grew.set()
        finally:
            p.grew.set()

    async def _copy_audience(self, p: Pass) -> None:
        """A correction's audience, copied from who its original's family reached (each with
        the remote id to reply to), by chunk on a cursor of its own; a cancellation has no
        other (an update goes on by area: the recipients it adds, never one twice)."""
        original = p.state.get("of")
        while original is not None and p.state["audience"] is not None and not p.stopped:
            last, added = await self.store.expand_correction(
                p.parent.id,
                str(original),
                p.parent.account,
                first=bool(p.state["first"]),
                after=str(p.state["audience"]),
                limit=CHUNK,
                now=time.time(),
            )
            p.counts["pending"] += added
            p.state["audience"] = last
            if last is None and not p.state["first"]:
                p.state["expanded"] = True
            await self._checkpoint(p)
            p.grew.set()

    async def _checkpoint(self, p: Pass) -> None:
        """Save the parent's progress and renew its lease; a lost claim stops the pass."""
        if p.msg.checkpoint is not None and not await p.msg.checkpoint():
            p.lost = True

    async def _wait_or_hand_back(self, p: Pass, due: float) -> None:
        """Wait for retries due soon (renewing the lease); hand later ones back as a
        transient error with their time. On the parent's last attempt, or past its expiry,
        the rest are given up instead (the parent's verdict then counts them)."""
        wait_s = max(0.0, due - time.time())
        last = p.parent.attempts >= p.parent.max_attempts
        late = p.parent.expires_at is not None and due >= p.parent.expires_at
        if wait_s > WAIT_INLINE_S and (last or late):
            why = "too late: past the delivery's expiry" if late else "the delivery gave up"
            await self.store.give_up_recipients(p.parent.id, why, now=time.time())
            return
        if wait_s > WAIT_INLINE_S:
            await p.recount(self.store)
            raise Transient(tally(p.counts), retry_after=wait_s)
        while (left := due - time.time()) > 0:
            await asyncio.sleep(min(left, self.keep_s))
            await self._checkpoint(p)
            if p.lost:
                return

    async def _verdict(self, p: Pass) -> Receipt:
        await p.recount(self.store, exact=True)
        counts = +p.counts
        total = sum(counts.values())
        if total == 0:
            raise Skipped("no recipient of the account is in the incident's area")
        withdrawn = counts["skipped"] if _cancels(p) else 0  # saw no alert (NEVER_REACHED)
        if withdrawn == total:
            raise Skipped(f"none of its {total} recipients got the message it cancels")
        if counts["delivered"] == total - withdrawn:
            return Receipt(detail={"recipients": dict(counts)})
        p.state[SETTLED] = True  # saved with the verdict: a re-drive sends the refused again
        raise Permanent(tally(counts))

    # -- a replica helping with the parents others hold ----------------------------------------
    async def assist(self, capacity: Capacity, stopping: Callable[[], bool]) -> None:
        """Until ``stopping``: while the dispatcher has room, take parts of the deliveries of
        per-recipient accounts other workers hold and send them (the parent's verdict stays
        its holder's). Supervised here: a failure is logged and the loop goes on."""
        while not stopping():
            try:
                helped = await self._help(capacity, stopping)
            except Exception as exc:  # the store away, say: try again at the next poll
                log.warning("bulk.assist_failed", error=f"{type(exc).__name__}: {exc}"[:300])
                helped = False
            if not helped:
                await asyncio.sleep(self.poll_s)

    async def _help(self, capacity: Capacity, stopping: Callable[[], bool]) -> bool:
        now = time.time()
        accounts = [
            r.id
            for r in capacity.accounts
            if r.channel.per_recipient(r.channel.options) and r.free(now) > 0
        ]
        if capacity.room <= 0 or not accounts:
            return False
        take = partial(
            self.store.take_any_recipient_part,
            accounts=accounts,
            skip=sorted(self.holding),
            worker=self.worker,
            now=now,
            lease_s=self.lease_s,
        )
        if (got := await self.lost.take(take)) is None:
            return False
        try:
            return await self._help_with(capacity, got, stopping)
        finally:
            self.lost.let_go(got.delivery_id, [got.after])

    async def _help_with(
        self, capacity: Capacity, got: RecipientPart, stopping: Callable[[], bool]
    ) -> bool:
        parent = await self.store.get_delivery(got.delivery_id)
        runtime = None if parent is None else capacity.accounts.get(parent.account)
        if parent is None or runtime is None or "action" not in _state(parent):
            await self.store.release_recipient_parts(
                got.delivery_id, [got.after], worker=self.worker
            )
            return False
        ticket = capacity.take(parent.account)
        try:
            p = self._helping(runtime, parent, stopping)
            await self._sweep(p, _then_more(self, p, got))
        finally:
            ticket.release()
        return p.halted is None  # an account that cannot send: not again at once

    def _helping(
        self, runtime: AccountRuntime, parent: DeliveryRow, stopping: Callable[[], bool]
    ) -> Pass:
        state = _state(parent)
        msg = Outgoing(
            delivery_id=parent.id,
            incident_id=parent.incident_id,
            idempotency_key=parent.idempotency_key,
            payload=parent.payload,
            action=state["action"],
            target_remote_id=state.get("target"),
            attempt=parent.attempts,
        )
        policy = self._policy(runtime)
        return Pass(runtime, msg, parent, policy, self.worker, owner=False, stopping=stopping)

    # -- both ---------------------------------------------------------------------------------
    async def _sweep(self, p: Pass, source: Source, *, expand: bool = False) -> None:
        width = max(1, min(p.runtime.limits.concurrency, self.concurrency))
        sweep = Sweep(
            self.store,
            p,
            width=width,
            lease_s=self.lease_s,
            keep_s=self.keep_s,
            on_batch=partial(self._publish, p),
        )
        try:
            await sweep.run(source, *([self._expand_all(p)] if expand else []))
        finally:
            self.lost.let_go(p.parent.id, [part.after for part in sweep.swept])

    def _policy(self, runtime: AccountRuntime) -> RetryPolicy:
        return self.policy.capped(runtime.config.backoff_max_s)

    def _publish(self, p: Pass, *, final: bool = False) -> None:
        now = time.monotonic()
        if not p.owner or (not final and now - p.published_at < SUMMARY_S):
            return
        p.published_at = now
        self.events.publish(summary_event(p.parent, p.counts, final=final, paused=p.paused))


def _state(parent: DeliveryRow) -> dict[str, Any]:
    found = (parent.progress or {}).get("recipients")
    return dict(found) if isinstance(found, dict) else {}


def _whole() -> Source:
    """The whole delivery, once (not leased: its holder sweeps it after every part is done)."""
    ranges = [Part("", None, leased=False)]

    async def next_part(sweep: Sweep) -> Part | None:
        return ranges.pop() if ranges else None

    return next_part


def _then_more(bulk: Bulk, p: Pass, first: RecipientPart) -> Source:
    """A helper's parts of one parent: the one it took, then any other nobody holds."""
    taken = [Part(first.after, first.last)]

    async def next_part(sweep: Sweep) -> Part | None:
        return taken.pop() if taken else await bulk.take_part(p)

    return next_part


def summary_event(
    d: DeliveryRow, counts: Counter[str], *, final: bool, paused: str | None = None
) -> dict[str, Any]:
    """A ``recipients`` stream event: where a parent's sends stand, by state (and, when its
    account is paused, why the rest wait)."""
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
        **({"paused": paused} if paused is not None else {}),
    }


def _cancels(p: Pass) -> bool:
    """Whether the pass sends a cancellation (a correction that gives no first message)."""
    return "of" in p.state and not p.state.get("first")
