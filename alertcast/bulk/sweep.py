"""One sweep over a per-recipient delivery's due sends (see :mod:`alertcast.bulk`).

Ranges of the sends (:class:`Part`: a part leased in the store, or the whole delivery) come one
after another from a *source*; a producer pages each range's due sends into a bounded queue;
``width`` workers send them; their outcomes are written in batches, each batch marking done,
in its transaction, the parts whose every send it completes; a keeper renews the leases (the
parent's, and the parts') while the sweep runs. When it ends, what was decided is written and
the parts not finished are given back. Memory: a page, the queue and a batch, never the list.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence, Set
from contextlib import AsyncExitStack
from dataclasses import dataclass, field, replace
from typing import Any

import structlog

from alertcast.accounts import AccountRuntime
from alertcast.channels.base import (
    AuthExpired,
    ChannelError,
    Outgoing,
    QuotaExhausted,
    Receipt,
    Transient,
)
from alertcast.fate import RetryPolicy, decide
from alertcast.secrets import MASK
from alertcast.shared_limiter import WaitedTooLong
from alertcast.store.base import DeliveryRow, RecipientSend, SendOutcome, Store

__all__ = ["Part", "Pass", "Source", "Sweep", "tally"]

log = structlog.get_logger("alertcast.bulk")

PAGE = 500  # sends read per page
BATCH = 256  # outcomes per recorded batch
BATCH_S = 0.1  # ... or after this long, whichever first
GONE = "no longer a recipient of the account"
LOOK_S = 0.2  # how often a pass on a full account looks whether a correction waits
RECOUNT_S = 15.0  # how often the holder re-reads the counts when other replicas help
MIN_SCRUBBED = 4  # shorter column values (a flag, a code) are not scrubbed from reasons
WINDOW_LOOK_S = 0.5  # a send waiting for the rate window looks this often whether to stop


@dataclass(eq=False)
class Part:
    """A range of sends being swept, recipient ids in (``after``, ``last``]."""

    after: str
    last: str | None = None  # None: to the end
    leased: bool = True  # a part held in the store (False: the whole delivery, not leased)
    queued: int = 0  # its sends queued or being sent whose outcome is not in a batch yet
    paged: bool = False  # every send of it due at the sweep is queued
    short: bool = False  # one of them was left untried (the sweep stopped): not done
    lost: bool = False  # its lease is lost: another worker may be sending it


Source = Callable[["Sweep"], Awaitable[Part | None]]
"""The next range to sweep (None: no more), given the sweep (which it may :meth:`Sweep.flush`)."""


@dataclass
class Pass:
    """One attempt at a parent delivery, by the worker holding it (``owner``) or by a replica
    helping with some of its parts: what it knows, counts and why it stopped."""

    runtime: AccountRuntime
    msg: Outgoing
    parent: DeliveryRow
    policy: RetryPolicy
    worker: str  # who leases the parts
    owner: bool = True
    codes: Sequence[str] = ()
    stopping: Callable[[], bool] = lambda: False  # the replica is shutting down
    counts: Counter[str] = field(default_factory=Counter)
    halted: ChannelError | None = None  # the account cannot send (credentials, quota)
    unreached: int = 0  # sends in a row that reached no receiver at all
    lost: bool = False  # the parent's claim was lost: another worker may hold it
    grew: asyncio.Event = field(default_factory=asyncio.Event)  # the expansion added a part
    published_at: float = 0.0
    counted_at: float = field(default_factory=time.monotonic)
    making_way: bool = False  # a correction waits for the account's slot: hand the parent back

    @property
    def state(self) -> dict[str, Any]:
        """The parent's progress: whether the expansion is complete, and how it is sent."""
        found = self.msg.progress.setdefault("recipients", {"expanded": False})
        assert isinstance(found, dict)
        return found

    pause_seen: str | None = None  # the pause it saw, kept once seen (see ``stopped``)

    @property
    def stopped(self) -> bool:
        """Whether the pass stops. Once it does it stays stopped, though a pause it saw ends:
        the sends it had queued are no longer stamped on the wire, so a correction may already
        have gone to those recipients; sent now, the message it corrects would follow it.
        (Every part of it only ever turns true: a lost claim, a halt, a shutdown, a pause
        seen, a correction to make way for.)"""
        stop = self.lost or self.halted is not None or self.stopping() or self.paused is not None
        return stop or self.making_way

    @property
    def paused(self) -> str | None:
        """Why the account is paused (an operator, a spent quota, rejected credentials), if
        it is or was during the pass: the pass stops sending and the parent waits, saying so
        (handed back: the next pass, once the pause is over, sends the rest)."""
        health = self.runtime.health
        if self.pause_seen is None and health.paused(time.time()):
            self.pause_seen = health.paused_reason or "paused"
        return self.pause_seen

    def note(self, result: Receipt | ChannelError, width: int) -> None:
        """Halt the pass on an account-wide failure: credentials rejected, a quota spent, or
        as many sends in a row as run at once (``width``, at least 2) that reached no receiver
        (refused, TLS, timed out: no answer at all); the parent retries as a whole, the
        recipients not tried stay due, untouched."""
        if isinstance(result, AuthExpired | QuotaExhausted):
            self.halted = result
        elif isinstance(result, Transient) and result.http_status is None:
            self.unreached += 1
            if self.unreached >= max(2, width) and self.halted is None:
                why = f"{self.unreached} recipients in a row not reached: {result.reason}"
                self.halted = Transient(why, retry_after=result.retry_after)
        else:
            self.unreached = 0

    async def recount(self, store: Store, *, exact: bool = False) -> None:
        """The holder's counts re-read from the store (a GROUP BY over every send), when other
        replicas may have recorded some of them, or ``exact`` is asked for (the verdict)."""
        self.counted_at = time.monotonic()
        if self.owner and (exact or not store.single_process):
            self.counts = Counter(await store.recipient_summary(self.parent.id))


