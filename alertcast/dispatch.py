"""The dispatcher: claim due deliveries, send them, record every attempt, decide what comes next.

It alone decides a delivery's fate. Backoff comes from tenacity's exponential-with-jitter wait; a
platform's ``Retry-After`` wins over it; the next attempt time is written to the store, so a
restarted daemon resumes exactly where this one stopped.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from typing import Any, Protocol

from structlog.contextvars import bind_contextvars

from alertcast import metrics
from alertcast.accounts import AccountRuntime
from alertcast.attempts import attempt_row, delivery_event, noted, outgoing
from alertcast.audience import Audience
from alertcast.bulk import HandedBack
from alertcast.capacity import Capacity, Ticket
from alertcast.channels.base import (
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
from alertcast.inbox import Inbox
from alertcast.logs import HotLogger
from alertcast.lost import LostClaims
from alertcast.models import DeliveryState
from alertcast.outage import UNANSWERED, Outage
from alertcast.pauses import Pauses, note_attempt
from alertcast.plan import Skip, plan_send
from alertcast.plan.sending import lead_of, lead_waits
from alertcast.recorder import Recorder
from alertcast.secrets import Secrets
from alertcast.shared_limiter import WaitedTooLong
from alertcast.store.base import ActiveClaim, DeliveryRow, Outcome, Store

__all__ = ["Dispatcher", "RetryPolicy"]

log = HotLogger("alertcast.dispatch")


class Fallback(Protocol):
    """What the dispatcher asks of the door when an account's quota is spent."""

    async def fallback(self, spent: DeliveryRow) -> Any: ...


