"""An aiohttp app served on 127.0.0.1 from its own thread and event loop, for tests whose
client is synchronous or runs its own loop (schemathesis, Playwright)."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator

from aiohttp import web

__all__ = ["serving"]


@contextlib.contextmanager
def serving(app: web.Application) -> Iterator[str]:
    """``app`` on 127.0.0.1 in its own thread and event loop; yields its base URL."""
    loop, runner, ready = asyncio.new_event_loop(), web.AppRunner(app), threading.Event()
    bound: list[int] = []

    async def start() -> None:
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        bound.append(runner.addresses[0][1])

    def run() -> None:
        try:
            loop.run_until_complete(start())
        finally:
            ready.set()
        loop.run_forever()
        loop.run_until_complete(runner.cleanup())
        loop.close()

    thread = threading.Thread(target=run, name="live-app", daemon=True)
    thread.start()
    assert ready.wait(60) and bound, "the app did not start"
    try:
        yield f"http://127.0.0.1:{bound[0]}"
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(60)
