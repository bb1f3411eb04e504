"""Fan-out latency: one earthquake to N webhook accounts, as a multiple of one round trip.

The clock starts just before ``POST /v1/incidents`` leaves the client and stops when the client
has seen the N-th ``delivered`` event for that incident on ``GET /v1/stream`` (each event is
published after the attempt is committed to SQLite). The sink answers every request after
``--latency-ms``, so one round trip is the physical floor; the ratio is the elapsed time divided
by it. Target: median ratio <= 1.5.

For scale, the same N signed requests are first sent by a bare aiohttp client, all at once, to
the same sink: what Python itself needs for this fan-out on this machine.

    .venv/bin/python bench/fanout.py [--accounts 100] [--runs 5] [--concurrency N]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from _common import (
    EARTHQUAKE,
    Daemon,
    DaemonProcess,
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

TARGET = 1.5


@dataclass
class Run:
    """Milestones of one incident, in milliseconds after the POST left the client."""

    incident_id: str = ""
    accepted_ms: float = 0.0
    first_sending_ms: float = 0.0
    first_delivered_ms: float = 0.0
    delivered_ms: list[float] = field(default_factory=list)

    @property
    def total_ms(self) -> float:
        return self.delivered_ms[-1]


class Stream:
    """Reads ``/v1/stream`` and keeps each event with the time it arrived."""

    def __init__(self, resp: aiohttp.ClientResponse) -> None:
        self.resp = resp
        self.events: list[tuple[float, dict[str, Any]]] = []
        self.changed = asyncio.Event()

    async def pump(self) -> None:
        async for raw in self.resp.content:
            line = raw.decode().rstrip("\n")
            if line.startswith("data: "):
                self.events.append((time.perf_counter(), json.loads(line[6:])))
                self.changed.set()

    def times(self, incident_id: str, state: str, t0: float) -> list[float]:
        """Milliseconds after ``t0`` at which each ``state`` event of the incident arrived."""
        return [
            1000 * (t - t0)
            for t, e in self.events
            if e.get("incident_id") == incident_id and e.get("state") == state
        ]


# -- alertcast ---------------------------------------------------------------------------------
async def fan_out(
    session: aiohttp.ClientSession, url: str, stream: Stream, accounts: int, timeout_s: float
) -> Run:
    """POST one incident and wait until every account's delivery is reported delivered."""
    stream.events.clear()
    t0 = time.perf_counter()
    async with session.post(f"{url}/v1/incidents", json=EARTHQUAKE, headers=auth()) as resp:
        answer = await resp.json()
        accepted = time.perf_counter()
    if resp.status != 202 or len(answer["deliveries"]) != accounts:
        raise SystemExit(f"unexpected answer {resp.status}: {str(answer)[:300]}")
    run = Run(answer["id"], 1000 * (accepted - t0))
    async with asyncio.timeout(timeout_s):
        while len(run.delivered_ms) < accounts:
            stream.changed.clear()
            run.delivered_ms = stream.times(run.incident_id, "delivered", t0)
            if len(run.delivered_ms) < accounts:
                await stream.changed.wait()
    run.first_sending_ms = min(stream.times(run.incident_id, "sending", t0))
    run.first_delivered_ms = run.delivered_ms[0]
    return run


async def check(session: aiohttp.ClientSession, url: str, run: Run, accounts: int) -> None:
    """The status API agrees: every delivery delivered, after one attempt each."""
    async with session.get(f"{url}/v1/incidents/{run.incident_id}", headers=auth()) as resp:
        view = await resp.json()
    if view["counts"] != {"delivered": accounts}:
        raise SystemExit(f"status API disagrees for {run.incident_id}: {view['counts']}")
    if any(d["attempts"] != 1 for d in view["deliveries"]):
        raise SystemExit(f"some deliveries of {run.incident_id} took more than one attempt")


async def alertcast_runs(args: argparse.Namespace, sink: SinkProcess) -> tuple[Run, list[Run]]:
    """One cold incident, then ``args.runs`` measured ones, each after a quiet pause."""
    hooks = [sink.hook(i) for i in range(args.accounts)]
    workers, level = args.concurrency, args.log_level
    with scratch_dir() as workdir:
        async with contextlib.AsyncExitStack() as stack:
            if args.daemon_in_process:
                d: Daemon | DaemonProcess = await stack.enter_async_context(
                    run_daemon(workdir, hooks, concurrency=workers, log_level=level)
                )
            else:
                d = stack.enter_context(
                    DaemonProcess(workdir, hooks, concurrency=workers, log_level=level)
                )
            async with aiohttp.ClientSession() as session:
                await sink.reset(session)
                async with session.get(f"{d.url}/v1/stream", headers=auth(), timeout=None) as resp:
                    stream = Stream(resp)
                    pump = asyncio.create_task(stream.pump())
                    runs = []
                    for _ in range(args.runs + 1):
                        await asyncio.sleep(args.pause_s)
                        run = await fan_out(session, d.url, stream, args.accounts, timeout_s=60)
                        await check(session, d.url, run, args.accounts)
                        runs.append(run)
                    pump.cancel()
                await check_sink(session, sink, args.accounts * (args.runs + 1))
    return runs[0], runs[1:]