class Sweep:
    """Sends what is due now of the ranges a source gives, once (see the module's docstring)."""

    def __init__(
        self,
        store: Store,
        p: Pass,
        *,
        width: int,
        lease_s: float,
        keep_s: float,
        on_batch: Callable[[], None] = lambda: None,
    ) -> None:
        self.store, self.p, self.width = store, p, width
        self.lease_s, self.keep_s, self.on_batch = lease_s, keep_s, on_batch
        self.queue: asyncio.Queue[tuple[Part, RecipientSend] | None] = asyncio.Queue(2 * width)
        self.held: list[Part] = []  # parts leased to us and not marked done yet
        self.swept: list[Part] = []  # every part leased to us it swept (alertcast.bulk.lost)
        self.batch: list[SendOutcome] = []
        self.done: list[Part] = []  # parts to mark done with the batch
        self.flying: set[str] = set()  # taken (``sending``), outcome not recorded yet
        self.waiting: set[str] = set()  # ... of those, not sent yet (queued, or for the window)
        self.since = time.monotonic()
        self.lock = asyncio.Lock()
        self.looked = time.monotonic()  # when it last looked for a correction waiting
        self.token = f"{p.worker}:{uuid.uuid4().hex[:12]}"  # what it takes is marked so

    async def run(self, source: Source, *beside: Coroutine[Any, Any, None]) -> None:
        """Sweep every range ``source`` gives, with ``beside`` (the expansion) running too."""
        try:
            async with asyncio.TaskGroup() as tg:
                keepers = [tg.create_task(self._keep()), tg.create_task(self._flush_late())]
                for job in beside:
                    tg.create_task(job)
                workers = [tg.create_task(self._work()) for _ in range(self.width)]
                await self._produce(source)
                for _ in workers:  # once everything due is queued: each worker ends
                    await self.queue.put(None)
                await asyncio.gather(*workers)
                for keeper in keepers:
                    keeper.cancel()
        finally:
            await self._settle()

    # -- producing --------------------------------------------------------------------------
    async def _produce(self, source: Source) -> None:
        while not self.p.stopped and (part := await source(self)) is not None:
            if part.leased:
                self.held.append(part)
                self.swept.append(part)
            await self._page(part)

    async def _page(self, part: Part) -> None:
        p, after = self.p, part.after
        while True:
            if p.stopped or part.lost:
                part.short = True
                break
            page = await self.store.due_recipients(
                p.parent.id,
                p.parent.account,
                now=time.time(),
                after=after,
                last=part.last,
                limit=PAGE,
            )
            for i in range(0, len(page), self.width):
                await self._start(part, page[i : i + self.width])
            if len(page) < PAGE:
                break
            after = page[-1].recipient_id
        part.paged = True
        self._closed(part)

    async def _start(self, part: Part, rows: Sequence[RecipientSend]) -> None:
        """Queue ``width`` sends once every queued one is taken, marked ``sending`` first (those
        still due): a follow-up's stop then leaves this pass at most these and the ones on the
        wire, never a page read before it."""
        await self.queue.join()
        await self._make_way()
        if self.p.stopped or part.lost:
            part.short = True
            return
        ids = [row.recipient_id for row in rows]
        now = self.store.clock()
        taken = await self.store.start_recipients(self.p.parent.id, ids, now=now, by=self.token)
        for row in rows:
            if row.recipient_id in taken:
                part.queued += 1
                self.flying.add(row.recipient_id)
                self.waiting.add(row.recipient_id)
                await self.queue.put((part, row))

    async def _make_way(self) -> None:
        """Every ``LOOK_S``, when the account has no free slot: if a correction of a higher
        priority is due on it, stop (the parent is handed back, an attempt like a pause's; the
        correction is claimed first, the rest of this fan-out after it)."""
        p, now = self.p, time.monotonic()
        if now - self.looked < LOOK_S or p.runtime.free(time.time()) > 0:
            return
        if p.parent.attempts >= p.parent.max_attempts:  # a hand-back would end it: go on
            return
        self.looked = now
        account, priority = p.parent.account, p.parent.priority
        if await self.store.correction_due(account, priority, now=time.time()):
            p.making_way = True  # never back to False: the pass stays stopped (``stopped``)

    # -- sending ----------------------------------------------------------------------------
    async def _work(self) -> None:
        while (item := await self.queue.get()) is not None:
            self.queue.task_done()  # taken: the producer may take the next sends (_start)
            part, row = item
            stop = self.p.stopped or part.lost  # drain: what is not sent stays due
            outcome = None if stop else await self._one(row)
            part.queued -= 1
            if outcome is None:  # not sent: no longer on the wire (due again once given back)
                part.short = True
                self.flying.discard(row.recipient_id)
                self.waiting.discard(row.recipient_id)
            else:
                self.batch.append(outcome)
                self.p.counts[row.state] -= 1
                self.p.counts[outcome.state] += 1
            self._closed(part)
            if len(self.batch) >= BATCH or time.monotonic() - self.since >= BATCH_S:
                await self.flush()

    async def _one(self, row: RecipientSend) -> SendOutcome | None:
        """Send to one recipient; its outcome (None: the account cannot send, nothing noted)."""
        attempts = row.attempts + 1
        if row.data is None:
            return SendOutcome(row.recipient_id, "failed", attempts, last_error=GONE)
        result = await self._attempt(row, row.data, attempts)
        if result is None:
            return None
        self.p.note(result, self.width)
        if isinstance(result, Receipt):  # the common case, without building a row to decide on
            return SendOutcome(
                row.recipient_id,
                "delivered",
                attempts,
                None,
                result.http_status,
                None,
                result.remote_id,
            )
        if isinstance(result, AuthExpired | QuotaExhausted):
            return None  # the pass halts: nothing noted for this recipient
        p = self.p
        outcome = decide(
            replace(p.parent, attempts=attempts), result, result.reason, p.policy, time.time()
        )
        return SendOutcome(
            row.recipient_id,
            outcome.state.value,
            attempts,
            outcome.next_attempt_at,
            result.http_status,
            outcome.last_error,
        )

    async def _attempt(
        self, row: RecipientSend, data: Mapping[str, Any], attempts: int
    ) -> Receipt | ChannelError | None:
        """Send to one recipient in a slot of the account's rate window (None: the pass
        stopped while it waited, nothing sent)."""
        msg = self.p.msg
        out = Outgoing(
            delivery_id=msg.delivery_id,
            incident_id=msg.incident_id,
            idempotency_key=f"{msg.idempotency_key}:{row.recipient_id}",
            payload=msg.payload,
            **_thread(msg, row, self.p.runtime.channel.capabilities),
            attempt=attempts,
            recipient={"id": row.recipient_id, "region": row.region, **data},
        )
        limiter = self.p.runtime.limiter
        if not limiter.windows_for(msg.action):  # most accounts: no window to wait for
            self.waiting.discard(row.recipient_id)
            return await self._deliver(out, data)
        while not self.p.stopped:
            async with AsyncExitStack() as slot:
                try:
                    async with asyncio.timeout(WINDOW_LOOK_S):
                        use = await slot.enter_async_context(
                            limiter.slot(msg.action, self.p.parent.priority)
                        )
                except (TimeoutError, WaitedTooLong):
                    continue  # still no room: look whether the pass stopped meanwhile
                if self.p.stopped:  # while it waited for the slot: not sent (nor stamped),
                    use.unused()  # and the slot given back, counted for nothing
                    return None
                self.waiting.discard(row.recipient_id)
                return await self._deliver(out, data)
        return None

    async def _deliver(self, out: Outgoing, data: Mapping[str, Any]) -> Receipt | ChannelError:
        try:
            return await self.p.runtime.channel.deliver(out)
        except ChannelError as exc:
            exc.reason = scrub(exc.reason, data)  # a receiver may echo the recipient's data
            return exc
        except Exception as exc:  # an adapter bug must not lose the recipient
            log.exception("bulk.adapter_bug", recipient=out.recipient and out.recipient["id"])
            return Transient(f"internal error in adapter: {type(exc).__name__}")

    # -- recording --------------------------------------------------------------------------
    def _closed(self, part: Part) -> None:
        """Once every send of a leased part is tried and its outcome batched: done with the
        batch (a part left short stays held, to be given back)."""
        finished = part.leased and part.paged and part.queued == 0
        if finished and not (part.short or part.lost) and part not in self.done:
            self.done.append(part)

    async def flush(self) -> None:
        """Write the outcomes batched and mark the parts they complete done."""
        async with self.lock:
            batch, done = self.batch, self.done
            self.batch, self.done, self.since = [], [], time.monotonic()
            try:
                if batch or done:
                    await self.store.record_recipients(
                        self.p.parent.id,
                        batch,
                        now=time.time(),
                        worker=self.p.worker,
                        done=[part.after for part in done],
                    )
            except BaseException:  # kept, for the next flush (the sweep's end tries again)
                self.batch[:0], self.done[:0] = batch, done
                raise
            recorded = {outcome.recipient_id for outcome in batch}
            self.flying -= recorded
            self.waiting -= recorded  # (a recipient no longer there: decided, never sent)
            self.held = [part for part in self.held if part not in done]
        self.on_batch()

    async def _flush_late(self) -> None:
        """Write outcomes decided ``BATCH_S`` ago even while no send ends (every send hangs),
        so a stop or a crash then loses none of them."""
        while True:
            await asyncio.sleep(BATCH_S)
            if self.batch and time.monotonic() - self.since >= BATCH_S:
                try:
                    await self.flush()
                except Exception as exc:  # the store away: kept, written by a later flush
                    log.warning("bulk.flush_failed", error=type(exc).__name__)

    async def _keep(self) -> None:
        """Renew the leases while the sweep runs: the parent's (its holder's checkpoint saves
        its progress too) and the parts'; a lost one stops what depends on it. The sends on
        the wire are stamped too (``Store.touch_recipients``)."""
        while True:
            await asyncio.sleep(self.keep_s)
            await self._renew()

    async def _renew(self) -> None:
        p = self.p
        if p.msg.checkpoint is not None and not await p.msg.checkpoint():
            p.lost = True
        await self._stamp()
        held = [part for part in self.held if not part.lost]
        if held:
            kept = await self.store.renew_recipient_parts(
                p.parent.id,
                [part.after for part in held],
                worker=p.worker,
                until=time.time() + self.lease_s,
            )
            for part in held:
                part.lost = part.after not in kept
        if time.monotonic() - p.counted_at >= RECOUNT_S:
            await p.recount(self.store)

    async def _stamp(self) -> None:
        """The sends still on the wire stamped so (``Store.touch_recipients``): a correction to
        those recipients waits for their outcome however long the request or its rate window
        takes. Once the pass stopped, only those sent or decided; the ones still waiting will
        never be sent (the stop is final, and each is handed to the channel only after a last
        look at it), so they are given back at once (``Store.give_back_recipients``): due again,
        or withdrawn with their parent, and not counted as reached by a correction copied
        since. Not while a batch is being recorded (its rows, locked in another order on
        PostgreSQL, would deadlock with these)."""
        async with self.lock:
            if self.p.stopped and self.waiting:
                unsent = set(self.waiting)  # (a take under way may add more meanwhile)
                await self.store.give_back_recipients(
                    self.p.parent.id, sorted(unsent), by=self.token, now=time.time()
                )
                self.flying -= unsent
                self.waiting -= unsent
            ids = self.flying
            if ids:
                stamp = self.store.clock()  # the store's: a correcting replica ages it there
                await self.store.touch_recipients(self.p.parent.id, sorted(ids), now=stamp)

    async def _settle(self) -> None:
        """Write what was decided and give back the parts not done (best effort: a store that
        does not answer leaves them to their leases)."""
        try:
            await self.flush()
            short = [part.after for part in self.held if not part.lost]
            await self.store.release_recipient_parts(self.p.parent.id, short, worker=self.p.worker)
        except Exception as exc:
            log.warning("bulk.settle_failed", error=type(exc).__name__)
        self.held = []


