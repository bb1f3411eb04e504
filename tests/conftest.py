"""Shared fixtures: a real daemon on 127.0.0.1 (aiohttp test server), a real webhook sink."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import inspect
import os
import socket
import sqlite3
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from alertcast.app import create_app
from alertcast.config import Config
from alertcast.keys import STORE
from alertcast.testing.sink import WebhookSink

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = ROOT.parent / "shared" / "data"
PG_URL = os.environ.get("ALERTCAST_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")

TOKEN = "tok-city-office-7f3a9c2e51"
OTHER_TOKEN = "tok-fire-brigade-0b8d44a1c9"
HOOK_SECRET = "hook-secret-5e1d7a0c93b2"

EARTHQUAKE: dict[str, Any] = {
    "kind": "earthquake",
    "status": "actual",
    "severity": "severe",
    "headline": "四川甘孜州泸定县发生6.8级地震",
    "description": "中国地震台网正式测定。",
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


def shared(*parts: str) -> Path:
    """A file under ../shared/data, or skip the test saying what is missing."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"shared test data {path} is absent (needs the ../shared checkout)")
    return path


async def until(
    check: Callable[[], bool | Awaitable[bool]], timeout_s: float = 30.0, what: str = "condition"
) -> None:
    """Poll ``check`` (plain or async) every 20 ms until it holds; fail after ``timeout_s``.

    Returns as soon as it holds: the generous deadline only matters on a loaded machine.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        held = check()
        if inspect.isawaitable(held):
            held = await held
        if held:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not met within {timeout_s} s")
        await asyncio.sleep(0.02)


async def pg_reachable() -> str | None:
    """Why the PostgreSQL server at :data:`PG_URL` cannot be used (None: it can)."""
    try:
        import asyncpg

        conn = await asyncio.wait_for(asyncpg.connect(PG_URL), 5)
    except Exception as exc:
        return f"PostgreSQL at {PG_URL} is not reachable ({type(exc).__name__})"
    await conn.close()
    return None


async def drop_schema(schema: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(PG_URL)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


@contextlib.asynccontextmanager
async def fresh_schema() -> AsyncIterator[str]:
    """A store URL on a PostgreSQL schema of its own, dropped at the end; skips the test when
    the server is not reachable."""
    if (why := await pg_reachable()) is not None:
        pytest.skip(why)
    schema = f"t_{uuid.uuid4().hex[:12]}"
    try:
        yield f"{PG_URL}?schema={schema}"
    finally:
        await drop_schema(schema)


@pytest.fixture
async def pg_url() -> AsyncIterator[str]:
    """A fresh PostgreSQL schema for the test (:func:`fresh_schema`)."""
    async with fresh_schema() as url:
        yield url


@pytest.fixture
async def schema() -> AsyncIterator[str]:
    """The name of a fresh PostgreSQL schema (:func:`fresh_schema`), for a URL of the test's own."""
    async with fresh_schema() as url:
        yield url.rsplit("schema=", 1)[1]


