"""Correction latency: ``POST /v1/incidents/{id}/cancel`` to the last cancellation delivered.

Issue 6's target: a correction is never slower than the mistake. Each run raises one earthquake
to N webhook accounts, waits until all N originals are delivered (timed as in
``bench/fanout.py``), then cancels it and times the N threaded cancellations the same way
(``delivered`` events for the cancellation on ``GET /v1/stream``). Both are printed as
multiples of one sink round trip, and the cancellation as a ratio to its own original.

    .venv/bin/python bench/cancel_fanout.py [--accounts 100] [--runs 5] [--platforms]

With ``--platforms`` the fan-out also reaches a Weibo account and a WeChat account paired with a
template service account, on the local fakes (alertcast.testing.fakes, served by a child process
of their own, as the sink is), so the cancellation takes the new correction paths
(docs/corrections.md): on Weibo a timeline post and a comment, on WeChat the article withdrawn,
the paired account's template messages and the account's own mass send, which the pair makes
unneeded (it ends ``skipped``). The cancellation is timed to its last delivery settled
(delivered or skipped), against the original's last delivered.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import AsyncExitStack, contextmanager
from typing import Any

import aiohttp
from _common import SinkProcess, auth, load_average, machine, run_daemon, scratch_dir
from fanout import Stream, fan_out

from alertcast.testing.fakes import FakeWechat, FakeWeibo, serve

SAFE = "https://alerts.example.gov.cn/"
SETTLED = ("delivered", "skipped")


async def _serve_fakes() -> None:
    """Serve the Weibo and WeChat fakes until stdin closes; print their URLs first."""
    weibo = FakeWeibo({"weibo-token": 1001})
    wechat = FakeWechat({"wx-app": "wx-secret", "wx-svc": "svc-secret"}, mass_per_day=100)
    async with AsyncExitStack() as stack:
        wb = await stack.enter_async_context(serve(weibo))
        wx = await stack.enter_async_context(serve(wechat))
        print(wb, wx, flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)


@contextmanager
def platforms() -> Iterator[list[dict[str, Any]]]:
    """A Weibo account, and a WeChat account whose corrections its paired template service
    account carries, on the local fakes, served by a child process of their own (as the sink
    is) so their work never shares the daemon's event loop. The WeChat account is a service
    account (100 mass sends a day) so every run's original can spend one."""
    os.environ.update(BENCH_WEIBO="weibo-token", BENCH_WX="wx-secret", BENCH_SVC="svc-secret")
    proc = subprocess.Popen(
        [sys.executable, __file__, "fakes"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdin is not None
    try:
        wb, wx = proc.stdout.readline().split()
        yield [
            {
                "id": "weibo",
                "channel": "weibo",
                "base_url": wb,
                "access_token_env": "BENCH_WEIBO",
                "safe_domain_url": SAFE,
            },
            {
                "id": "wechat",
                "channel": "wechat_oa",
                "base_url": wx,
                "app_id": "wx-app",
                "app_secret_env": "BENCH_WX",
                "account_type": "service",
                "mass_per_day": 100,
                "mode": "article",
                "thumb_media_id": "thumb",
                "corrections_via": ["wechat-svc"],
            },
            {
                "id": "wechat-svc",
                "channel": "wechat_oa",
                "base_url": wx,
                "app_id": "wx-svc",
                "app_secret_env": "BENCH_SVC",
                "account_type": "service",
                "mode": "template",
                "format": "wechat_template",
                "template_id": "TPL-ALERT",
                "template_audience": "followers",
                "kinds": ["police"],
            },
        ]
    finally:
        proc.stdin.close()
        proc.wait(10)


async def cancel(
    session: aiohttp.ClientSession, url: str, stream: Stream, incident_id: str
) -> float:
    """Milliseconds from the cancel request leaving to the last cancellation delivery settled."""
    t0 = time.perf_counter()
    path = f"{url}/v1/incidents/{incident_id}/cancel"
    async with session.post(path, json={"reason": "误报，特此撤销"}, headers=auth()) as resp:
        answer = await resp.json()
    if resp.status != 202 or not answer["deliveries"]:
        raise SystemExit(f"unexpected cancel answer {resp.status}: {str(answer)[:300]}")
    expected = len(answer["deliveries"])
    async with asyncio.timeout(60):
        while True:
            stream.changed.clear()
            done = sorted(t for state in SETTLED for t in stream.times(answer["id"], state, t0))
            if len(done) >= expected:
                LAST.append(_last(stream, answer["id"]))
                return done[-1]
            await stream.changed.wait()


LAST: list[str] = []  # per run, the cancellation's last delivery to settle: account, path


def _last(stream: Stream, incident_id: str) -> str:
    settled = [
        e
        for _, e in stream.events
        if e.get("incident_id") == incident_id and e.get("state") in SETTLED
    ]
    e = settled[-1]
    return f"{e.get('account')} {e.get('path') or e.get('channel')} {e.get('state')}"


async def runs(args: argparse.Namespace, sink: SinkProcess) -> list[tuple[float, float]]:
    hooks = [sink.hook(i) for i in range(args.accounts)]
    out = []
    async with AsyncExitStack() as stack:
        extra = stack.enter_context(platforms()) if args.platforms else []
        originals = args.accounts + len(extra) - (1 if extra else 0)  # the pair gets none
        with scratch_dir() as workdir:
            out = await _measure(args, workdir, hooks, extra, originals)
    return out[1:]  # the first pair warms the daemon up


async def _measure(
    args: argparse.Namespace,
    workdir: Any,
    hooks: list[str],
    extra: list[dict[str, Any]],
    originals: int,
) -> list[tuple[float, float]]:
    out = []
    async with (
        run_daemon(
            workdir,
            hooks,
            concurrency=args.concurrency,
            log_level="info",
            accounts=extra,
            public_url=SAFE.rstrip("/"),
        ) as d,
        aiohttp.ClientSession() as session,
        session.get(f"{d.url}/v1/stream", headers=auth(), timeout=None) as resp,
    ):
        stream = Stream(resp)
        pump = asyncio.create_task(stream.pump())
        for _ in range(args.runs + 1):
            await asyncio.sleep(0.5)
            original = await fan_out(session, d.url, stream, originals, timeout_s=60)
            await asyncio.sleep(0.5)
            took = await cancel(session, d.url, stream, original.incident_id)
            out.append((original.total_ms, took))
        pump.cancel()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--accounts", type=int, default=100)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument(
        "--concurrency", type=int, default=None, help="[dispatch] concurrency (default: unset)"
    )
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument(
        "--platforms", action="store_true", help="also Weibo and paired WeChat accounts (fakes)"
    )
    args = parser.parse_args()
    print("alertcast correction benchmark (bench/cancel_fanout.py)")
    print(f"machine:    {machine()}; load average {load_average()}")
    print(
        f"parameters: {args.accounts} webhook accounts"
        f"{' + Weibo + WeChat paired with a service account (fakes)' if args.platforms else ''}, "
        f"sink latency {args.latency_ms:g} ms, {args.runs} runs (+1 warm-up)"
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
    print("last to settle, per run: " + "; ".join(LAST[1:]))


if __name__ == "__main__" and sys.argv[1:2] == ["fakes"]:
    asyncio.run(_serve_fakes())
elif __name__ == "__main__":
    main()
