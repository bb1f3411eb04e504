"""One incident to a million recipients: a per-recipient webhook account, end to end.

Every part is its own process, as in service: the receiver (the instant sink of
``_common.py``: answers 200 at once, checks no signature, counts keys, so what is measured is
alertcast's cost), ``alertcast recipients import`` (the CSV streamed into the store) and one or
two ``alertcast serve`` replicas (two need PostgreSQL). One incident is posted; the account's
parent delivery is expanded to every recipient and sent, and the run ends when it is settled.

Printed: the import's time and peak memory; deliveries per second and the time from the POST
to the last recipient recorded; each daemon's peak RSS (VmHWM); duplicates at the receiver;
how the parts of the delivery's sends were shared (``recipient_parts``: who held each last).

First, in the same run and against the same receiver, a bare aiohttp client sends ``--bare``
signed POSTs (the body a per-recipient send carries, ``--width`` at a time, keep-alive): its
rate is Python's ceiling for this wire work here, and the daemon's rate (the whole run, from the
POST to the last recipient recorded: expansion, every outcome written) is printed as a ratio to
it (issue 15 item 3 asks >= 0.5 on a receiver that answers at once).

    .venv/bin/python bench/recipients.py [--recipients 1000000] [--store sqlite|postgres]
        [--replicas 1|2] [--width 64] [--bare 100000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp
from _common import (
    EARTHQUAKE,
    SinkProcess,
    auth,
    bare_post,
    bare_session,
    load_average,
    machine,
    scratch_dir,
    webhook_payload,
)

PG = os.environ.get("ALERTCAST_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/test")
CODES = ("510104", "510105", "510106", "510107", "510108")  # Chengdu's districts


def write_csv(path: Path, n: int) -> None:
    with path.open("w", encoding="utf-8") as f:
        f.write("id,region,name\n")
        for i in range(n):
            f.write(f"p-{i:07d},{CODES[i % len(CODES)]},居民{i}\n")


def write_config(path: Path, url: str, sink: str, width: int, port: int) -> None:
    path.write_text(
        f'[server]\nhost = "127.0.0.1"\nport = {port}\n'
        f'[store]\nurl = "{url}"\n'
        "[dispatch]\nconcurrency = 128\n"
        '[logging]\nformat = "json"\nlevel = "warning"\n'
        '[[issuers]]\nname = "bench"\ntoken_env = "BENCH_TOKEN"\n'
        f'[[accounts]]\nid = "people"\nchannel = "webhook"\nurl = "{sink}/hook"\n'
        f'secret_env = "BENCH_HOOK_SECRET"\nper_recipient = true\nconcurrency = {width}\n',
        encoding="utf-8",
    )


def run_import(config: Path, csv: Path) -> tuple[float, int]:
    """Seconds and peak RSS (KiB) of ``alertcast recipients import``."""
    started = time.monotonic()
    command = ["recipients", "import", "people", str(csv), "--config", str(config)]
    proc = subprocess.Popen([sys.executable, "-m", "alertcast.cli", *command])
    _, status, usage = os.wait4(proc.pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, "the import failed"
    return time.monotonic() - started, int(usage.ru_maxrss)


class Replica:
    def __init__(self, config: Path, port: int, log: Path) -> None:
        self.port, self.url = port, f"http://127.0.0.1:{port}"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "alertcast.cli", "serve", "--config", str(config)],
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
        )

    async def ready(self, http: aiohttp.ClientSession) -> None:
        for _ in range(600):
            try:
                async with http.get(f"{self.url}/healthz") as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
        raise RuntimeError("the daemon did not come up")

    def peak_rss_kib(self) -> int:
        status = Path(f"/proc/{self.proc.pid}/status").read_text()
        (line,) = [x for x in status.splitlines() if x.startswith("VmHWM:")]
        return int(line.split()[1])

    def cpu_s(self) -> float:
        """CPU seconds the daemon has used so far, every thread (user and system)."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(60)


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def post_and_wait(http: aiohttp.ClientSession, url: str) -> dict[str, Any]:
    body = {**EARTHQUAKE, "area": {"name": "四川省成都市", "codes": ["510100"]}}
    started = time.monotonic()
    async with http.post(f"{url}/v1/incidents", json=body, headers=auth()) as resp:
        answer = await resp.json()
        assert resp.status == 202, answer
    (delivery,) = answer["deliveries"]
    peak_line = ""
    while True:
        async with http.get(f"{url}/v1/deliveries/{delivery['id']}", headers=auth()) as resp:
            view = await resp.json()
        if view["state"] in ("delivered", "failed", "dead", "skipped"):
            break
        counts = view.get("recipients") or {}
        line = f"  {time.monotonic() - started:6.1f} s  {json.dumps(counts)}"
        if line != peak_line:
            print(line, flush=True)
            peak_line = line
        await asyncio.sleep(2.0)
    took_s = time.monotonic() - started
    return {"took_s": took_s, "state": view["state"], "recipients": view.get("recipients")}


