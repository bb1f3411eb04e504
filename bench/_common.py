"""Plumbing shared by the benchmarks: the machine, a sink in its own process, a real daemon.

Everything listens on 127.0.0.1 only. The sink is :class:`alertcast.testing.sink.WebhookSink`
(signature checked on every request) run in a child process, so its CPU never competes with the
event loop being measured; it also answers ``GET /_stats`` (how many requests it received and
answered 2xx, how many keys were seen more than once) and ``GET /_reset``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Self, TextIO

import aiohttp
from aiohttp import web

from alertcast.app import create_app
from alertcast.config import Config
from alertcast.logs import configure
from alertcast.models import parse_incident
from alertcast.preview import preview
from alertcast.render import Renderer
from alertcast.secrets import Secrets
from alertcast.signing import sign
from alertcast.testing.sink import WebhookSink

__all__ = [
    "EARTHQUAKE",
    "HOOK_SECRET",
    "TOKEN",
    "Daemon",
    "SinkProcess",
    "auth",
    "bare_post",
    "bare_session",
    "load_average",
    "machine",
    "make_config",
    "percentile",
    "run_daemon",
    "scratch_dir",
    "webhook_payload",
]

EARTHQUAKE: dict[str, Any] = {
    "kind": "earthquake",
    "status": "actual",
    "severity": "severe",
    "headline": "四川甘孜州泸定县发生6.8级地震",
    "description": "中国地震台网正式测定：9月5日12时52分在四川甘孜州泸定县发生6.8级地震。",
    "instruction": "远离危险建筑，留意余震。",
    "area": {"name": "四川省甘孜藏族自治州泸定县", "codes": ["513322"]},
    "occurred_at": "2022-09-05T12:52:18+08:00",
    "details": {
        "magnitude": 6.8,
        "depth_km": 16,
        "latitude": 29.59,
        "longitude": 102.08,
        "place": "四川甘孜州泸定县",
        "report": "official",
        "source": "CENC",
    },
}
TOKEN = "tok-bench-office-3c9e1f70a2"
HOOK_SECRET = "hook-bench-secret-81d0c4e7"
os.environ.setdefault("BENCH_TOKEN", TOKEN)
os.environ.setdefault("BENCH_HOOK_SECRET", HOOK_SECRET)


# -- the machine -------------------------------------------------------------------------------
def machine() -> str:
    """CPU model, core count, Python and OS, on one line."""
    model = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return (
        f"{model}, {os.cpu_count()} cores, Python {platform.python_version()} "
        f"({platform.python_implementation()}), {platform.system()} {platform.release()}"
    )


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-quantile (0..1) of ``values`` by linear interpolation."""
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    return statistics.quantiles(ordered, n=1000, method="inclusive")[max(0, round(q * 1000) - 1)]


def auth() -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKEN}"}


def load_average() -> str:
    with contextlib.suppress(OSError):
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    return "unknown"


# -- the bare client: the same wire work as the webhook channel, nothing else ------------------
def webhook_payload() -> dict[str, Any]:
    """The payload alertcast renders for a webhook account from :data:`EARTHQUAKE`."""
    config = make_config(Path("unused.db"), ["http://127.0.0.1:9/hook"], concurrency=1)
    shown = preview(config, Renderer(config.render), parse_incident(EARTHQUAKE), "hook-0")
    return dict(shown["accounts"][0]["payload"])


async def bare_post(
    session: aiohttp.ClientSession, url: str, payload: dict[str, Any], key: str
) -> None:
    """One signed webhook POST as :class:`WebhookChannel` sends it (JSON body, HMAC, key)."""
    envelope = {**payload, "delivery_id": key, "idempotency_key": key, "action": "post"}
    body = json.dumps(envelope, ensure_ascii=False, separators=(",", ":")).encode()
    headers = {
        "Content-Type": "application/json; charset=utf-8",
        "Idempotency-Key": key,
        **sign(HOOK_SECRET, body),
    }
    async with session.post(url, data=body, headers=headers, allow_redirects=False) as resp:
        await resp.text()
        if resp.status != 200:
            raise RuntimeError(f"the sink answered {resp.status}")


def bare_session() -> aiohttp.ClientSession:
    """A client session configured like the daemon's (no connection limit, same timeouts)."""
    return aiohttp.ClientSession(
        timeout=aiohttp.ClientTimeout(total=30, connect=10),
        connector=aiohttp.TCPConnector(limit=0, limit_per_host=0),
    )


