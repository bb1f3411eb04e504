"""In-process event bus: state changes fan out to live-stream subscribers without blocking.

Every published event gets an id, one more than the last (:attr:`EventBus.last_id`); the first
of a process starts at its start time in microseconds, so a later process's ids are greater than
any an earlier one gave, and an id from before a restart (or from another replica) is never
mistaken for one of this process's. The last ``history`` events are kept: a subscriber that
says which id it saw last (a stream's ``Last-Event-ID``) first gets every later one, or — when
they are no longer all held, or the id is not one of this process's — a ``gap`` telling it to
re-read the status API.

A slow subscriber never slows the dispatcher: its queue is bounded and, when full, it is emptied
and given one ``gap`` (with the id of the newest event it missed) instead of what it missed.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections import deque
from collections.abc import AsyncIterator
from typing import Any

__all__ = ["GAP", "EventBus", "Item"]

Event = dict[str, Any]
Item = tuple[int | None, Event]  # (the event's id, or None for a notice that has none; event)
SHUTDOWN: Event = {"type": "shutdown"}
GAP = "gap"


def _gap(why: str) -> Event:
    return {"type": GAP, "detail": f"{why}; re-read GET /v1/incidents/{{id}} for the current state"}


class EventBus:
    def __init__(self, queue_size: int = 1000, history: int = 10_000) -> None:
        self._queue_size = queue_size
        self._subscribers: set[asyncio.Queue[Item]] = set()
        self._history: deque[tuple[int, Event]] = deque(maxlen=history)
        self._ids = itertools.count(time.time_ns() // 1000)
        self.first_id = self.last_id = next(self._ids)  # no event has the first id
        self.closed = False

    def close(self) -> None:
        """Shutting down: every subscriber gets ``{"type": "shutdown"}`` and should end."""
        self.closed = True
        for queue in list(self._subscribers):
            self._put(queue, (None, SHUTDOWN))

    def publish(self, event: Event) -> None:
        self.last_id = next(self._ids)
        self._history.append((self.last_id, event))
        for queue in list(self._subscribers):
            self._put(queue, (self.last_id, event))

    def _put(self, queue: asyncio.Queue[Item], item: Item) -> None:
        if queue.full():  # a subscriber too slow to keep up: it re-reads instead
            while not queue.empty():
                queue.get_nowait()
            queue.put_nowait((item[0] or self.last_id, _gap("the stream fell behind")))
            if item[0] is not None:
                return
        queue.put_nowait(item)

    @contextlib.asynccontextmanager
    async def subscribe(self, after: int | None = None) -> AsyncIterator[asyncio.Queue[Item]]:
        """A queue of every event from now on; first, with ``after`` (the id last seen), the
        ones published since, or a ``gap`` when they are not all held."""
        queue: asyncio.Queue[Item] = asyncio.Queue(self._queue_size)
        for item in [] if after is None else self.since(after):
            self._put(queue, item)
        if self.closed:
            queue.put_nowait((None, SHUTDOWN))
        self._subscribers.add(queue)  # no await since the replay: nothing falls in between
        try:
            yield queue
        finally:
            self._subscribers.discard(queue)

    def since(self, after: int) -> list[Item]:
        """The events published after id ``after``, or one ``gap`` when some are not held."""
        if after == self.last_id:
            return []
        oldest = self._history[0][0] if self._history else self.last_id + 1
        if self.first_id <= after < self.last_id and after >= oldest - 1:
            return [item for item in self._history if item[0] > after]
        why = (
            "the events since that id are no longer held" if after < self.last_id else "unknown id"
        )
        return [(self.last_id, _gap(why))]

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)
