"""structlog, configured once by the entry point: JSON lines off a terminal, readable on one.

Context (``incident_id``, ``delivery_id``, ``account``, ``attempt``) is bound with contextvars
by the dispatcher and merged into every line; a final processor scrubs every secret value the
process has read, whatever field it hides in.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import logging
import sys
import threading
from typing import Any, TextIO

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

from alertcast.secrets import Secrets

__all__ = ["configure"]


def _redactor(secrets: Secrets) -> Processor:
    def redact(_: WrappedLogger, __: str, event: EventDict) -> EventDict:
        for key, value in event.items():
            if isinstance(value, str):
                event[key] = secrets.redact(value)
            elif value is not None and not isinstance(value, int | float | bool):
                text = secrets.redact(str(value))
                if text != str(value):
                    event[key] = text
        return event

    return redact


class LineWriter:
    """Log lines written in bursts: within a running event loop, the lines of one loop turn
    are written (and flushed) together at its end, instead of a write and a flush per line;
    elsewhere, at once. A crash loses at most the current turn's lines; exit flushes the rest.
    """

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self._lines: list[str] = []
        self._lock = threading.Lock()
        self._scheduled: asyncio.AbstractEventLoop | None = None  # the loop a flush waits on
        atexit.register(self.flush)

    def msg(self, message: str) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        with self._lock:
            self._lines.append(message)
            if loop is not None and self._scheduled is loop:
                return
            self._scheduled = loop
        if loop is None:
            self.flush()
        else:
            loop.call_soon(self.flush)

    log = debug = info = warn = warning = error = critical = exception = fatal = failure = msg

    def flush(self) -> None:
        with self._lock:
            lines, self._lines, self._scheduled = self._lines, [], None
        if lines:
            with contextlib.suppress(ValueError, OSError):  # a closed stream at exit
                self.stream.write("\n".join(lines) + "\n")
                self.stream.flush()


def configure(
    secrets: Secrets, *, level: str = "info", fmt: str = "auto", stream: TextIO | None = None
) -> None:
    stream = stream or sys.stderr
    as_json = fmt == "json" or (fmt == "auto" and not stream.isatty())
    processors: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        _redactor(secrets),
    ]
    renderer: Processor = (
        structlog.processors.JSONRenderer(ensure_ascii=False)
        if as_json
        else structlog.dev.ConsoleRenderer(colors=stream.isatty())
    )
    structlog.configure(
        processors=[*processors, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=_factory(LineWriter(stream)),
        cache_logger_on_first_use=False,
    )


def _factory(writer: LineWriter) -> Any:
    def factory(*_: Any) -> LineWriter:
        return writer

    return factory


def quiet_aiohttp_access(level: int = logging.WARNING) -> Any:
    logging.getLogger("aiohttp.access").setLevel(level)
