"""Sustained throughput: deliveries per second through the whole daemon, against Python's ceiling.

Two phases against the same sink (a separate process that answers after ``--latency-ms``):

1. bare: ``--concurrency`` aiohttp workers POST signed webhook requests (the same body and
   signature work as the webhook channel, nothing else) until ``--deliveries`` are answered;
2. alertcast: the real daemon path. Incidents are POSTed to ``/v1/incidents`` (each fans out
   to ``--accounts`` webhook accounts) while the dispatcher, with ``--concurrency``, claims,
   sends and records every attempt in SQLite (WAL, synchronous=FULL). A feeder keeps about
   ``--backlog`` deliveries waiting, so intake runs throughout, as it would in service.

Steady state: both rates are counted between the moments 10 % and 90 % of the deliveries were
complete (answered by the sink for the bare client, ``delivered_at`` in the store for
alertcast), which leaves out warm-up and the final drain. Target: alertcast / bare >= 0.5.

    .venv/bin/python bench/throughput.py [--deliveries 4000] [--concurrency 64]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import sqlite3
import sys
import time
from collections.abc import Awaitable
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
from _common import (
    EARTHQUAKE,
    SinkProcess,
    auth,
    bare_post,
    bare_session,
    load_average,
    machine,
    run_daemon,
    scratch_dir,
    webhook_payload,
)

TARGET = 0.5
STEADY = (0.10, 0.90)


@dataclass
class Phase:
    """Completion times (``time.time()``) of every delivery, and CPU samples of this process."""

    done_at: list[float]
    cpu: list[tuple[float, float, float]] = field(default_factory=list)

    @property
    def count(self) -> int:
        return len(self.done_at)

    @property
    def window(self) -> tuple[float, float, int]:
        """Start, end and deliveries of the steady window (10 % to 90 % complete)."""
        ordered = sorted(self.done_at)
        lo, hi = (round(q * (len(ordered) - 1)) for q in STEADY)
        return ordered[lo], ordered[hi], hi - lo

    @property
    def steady_rate(self) -> float:
        start, end, done = self.window
        return done / (end - start)

    @property
    def overall_rate(self) -> float:
        return (len(self.done_at) - 1) / (max(self.done_at) - min(self.done_at))

    def cpu_ms(self) -> tuple[float, float, float]:
        """In the steady window: event-loop-thread CPU per delivery, all threads' CPU per
        delivery (ms), and the share of wall time the event loop thread was on a CPU."""
        start, end, done = self.window
        (t0, loop0, all0), (t1, loop1, all1) = (
            min(self.cpu, key=lambda s: abs(s[0] - at)) for at in (start, end)
        )
        per = 1000 * (end - start) / (t1 - t0) / done
        return per * (loop1 - loop0), per * (all1 - all0), (loop1 - loop0) / (t1 - t0)


async def sampled(phase: Awaitable[Phase]) -> Phase:
    """Run ``phase`` while sampling this thread's and this process's CPU time every 50 ms."""
    samples: list[tuple[float, float, float]] = []

    async def sample() -> None:
        while True:
            samples.append((time.time(), time.thread_time(), time.process_time()))
            await asyncio.sleep(0.05)

    sampler = asyncio.create_task(sample())
    try:
        result = await phase
    finally:
        sampler.cancel()
    result.cpu = samples
    return result


# -- bare client -------------------------------------------------------------------------------
async def bare_phase(args: argparse.Namespace, sink: SinkProcess, _: Path) -> Phase:
    payload = webhook_payload()
    done_at: list[float] = []
    numbers = itertools.count()

    async def worker(session: aiohttp.ClientSession) -> None:
        while (i := next(numbers)) < args.deliveries:
            await bare_post(session, sink.hook(i % args.accounts), payload, f"bare-{i}")
            done_at.append(time.time())

    async with bare_session() as session:
        await sink.reset(session)
        await asyncio.gather(*(worker(session) for _ in range(args.concurrency)))
        await check_sink(session, sink, args.deliveries)
    return Phase(done_at)


async def check_sink(session: aiohttp.ClientSession, sink: SinkProcess, expected: int) -> None:
    stats = await sink.stats(session)
    if stats["ok"] != expected or stats["duplicates"] or stats["bad_signature"]:
        raise SystemExit(f"the sink saw {stats}; expected {expected} signed requests, no dupes")


# -- alertcast ---------------------------------------------------------------------------------
async def alertcast_phase(args: argparse.Namespace, sink: SinkProcess, workdir: Path) -> Phase:
    hooks = [sink.hook(i) for i in range(args.accounts)]
    incidents = args.deliveries // args.accounts
    async with (
        run_daemon(workdir, hooks, concurrency=args.concurrency, log_level=args.log_level) as d,
        aiohttp.ClientSession() as session,
    ):
        await sink.reset(session)
        ids = await feed(session, d.url, sink, incidents, args)
        await drained(session, sink, incidents * args.accounts)
        for incident_id in ids:
            await settled(session, d.url, incident_id)
        await check_sink(session, sink, incidents * args.accounts)
    return Phase(delivered_at(d.db, incidents * args.accounts))


async def feed(
    session: aiohttp.ClientSession,
    url: str,
    sink: SinkProcess,
    incidents: int,
    args: argparse.Namespace,
) -> list[str]:
    """POST ``incidents`` incidents, each as soon as fewer than ``backlog`` deliveries wait."""
    ids: list[str] = []
    deadline = time.monotonic() + 300
    while len(ids) < incidents:
        if time.monotonic() > deadline:
            raise SystemExit(f"only {len(ids)} of {incidents} incidents fed in 300 s: stalled")
        answered = (await sink.stats(session, full=False))["answered"]
        if len(ids) * args.accounts - answered >= args.backlog:
            await asyncio.sleep(0.05)
            continue
        async with session.post(f"{url}/v1/incidents", json=EARTHQUAKE, headers=auth()) as resp:
            answer = await resp.json()
        if resp.status != 202 or len(answer["deliveries"]) != args.accounts:
            raise SystemExit(f"unexpected answer {resp.status}: {str(answer)[:300]}")
        ids.append(answer["id"])
    return ids


async def drained(session: aiohttp.ClientSession, sink: SinkProcess, expected: int) -> None:
    """Wait (without loading the daemon) until the sink has answered every delivery."""
    async with asyncio.timeout(120):
        while True:
            if (await sink.stats(session, full=False))["answered"] >= expected:
                return
            await asyncio.sleep(0.05)


async def settled(session: aiohttp.ClientSession, url: str, incident_id: str) -> None:
    """Wait until the status API shows every delivery of the incident settled, all delivered."""
    async with asyncio.timeout(120):
        while True:
            async with session.get(f"{url}/v1/incidents/{incident_id}", headers=auth()) as resp:
                view = await resp.json()
            if view["settled"]:
                break
            await asyncio.sleep(0.2)
    if set(view["counts"]) != {"delivered"}:
        raise SystemExit(f"incident {incident_id} settled as {view['counts']}")


def delivered_at(db: Path, expected: int) -> list[float]:
    """Every delivery's ``delivered_at``, after checking one recorded attempt per delivery."""
    with sqlite3.connect(db) as conn:
        times = [r[0] for r in conn.execute("SELECT delivered_at FROM deliveries")]
        attempts = conn.execute("SELECT COUNT(*) FROM attempts").fetchone()[0]
    conn.close()
    if len(times) != expected or attempts != expected or None in times:
        raise SystemExit(f"store holds {len(times)} deliveries, {attempts} attempts; {expected=}")
    return times


