"""Feed latency: from a matching event first served (or pushed) to the last channel delivered.

Poll path, with the poll interval taken out: the feed server (in this process, serving the real
``all_hour.geojson`` events plus one new M6.0 per run) starts serving the new body, the daemon's
poll of that feed is triggered at once, and the clock starts when the server hands out the body
that holds the event. It stops when the daemon publishes the N-th ``delivered`` state of the
incident the event raised (each is published after the attempt is committed to SQLite).
Push path: the clock starts just before ``POST /v1/feeds/{name}/events`` leaves the client.

Sinks: N webhook accounts on :class:`alertcast.testing.sink.WebhookSink` in its own process,
answering each request after ``--latency-ms``. Targets: median under 1000 ms (poll) and under
300 ms (push); a ratio is the median divided by its target (below 1 passes).

    .venv/bin/python bench/feed_latency.py [--accounts 20] [--runs 10] [--latency-ms 50]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from _common import SinkProcess, load_average, machine, percentile, scratch_dir
from aiohttp import web

from alertcast.app import create_app
from alertcast.config import Config
from alertcast.keys import EVENTS, FEEDS
from alertcast.logs import configure
from alertcast.secrets import Secrets

TARGETS_MS = {"poll": 1000.0, "push": 300.0}
TOKEN = "tok-bench-feeds-58c2e9a1f0"
os.environ.setdefault("BENCH_FEEDS_TOKEN", TOKEN)  # _common sets BENCH_HOOK_SECRET for the sink
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "usgs" / "all_hour.geojson"


# -- the feed server ---------------------------------------------------------------------------
class FeedServer:
    """Serves a FeatureCollection; notes when a body holding ``watch`` is first handed out."""

    def __init__(self, background: list[dict[str, Any]]) -> None:
        self.features = list(background)
        self.body = b""
        self.watch = ""
        self.served_at: float | None = None
        self.url = ""
        self._runner: web.AppRunner | None = None

    def add(self, feature: dict[str, Any]) -> None:
        self.features.insert(0, feature)  # USGS lists newest first
        doc = {"type": "FeatureCollection", "metadata": {}, "features": self.features}
        self.body = json.dumps(doc).encode()
        self.watch, self.served_at = feature["id"], None

    async def handle(self, request: web.Request) -> web.Response:
        if self.served_at is None and self.watch:
            self.served_at = time.perf_counter()
        return web.Response(body=self.body, content_type="application/json")

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[FeedServer]:
        app = web.Application()
        app.router.add_get("/{tail:.*}", self.handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        host, port = self._runner.addresses[0][:2]
        self.url = f"http://{host}:{port}/earthquakes/feed/v1.0/summary/all_hour.geojson"
        try:
            yield self
        finally:
            await self._runner.cleanup()


def background() -> list[dict[str, Any]]:
    """The real all_hour events (all below the bench rule), or none without ../shared."""
    if not SHARED.is_file():
        return []
    return list(json.loads(SHARED.read_bytes())["features"])


def quake(n: int) -> dict[str, Any]:
    """A new automatic M6.0 in Sichuan, in the USGS feature shape, happening now."""
    now_ms = int(time.time() * 1000)
    event_id = f"bn{n:08d}"
    return {
        "type": "Feature",
        "id": event_id,
        "geometry": {"type": "Point", "coordinates": [102.08, 29.59, 16.0]},
        "properties": {
            "mag": 6.0,
            "magType": "mww",
            "place": f"{n} km SW of Luding, China",
            "time": now_ms - 60_000,
            "updated": now_ms,
            "status": "automatic",
            "type": "earthquake",
            "ids": f",{event_id},",
            "alert": None,
            "tsunami": 0,
        },
    }


# -- the daemon --------------------------------------------------------------------------------
def config(db: Path, feed_url: str, hooks: list[str]) -> Config:
    return Config(
        store={"url": f"sqlite:///{db}"},
        approval={"severities": []},
        issuers=[{"name": "bench", "token_env": "BENCH_FEEDS_TOKEN"}],
        accounts=[
            {"id": f"hook-{i}", "channel": "webhook", "url": url, "secret_env": "BENCH_HOOK_SECRET"}
            for i, url in enumerate(hooks)
        ],
        feeds=[
            {"name": "polled", "type": "usgs", "url": feed_url, "interval_s": 86400},
            {"name": "pushed", "type": "usgs"},
        ],
    )


@contextlib.asynccontextmanager
async def daemon(cfg: Config, log: Path) -> AsyncIterator[tuple[web.Application, str]]:
    """``create_app`` behind an aiohttp runner on 127.0.0.1; JSON logs to ``log``."""
    secrets = Secrets()
    with log.open("w", encoding="utf-8") as stream:
        configure(secrets, level="info", fmt="json", stream=stream)
        app = create_app(cfg, secrets=secrets)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        host, port = runner.addresses[0][:2]
        try:
            yield app, f"http://{host}:{port}"
        finally:
            await runner.cleanup()


# -- one run -----------------------------------------------------------------------------------
@dataclass
class Run:
    path: str
    total_ms: float
    answered_ms: float  # poll path: the poll's end; push path: the 202


async def delivered(queue: asyncio.Queue[dict[str, Any]], accounts: int) -> float:
    """Wait for the first new alert and its N-th delivered state; the time of the last one."""
    incident_id, done = None, 0
    while True:
        event = await queue.get()
        if event.get("type") == "incident" and event.get("msg_type") == "alert":
            incident_id = incident_id or event["id"]
        elif event.get("incident_id") == incident_id and event.get("state") == "delivered":
            done += 1
            if done == accounts:
                return time.perf_counter()


async def poll_run(app: web.Application, feed: FeedServer, n: int, accounts: int) -> Run:
    feed.add(quake(n))
    async with app[EVENTS].subscribe() as queue:
        waiter = asyncio.create_task(delivered(queue, accounts))
        await app[FEEDS].poll_now("polled")
        polled = time.perf_counter()
        end = await asyncio.wait_for(waiter, 30)
    assert feed.served_at is not None
    t0 = feed.served_at
    return Run("poll", 1000 * (end - t0), 1000 * (polled - t0))


async def push_run(app: web.Application, url: str, n: int, accounts: int) -> Run:
    body = json.dumps(quake(n)).encode()
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    async with app[EVENTS].subscribe() as queue, aiohttp.ClientSession() as session:
        waiter = asyncio.create_task(delivered(queue, accounts))
        t0 = time.perf_counter()
        async with session.post(f"{url}/v1/feeds/pushed/events", data=body, headers=headers) as r:
            await r.read()
            answered = time.perf_counter()
            if r.status != 202:
                raise SystemExit(f"push answered {r.status}: {(await r.text())[:200]}")
        end = await asyncio.wait_for(waiter, 30)
    return Run("push", 1000 * (end - t0), 1000 * (answered - t0))


async def measure(args: argparse.Namespace, sink: SinkProcess) -> dict[str, list[Run]]:
    runs: dict[str, list[Run]] = {"poll": [], "push": []}
    hooks = [sink.hook(i) for i in range(args.accounts)]
    with scratch_dir() as workdir:
        async with FeedServer(background()).running() as feed:
            cfg = config(workdir / "alertcast.db", feed.url, hooks)
            async with daemon(cfg, workdir / "alertcast.log") as (app, url):
                await app[FEEDS].poll_now("polled")  # the background: nothing matches
                for n in range(args.runs + 1):  # the first of each is cold, not counted
                    await asyncio.sleep(args.pause_s)
                    runs["poll"].append(await poll_run(app, feed, 2 * n, args.accounts))
                    await asyncio.sleep(args.pause_s)
                    runs["push"].append(await push_run(app, url, 2 * n + 1, args.accounts))
    return {path: measured[1:] for path, measured in runs.items()}


# -- report ------------------------------------------------------------------------------------
def report(args: argparse.Namespace, runs: dict[str, list[Run]]) -> bool:
    ok = True
    print(
        f"\n{'path':>5}  {'median':>9}  {'p90':>9}  {'worst':>9}  {'answered':>9}  target    ratio"
    )
    for path, measured in runs.items():
        totals = [r.total_ms for r in measured]
        median, target = statistics.median(totals), TARGETS_MS[path]
        answered = statistics.median(r.answered_ms for r in measured)
        passed = median < target
        ok &= passed
        print(
            f"{path:>5}  {median:6.1f} ms  {percentile(totals, 0.9):6.1f} ms  "
            f"{max(totals):6.1f} ms  {answered:6.1f} ms  {target:4.0f} ms  {median / target:5.2f}"
            f"  {'PASS' if passed else 'FAIL'}"
        )
    floor = args.latency_ms
    print(
        f"\nratio = median / target over {args.runs} runs each (a cold run of each not counted);"
        f"\nfloor: one sink round trip = {floor:g} ms. 'answered': poll path, the poll and its "
        "decisions done;\npush path, the 202 received (the incident is stored, deliveries "
        "still in flight)."
    )
    return ok


def main() -> int:
    args = parse_args()
    print("alertcast feed latency benchmark (bench/feed_latency.py)")
    print(f"machine:    {machine()}; load average {load_average()}")
    print(
        f"parameters: {args.accounts} webhook accounts, sink latency {args.latency_ms:g} ms, "
        f"{args.runs} runs per path (+1 cold), background feed: "
        f"{len(background())} real all_hour events"
    )
    print(
        "setup:      daemon = create_app + aiohttp runner on 127.0.0.1, SQLite (WAL, FULL) in a "
        "temp dir,\n            JSON logs to a file; feed server in this process; sink = "
        "WebhookSink in its own process"
    )
    with SinkProcess(args.latency_ms / 1000) as sink:
        runs = asyncio.run(measure(args, sink))
    return 0 if report(args, runs) else 1


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    p.add_argument("--accounts", type=int, default=20, help="webhook accounts (default 20)")
    p.add_argument("--runs", type=int, default=10, help="measured runs per path (default 10)")
    p.add_argument("--latency-ms", type=float, default=50.0, help="sink answer delay (50)")
    p.add_argument("--pause-s", type=float, default=0.3, help="quiet time before each run")
    return p.parse_args()


if __name__ == "__main__":
    sys.exit(main())