async def check_sink(session: aiohttp.ClientSession, sink: SinkProcess, expected: int) -> None:
    stats = await sink.stats(session)
    if stats["ok"] != expected or stats["duplicates"] or stats["bad_signature"]:
        raise SystemExit(f"the sink saw {stats}, expected {expected} signed requests, no dupes")


# -- the bare client ---------------------------------------------------------------------------
async def bare_runs(args: argparse.Namespace, sink: SinkProcess) -> list[float]:
    """Milliseconds for a bare client to get all N answers, sending N at once (cold first)."""
    payload = webhook_payload()
    totals = []
    async with bare_session() as session:
        for run in range(args.runs + 1):
            await asyncio.sleep(args.pause_s)
            t0 = time.perf_counter()
            await asyncio.gather(
                *(
                    bare_post(session, sink.hook(i), payload, f"bare-{run}-{i}")
                    for i in range(args.accounts)
                )
            )
            totals.append(1000 * (time.perf_counter() - t0))
    return totals


# -- report ------------------------------------------------------------------------------------
def report(args: argparse.Namespace, bare_ms: list[float], cold: Run, runs: list[Run]) -> bool:
    floor = args.latency_ms
    print(
        f"\nbare aiohttp client, {args.accounts} signed POSTs at once to the same sink: "
        f"cold {bare_ms[0]:.1f} ms, then "
        + ", ".join(f"{ms:.1f}" for ms in bare_ms[1:])
        + f" ms\n  -> median {statistics.median(bare_ms[1:]):.1f} ms = "
        f"{statistics.median(bare_ms[1:]) / floor:.2f} round trips (Python's own floor here)"
    )
    print("\nalertcast   accepted  first sending  first delivered  all delivered  ratio")
    for name, r in [("cold", cold), *((f"run {i + 1}", r) for i, r in enumerate(runs))]:
        print(
            f"{name:>9}  {r.accepted_ms:6.1f} ms  {r.first_sending_ms:10.1f} ms  "
            f"{r.first_delivered_ms:12.1f} ms  {r.total_ms:10.1f} ms  {r.total_ms / floor:5.2f}"
        )
    ratios = [r.total_ms / floor for r in runs]
    median, worst = statistics.median(ratios), max(ratios)
    ok = median <= TARGET
    bare = statistics.median(bare_ms[1:])
    print(
        "  (times from the moment the POST left the client; 'cold' is the first incident after\n"
        "   start-up and is not counted)\n"
        f"\nratio = time until all {args.accounts} delivered / {floor:g} ms (one round trip)\n"
        f"median {median:.2f}, worst {worst:.2f}, best {min(ratios):.2f} over {len(runs)} runs; "
        f"{statistics.median(r.total_ms for r in runs) / bare:.2f}x the bare client\n"
        f"target: median <= {TARGET}  ->  {'PASS' if ok else 'FAIL'}"
    )
    return ok


def main() -> int:
    args = parse_args()
    print("alertcast fan-out benchmark (bench/fanout.py)")
    print(f"machine:    {machine()}; load average {load_average()}")
    print(
        f"parameters: {args.accounts} webhook accounts, sink latency {args.latency_ms:g} ms, "
        f"dispatch concurrency {args.concurrency or 'default (follows the accounts)'}, "
        f"{args.runs} runs (+1 cold), "
        f"log level {args.log_level}"
    )
    print(
        "setup:      daemon = create_app + aiohttp runner on 127.0.0.1, "
        + ("in this process, beside the client" if args.daemon_in_process else "its own process")
        + ", SQLite (WAL, synchronous=FULL) in a temp dir,\n"
        "            JSON logs to a file; sink = alertcast.testing.WebhookSink (signatures "
        "checked) in its own process;\n"
        "            client = POST /v1/incidents with a bearer token, done when GET /v1/stream "
        "has shown\n            every delivery delivered (checked against the status API and "
        "the sink)"
    )
    with SinkProcess(args.latency_ms / 1000) as sink:
        bare_ms = asyncio.run(bare_runs(args, sink))
        cold, runs = asyncio.run(alertcast_runs(args, sink))
    return 0 if report(args, bare_ms, cold, runs) else 1


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--accounts", type=int, default=100, help="webhook accounts (default 100)")
    p.add_argument("--runs", type=int, default=5, help="measured incidents (default 5)")
    p.add_argument("--latency-ms", type=float, default=50.0, help="sink answer delay (50)")
    p.add_argument(
        "--concurrency",
        type=int,
        default=None,
        help="[dispatch] concurrency (default: unset, as shipped: it follows the accounts)",
    )
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    p.add_argument("--pause-s", type=float, default=0.5, help="quiet time before each run (0.5)")
    p.add_argument(
        "--daemon-in-process",
        action="store_true",
        help="run the daemon in the benchmark's own process and event loop, beside its client "
        "(the setup before 2026-12-03); by default it has a process of its own",
    )
    return p.parse_args()


if __name__ == "__main__":
    sys.exit(main())