PHASES = {"bare": bare_phase, "alertcast": alertcast_phase}


# -- report ------------------------------------------------------------------------------------
def report(args: argparse.Namespace, bare: Phase, ours: Phase) -> bool:
    ceiling = args.concurrency / (args.latency_ms / 1000) if not args.instant else float("inf")
    ratio = ours.steady_rate / bare.steady_rate
    ok = ratio >= TARGET
    print(
        f"\n{'':21}deliveries  steady rate   whole run   CPU per delivery (steady)   "
        f"event loop busy\n{'':59}event loop   all threads"
    )
    for name, phase in (("bare aiohttp client", bare), ("alertcast daemon", ours)):
        loop_ms, all_ms, busy = phase.cpu_ms()
        print(
            f"{name:19}  {phase.count:10}  {phase.steady_rate:8.0f} /s  "
            f"{phase.overall_rate:7.0f} /s  {loop_ms:8.2f} ms  {all_ms:9.2f} ms   "
            f"{100 * busy:10.0f} %"
        )
    print(
        f"(steady = between 10 % and 90 % of deliveries complete; the latency bound at "
        f"concurrency {args.concurrency}\n would be {ceiling:.0f} /s; CPU is this process's, "
        f"the sink's is not counted)\n"
        f"\nratio alertcast / bare = {ratio:.2f}\n"
        f"target: >= {TARGET}  ->  {'PASS' if ok else 'FAIL'}"
    )
    return ok


def main() -> int:
    args = parse_args()
    incidents = args.deliveries // args.accounts
    print("alertcast throughput benchmark (bench/throughput.py)")
    print(f"machine:    {machine()}; load average {load_average()}")
    print(
        f"parameters: {incidents * args.accounts} deliveries ({incidents} incidents x "
        f"{args.accounts} webhook accounts), concurrency {args.concurrency}, sink "
        + ("instant (no signature check)" if args.instant else f"latency {args.latency_ms:g} ms")
        + f", backlog {args.backlog}, log level {args.log_level}"
    )
    print(
        "setup:      the sink (alertcast.testing.WebhookSink, signatures checked) runs in a "
        "separate process\n"
        "            for both phases, so it shares neither the event loop nor the interpreter "
        "with the\n"
        "            measured side; daemon = create_app + aiohttp runner on 127.0.0.1, SQLite "
        "(WAL,\n"
        "            synchronous=FULL) in a temp dir, JSON logs to a file"
    )
    phases: dict[str, Phase] = {}
    with (
        SinkProcess(args.latency_ms / 1000, instant=args.instant) as sink,
        scratch_dir() as workdir,
    ):
        for name in ("bare", "alertcast"):
            if args.only in (None, name):
                t0 = time.perf_counter()
                phases[name] = asyncio.run(sampled(PHASES[name](args, sink, workdir)))
                print(
                    f"{name} phase: {phases[name].steady_rate:.0f} /s steady, done in "
                    f"{time.perf_counter() - t0:.1f} s"
                )
    if args.only:
        return 0
    return 0 if report(args, phases["bare"], phases["alertcast"]) else 1


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--deliveries", type=int, default=4000, help="per phase (default 4000)")
    p.add_argument("--accounts", type=int, default=100, help="webhook accounts (default 100)")
    p.add_argument("--concurrency", type=int, default=64, help="in flight at once (64)")
    p.add_argument("--latency-ms", type=float, default=50.0, help="sink answer delay (50)")
    p.add_argument("--backlog", type=int, default=256, help="deliveries kept waiting (256)")
    p.add_argument(
        "--instant",
        action="store_true",
        help="the cheapest sink: answers at once, checks no signature (measures our own cost)",
    )
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    p.add_argument("--only", choices=list(PHASES), help="run one phase, e.g. under a profiler")
    args = p.parse_args()
    if args.deliveries < args.accounts:
        p.error("--deliveries must be at least --accounts")
    return args


if __name__ == "__main__":
    sys.exit(main())