class Dispatcher:
    """Claims due deliveries (and takes those handed to it at creation), sends each through
    its account's adapter within the account's capacity, and records the outcome."""

    def __init__(
        self,
        store: Store,
        capacity: Capacity,
        inbox: Inbox,
        fallbacks: Fallback,
        config: DispatchConfig,
        *,
        secrets: Secrets,
        events: EventBus,
        worker: str,
    ) -> None:
        self.store = store
        self.capacity = capacity
        self.inbox = inbox
        self.fallbacks = fallbacks
        self.config = config
        self.secrets = secrets
        self.events = events
        self.worker = worker
        self.policy = RetryPolicy(config.backoff_initial_s, config.backoff_max_s)
        # custom sends, and per-recipient accounts
        self.audience = Audience(store, events, config, concurrency=capacity.concurrency)
        self.pauses = Pauses(store, capacity.accounts, lease_s=config.lease_s)
        self._stopping = False
        self._tasks: dict[asyncio.Task[None], str] = {}  # each send's task: its delivery
        self.lost = LostClaims(store, worker, lease_s=config.lease_s)  # claims never answered
        self.sleeping = False  # the loop waits for a wake-up, a due retry or the poll
        self._loop_task: asyncio.Task[None] | None = None
        self._assist: asyncio.Task[None] | None = None  # parts of others' bulk deliveries
        self.outage = Outage(store, secrets.redact)  # since when the store is away, and why
        # Attempts recorded in batches; each batch committed frees room and may make follow-ups
        # due (they wait for what it settled): one claim per batch, not one per delivery.
        self.recorder = Recorder(store, self.outage, worker=worker, written=self.inbox.wake)

    # -- life -------------------------------------------------------------------------------
    async def start(self) -> None:
        await self.restore()
        recovered = await self.store.recover(now=time.time(), everything=self.store.single_process)
        if recovered:
            log.warning("dispatch.recovered", deliveries=recovered)
        self.inbox.open = True
        self._loop_task = asyncio.create_task(self._supervise(), name="dispatcher")
        if (bulk := self.audience.bulk) is not None and not self.store.single_process:
            helping = bulk.assist(self.capacity, lambda: self._stopping)
            self._assist = asyncio.create_task(helping, name="bulk-assist")

    async def stop(self, grace_s: float) -> None:
        """Stop claiming, let in-flight sends finish within ``grace_s``, cancel the rest."""
        self._stopping = True
        self.inbox.open = False
        self.inbox.wake()
        if self._loop_task is not None:
            await asyncio.gather(self._loop_task, return_exceptions=True)
        for _, ticket in self.inbox.take():  # handed but never spawned: the lease brings them
            ticket.release()
        deadline = time.monotonic() + grace_s
        running = {*self._tasks, *([self._assist] if self._assist is not None else [])}
        if running:
            _, pending = await asyncio.wait(running, timeout=grace_s)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        # The outcomes decided are written in what is left of the grace, or named at error.
        await self.recorder.close(max(0.0, deadline - time.monotonic()))

    async def restore(self) -> None:
        """Every account's stored pause, restored (before anything is claimed or shown)."""
        paused = await self.pauses.restore(time.time())
        if paused:
            log.warning("dispatch.pauses_restored", accounts=paused)

    def wake(self) -> None:
        """Claim again now (an account was resumed, a retry became due)."""
        self.inbox.wake()

    @property
    def inflight(self) -> int:
        return len(self._tasks)

    # -- the loop ---------------------------------------------------------------------------
    async def _supervise(self) -> None:
        while not self._stopping:
            try:
                await self._run_loop()
            except Exception as exc:
                self.lost.unanswered()  # a claim may have failed after its commit
                if not await self.outage.probe():  # no claim, no sweep until the store answers
                    await self.outage.outlast(self.inbox.wait, lambda: self._stopping)
                elif isinstance(exc, UNANSWERED):  # one call got no answer; the store is back
                    log.warning("dispatch.store_unanswered", error=self.outage.redacted(exc))
                    await asyncio.sleep(0.2)
                else:  # the store answers: our own bug
                    log.error("dispatch.loop_crashed", exc_info=exc)
                    await asyncio.sleep(1.0)

    async def _run_loop(self) -> None:
        next_sweep = 0.0
        while not self._stopping:
            self._spawn_handed()
            self.inbox.due()
            if self.outage.waiting:  # outcomes sent but not yet recorded come before any claim
                await self.outage.outlast(self.inbox.wait, lambda: self._stopping)
                continue
            await self.pauses.save(time.time())  # an operator's resume, a replaced secret
            if self.inbox.unanswered:  # an intake's claim failed
                self.inbox.unanswered = False
                self.lost.unanswered()
            swept = time.time() if time.monotonic() >= next_sweep else None  # before its recover
            if swept is not None:
                await self._sweep_leases()
                await self.pauses.restore(time.time())  # what other replicas paused, resumed
                next_sweep = time.monotonic() + self.config.lease_s / 4
            if await self.lost.release(self._held, swept_at=swept):
                self.inbox.wake()
            claimed = await self._claim()
            for claim, ticket in claimed:
                self._spawn(claim, ticket)
            if not claimed or self.capacity.room <= 0:
                await self._sleep()

    async def _sweep_leases(self) -> None:
        """Deliveries whose claim outlived its lease (a crashed replica) go back to the queue."""
        if recovered := await self.store.recover(now=time.time(), everything=False):
            log.warning("dispatch.leases_recovered", deliveries=recovered)

    def _spawn_handed(self) -> None:
        """Send what the commit path claimed at creation, right away."""
        for claim, ticket in self.inbox.take():
            self._spawn(claim, ticket)

    async def _claim(self) -> list[tuple[ActiveClaim, Ticket]]:
        if (room := self.capacity.room) <= 0:
            return []
        now = time.time()
        with self.capacity.claiming():
            claims = await self.store.claim_due(
                now=now,
                limit=room,
                lease_s=self.config.lease_s,
                worker=self.worker,
                free=self.capacity.free(now),
                corrections=self.capacity.accounts.corrections_free(now),
                waits=lead_waits(
                    (a.config for a in self.capacity.accounts), self.pauses.paused(now)
                ),
            )
            spent_at = time.time()  # a claim's stamp, read just before it (alertcast.lost)
            claims += await self.pauses.claim_spent(spent_at, room - len(claims), self.worker)
            return [(c, self.capacity.take(c.delivery.account)) for c in claims]

    async def _sleep(self) -> None:
        """Until woken, the next retry is due, or the poll interval, whichever is first;
        deliveries handed over meanwhile are sent without waking the claim loop. Rows due but
        not claimable (a paused or saturated account, a follow-up waiting for its original)
        wait for a wake-up or the poll, never a busy loop."""
        timeout = self.config.poll_interval_s
        if (lost_in := self.lost.due_in()) is not None:
            timeout = min(timeout, max(0.005, lost_in))
        if (due := await self.store.next_due_at()) is not None and due > time.time():
            timeout = min(timeout, max(0.005, due - time.time()))
        deadline = time.monotonic() + timeout
        self.sleeping = True
        try:
            while not self._stopping and await self.inbox.wait(deadline - time.monotonic()):
                self._spawn_handed()
                if self.inbox.due() or self.inbox.unanswered:  # claim, or time the lost check
                    return
        finally:
            self.sleeping = False

    def _held(self) -> list[str]:
        """Every delivery this worker received and has not settled, but those it gave up on."""
        return [*self._tasks.values(), *self.inbox.held()]

    def _spawn(self, claim: ActiveClaim, ticket: Ticket) -> None:
        task = asyncio.create_task(self._handle(claim, ticket), name=f"deliver-{claim.delivery.id}")
        self._tasks[task] = claim.delivery.id
        metrics.INFLIGHT.set(len(self._tasks))
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.pop(task, None)
        metrics.INFLIGHT.set(len(self._tasks))
        if not task.cancelled() and task.exception() is not None:
            log.error("dispatch.task_failed", exc_info=task.exception())

    # -- one delivery -----------------------------------------------------------------------
    async def _handle(self, claim: ActiveClaim, ticket: Ticket) -> None:
        d = claim.delivery
        # The task runs in its own copy of the context: what is bound here ends with it.
        bind_contextvars(
            incident_id=d.incident_id, delivery_id=d.id, account=d.account, attempt=d.attempts
        )
        try:
            await self._deliver(claim, ticket.runtime, ticket)
        except WaitedTooLong as exc:  # nothing was sent: due again now, not after the lease
            log.warning("dispatch.window_wait_gave_up", reason=str(exc))
            await self._unclaim(d)
        except HandedBack as back:  # a per-recipient pass made way: no attempt, the rest due
            log.info("dispatch.handed_back", reason=back.reason)
            await self._unclaim(d, back.reason, back.progress)
        except Exception:  # failed before its outcome was known: the lease brings it back
            log.exception("dispatch.record_failed")
            self.lost.abandoned(d.id)  # it may have been sent: never a lost claim
        finally:
            ticket.release()

    async def _unclaim(
        self, d: DeliveryRow, reason: str | None = None, progress: dict[str, Any] | None = None
    ) -> None:
        """Give back a claim whose attempt does not count; the next claim that has room for
        its account takes it. If the store cannot take it now, the lease brings it back."""
        try:
            await self.store.unclaim(
                d.id, worker=self.worker, due_at=time.time(), reason=reason, progress=progress
            )
        except Exception as exc:
            log.warning(
                "dispatch.unclaim_failed", error=type(exc).__name__, lease_s=self.config.lease_s
            )
            return
        state = DeliveryState.retrying if d.attempts > 1 else DeliveryState.pending
        self._publish(replace(d, attempts=d.attempts - 1, reason=reason), state)
        self.inbox.wake()

    async def _deliver(
        self, claim: ActiveClaim, runtime: AccountRuntime | None, ticket: Ticket
    ) -> None:
        d = claim.delivery
        if runtime is None:
            gone = Permanent(f"account {d.account!r} is no longer configured")
            await self._finish(d, None, time.time(), 0.0, gone)
            return
        if (spent := self.pauses.handover(claim, runtime, time.time())) is not None:
            await self._finish(d, runtime, time.time(), 0.0, spent)  # its fallback takes it
            return
        lead = lead_of(runtime.config, self.capacity.accounts.get, time.time())
        how = plan_send(claim, runtime.config.channel, runtime.channel.capabilities, lead)
        if isinstance(how, Skip):
            await self._finish(d, runtime, time.time(), 0.0, Skipped(how.reason))
            return
        if (waits := self.pauses.waits(claim, runtime, how.action, time.time())) is not None:
            await self._finish(d, runtime, time.time(), 0.0, waits)  # until the quota returns
            return
        self._publish(d, DeliveryState.sending)
        async with runtime.limiter.slot(how.action, d.priority):  # corrections first
            ticket.sending()
            started, t0 = time.time(), time.monotonic()
            msg = outgoing(claim, how.action, how.target_remote_id, self._save)
            result = await self._attempt(runtime, msg)
            duration_ms = 1000 * (time.monotonic() - t0)
        metrics.ATTEMPT_SECONDS.labels(runtime.config.channel).observe(duration_ms / 1000)
        progress = dict(msg.progress) or None
        await self._finish(
            d,
            runtime,
            started,
            duration_ms,
            result,
            progress=progress,
            alone=how.reason,
            ticket=ticket,
        )

    async def _attempt(self, runtime: AccountRuntime, msg: Outgoing) -> Receipt | ChannelError:
        try:
            return await self.audience.send(runtime.id, msg, self.audience.deliver_for(runtime))
        except ChannelError as exc:
            return exc
        except HandedBack:
            raise
        except Exception as exc:  # an adapter bug must not lose the delivery
            log.exception("dispatch.adapter_bug")
            return Transient(f"internal error in adapter: {type(exc).__name__}")

    async def _save(self, delivery_id: str, progress: dict[str, Any]) -> bool:
        """A send's progress checkpoint: saved, and the lease renewed, while our claim holds."""
        held = await self.store.save_progress(
            delivery_id, progress, worker=self.worker, lease_s=self.config.lease_s
        )
        if not held:
            log.warning("dispatch.claim_lost", delivery_id=delivery_id)
        return held

    async def _finish(
        self,
        d: DeliveryRow,
        runtime: AccountRuntime | None,
        started: float,
        duration_ms: float,
        result: Receipt | ChannelError,
        *,
        progress: dict[str, Any] | None = None,
        alone: str | None = None,
        ticket: Ticket | None = None,
    ) -> None:
        """Decide the attempt's outcome and record it. A ``ticket`` (the send's hold on the
        dispatcher's concurrency) is given back once the outcome is decided — the platform
        has answered, the account's health is noted — unless the records still to be
        committed are as many as the concurrency: then it is given back after the record."""
        now = time.time()
        outcome = noted(self._decide(d, runtime, result, now), progress, alone)
        await self.pauses.save(now, [runtime] if runtime is not None else [])  # before the record
        attempt = attempt_row(d, started, duration_ms, result, outcome, self.secrets.redact)
        if isinstance(result, QuotaExhausted):
            # The fallback's deliveries are stored before this one is settled, so the incident
            # never looks settled (to the status API, the stream, `send --follow`) in between.
            await self.fallbacks.fallback(replace(d, state=outcome.state, reason=outcome.reason))
        if ticket is not None and self.recorder.backlog < self.capacity.concurrency:
            ticket.release()  # the next send need not wait for this one's commit: claim it,
            self.inbox.wake()  # once for every release of a turn of the loop
        row = await self.recorder.record(d, attempt, outcome)  # with the others decided meanwhile
        metrics.DELIVERIES.labels(d.channel, outcome.state.value).inc()
        self._publish(row, row.state)
        log.info(
            "delivery." + outcome.state.value,
            error=attempt.error,
            next_attempt_at=outcome.next_attempt_at,
            remote_id=row.remote_id,
        )

    def _decide(
        self,
        d: DeliveryRow,
        runtime: AccountRuntime | None,
        result: Receipt | ChannelError,
        now: float,
    ) -> Outcome:
        """The delivery's fate (see :func:`alertcast.fate.decide`) and its account's health."""
        error = None if isinstance(result, Receipt) else self.secrets.redact(result.reason)
        cap = runtime.config.backoff_max_s if runtime is not None else None  # the account's own
        outcome = decide(d, result, error, self.policy.capped(cap), now)
        if runtime is not None:
            note_attempt(runtime, d, result, error, now, self.store.clock())
        return outcome

    def _publish(self, d: DeliveryRow, state: DeliveryState) -> None:
        self.events.publish(delivery_event(d, state))
