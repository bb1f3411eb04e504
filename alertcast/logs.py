"""structlog, configured once by the entry point: JSON lines off a terminal, readable on one.

Context (``incident_id``, ``delivery_id``, ``account``, ``attempt``) is bound with contextvars
by the dispatcher and merged into every line; a final processor scrubs every secret value the
process has read, whatever field it hides in.
"""

from __future__ import annotations

import logging
import sys
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
        logger_factory=structlog.PrintLoggerFactory(file=stream),
        cache_logger_on_first_use=False,
    )


def quiet_aiohttp_access(level: int = logging.WARNING) -> Any:
    logging.getLogger("aiohttp.access").setLevel(level)
