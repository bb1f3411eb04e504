"""Repeated warnings and errors are rate-limited in the log, ours and the standard library's
alike; what was left out is counted on the next line of its kind."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
import structlog

from alertcast.logs import RepeatLimit, configure
from alertcast.secrets import Secrets


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def out(clock: Clock) -> Iterator[io.StringIO]:
    """Logging configured as the daemon does it, into a buffer; undone afterwards."""
    stream, root = io.StringIO(), logging.getLogger()
    handlers, level = list(root.handlers), root.level
    configure(Secrets(), fmt="json", stream=stream, limit=RepeatLimit(3, 10.0, clock=clock))
    yield stream
    structlog.reset_defaults()
    root.handlers[:], root.level = handlers, level


def _lines(out: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_a_kind_gets_burst_lines_per_window_then_the_count_of_the_rest() -> None:
    """Three of a kind per window; the first after it says how many were dropped."""
    clock = Clock()
    limit = RepeatLimit(3, 10.0, clock=clock)
    key = ("error", "boom", "OSError")
    assert [limit.admit(key) for _ in range(5)] == [0, 0, 0, None, None]
    assert limit.admit(("error", "other", "")) == 0  # another kind has its own budget
    clock.now += 10
    assert limit.admit(key) == 2
    assert limit.admit(key) == 0


def test_kinds_remembered_are_bounded() -> None:
    """Past ``max_kinds`` kinds, the expired ones are forgotten, then all of them."""
    clock = Clock()
    limit = RepeatLimit(1, 10.0, max_kinds=4, clock=clock)
    for n in range(10):
        assert limit.admit(("error", f"e{n}", "")) == 0
    assert len(limit._kinds) <= 4


async def test_our_repeated_errors_are_limited_and_counted(out: io.StringIO, clock: Clock) -> None:
    """A hundred identical tracebacks write three lines; info lines are never dropped."""
    log = structlog.get_logger("t")
    for n in range(100):
        try:
            raise ConnectionResetError(n)
        except ConnectionResetError:
            log.exception("http.unhandled")
        log.info("delivery.sent", n=n)
    clock.now += 10
    log.error("http.unhandled", exc_info=ConnectionResetError())
    await asyncio.sleep(0)
    errors = [line for line in _lines(out) if line["event"] == "http.unhandled"]
    assert len(errors) == 4 and errors[-1]["suppressed"] == 97
    assert sum(line["event"] == "delivery.sent" for line in _lines(out)) == 100


async def test_the_standard_librarys_repeated_errors_are_limited_too(
    out: io.StringIO, clock: Clock
) -> None:
    """asyncio's accept error a thousand times: three JSON lines, then the count."""
    emfile = OSError(24, "Too many open files")
    for _ in range(1000):
        logging.getLogger("asyncio").error(
            "socket.accept() out of system resource", exc_info=emfile
        )
    clock.now += 10
    logging.getLogger("asyncio").error("socket.accept() out of system resource", exc_info=emfile)
    await asyncio.sleep(0)
    lines = _lines(out)
    assert len(lines) == 4 and {line["logger"] for line in lines} == {"asyncio"}
    assert "Too many open files" in lines[0]["exception"] and lines[-1]["suppressed"] == 997