# -- the sink, in a child process --------------------------------------------------------------
async def _serve_sink(latency_s: float) -> None:
    """Serve until stdin closes; the first line on stdout is the sink's base URL."""
    sink = WebhookSink(secret=HOOK_SECRET, latency_s=latency_s)
    app = sink.app()
    app.router.add_get("/_stats", lambda r: web.json_response(_sink_stats(sink, "full" in r.query)))
    app.router.add_get("/_reset", lambda _: web.json_response(_sink_reset(sink)))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0, backlog=1024).start()
    host, port = runner.addresses[0][:2]
    print(f"http://{host}:{port}", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    await runner.cleanup()


def _sink_stats(sink: WebhookSink, full: bool) -> dict[str, Any]:
    """Counts so far; ``full`` adds the ones that walk every request (duplicates, signatures)."""
    stats = {"received": len(sink.received), "answered": len(sink.answers)}
    if full:
        stats["ok"] = sum(1 for _, status in sink.answers if 200 <= status < 300)
        stats["bad_signature"] = sum(1 for r in sink.received if not r.signed)
        stats["duplicates"] = sum(n - 1 for n in sink.keys().values() if n > 1)
    return stats


def _sink_reset(sink: WebhookSink) -> dict[str, Any]:
    sink.received.clear()
    sink.answers.clear()
    return {"reset": True}


class _InstantSink(asyncio.Protocol):
    """HTTP/1.1 with keep-alive, answering ``200 ok`` the moment a request's body is read.

    The cheapest receiver we can write in Python: no framework, no signature check, only the
    ``Idempotency-Key`` of each request counted (duplicates). What a daemon delivers to it
    measures the daemon's own cost per delivery, not the receiver's.
    """

    keys: ClassVar[dict[str, int]] = {}
    answered = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.Transport = transport  # type: ignore[assignment]
        self.buf = b""

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while (end := self.buf.find(b"\r\n\r\n")) >= 0:
            head = self.buf[:end].decode("latin-1").split("\r\n")
            fields = {
                k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in head[1:])
            }
            size = int(fields.get("content-length", "0"))
            if len(self.buf) < end + 4 + size:
                return
            self.buf = self.buf[end + 4 + size :]
            path = head[0].split(" ")[1]
            if path.startswith("/_stats"):
                body = json.dumps(_instant_stats()).encode()
            elif path.startswith("/_reset"):
                _InstantSink.keys.clear()
                _InstantSink.answered = 0
                body = b'{"reset":true}'
            else:
                key = fields.get("idempotency-key", "")
                _InstantSink.keys[key] = _InstantSink.keys.get(key, 0) + 1
                _InstantSink.answered += 1
                body = b"ok"
            self.transport.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n%s"
                % (len(body), body)
            )


def _instant_stats() -> dict[str, int]:
    n = _InstantSink.answered
    dupes = sum(c - 1 for c in _InstantSink.keys.values() if c > 1)
    return {"received": n, "answered": n, "ok": n, "bad_signature": 0, "duplicates": dupes}


async def _serve_instant() -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(_InstantSink, "127.0.0.1", 0, backlog=1024)
    host, port = server.sockets[0].getsockname()[:2]
    print(f"http://{host}:{port}", flush=True)
    await loop.run_in_executor(None, sys.stdin.read)
    server.close()


