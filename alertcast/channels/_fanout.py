"""One delivery to many people, one request each, resumable: the cursor and the fan-out loop.

A WeChat template message (and, later, an SMS or a bot DM) addresses one person per request. A
delivery to a list of subscribers is therefore many requests, and any of them can fail, time out
or be cut short by a crash. Resending the whole list on the next attempt would alert everyone
before the failure twice, so the delivery carries a :class:`Cursor` in ``Outgoing.progress``:

* ``next``: every recipient before this index is done (sent or refused for good);
* ``ahead``: runs of indices past ``next`` that are done too (no more runs than sends in
  flight);
* ``sent``, ``refused``: counts over every attempt; ``refusals``: the first few refusals by
  recipient, for the status API;
* ``list``: a fingerprint of the recipient list, so a changed list is never resumed by index.

Its size depends on the sends in flight, never on the list, so a checkpoint of a delivery to a
hundred thousand subscribers is a few hundred bytes. :func:`fan_out` sends to what the cursor has
not done, a bounded number at a time, checkpoints every ``every`` completions or ``interval_s``
seconds (which also extends the claim's lease), and on the first error that is not about one
recipient lets the sends in flight finish, records them, and raises that error.
"""

from __future__ import annotations

import asyncio
import bisect
import hashlib
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import structlog

from alertcast.channels.base import ChannelError, Outgoing, Transient

__all__ = ["Cursor", "Result", "fan_out", "fingerprint"]

log = structlog.get_logger("alertcast.channels.fanout")
MAX_REFUSALS_KEPT = 20


def fingerprint(recipients: Sequence[str]) -> str:
    digest = hashlib.sha256()
    for r in recipients:
        digest.update(r.encode())
        digest.update(b"\0")
    return f"{len(recipients)}:{digest.hexdigest()[:16]}"


@dataclass(frozen=True, slots=True)
class Result:
    """One recipient's answer: ``remote_id`` when it was sent, ``code`` when it was refused."""

    sent: bool
    remote_id: str | None = None
    code: int | str | None = None


class Cursor:
    """Which of an ordered recipient list are done, kept in ``progress`` (updated in place).

    ``ahead`` holds runs ``[start, end)`` of done indices past ``next``; every index between
    them was handed out and is still in flight, so there are never more runs than sends in
    flight, however long the list and however slow one request is.
    """

    def __init__(self, progress: dict[str, Any], recipients: Sequence[str]) -> None:
        self.progress = progress
        self.recipients = recipients
        mark = fingerprint(recipients)
        if progress and progress.get("list") != mark:
            # The list changed since the last attempt (a config reload): indices mean other
            # people now. Start over; each request's client id still names the same person.
            log.warning("fanout.list_changed", was=progress.get("list"), now=mark)
            progress.clear()
        progress.setdefault("list", mark)
        progress.setdefault("total", len(recipients))
        progress.setdefault("next", 0)
        progress.setdefault("ahead", [])
        progress.setdefault("sent", 0)
        progress.setdefault("refused", 0)
        progress.setdefault("refusals", {})
        self.runs: list[list[int]] = [[int(a), int(b)] for a, b in progress["ahead"]]
        progress["ahead"] = self.runs
        self.first_remote_id: str | None = progress.get("first_remote_id")

    @property
    def done(self) -> bool:
        return int(self.progress["next"]) >= len(self.recipients)

    def is_done(self, index: int) -> bool:
        if index < self.progress["next"]:
            return True
        at = bisect.bisect_right(self.runs, [index, len(self.recipients) + 1]) - 1
        return at >= 0 and self.runs[at][0] <= index < self.runs[at][1]

    def pending(self) -> Iterator[int]:
        """Indices not done yet, in order (a live view: marks made meanwhile are honoured)."""
        index = int(self.progress["next"])
        while index < len(self.recipients):
            if not self.is_done(index):
                yield index
            index += 1

    def mark(self, index: int, result: Result) -> None:
        p = self.progress
        if self.is_done(index):
            return
        if result.sent:
            p["sent"] += 1
            if self.first_remote_id is None and result.remote_id:
                self.first_remote_id = p["first_remote_id"] = result.remote_id
        else:
            p["refused"] += 1
            if len(p["refusals"]) < MAX_REFUSALS_KEPT:
                p["refusals"][self.recipients[index]] = result.code
        runs = self.runs
        if index == p["next"]:
            p["next"] = index + 1
            if runs and runs[0][0] == p["next"]:
                p["next"] = runs.pop(0)[1]
            return
        at = bisect.bisect_left(runs, [index, index])
        left = runs[at - 1] if at > 0 and runs[at - 1][1] == index else None
        right = runs[at] if at < len(runs) and runs[at][0] == index + 1 else None
        if left is not None and right is not None:
            left[1] = right[1]
            del runs[at]
        elif left is not None:
            left[1] = index + 1
        elif right is not None:
            right[0] = index
        else:
            runs.insert(at, [index, index + 1])


async def fan_out(
    msg: Outgoing,
    recipients: Sequence[str],
    send_one: Callable[[str], Awaitable[Result]],
    *,
    concurrency: int,
    timeout_s: float,
    every: int = 50,
    interval_s: float = 1.0,
) -> Cursor:
    """Send to each recipient ``msg.progress`` has not done; return the cursor when all are.

    ``send_one`` returns a :class:`Result` for an answer about that recipient alone and raises
    a :class:`ChannelError` for anything else, which stops the fan-out (after the sends in
    flight) and is raised here. Each request gets ``timeout_s``.
    """
    run = _Run(msg, Cursor(msg.progress, recipients), every, interval_s)
    todo = run.cursor.pending()

    async def worker() -> None:
        for index in todo:
            if run.failure:
                return
            result = await _one(send_one, recipients[index], timeout_s)
            if isinstance(result, ChannelError):
                run.failure.append(result)
                return
            run.cursor.mark(index, result)
            await run.maybe_save()

    await asyncio.gather(*(worker() for _ in range(max(1, concurrency))))
    if run.failure:
        raise run.failure[0]
    return run.cursor


class _Run:
    """One attempt's fan-out: its cursor, the first failure, and when to checkpoint next."""

    def __init__(self, msg: Outgoing, cursor: Cursor, every: int, interval_s: float) -> None:
        self.msg, self.cursor = msg, cursor
        self.every, self.interval_s = every, interval_s
        self.failure: list[ChannelError] = []
        self.marked, self.saved_at = 0, time.monotonic()
        self.saving = asyncio.Lock()

    async def maybe_save(self) -> None:
        self.marked += 1
        checkpoint = self.msg.checkpoint
        if checkpoint is None or self.saving.locked():  # a save in progress takes this mark too
            return
        if self.marked < self.every and time.monotonic() - self.saved_at < self.interval_s:
            return
        async with self.saving:
            self.marked, self.saved_at = 0, time.monotonic()
            if not await checkpoint():
                self.failure.append(Transient("the claim on this delivery was lost; stopping"))


async def _one(
    send_one: Callable[[str], Awaitable[Result]], recipient: str, timeout_s: float
) -> Result | ChannelError:
    try:
        async with asyncio.timeout(timeout_s):
            return await send_one(recipient)
    except TimeoutError:
        return Transient(f"a request timed out after {timeout_s:g} s")
    except ChannelError as exc:
        return exc
    except Exception as exc:  # an adapter bug: stop, keep what is done
        log.exception("fanout.send_failed")
        return Transient(f"internal error in adapter: {type(exc).__name__}")
