"""Correction latency: ``POST /v1/incidents/{id}/cancel`` to the last cancellation delivered.

Issue 6's target: a correction is never slower than the mistake. Each run raises one earthquake
to N webhook accounts, waits until all N originals are delivered (timed as in
``bench/fanout.py``), then cancels it and times the N threaded cancellations the same way
(``delivered`` events for the cancellation on ``GET /v1/stream``). Both are printed as
multiples of one sink round trip, and the cancellation as a ratio to its own original.

    .venv/bin/python bench/cancel_fanout.py [--accounts 100] [--runs 5]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

import aiohttp
from _common import SinkProcess, auth, load_average, machine, run_daemon, scratch_dir
from fanout import Stream, fan_out


async def cancel(
    session: aiohttp.ClientSession, url: str, stream: Stream, incident_id: str, accounts: int
) -> float:
    """Milliseconds from the cancel request leaving to the last cancellation delivered."""
    t0 = time.perf_counter()
    path = f"{url}/v1/incidents/{incident_id}/cancel"
    async with session.post(path, json={"reason": "误报，特此撤销"}, headers=auth()) as resp:
        answer = await resp.json()
    if resp.status != 202 or len(answer["deliveries"]) != accounts:
        raise SystemExit(f"unexpected cancel answer {resp.status}: {str(answer)[:300]}")
    async with asyncio.timeout(60):
        while True:
            stream.changed.clear()
            done = stream.times(answer["id"], "delivered", t0)
            if len(done) >= accounts:
                return done[-1]
            await stream.changed.wait()


async def runs(args: argparse.Namespace, sink: SinkProcess) -> list[tuple[float, float]]:
    hooks = [sink.hook(i) for i in range(args.accounts)]
    out = []
    with scratch_dir() as workdir:
        async with (
            run_daemon(workdir, hooks, concurrency=args.concurrency, log_level="info") as d,
            aiohttp.ClientSession() as session,
            session.get(f"{d.url}/v1/stream", headers=auth(), timeout=None) as resp,
        ):
            stream = Stream(resp)
            pump = asyncio.create_task(stream.pump())
            for _ in range(args.runs + 1):
                await asyncio.sleep(0.5)
                original = await fan_out(session, d.url, stream, args.accounts, timeout_s=60)
                await asyncio.sleep(0.5)
                took = await cancel(session, d.url, stream, original.incident_id, args.accounts)
                out.append((original.total_ms, took))
            pump.cancel()
    return out[1:]  # the first pair warms the daemon up


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--accounts", type=int, default=100)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=128)
    parser.add_argument("--latency-ms", type=float, default=50.0)
    args = parser.parse_args()
    print("alertcast correction benchmark (bench/cancel_fanout.py)")
    print(f"machine:    {machine()}; load average {load_average()}")
    print(
        f"parameters: {args.accounts} webhook accounts, sink latency {args.latency_ms:g} ms, "
        f"{args.runs} runs (+1 warm-up)"
    )
    with SinkProcess(args.latency_ms / 1000) as sink:
        pairs = asyncio.run(runs(args, sink))
    rtt = args.latency_ms
    print("\n  run   original all delivered   cancellation all delivered   cancel/original")
    for i, (orig, canc) in enumerate(pairs, 1):
        print(
            f"  {i:>3}   {orig:>9.1f} ms ({orig / rtt:4.2f} RTT)"
            f"   {canc:>9.1f} ms ({canc / rtt:4.2f} RTT)        {canc / orig:5.2f}"
        )
    versus = statistics.median(c / o for o, c in pairs)
    rtts = statistics.median(c / rtt for _, c in pairs)
    print(
        f"\nmedian cancellation = {rtts:.2f} round trips; target (the original's): <= 1.5 "
        f"-> {'PASS' if rtts <= 1.5 else 'FAIL'}"
    )
    print(f"median cancellation / its original = {versus:.2f} (1.0 = as fast as the mistake)")


if __name__ == "__main__":
    main()