class _Child:
    """A process of ``python bench/_common.py ARGV…`` that prints its URL on its first line
    and runs until its stdin is closed."""

    what = "child"
    stop_s = 10.0  # for it to end once told, before it is terminated

    def __init__(self) -> None:
        self.url = ""
        self._proc: subprocess.Popen[str] | None = None

    def argv(self) -> list[str]:
        raise NotImplementedError

    def __enter__(self) -> Self:
        self._proc = subprocess.Popen(
            [sys.executable, __file__, *self.argv()],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._proc.stdout is not None
        self.url = self._proc.stdout.readline().strip()
        if not self.url.startswith("http://127.0.0.1:"):
            self.__exit__()
            raise RuntimeError(f"the {self.what} process did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._proc is not None and self._proc.stdin is not None
        self._proc.stdin.close()
        try:
            self._proc.wait(self.stop_s)
        except subprocess.TimeoutExpired:
            self._proc.terminate()
            self._proc.wait(5)

    @property
    def pid(self) -> int:
        assert self._proc is not None, "not started"
        return self._proc.pid


class SinkProcess(_Child):
    """``with SinkProcess(0.05) as sink:`` a signed-webhook receiver at ``sink.url``.

    The sink runs as ``python bench/_common.py sink LATENCY_S``, a separate process with its own
    interpreter and event loop; closing its stdin stops it. ``instant=True`` runs the cheapest
    receiver instead (``python bench/_common.py instant``: answers at once, checks no signature,
    counts keys), so that what is measured is the sender's cost.
    """

    what = "sink"

    def __init__(self, latency_s: float, *, instant: bool = False) -> None:
        super().__init__()
        self.latency_s = latency_s
        self.instant = instant

    def argv(self) -> list[str]:
        return ["instant"] if self.instant else ["sink", str(self.latency_s)]

    def hook(self, i: int) -> str:
        return f"{self.url}/hook/{i}"

    async def stats(self, session: aiohttp.ClientSession, full: bool = True) -> dict[str, int]:
        async with session.get(f"{self.url}/_stats" + ("?full" if full else "")) as resp:
            return dict(await resp.json(content_type=None))

    async def reset(self, session: aiohttp.ClientSession) -> None:
        async with session.get(f"{self.url}/_reset") as resp:
            resp.raise_for_status()


# -- the daemon --------------------------------------------------------------------------------
@contextlib.contextmanager
def scratch_dir(keep: bool = False) -> Iterator[Path]:
    """A fresh temporary directory for a database and a log (kept when ``keep``)."""
    if keep:
        yield Path(tempfile.mkdtemp(prefix="alertcast-bench-"))
        return
    with tempfile.TemporaryDirectory(prefix="alertcast-bench-") as name:
        yield Path(name)


def make_config(
    db: Path,
    hook_urls: Sequence[str],
    *,
    concurrency: int | None,
    accounts: Sequence[dict[str, Any]] = (),
    public_url: str | None = None,
) -> Config:
    """A daemon with one webhook account per URL (and ``accounts`` besides) and the default
    store (SQLite, FULL sync)."""
    return Config(
        server={"public_url": public_url},
        store={"url": f"sqlite:///{db}"},
        dispatch={} if concurrency is None else {"concurrency": concurrency},
        issuers=[{"name": "bench", "token_env": "BENCH_TOKEN"}],
        accounts=[
            *(
                {
                    "id": f"hook-{i}",
                    "channel": "webhook",
                    "url": url,
                    "secret_env": "BENCH_HOOK_SECRET",
                }
                for i, url in enumerate(hook_urls)
            ),
            *accounts,
        ],
    )


@dataclass(frozen=True)
class Daemon:
    url: str
    config: Config
    db: Path
    log: Path


@contextlib.asynccontextmanager
async def run_daemon(
    workdir: Path,
    hook_urls: Sequence[str],
    *,
    concurrency: int | None,
    log_level: str,
    accounts: Sequence[dict[str, Any]] = (),
    public_url: str | None = None,
) -> AsyncIterator[Daemon]:
    """``create_app`` behind an aiohttp runner on 127.0.0.1, as ``alertcast serve`` runs it.

    Logs are configured as ``serve`` does (JSON lines at ``log_level``), written to a file in
    ``workdir`` the way a supervisor would redirect them.
    """
    db, log = workdir / "alertcast.db", workdir / "alertcast.log"
    config = make_config(
        db, hook_urls, concurrency=concurrency, accounts=accounts, public_url=public_url
    )
    secrets = Secrets()
    with log.open("w", encoding="utf-8") as stream:
        _configure_logs(secrets, log_level, stream)
        runner = web.AppRunner(create_app(config, secrets=secrets), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[0][:2]
        try:
            yield Daemon(f"http://{host}:{port}", config, db, log)
        finally:
            await runner.cleanup()


class DaemonProcess(_Child):
    """``with DaemonProcess(workdir, hooks, ...) as d:`` :func:`run_daemon` in a process of its
    own (``python bench/_common.py daemon …``), so that the benchmark's client (its POSTs, its
    reading of ``/v1/stream``) shares neither the daemon's event loop nor its interpreter, as an
    office's client and an operator's browser do not; closing its stdin stops it."""

    what = "daemon"
    stop_s = 30.0

    def __init__(
        self, workdir: Path, hook_urls: Sequence[str], *, concurrency: int | None, log_level: str
    ) -> None:
        super().__init__()
        self.db, self.log = workdir / "alertcast.db", workdir / "alertcast.log"
        self._argv = [str(workdir), log_level, str(concurrency or "-"), *hook_urls]

    def argv(self) -> list[str]:
        return ["daemon", *self._argv]

    def cpu_s(self) -> tuple[float, float]:
        """CPU seconds (user and system) of the daemon's main thread, and of all its threads."""
        tick = os.sysconf("SC_CLK_TCK")

        def of(path: str) -> float:
            fields = Path(path).read_text().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / tick

        return of(f"/proc/{self.pid}/task/{self.pid}/stat"), of(f"/proc/{self.pid}/stat")


async def _serve_daemon(workdir: str, log_level: str, concurrency: str, *hooks: str) -> None:
    workers = None if concurrency == "-" else int(concurrency)
    async with run_daemon(Path(workdir), hooks, concurrency=workers, log_level=log_level) as d:
        print(d.url, flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)


def _configure_logs(secrets: Secrets, level: str, stream: TextIO) -> None:
    configure(secrets, level=level, fmt="json", stream=stream)


if __name__ == "__main__" and sys.argv[1:2] == ["sink"]:
    asyncio.run(_serve_sink(float(sys.argv[2])))
if __name__ == "__main__" and sys.argv[1:2] == ["instant"]:
    asyncio.run(_serve_instant())
if __name__ == "__main__" and sys.argv[1:2] == ["daemon"]:
    asyncio.run(_serve_daemon(*sys.argv[2:]))
