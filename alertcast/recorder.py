"""Attempts' records, written together: one transaction for every outcome decided meanwhile.

Each delivery's task hands its attempt and outcome to :meth:`Recorder.record` and waits until
the store has committed it, as before: what the dispatcher reports done is on disk. But the
records do not each take a transaction. While one batch is being written, the next ones
gather; when it commits, everything that gathered goes in one :meth:`Store.finish_attempts`
(one group commit on SQLite, one transaction on PostgreSQL). A burst of answers from a fast
platform costs a few commits, not one each, and the event loop is not woken once per record.

A batch the store refuses is retried with backoff until the store takes it
(:meth:`alertcast.outage.Outage.record`: the dispatcher claims nothing meanwhile); the write is
idempotent (an attempt's row is inserted once, a delivery is finished only under our claim).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from alertcast.outage import Outage
from alertcast.store.base import AttemptRow, DeliveryRow, Outcome, Store

__all__ = ["Recorder"]

MAX_BATCH = 512  # records per transaction; a longer backlog goes in several

Finish = tuple[DeliveryRow, AttemptRow, Outcome]


class Recorder:
    """Records of finished attempts, batched while the previous batch is being written."""

    def __init__(
        self,
        store: Store,
        outage: Outage,
        *,
        worker: str,
        written: Callable[[], None] = lambda: None,
    ) -> None:
        self.store = store
        self.outage = outage
        self.worker = worker
        self.written = written  # called once per batch committed (the dispatcher claims again)
        self._pending: list[tuple[Finish, asyncio.Future[DeliveryRow]]] = []
        self._writer: asyncio.Task[None] | None = None
        self.backlog = 0  # records handed over and not yet committed

    async def record(self, d: DeliveryRow, attempt: AttemptRow, outcome: Outcome) -> DeliveryRow:
        """Store the attempt and the delivery's outcome; the row as stored, once committed."""
        future: asyncio.Future[DeliveryRow] = asyncio.get_running_loop().create_future()
        self._pending.append(((d, attempt, outcome), future))
        self.backlog += 1
        if self._writer is None:
            self._writer = asyncio.create_task(self._write(), name="recorder")
        return await asyncio.shield(future)  # a cancelled sender does not unrecord its attempt

    async def _write(self) -> None:
        try:
            while self._pending:
                batch: list[tuple[Finish, asyncio.Future[DeliveryRow]]] = []
                ids: list[str] = []  # the batch's deliveries, as it grows between tries
                try:
                    rows = await self.outage.record(ids, self._call(batch, ids))
                except asyncio.CancelledError:  # the process stops: Outage.record logged them
                    for _, future in [*batch, *self._pending]:
                        future.cancel()
                    self._pending = []
                    raise
                finally:
                    self.backlog -= len(batch)
                for (_, future), row in zip(batch, rows, strict=True):
                    if not future.done():
                        future.set_result(row)
                self.written()
        finally:
            self._writer = None

    def _call(
        self, batch: list[tuple[Finish, asyncio.Future[DeliveryRow]]], ids: list[str]
    ) -> Callable[[], Awaitable[list[DeliveryRow]]]:
        """One try at writing ``batch``: first it takes in what gathered since the last try
        (up to :data:`MAX_BATCH`), so that while the store is away every outcome waiting is in
        the one batch being retried (and counted as waiting), not queued behind it."""

        async def call() -> list[DeliveryRow]:
            room = MAX_BATCH - len(batch)
            taken, self._pending = self._pending[:room], self._pending[room:]
            batch.extend(taken)
            ids.extend(d.id for (d, _, _), _ in taken)
            return await self.store.finish_attempts([item for item, _ in batch], worker=self.worker)

        return call

    async def close(self, timeout_s: float) -> None:
        """Wait (at most ``timeout_s``) for every record handed over to be written; then stop
        writing (what the store has not taken is logged, each delivery at error)."""
        writer = self._writer
        if writer is None:
            return
        await asyncio.wait({writer}, timeout=timeout_s)
        writer.cancel()
        await asyncio.gather(writer, return_exceptions=True)
