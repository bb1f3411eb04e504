"""The dispatcher: claim due deliveries, send them, record every attempt, decide what comes next.

It alone decides a delivery's fate. Backoff comes from tenacity's exponential-with-jitter wait; a
platform's ``Retry-After`` wins over it; the next attempt time is written to the store, so a
restarted daemon resumes exactly where this one stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import structlog
import tenacity
from structlog.contextvars import bound_contextvars

from alertcast import metrics
from alertcast.accounts import AccountRuntime, Accounts
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
from alertcast.models import DeliveryState
from alertcast.secrets import Secrets
from alertcast.store import sql
from alertcast.store.base import (
    ActiveClaim,
    AttemptRow,
    DeliveryRow,
    IncidentRow,
    NewDelivery,
    Outcome,
    Store,
    Taken,
)

__all__ = ["Dispatcher", "RetryPolicy"]

log = structlog.get_logger("alertcast.dispatch")
AUTH_PAUSE_RETRY_S = 1.0  # the pause, not this delay, holds it until credentials change


class Skipped(ChannelError):
    """Not an error of the platform: there is nothing (left) to send for this delivery."""


def _needless(runtime: AccountRuntime, claim: ActiveClaim) -> str | None:
    """Why a follow-up must not go out at all, or ``None`` when it should be sent."""
    d = claim.delivery
    if d.target_delivery_id is None or claim.target_delivered:
        return None
    if claim.msg_type == "cancel":
        return "the original never reached this account; there is nothing to cancel"
    if d.action == "delete":
        return "the original was never posted on this account; nothing to delete"
    return None


def _takeable(d: NewDelivery, targets: Mapping[str, str | None], now: float) -> bool:
    """Whether a new delivery may be claimed in the transaction that creates it: due now and
    waiting for nothing (not held, not after another delivery, not a follow-up of an original
    not delivered), and not expired (the store's claim skips those as expired, unsent)."""
    if d.state is not DeliveryState.pending or d.hold or d.wait_for:
        return False
    if d.expires_at is not None and d.expires_at <= now:
        return False
    return not d.target_delivery_id or d.target_delivery_id in targets


def _cannot(runtime: AccountRuntime, claim: ActiveClaim) -> str | None:
    if claim.delivery.action == "delete" and "delete" not in runtime.channel.capabilities:
        return f"{runtime.config.channel} cannot delete a post; the cancellation stands alone"
    return None


@dataclass(frozen=True)
class RetryPolicy:
    """When to try again: exponential backoff with jitter, unless the platform said when."""

    initial_s: float = 1.0
    max_s: float = 300.0

    def delay_s(self, attempt: int, retry_after: float | None = None) -> float:
        if retry_after is not None:
            return max(0.0, retry_after)
        wait = tenacity.wait_exponential(
            multiplier=self.initial_s, max=self.max_s
        ) + tenacity.wait_random(0, self.initial_s)
        state = tenacity.RetryCallState(retry_object=None, fn=None, args=(), kwargs={})  # type: ignore[arg-type]
        state.attempt_number = attempt
        return min(float(wait(state)), self.max_s)


class Dispatcher:
    def __init__(
        self,
        store: Store,
        accounts: Accounts,
        config: DispatchConfig,
        secrets: Secrets,
        events: EventBus,
    ) -> None:
        self.store = store
        self.accounts = accounts
        self.config = config
        self.secrets = secrets
        self.events = events
        self.policy = RetryPolicy(config.backoff_initial_s, config.backoff_max_s)
        self.worker = f"w-{uuid.uuid4().hex[:12]}"
        self._wake = asyncio.Event()
        self._stopping = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._reserved = 0  # slots promised to deliveries taken at creation, not yet spawned
        self._claiming = False  # a claim_due is on its way: no taking at creation meanwhile
        self.sleeping = False  # the loop waits for a wake-up, a due retry or the poll
        self.on_quota: Callable[[DeliveryRow], Awaitable[None]] | None = None
        self._loop_task: asyncio.Task[None] | None = None

    # -- life -------------------------------------------------------------------------------
    async def start(self) -> None:
        recovered = await self.store.recover(
            now=time.time(), everything=getattr(self.store, "single_process", False)
        )
        if recovered:
            log.warning("dispatch.recovered", deliveries=recovered)
        self._loop_task = asyncio.create_task(self._supervise(), name="dispatcher")

    async def stop(self, grace_s: float) -> None:
        """Stop claiming, let in-flight sends finish within ``grace_s``, cancel the rest."""
        self._stopping = True
        self._wake.set()
        if self._loop_task is not None:
            await asyncio.gather(self._loop_task, return_exceptions=True)
        if self._tasks:
            _, pending = await asyncio.wait(self._tasks, timeout=grace_s)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

    def wake(self) -> None:
        self._wake.set()

    @property
    def inflight(self) -> int:
        return len(self._tasks)

    # -- the loop ---------------------------------------------------------------------------
    async def _supervise(self) -> None:
        while not self._stopping:
            try:
                await self._run_loop()
            except Exception:
                log.exception("dispatch.loop_crashed")
                await asyncio.sleep(1.0)

    async def _run_loop(self) -> None:
        next_sweep = 0.0
        while not self._stopping:
            self._wake.clear()
            if time.monotonic() >= next_sweep:
                await self._sweep_leases()
                next_sweep = time.monotonic() + self.config.lease_s / 4
            claimed = await self._claim()
            for claim in claimed:
                self._spawn(claim)
            if not claimed or self.inflight >= self.config.concurrency:
                await self._sleep()

    async def _sweep_leases(self) -> None:
        """Deliveries whose claim outlived its lease (a crashed replica) go back to the queue."""
        recovered = await self.store.recover(now=time.time(), everything=False)
        if recovered:
            log.warning("dispatch.leases_recovered", deliveries=recovered)

    # -- deliveries taken at creation -------------------------------------------------------
    def reserve(
        self,
        deliveries: Sequence[NewDelivery],
        targets: Mapping[str, str | None] | None = None,
    ) -> Taken | None:
        """Which of a new incident's deliveries this worker claims in the creating transaction:
        those due now that wait for nothing — posts, and follow-ups whose original is delivered
        (``targets``: its remote id by delivery id) — on accounts with a free slot (and
        rate-window room), within the dispatcher's concurrency. Their slots are held until
        :meth:`adopt` or :meth:`release`. The rest are claimed from the store as usual."""
        room = self.config.concurrency - self.inflight - self._reserved
        if self._stopping or self._claiming or room <= 0:
            # A claim from the store is on its way: its slots are not counted yet, so taking
            # any here could overbook an account (and its rate window). The loop claims these.
            return None
        now = time.time()
        free: dict[str, int] = {}
        ids: list[str] = []
        for d in sorted(deliveries, key=lambda d: -d.priority):
            if len(ids) >= room:
                break
            if not _takeable(d, targets or {}, now):
                continue
            runtime = self.accounts.get(d.account)
            if runtime is None:
                continue
            if d.account not in free:
                free[d.account] = runtime.free(now)
            if free[d.account] > 0:
                free[d.account] -= 1
                runtime.inflight += 1
                runtime.waiting += 1
                ids.append(d.id)
        if not ids:
            return None
        self._reserved += len(ids)
        return Taken(self.worker, now + self.config.lease_s, frozenset(ids))

    def adopt(
        self,
        taken: Taken,
        incident: IncidentRow,
        deliveries: Sequence[NewDelivery],
        targets: Mapping[str, str | None] | None = None,
    ) -> None:
        """The creating transaction committed: send what it claimed, right away; unless the
        dispatcher is stopping, when the rows stay claimed and the next start (or another
        replica's lease sweep) sends them."""
        if self._stopping:
            self.release(taken, deliveries)
            return
        for d in deliveries:
            if d.id in taken.ids:
                self._reserved -= 1
                target = d.target_delivery_id
                claim = ActiveClaim(
                    sql.taken_row(incident.id, d, incident.created_at),
                    target_remote_id=(targets or {}).get(target) if target else None,
                    msg_type=incident.msg_type,
                    target_delivered=target is not None,
                )
                self._spawn(claim)

    def release(self, taken: Taken, deliveries: Sequence[NewDelivery]) -> None:
        """The creating transaction failed: give the slots back."""
        for d in deliveries:
            if d.id in taken.ids and (runtime := self.accounts.get(d.account)) is not None:
                runtime.inflight -= 1
                runtime.waiting -= 1
        self._reserved -= len(taken.ids)

    async def _claim(self) -> list[ActiveClaim]:
        room = self.config.concurrency - self.inflight - self._reserved
        if room <= 0:
            return []
        now = time.time()
        self._claiming = True
        try:
            claims = await self.store.claim_due(
                now=now,
                limit=room,
                lease_s=self.config.lease_s,
                worker=self.worker,
                free=self.accounts.free(now),
            )
        finally:
            self._claiming = False
        for claim in claims:
            runtime = self.accounts.get(claim.delivery.account)
            if runtime is not None:
                runtime.inflight += 1
                runtime.waiting += 1
        return claims

    async def _sleep(self) -> None:
        """Until woken, the next retry is due, or the poll interval, whichever is first.

        Rows already due but not claimable (a paused or saturated account, a follow-up waiting
        for its original) wait for a wake-up or the poll, never a busy loop.
        """
        timeout = self.config.poll_interval_s
        due = await self.store.next_due_at()
        if due is not None and due > time.time():
            timeout = min(timeout, max(0.005, due - time.time()))
        self.sleeping = True
        try:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._wake.wait()
        finally:
            self.sleeping = False

    def _spawn(self, claim: ActiveClaim) -> None:
        task = asyncio.create_task(self._handle(claim), name=f"deliver-{claim.delivery.id}")
        self._tasks.add(task)
        metrics.INFLIGHT.set(len(self._tasks))
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        metrics.INFLIGHT.set(len(self._tasks))
        self._wake.set()
        if not task.cancelled() and task.exception() is not None:
            log.error("dispatch.task_failed", exc_info=task.exception())

    # -- one delivery -----------------------------------------------------------------------
    async def _handle(self, claim: ActiveClaim) -> None:
        d = claim.delivery
        runtime = self.accounts.get(d.account)
        waiting = [runtime is not None]  # until the send holds its rate-limit slot
        with bound_contextvars(
            incident_id=d.incident_id, delivery_id=d.id, account=d.account, attempt=d.attempts
        ):
            try:
                if runtime is None:
                    await self._finish(
                        d,
                        None,
                        time.time(),
                        0.0,
                        Permanent(f"account {d.account!r} is no longer configured"),
                    )
                    return
                if (needless := _needless(runtime, claim) or _cannot(runtime, claim)) is not None:
                    await self._finish(d, runtime, time.time(), 0.0, Skipped(needless))
                    return
                self._publish(d, DeliveryState.sending)
                await self._send(runtime, claim, waiting)
            except Exception:  # recording failed: the lease brings it back, never lost
                log.exception("dispatch.record_failed")
            finally:
                if runtime is not None:
                    runtime.inflight -= 1
                    runtime.waiting -= int(waiting[0])

    async def _send(self, runtime: AccountRuntime, claim: ActiveClaim, waiting: list[bool]) -> None:
        d = claim.delivery
        async with runtime.limiter.slot():
            runtime.waiting -= 1
            waiting[0] = False
            started, t0 = time.time(), time.monotonic()
            msg = self._outgoing(runtime, claim)
            result = await self._attempt(runtime, msg)
            duration_ms = 1000 * (time.monotonic() - t0)
        metrics.ATTEMPT_SECONDS.labels(runtime.config.channel).observe(duration_ms / 1000)
        await self._finish(
            d, runtime, started, duration_ms, result, progress=dict(msg.progress) or None
        )

    async def _attempt(self, runtime: AccountRuntime, msg: Outgoing) -> Receipt | ChannelError:
        try:
            return await runtime.channel.deliver(msg)
        except ChannelError as exc:
            return exc
        except Exception as exc:  # an adapter bug must not lose the delivery
            log.exception("dispatch.adapter_bug")
            return Transient(f"internal error in adapter: {type(exc).__name__}")

    def _outgoing(self, runtime: AccountRuntime, claim: ActiveClaim) -> Outgoing:
        d = claim.delivery
        action = d.action
        progress: dict[str, Any] = json.loads(json.dumps(d.progress)) if d.progress else {}
        if action != "post" and (
            claim.target_remote_id is None or action not in runtime.channel.capabilities
        ):
            action = "post"  # nothing to thread to, or the platform cannot: stand alone
        return Outgoing(
            delivery_id=d.id,
            incident_id=d.incident_id,
            idempotency_key=d.idempotency_key,
            payload=d.payload,
            action=action,  # type: ignore[arg-type]
            target_remote_id=claim.target_remote_id if action != "post" else None,
            attempt=d.attempts,
            progress=progress,
            checkpoint=self._checkpoint(d.id, progress),
        )

    def _checkpoint(
        self, delivery_id: str, progress: dict[str, Any]
    ) -> Callable[[], Awaitable[bool]]:
        async def checkpoint() -> bool:
            held = await self.store.save_progress(
                delivery_id, progress, worker=self.worker, lease_s=self.config.lease_s
            )
            if not held:
                log.warning("dispatch.claim_lost", delivery_id=delivery_id)
            return held

        return checkpoint

    async def _finish(
        self,
        d: DeliveryRow,
        runtime: AccountRuntime | None,
        started: float,
        duration_ms: float,
        result: Receipt | ChannelError,
        *,
        progress: dict[str, Any] | None = None,
    ) -> None:
        now = time.time()
        outcome = self._decide(d, runtime, result, now)
        if progress is not None:
            outcome = replace(outcome, progress=progress)
        attempt = AttemptRow(
            delivery_id=d.id,
            number=d.attempts,
            started_at=started,
            duration_ms=duration_ms,
            outcome=outcome.state.value,
            http_status=result.http_status,
            error_code=result.code if isinstance(result, ChannelError) else None,
            error=self.secrets.redact(result.reason) if isinstance(result, ChannelError) else None,
            next_attempt_at=outcome.next_attempt_at,
        )
        if isinstance(result, QuotaExhausted) and self.on_quota is not None:
            # The fallback's deliveries are stored before this one is settled, so the incident
            # never looks settled (to the status API, the stream, `send --follow`) in between.
            await self.on_quota(replace(d, state=outcome.state, reason=outcome.reason))
        row = await self.store.finish_attempt(d, attempt, outcome, worker=self.worker)
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
        if isinstance(result, Receipt):
            if runtime is not None:
                runtime.succeeded(now)
            return Outcome(
                DeliveryState.delivered,
                remote_id=result.remote_id,
                reason="duplicate: the platform already had it" if result.duplicate else None,
            )
        if isinstance(result, Skipped):
            return Outcome(DeliveryState.skipped, reason=result.reason)
        error = self.secrets.redact(result.reason)
        final = isinstance(result, Permanent) or d.attempts >= d.max_attempts
        if runtime is not None:
            runtime.errored(now, error, final=final)
        if isinstance(result, AuthExpired):
            return self._auth_expired(d, runtime, error, now)
        if isinstance(result, QuotaExhausted):
            return self._quota(d, runtime, result, error, now)
        if isinstance(result, Permanent):
            return Outcome(DeliveryState.failed, last_error=error, reason=error)
        if d.attempts >= d.max_attempts:
            return Outcome(
                DeliveryState.dead, last_error=error, reason=f"gave up after {d.attempts} attempts"
            )
        retry_after = result.retry_after if isinstance(result, Transient) else None
        return Outcome(
            DeliveryState.retrying,
            last_error=error,
            next_attempt_at=now + self.policy.delay_s(d.attempts, retry_after),
        )

    def _auth_expired(
        self, d: DeliveryRow, runtime: AccountRuntime | None, error: str, now: float
    ) -> Outcome:
        if runtime is not None:
            runtime.pause(f"credentials rejected: {error}", credentials=True)
        return Outcome(
            DeliveryState.retrying,
            last_error=error,
            reason="account paused until its credentials are replaced",
            next_attempt_at=now + AUTH_PAUSE_RETRY_S,
        )

    def _quota(
        self,
        d: DeliveryRow,
        runtime: AccountRuntime | None,
        exc: QuotaExhausted,
        error: str,
        now: float,
    ) -> Outcome:
        until = exc.until.timestamp() if exc.until is not None else None
        if runtime is not None:
            runtime.pause(f"quota exhausted: {error}", until)
        return Outcome(DeliveryState.skipped, last_error=error, reason=f"quota exhausted: {error}")

    def _publish(self, d: DeliveryRow, state: DeliveryState) -> None:
        self.events.publish(delivery_event(d, state))


def delivery_event(d: DeliveryRow, state: DeliveryState) -> dict[str, Any]:
    return {
        "type": "delivery",
        "id": d.id,
        "incident_id": d.incident_id,
        "account": d.account,
        "channel": d.channel,
        "state": state.value,
        "attempts": d.attempts,
        "last_error": d.last_error,
        "remote_id": d.remote_id,
        "reason": d.reason,
    }
