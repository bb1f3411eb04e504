"""In-process event bus: state changes fan out to live-stream subscribers without blocking.

A slow subscriber never slows the dispatcher: its queue is bounded and, when full, it is told it
missed events (``{"type": "overflow"}``) and should re-read the status API.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

__all__ = ["EventBus"]

Event = dict[str, Any]
SHUTDOWN: Event = {"type": "shutdown"}


class EventBus:
    def __init__(self, queue_size: int = 1000) -> None:
        self._queue_size = queue_size
        self._subscribers: set[asyncio.Queue[Event]] = set()
        self.closed = False

    def close(self) -> None:
        """Shutting down: every subscriber gets ``{"type": "shutdown"}`` and should end."""
        self.closed = True
        self.publish(SHUTDOWN)

    def publish(self, event: Event) -> None:
        for queue in list(self._subscribers):
            try:
                queue.put_nowait(event)
            except asyncio.QueueFull:
                with contextlib.suppress(asyncio.QueueEmpty):
                    queue.get_nowait()
                queue.put_nowait({"type": "overflow"})

    @contextlib.asynccontextmanager
    async def subscribe(self) -> AsyncIterator[asyncio.Queue[Event]]:
        queue: asyncio.Queue[Event] = asyncio.Queue(self._queue_size)
        if self.closed:
            queue.put_nowait(SHUTDOWN)
        self._subscribers.add(queue)
        try:
            yield queue
        finally:
            self._subscribers.discard(queue)

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)
