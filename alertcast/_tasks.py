"""The tasks a component's scheduled jobs run in, so that shutdown can drain them on a deadline."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from typing import Any

__all__ = ["Running"]


class Running:
    """``with running.current():`` inside a job; ``await running.drain(5)`` at shutdown."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()

    def __len__(self) -> int:
        return len(self._tasks)

    @contextlib.contextmanager
    def current(self) -> Iterator[None]:
        """Count the task this runs in until the block ends."""
        task = asyncio.current_task()
        if task is None:
            yield
            return
        self._tasks.add(task)
        try:
            yield
        finally:
            self._tasks.discard(task)

    async def drain(self, deadline_s: float) -> None:
        """Let the tasks finish within ``deadline_s``, then cancel and await the rest."""
        if not self._tasks:
            return
        _, late = await asyncio.wait(set(self._tasks), timeout=deadline_s)
        for task in late:
            task.cancel()
        await asyncio.gather(*late, return_exceptions=True)