@pytest.fixture
async def proxy() -> AsyncIterator[Any]:
    """A :class:`~alertcast.testing.tcpproxy.TcpProxy` in front of the PostgreSQL server at
    :data:`PG_URL`, that the test cuts, blackholes and restores."""
    from alertcast.testing.tcpproxy import TcpProxy

    host, _, port = PG_URL.rsplit("@", 1)[1].split("/", 1)[0].partition(":")
    proxy = TcpProxy(host, int(port or 5432))
    await proxy.start()
    yield proxy
    await proxy.stop()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def engine(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """The store's URL on every engine: SQLite where the daemon fixture keeps its file
    (``tmp_path/alertcast.db``), or a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'alertcast.db'}"
        return
    async with fresh_schema() as url:
        yield url


@pytest.fixture
def refused_port() -> Iterator[int]:
    """A port on 127.0.0.1 that refuses connections for the whole test.

    The socket is bound but never listens: a connect gets RST at once, and no other process
    can take the port meanwhile (unlike a fixed port such as 9, or a port found free and then
    released).
    """
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        yield int(s.getsockname()[1])


def incident(**changes: Any) -> dict[str, Any]:
    body = copy.deepcopy(EARTHQUAKE)
    body.update(changes)
    return body


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("T_TOKEN", TOKEN)
    monkeypatch.setenv("T_OTHER_TOKEN", OTHER_TOKEN)
    monkeypatch.setenv("T_HOOK_SECRET", HOOK_SECRET)


def make_config(tmp_path: Path, hook_urls: list[str], **extra: Any) -> Config:
    accounts = [
        {"id": f"hook-{i}", "channel": "webhook", "url": url, "secret_env": "T_HOOK_SECRET"}
        for i, url in enumerate(hook_urls)
    ]
    data: dict[str, Any] = {
        "store": {"url": f"sqlite:///{tmp_path / 'alertcast.db'}"},
        "dispatch": {
            "backoff_initial_s": 0.05,
            "backoff_max_s": 0.2,
            "max_attempts": 5,
            "poll_interval_s": 0.2,
        },
        "issuers": [
            {"name": "city", "token_env": "T_TOKEN", "can_approve": True},
            {
                "name": "fire",
                "token_env": "T_OTHER_TOKEN",
                "kinds": ["fire"],
                "regions": ["510100"],
            },
        ],
        "accounts": accounts + extra.pop("accounts", []),
    }
    data.update(extra)
    return Config(**data)


@dataclass
class Daemon:
    client: TestClient[Any, Any]
    config: Config
    sink: WebhookSink
    db: Path

    async def post(self, body: Any, *, token: str | None = TOKEN, **headers: str) -> Any:
        hdrs = {"Content-Type": "application/json", **headers}
        if token is not None:
            hdrs["Authorization"] = f"Bearer {token}"
        data = body if isinstance(body, bytes | str) else __import__("json").dumps(body)
        return await self.client.post("/v1/incidents", data=data, headers=hdrs)

    async def get(self, path: str, token: str = TOKEN) -> Any:
        resp = await self.client.get(path, headers={"Authorization": f"Bearer {token}"})
        return resp.status, await resp.json()

    async def settled(self, incident_id: str, timeout_s: float = 30.0) -> dict[str, Any]:
        """The incident's view once every delivery is settled (returns as soon as they are)."""
        deadline = time.monotonic() + timeout_s
        while True:
            status, view = await self.get(f"/v1/incidents/{incident_id}")
            assert status == 200, view
            if view["settled"]:
                return dict(view)
            if time.monotonic() > deadline:
                raise AssertionError(f"not settled in {timeout_s}s: {view['counts']}")
            await asyncio.sleep(0.05)

    def table_counts(self) -> dict[str, int]:
        return table_counts(self.db)


def table_counts(db: Path) -> dict[str, int]:
    with sqlite3.connect(db) as conn:
        names = [
            r[0]
            for r in conn.execute(
                "SELECT name FROM sqlite_master "
                "WHERE type = 'table' AND name <> 'schema_migrations'"
            )
        ]
        return {n: conn.execute(f"SELECT COUNT(*) FROM {n}").fetchone()[0] for n in names}


@pytest.fixture
async def sink() -> AsyncIterator[WebhookSink]:
    s = WebhookSink(secret=HOOK_SECRET)
    await s.start()
    yield s
    await s.stop()


DaemonFactory = Callable[..., Any]


@pytest.fixture
async def start_daemon(
    env: None, tmp_path: Path, sink: WebhookSink, aiohttp_client: Any
) -> DaemonFactory:
    async def start(hooks: int = 1, **extra: Any) -> Daemon:
        """``hooks`` webhook accounts on the sink; extra accounts may say ``url = "{sink}"``."""
        extra["accounts"] = [
            {k: (v.replace("{sink}", sink.url) if isinstance(v, str) else v) for k, v in a.items()}
            for a in extra.get("accounts", [])
        ]
        config = make_config(
            tmp_path, [sink.url.replace("/hook", f"/hook/{i}") for i in range(hooks)], **extra
        )
        app = create_app(config)
        client = await aiohttp_client(app)
        assert app[STORE] is not None
        return Daemon(client, config, sink, tmp_path / "alertcast.db")

    return start
