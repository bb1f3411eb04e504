"""One delivery to many people, one request each, resumable: the cursor and the fan-out loop.

A WeChat template message (and, later, an SMS or a bot DM) addresses one person per request. A
delivery to a list of subscribers is therefore many requests, and any of them can fail, time out
or be cut short by a crash. Resending the whole list on the next attempt would alert everyone
before the failure twice, so the delivery carries a cursor in ``Outgoing.progress``.

The audience comes in **pages** (a configured list is one page; a platform's follower list
comes 10,000 at a time, each page fetched by the token the previous one ended with), and within
a page the cursor works on the recipients' ids **in sorted order**, by key rather than by
position, so the audience may change between attempts (someone follows or leaves, the config
is reloaded) without anyone done being sent to again:

* ``page``: the token of the page in progress (``""`` for the first);
* ``after``: every recipient of that page whose id sorts at or before this one is done;
* ``ahead``: ranges ``[first, last]`` of ids past ``after`` that are done too; between them
  are only requests still in flight, so there are never more ranges than requests in flight;
* ``sent``, ``refused``: counts over every attempt; ``refusals``: the first few refusals by
  recipient, for the status API; ``total``: the audience's size when the platform says it.

Its size depends on the requests in flight, never on the audience, so a checkpoint of a send to
a million followers is a few hundred bytes, and memory holds one page. :func:`fan_out` sends to
what the cursor has not done, a bounded number at a time, checkpoints every ``every``
completions or ``interval_s`` seconds and at each page's end (which also extends the claim's
lease), and on the first error that is not about one recipient lets the requests in flight
finish, records them, and raises that error.

Someone who joins the audience between attempts with an id that sorts into a range already done
is not sent to; everyone else who joins before their part of the list is reached is.
"""

from __future__ import annotations

import asyncio
import bisect
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import structlog

from alertcast.channels.base import ChannelError, Outgoing, Transient

__all__ = ["Cursor", "Page", "Result", "fan_out", "one_page"]

log = structlog.get_logger("alertcast.channels.fanout")
MAX_REFUSALS_KEPT = 20


@dataclass(frozen=True, slots=True)
class Result:
    """One recipient's answer: ``remote_id`` when it was sent, ``code`` when it was refused."""

    sent: bool
    remote_id: str | None = None
    code: int | str | None = None


@dataclass(frozen=True, slots=True)
class Page:
    """Recipients of one page, the token of the next (``None``: this is the last), and the
    audience's size when the platform says it."""

    recipients: Sequence[str]
    next_token: str | None = None
    total: int | None = None


PageSource = Callable[[str], Awaitable[Page]]


def one_page(recipients: Sequence[str]) -> PageSource:
    """A fixed list as a page source."""

    async def fetch(token: str) -> Page:
        return Page(recipients, None, len(set(recipients)))

    return fetch


class Cursor:
    """Which recipients of the current page are done, kept in ``progress`` (updated in place).

    Internally positions in the page's sorted ids: ``next`` (all before it done) and runs
    ``[start, end)`` of done positions past it; ``progress`` holds them as ids, which survive
    the page changing between attempts.
    """

    def __init__(self, progress: dict[str, Any], recipients: Sequence[str]) -> None:
        self.progress = progress
        self.ids = sorted(set(recipients))
        for key, empty in (("page", ""), ("after", None), ("ahead", []), ("sent", 0)):
            progress.setdefault(key, empty)
        progress.setdefault("refused", 0)
        progress.setdefault("refusals", {})
        self.first_remote_id: str | None = progress.get("first_remote_id")
        after = progress["after"]
        self.next = 0 if after is None else bisect.bisect_right(self.ids, after)
        self.runs: list[list[int]] = []
        for lo, hi in progress["ahead"]:  # ids done past `after`, as position runs now
            start, end = bisect.bisect_left(self.ids, lo), bisect.bisect_right(self.ids, hi)
            if start < end:
                self._add_run(start, end)
        self._absorb()

    @property
    def done(self) -> bool:
        return self.next >= len(self.ids)

    def is_done(self, pos: int) -> bool:
        if pos < self.next:
            return True
        at = bisect.bisect_right(self.runs, [pos, len(self.ids) + 1]) - 1
        return at >= 0 and self.runs[at][0] <= pos < self.runs[at][1]

    def pending(self) -> Iterator[int]:
        """Positions not done yet, in order (a live view: marks made meanwhile are honoured)."""
        pos = self.next
        while pos < len(self.ids):
            if not self.is_done(pos):
                yield pos
            pos += 1

    def mark(self, pos: int, result: Result) -> None:
        if self.is_done(pos):
            return
        p = self.progress
        if result.sent:
            p["sent"] += 1
            if self.first_remote_id is None and result.remote_id:
                self.first_remote_id = p["first_remote_id"] = result.remote_id
        else:
            p["refused"] += 1
            if len(p["refusals"]) < MAX_REFUSALS_KEPT:
                p["refusals"][self.ids[pos]] = result.code
        self._add_run(pos, pos + 1)
        self._absorb()

    def next_page(self, token: str) -> None:
        """The page is done: move the cursor to the page ``token`` names."""
        self.progress.update(page=token, after=None, ahead=[])

    def _add_run(self, start: int, end: int) -> None:
        """Add positions ``[start, end)``, merging runs that touch (there are only a few)."""
        bisect.insort(self.runs, [start, end])
        merged: list[list[int]] = []
        for s, e in self.runs:
            if merged and s <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], e)
            else:
                merged.append([s, e])
        self.runs = merged

    def _absorb(self) -> None:
        """Fold runs that start at ``next`` into it and write the id form to ``progress``."""
        while self.runs and self.runs[0][0] <= self.next:
            self.next = max(self.next, self.runs.pop(0)[1])
        p = self.progress
        if self.next > 0:
            p["after"] = self.ids[self.next - 1]
        p["ahead"] = [[self.ids[s], self.ids[e - 1]] for s, e in self.runs]


