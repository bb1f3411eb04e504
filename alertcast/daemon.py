"""Running the daemon: the app behind an aiohttp runner until SIGINT/SIGTERM, then in order."""

from __future__ import annotations

import asyncio
import signal
from typing import Any

import structlog
from aiohttp import web

from alertcast.app import create_app
from alertcast.config import Config

__all__ = ["serve"]


async def serve(
    config: Config,
    secrets: Any,
    *,
    host: str | None = None,
    port: int | None = None,
    ready: asyncio.Future[str] | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Run the daemon until SIGINT/SIGTERM (or ``stop``); shut down in order."""
    app = create_app(config, secrets=secrets)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(
        runner, host or config.server.host, config.server.port if port is None else port
    )
    await site.start()
    bound = runner.addresses[0]
    url = f"http://{bound[0]}:{bound[1]}"
    structlog.get_logger("alertcast").info("alertcast.listening", url=url)
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    if ready is not None:
        ready.set_result(url)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