async def bare_rate(sink: SinkProcess, n: int, width: int) -> tuple[float, float]:
    """Requests per second, and CPU ms per request, of a bare client sending ``n`` per-recipient
    POSTs, ``width`` at once."""
    payload = webhook_payload()
    numbers = iter(range(n))

    async def worker(session: aiohttp.ClientSession) -> None:
        for i in numbers:
            recipient = {"id": f"p-{i:07d}", "region": CODES[i % len(CODES)], "name": f"居民{i}"}
            await bare_post(
                session, f"{sink.url}/hook", {**payload, "recipient": recipient}, f"b{i}"
            )

    async with bare_session() as session:
        started, cpu = time.monotonic(), time.process_time()
        await asyncio.gather(*(worker(session) for _ in range(width)))
        took, cpu = time.monotonic() - started, time.process_time() - cpu
        await sink.reset(session)
    return n / took, 1000 * cpu / n


async def run(args: argparse.Namespace) -> None:
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    with scratch_dir(args.keep) as work, SinkProcess(0, instant=True) as sink:
        url = (
            f"sqlite:///{work / 'alertcast.db'}"
            if args.store == "sqlite"
            else f"{PG}?schema={schema}"
        )
        csv = work / "recipients.csv"
        write_csv(csv, args.recipients)
        bare, bare_cpu = await bare_rate(sink, args.bare, args.width) if args.bare else (0.0, 0.0)
        if bare:
            print(
                f"bare client: {args.bare:,} signed POSTs, {args.width} at once: {bare:,.0f} /s, "
                f"{bare_cpu:.3f} ms CPU a request"
            )
        ports = [free_port() for _ in range(args.replicas)]
        configs = []
        for i, port in enumerate(ports):
            configs.append(work / f"c{i}.toml")
            write_config(configs[-1], url, sink.url, args.width, port)
        import_s, import_kib = run_import(configs[0], csv)
        print(
            f"import: {args.recipients:,} in {import_s:.1f} s, peak RSS {import_kib / 1024:.0f} MiB"
        )
        replicas = [
            Replica(c, p, work / f"d{i}.log")
            for i, (c, p) in enumerate(zip(configs, ports, strict=True))
        ]
        try:
            async with aiohttp.ClientSession() as http:
                for r in replicas:
                    await r.ready(http)
                result = await post_and_wait(http, replicas[0].url)
                stats = await sink.stats(http)
            rss = [r.peak_rss_kib() for r in replicas]
            cpu_ms = 1000 * sum(r.cpu_s() for r in replicas) / args.recipients
        finally:
            for r in replicas:
                r.stop()
            shares = await _shares(url)
            if args.store == "postgres":
                await _drop(schema)
    n = args.recipients
    print(
        f"\n{machine()}; load {load_average()}\n"
        f"store {args.store}, {args.replicas} replica(s), width {args.width}: {n:,} recipients\n"
        f"  parent {result['state']} {result['recipients']}\n"
        f"  time to the last: {result['took_s']:.1f} s; {n / result['took_s']:,.0f} deliveries/s"
        + (
            f" = {n / result['took_s'] / bare:.2f}x the bare client ({bare:,.0f} /s)\n"
            if bare
            else "\n"
        )
        + f"  daemon CPU per delivery, every thread and replica, start-up included: {cpu_ms:.3f} ms"
        + (f" ({cpu_ms / bare_cpu:.2f}x the bare client's per request)\n" if bare else "\n")
        + f"  receiver: {stats['received']:,} requests, {stats['duplicates']} duplicates\n"
        f"  peak RSS per daemon: {', '.join(f'{k / 1024:.0f} MiB' for k in rss)}; "
        f"import {import_kib / 1024:.0f} MiB\n"
        f"  parts by worker: {', '.join(f'{p} parts, {n:,} sends' for p, n in shares)}"
    )


SHARES = "SELECT COUNT(*), SUM(size) FROM recipient_parts GROUP BY worker ORDER BY 2 DESC"


async def _shares(url: str) -> list[tuple[int, int]]:
    """``(parts, sends)`` per worker that held parts last (one per replica that sent)."""
    if url.startswith("sqlite"):
        import sqlite3

        with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
            return [(int(p), int(n)) for p, n in conn.execute(SHARES)]
    import asyncpg

    base, schema = url.split("?schema=")
    conn = await asyncpg.connect(base, server_settings={"search_path": schema})
    try:
        return [(int(p), int(n)) for p, n in await conn.fetch(SHARES)]
    finally:
        await conn.close()


async def _drop(schema: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(PG)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--recipients", type=int, default=1_000_000)
    p.add_argument("--store", choices=("sqlite", "postgres"), default="sqlite")
    p.add_argument("--replicas", type=int, choices=(1, 2), default=1)
    p.add_argument("--width", type=int, default=64, help="the account's concurrency")
    p.add_argument("--keep", action="store_true", help="keep the scratch directory")
    p.add_argument(
        "--bare", type=int, default=100_000, help="requests of the bare client first (0: none)"
    )
    args = p.parse_args()
    if args.replicas == 2 and args.store == "sqlite":
        p.error("two replicas need --store postgres (SQLite admits one process)")
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(4096, hard), hard))
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