async def fan_out(
    msg: Outgoing,
    pages: PageSource,
    send_one: Callable[[str], Awaitable[Result]],
    *,
    concurrency: int,
    timeout_s: float,
    every: int = 50,
    interval_s: float = 1.0,
) -> Cursor:
    """Send to each recipient ``msg.progress`` has not done, page by page; return the cursor
    of the last page when all are done.

    ``send_one`` returns a :class:`Result` for an answer about that recipient alone and raises
    a :class:`ChannelError` for anything else, which stops the fan-out (after the requests in
    flight) and is raised here. Each request gets ``timeout_s``. ``pages`` raises a
    :class:`ChannelError` when a page cannot be fetched.
    """
    progress = msg.progress
    while True:
        page = await pages(str(progress.get("page", "")))
        if page.total is not None:
            progress["total"] = page.total
        run = _Run(msg, Cursor(progress, page.recipients), every, interval_s)
        await run.send_all(send_one, concurrency, timeout_s)
        if page.next_token is None or not page.recipients:
            return run.cursor
        run.cursor.next_page(page.next_token)
        await run.save(force=True)
        if run.failure:
            raise run.failure[0]


class _Run:
    """One page of one attempt: its cursor, the first failure, and when to checkpoint next."""

    def __init__(self, msg: Outgoing, cursor: Cursor, every: int, interval_s: float) -> None:
        self.msg, self.cursor = msg, cursor
        self.every, self.interval_s = every, interval_s
        self.failure: list[ChannelError] = []
        self.marked, self.saved_at = 0, time.monotonic()
        self.saving = asyncio.Lock()
        self.clear = asyncio.Event()  # cleared while a checkpoint is being stored
        self.clear.set()

    async def send_all(
        self, send_one: Callable[[str], Awaitable[Result]], concurrency: int, timeout_s: float
    ) -> None:
        todo = self.cursor.pending()

        async def worker() -> None:
            for pos in todo:
                # No new request while a checkpoint is being stored: what a crash can repeat
                # stays within one checkpoint's worth (`every`) plus the requests in flight.
                await self.clear.wait()
                if self.failure:
                    return
                result = await _one(send_one, self.cursor.ids[pos], timeout_s)
                if isinstance(result, ChannelError):
                    self.failure.append(result)
                    return
                self.cursor.mark(pos, result)
                self.marked += 1
                await self.save()

        await asyncio.gather(*(worker() for _ in range(max(1, concurrency))))
        if self.failure:
            raise self.failure[0]

    async def save(self, *, force: bool = False) -> None:
        checkpoint = self.msg.checkpoint
        if checkpoint is None:
            return
        if self.saving.locked() and not force:  # a save in progress takes this mark too
            return
        due = self.marked >= self.every or time.monotonic() - self.saved_at >= self.interval_s
        if not (force or due):
            return
        async with self.saving:
            self.marked, self.saved_at = 0, time.monotonic()
            self.clear.clear()
            try:
                if not await checkpoint():
                    self.failure.append(Transient("the claim on this delivery was lost; stopping"))
            except Exception as exc:
                # Stop like a lost claim: raised from one worker, it would end the gather while
                # the other workers went on sending, past the cursor the attempt records.
                log.warning("fanout.checkpoint_failed", error=type(exc).__name__)
                self.failure.append(
                    Transient(f"could not store progress ({type(exc).__name__}); stopping")
                )
            finally:
                self.clear.set()


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
