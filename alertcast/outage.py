"""Whether the store answers: since when it has not, why, and one warning each way.

The dispatcher, ``/healthz`` and the API's error edge share one :class:`Outage`. Any exception
from a store call counts as the store being unreachable (PostgreSQL raises a ``TimeoutError``
or a ``ConnectionError``, whatever its driver said; another engine may raise its own); a probe
that answers ends the outage. The error kept for operators is redacted: a DSN may carry a password.

A call can also fail while the store still answers a probe: a statement that ran out of its
bound (a lock held elsewhere, a slow moment) or a connection that dropped under it. The store
raises those as :data:`UNANSWERED` (``TimeoutError`` naming the bound, ``ConnectionError``
naming what dropped): a request that met one is refused with a ``503`` to send again
(:meth:`Outage.missed`), not a ``500``; any other error is a bug, and stays one.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable, Collection, Iterator
from datetime import UTC, datetime
from typing import Any, TypeVar

import structlog

from alertcast.store.base import Store

__all__ = ["UNANSWERED", "Outage", "backoff", "unknown"]

log = structlog.get_logger("alertcast.store")

T = TypeVar("T")

FIRST_S, MAX_S = 0.1, 2.0
PROBE_TIMEOUT_S = 5.0
_DSN_PASSWORD = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^:/@\s]*:)[^@\s]*@")
UNANSWERED = (TimeoutError, ConnectionError)  # how a store call that got no answer fails


def backoff(first_s: float = FIRST_S, max_s: float = MAX_S) -> Iterator[float]:
    """Delays between tries: ``first_s`` doubling up to ``max_s``, forever."""
    delay = first_s
    while True:
        yield delay
        delay = min(2 * delay, max_s)


class Outage:
    """The store's reachability as this process last saw it."""

    def __init__(self, store: Store, redact: Callable[[str], str]) -> None:
        self.store = store
        self._redact = redact
        self.since: float | None = None  # when the store stopped answering (None: it answers)
        self.error: str | None = None  # the last failure, redacted
        self.waiting: set[str] = set()  # deliveries sent whose outcome the store has not taken
        self._back = asyncio.Event()
        self._back.set()

    @property
    def down(self) -> bool:
        return self.since is not None

    def failed(self, exc: BaseException) -> None:
        """A store call failed: the outage starts (one warning) or goes on (its last error)."""
        self.error = self.redacted(exc)
        if self.since is None:
            self.since = time.time()
            self._back.clear()
            log.warning("store.unreachable", error=self.error)

    def answered(self) -> None:
        """A store call succeeded: the outage, if any, ends (one warning, with its length)."""
        if self.since is None:
            return
        down_s = time.time() - self.since
        self.since, self.error = None, None
        self._back.set()
        log.warning("store.reachable", down_s=round(down_s, 3))

    async def probe(self, timeout_s: float = PROBE_TIMEOUT_S) -> bool:
        """Whether the store answers a cheap query within ``timeout_s`` (and note it)."""
        timer = asyncio.timeout(timeout_s)
        try:
            async with timer:
                await self.store.next_due_at()
        except Exception as exc:  # any failure, of any driver: unreachable
            self.failed(
                TimeoutError(f"no answer within {timeout_s:g} s") if timer.expired() else exc
            )
            return False
        self.answered()
        return True

    async def record(self, ids: Collection[str], call: Callable[[], Awaitable[T]]) -> T:
        """``call()`` (an idempotent write of the outcomes of the deliveries ``ids``), retried
        until the store takes it; the deliveries are ``waiting`` meanwhile. A failed write is
        tried again when a probe (the dispatcher's, with backoff, or ``/healthz``) sees the
        store back, or after ``MAX_S``: many waiting writes do not each hammer a store that is
        away. Cancelled (the process stops) before the store took it, each delivery is logged
        at error: sent, not recorded."""
        try:
            while True:
                try:
                    result = await call()
                except Exception as exc:  # any failure of the store: unreachable, try again
                    self.failed(exc)
                    self.waiting.update(ids)
                    await self.rest(MAX_S)
                    continue
                self.waiting.difference_update(ids)
                self.answered()
                return result
        except asyncio.CancelledError:
            for delivery_id in sorted(self.waiting.intersection(ids)):
                log.error("store.outcome_unrecorded", delivery_id=delivery_id, error=self.error)
            raise

    async def outlast(
        self, pause: Callable[[float], Awaitable[object]], stopping: Callable[[], bool]
    ) -> None:
        """Until a probe answers (or ``stopping()``), with ``pause(delay)`` between probes."""
        for delay in backoff():
            await pause(delay)
            if stopping() or await self.probe():
                return

    async def rest(self, delay_s: float) -> None:
        """``delay_s``, or less if someone sees the store answer again meanwhile."""
        try:
            async with asyncio.timeout(delay_s):
                await self._back.wait()
        except TimeoutError:
            pass

    def view(self) -> dict[str, Any]:
        """What ``/healthz`` says of the store: ``ok``, or unreachable since when and why."""
        if self.since is None:
            return {"store": "ok"}
        return {
            "store": f"unreachable: {self.error}",
            "store_unreachable_since": datetime.fromtimestamp(self.since, UTC).isoformat(),
            "store_error": self.error,
        }

    def redacted(self, exc: BaseException) -> str:
        """``exc`` as operators see it: its type and text, a DSN's password and secrets masked."""
        return _DSN_PASSWORD.sub(r"\1***@", self._redact(_describe(exc)))

    def missed(self, exc: BaseException, *, done: str) -> str:
        """A refusal's reason when one call got no answer but the store answers again;
        ``done``: what the client is told of whether it was carried out (:func:`unknown`)."""
        return f"the store failed this request ({self.redacted(exc)}) and answers again: {done}"

    def detail(self, *, done: str) -> str:
        """A refusal's reason while the store is away (for a ``503``)."""
        since = self.view().get("store_unreachable_since", "just now")
        return f"the store is unreachable (since {since}): {done}"


def unknown(method: str, replays: str | None) -> str:
    """What a ``503`` tells a client of a request the store failed. A read: send it again. A
    change may have been committed before the connection broke (its answer lost): one the door
    replays (``replays``: by what) is sent again the same way, which answers as the first did
    if it was stored; any other change is looked at before it is sent again."""
    if replays is not None:
        optional = (  # a header the client may not have sent
            "; without one, look for it first (GET /v1/incidents), or it may be done twice"
            if replays == "Idempotency-Key"
            else ""
        )
        return (
            "the request may have been stored before the store stopped answering; send it "
            f"again with the same {replays} (if it was stored, its first answer comes back and "
            f"nothing is done twice){optional}"
        )
    if method in ("GET", "HEAD", "OPTIONS"):
        return "send it again"
    return (
        "the request may have been carried out before the store stopped answering; look at "
        "what it changes before sending it again"
    )


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    if isinstance(exc, TimeoutError) and not text:  # a driver's own bound, unnamed
        text = "no answer in time"
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
