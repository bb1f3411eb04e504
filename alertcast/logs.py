"""structlog, configured once by the entry point: JSON lines off a terminal, readable on one.

Context (``incident_id``, ``delivery_id``, ``account``, ``attempt``) is bound with contextvars
by the dispatcher and merged into every line; a final processor scrubs every secret value the
process has read, whatever field it hides in.

The standard library's records (asyncio, aiohttp's server, APScheduler) go through the same
writer, renderer and scrubbing. Warnings and errors that repeat are rate-limited, ours and
theirs alike: at most ``burst`` lines of one kind (level, event, error type) per window; the
first line of that kind after a quiet spell carries ``suppressed``, the count left out.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import logging
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TextIO

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

from alertcast.secrets import Secrets

__all__ = ["HotLogger", "RepeatLimit", "configure"]

LIMITED = frozenset({"warning", "error", "critical"})
Key = tuple[str, str, str]  # level, event (or a record's message template), error type


@dataclass(slots=True)
class _Window:
    start: float
    count: int = 1
    dropped: int = 0


class RepeatLimit:
    """At most ``burst`` lines of one kind per ``window_s``; the rest are counted, not written.

    :meth:`admit` answers ``None`` for a line to drop, else how many of its kind were dropped
    since the last one written (``0`` mostly). Thread-safe; at most ``max_kinds`` kinds are
    remembered (the expired ones are forgotten first).
    """

    def __init__(
        self,
        burst: int = 10,
        window_s: float = 60.0,
        *,
        max_kinds: int = 1024,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.burst, self.window_s, self.max_kinds = burst, window_s, max_kinds
        self._clock = clock
        self._kinds: dict[Key, _Window] = {}
        self._lock = threading.Lock()

    def admit(self, key: Key) -> int | None:
        now = self._clock()
        with self._lock:
            window = self._kinds.get(key)
            if window is None or now - window.start >= self.window_s:
                self._forget(now)
                self._kinds[key] = _Window(now)
                return window.dropped if window is not None else 0
            if window.count < self.burst:
                window.count += 1
                return 0
            window.dropped += 1
            return None

    def _forget(self, now: float) -> None:
        if len(self._kinds) < self.max_kinds:
            return
        self._kinds = {k: w for k, w in self._kinds.items() if now - w.start < self.window_s}
        if len(self._kinds) >= self.max_kinds:
            self._kinds.clear()


def _error_type(exc_info: Any) -> str:
    if exc_info is True:
        exc_info = sys.exc_info()
    if isinstance(exc_info, BaseException):
        return type(exc_info).__name__
    if isinstance(exc_info, tuple) and exc_info and exc_info[0] is not None:
        return str(exc_info[0].__name__)
    return ""


def _limiter(limit: RepeatLimit) -> Processor:
    """structlog's side of the limit: warnings and worse, by level, event and error type."""

    def limited(_: WrappedLogger, __: str, event: EventDict) -> EventDict:
        level = str(event.get("level"))  # add_log_level's name: "exception" reads "error"
        if level not in LIMITED:
            return event
        key = (level, str(event.get("event")), _error_type(event.get("exc_info")))
        dropped = limit.admit(key)
        if dropped is None:
            raise structlog.DropEvent
        if dropped:
            event["suppressed"] = dropped
        return event

    return limited


class _LimitFilter(logging.Filter):
    """The standard library's side of the limit, keyed by logger and message template."""

    def __init__(self, limit: RepeatLimit) -> None:
        super().__init__()
        self.limit = limit

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        key = (record.levelname, f"{record.name}: {record.msg}", _error_type(record.exc_info))
        dropped = self.limit.admit(key)
        if dropped:
            record.suppressed = dropped
        return dropped is not None


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


class _Lines(logging.Handler):
    """Standard-library records as our own lines: rate-limited, stamped, scrubbed, rendered
    like structlog's, and written through the same writer (so in the same order)."""

    def __init__(self, writer: LineWriter, limit: RepeatLimit, chain: list[Processor]) -> None:
        super().__init__()
        self.writer = writer
        self.addFilter(_LimitFilter(limit))
        *prepare, render = chain
        self.setFormatter(
            structlog.stdlib.ProcessorFormatter(
                foreign_pre_chain=[
                    structlog.stdlib.add_log_level,
                    structlog.stdlib.add_logger_name,
                    structlog.stdlib.ExtraAdder({"suppressed"}),
                    structlog.processors.format_exc_info,
                ],
                processors=[
                    structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                    *prepare,
                    render,
                ],
            )
        )

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.writer.msg(self.format(record))
        except Exception:
            self.handleError(record)


def configure(
    secrets: Secrets,
    *,
    level: str = "info",
    fmt: str = "auto",
    stream: TextIO | None = None,
    limit: RepeatLimit | None = None,
) -> None:
    stream = stream or sys.stderr
    writer, limit = LineWriter(stream), limit or RepeatLimit()
    as_json = fmt == "json" or (fmt == "auto" and not stream.isatty())
    renderer: Processor = (
        structlog.processors.JSONRenderer(ensure_ascii=False)
        if as_json
        else structlog.dev.ConsoleRenderer(colors=stream.isatty())
    )
    stamp = structlog.processors.TimeStamper(fmt="iso", utc=True)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            _limiter(limit),  # before the costly part: a dropped line is never formatted
            stamp,
            structlog.processors.format_exc_info,
            _redactor(secrets),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=_factory(writer),
        cache_logger_on_first_use=False,
    )
    _route_stdlib(_Lines(writer, limit, [stamp, _redactor(secrets), renderer]), level)


class HotLogger:
    """``structlog.get_logger(name)`` for code run once per delivery: bound once per logging
    configuration instead of at every call.

    structlog's lazy proxy builds a new bound logger at each call, about 15 µs even for a
    ``debug`` line the level filters out; several per delivery add up. This one keeps the logger
    it bound and binds again only when the configuration changed (``configure`` here, or
    ``structlog.testing.capture_logs`` swapping the processors in and out), seen by the
    identity of the processors, wrapper class, logger factory and context class. A kept logger
    holds on to its processors list, so an id is never reused while it is kept.
    """

    def __init__(self, name: str) -> None:
        self._name = name
        self._key: tuple[int, object, object, object] | None = None
        self._logger: Any = None

    def _current(self) -> Any:
        config = structlog.get_config()
        key = (
            id(config["processors"]),
            config["wrapper_class"],
            config["logger_factory"],
            config["context_class"],
        )
        if key != self._key:
            self._logger, self._key = structlog.get_logger(self._name).bind(), key
        return self._logger

    def __getattr__(self, method: str) -> Any:
        return getattr(self._current(), method)


def _route_stdlib(handler: _Lines, level: str) -> None:
    """The root logger writes through ``handler`` (replacing one a previous call installed),
    warnings and worse unless the configured level is higher."""
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _Lines)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(max(logging.WARNING, logging.getLevelName(level.upper())))


def _factory(writer: LineWriter) -> Any:
    def factory(*_: Any) -> LineWriter:
        return writer

    return factory


def quiet_aiohttp_access(level: int = logging.WARNING) -> Any:
    logging.getLogger("aiohttp.access").setLevel(level)
