"""Log lines: written once per event-loop turn, in order, secrets scrubbed, none left behind."""

from __future__ import annotations

import asyncio
import io
import json

import structlog

from alertcast.logs import LineWriter, configure
from alertcast.secrets import Secrets


async def test_a_turns_lines_are_written_together_at_its_end() -> None:
    out = io.StringIO()
    writer = LineWriter(out)
    writer.msg("one")
    writer.msg("two")
    assert out.getvalue() == ""  # still this turn
    await asyncio.sleep(0)
    assert out.getvalue() == "one\ntwo\n"
    writer.msg("three")
    await asyncio.sleep(0)
    assert out.getvalue() == "one\ntwo\nthree\n"


def test_outside_a_loop_each_line_is_written_at_once() -> None:
    out = io.StringIO()
    writer = LineWriter(out)
    writer.msg("alone")
    assert out.getvalue() == "alone\n"


def test_a_flush_scheduled_on_a_loop_that_ended_does_not_strand_lines() -> None:
    out = io.StringIO()
    writer = LineWriter(out)

    async def log_and_leave() -> None:
        writer.msg("first")  # its flush is scheduled on this loop, which stops right away

    loop = asyncio.new_event_loop()
    loop.run_until_complete(log_and_leave())
    loop.close()

    async def log_again() -> None:
        writer.msg("second")
        await asyncio.sleep(0)

    asyncio.run(log_again())
    assert out.getvalue() == "first\nsecond\n"


async def test_configured_logging_is_json_scrubbed_and_flushed() -> None:
    out = io.StringIO()
    secrets = Secrets({"T": "s3cr3t-value-123"})
    assert secrets.get("T") == "s3cr3t-value-123"  # a secret the process has read
    configure(secrets, level="info", fmt="json", stream=out)
    try:
        structlog.get_logger("t").info("hello", token="s3cr3t-value-123", n=1)
        await asyncio.sleep(0)
    finally:
        structlog.reset_defaults()  # other tests log through the defaults
    (line,) = out.getvalue().splitlines()
    event = json.loads(line)
    assert event["event"] == "hello" and event["n"] == 1
    assert "s3cr3t-value-123" not in line