def _thread(msg: Outgoing, row: RecipientSend, capabilities: Set[str]) -> dict[str, Any]:
    """How one recipient's send goes out: a correction's to a recipient its original reached
    with a remote id replies to that (the webhook's in_reply_to, email's In-Reply-To), where
    the platform can; any other as the parent is sent."""
    if row.reply_to is not None and "reply" in capabilities:
        return {"action": "reply", "target_remote_id": row.reply_to}
    return {"action": msg.action, "target_remote_id": msg.target_remote_id}


def scrub(reason: str, data: Mapping[str, Any]) -> str:
    """``reason`` without the recipient's data (the values of its columns: a number, an
    address a receiver echoes in its refusal), each replaced by ``***``, in any case."""
    values = sorted({str(v) for v in data.values() if len(str(v)) >= MIN_SCRUBBED}, key=len)
    for value in reversed(values):  # the longest first: one value may hold another
        reason = re.sub(re.escape(value), MASK, reason, flags=re.IGNORECASE)
    return reason


def tally(counts: Counter[str]) -> str:
    """``1998 of 2000 recipients delivered; 1 failed, 1 dead`` (states with none left out)."""
    counts = +counts
    total = sum(counts.values())
    rest = ", ".join(f"{n} {state}" for state, n in sorted(counts.items()) if state != "delivered")
    head = f"{counts['delivered']} of {total} recipients delivered"
    return f"{head}; {rest}" if rest else head
