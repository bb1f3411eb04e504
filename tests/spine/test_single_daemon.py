"""One daemon per SQLite store: a second one exits at once and sends nothing; a taken port
stops a daemon before it claims or sends anything; PostgreSQL replicas still share one
database. Real processes on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from alertcast.testing.sink import WebhookSink
from tests.conftest import HOOK_SECRET, ROOT, incident, until
from tests.spine.daemon_proc import ENV, DaemonProcess, write_config
from tests.store.test_contract import PG_URL, _drop_schema, _pg_reachable

pytestmark = pytest.mark.slow
ACCOUNTS = 20
EXIT_S = 15.0  # "at once", with room for a loaded machine to start Python


def _serve(config: Path, log: Path) -> subprocess.CompletedProcess[str]:
    """``alertcast serve`` run to its end (or killed after EXIT_S: it should have exited)."""
    with log.open("a") as out:
        return subprocess.run(
            [sys.executable, "-m", "alertcast.cli", "serve", "--config", str(config)],
            env={**os.environ, **ENV},
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.PIPE,
            text=True,
            timeout=EXIT_S,
        )


def _rows(db: Path) -> list[tuple[object, ...]]:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT * FROM deliveries ORDER BY id").fetchall()


async def _in_flight(tmp_path: Path) -> tuple[WebhookSink, DaemonProcess, Path, Path]:
    """A daemon whose 20 deliveries are all at the (slow) sink, sent once each so far."""
    sink = WebhookSink(secret=HOOK_SECRET, latency_s=4.0)
    await sink.start()
    db = tmp_path / "one.db"
    hooks = [sink.url.replace("/hook", f"/hook/{i}") for i in range(ACCOUNTS)]
    config = write_config(tmp_path / "a.toml", db, 0, hooks, concurrency=ACCOUNTS)
    daemon = DaemonProcess(config, 0, tmp_path / "a.log")
    await daemon.start()
    status, answer = await daemon.request(
        "POST",
        "/v1/incidents",
        data=json.dumps(incident()),
        headers={"Content-Type": "application/json"},
    )
    assert status == 202 and len(answer["deliveries"]) == ACCOUNTS, answer
    await until(lambda: len(sink.received) == ACCOUNTS, what="every delivery at the sink")
    return sink, daemon, db, config


async def test_a_second_daemon_on_the_store_exits_at_once_and_sends_nothing(
    tmp_path: Path,
) -> None:
    """While 20 deliveries are in flight, a second serve on the same file (another port)
    exits non-zero within seconds naming the store; the sink sees each delivery once."""
    sink, first, db, _ = await _in_flight(tmp_path)
    assert first.proc is not None
    second_config = write_config(tmp_path / "b.toml", db, 0, [])
    try:
        started = time.monotonic()
        second = await asyncio.to_thread(_serve, second_config, tmp_path / "b.log")
        took_s = time.monotonic() - started
        await until(lambda: len(sink.answers) == ACCOUNTS, what="the first daemon's answers")
        await asyncio.sleep(0.5)  # a re-send by the second would have arrived by now
    finally:
        assert first.stop() == 0
        await sink.stop()
    assert second.returncode != 0 and took_s < EXIT_S
    assert str(db.resolve()) in second.stderr and "in use" in second.stderr, second.stderr
    assert f"pid {first.proc.pid}" in second.stderr
    assert "alertcast.listening" not in second.stderr
    assert sorted(sink.keys().values()) == [1] * ACCOUNTS  # each delivery sent once


async def test_a_taken_port_stops_the_daemon_before_it_claims_anything(tmp_path: Path) -> None:
    """The store's daemon is killed mid-send; a restart on a port already taken exits non-zero
    naming the port, and the deliveries it could have recovered are untouched and unsent."""
    sink, first, db, config = await _in_flight(tmp_path)
    first.kill9()
    before = _rows(db)
    assert {row[0] for row in before} and len(before) == ACCOUNTS
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        restart = tmp_path / "taken.toml"
        restart.write_text(config.read_text().replace("port = 0", f"port = {port}", 1))
        try:
            result = await asyncio.to_thread(_serve, restart, tmp_path / "taken.log")
            await asyncio.sleep(0.5)  # a re-send would have reached the sink by now
        finally:
            await sink.stop()
    assert result.returncode != 0
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr, result.stderr
    assert _rows(db) == before  # nothing recovered, claimed or attempted
    assert len(sink.received) == ACCOUNTS  # nothing sent again


@pytest.fixture
async def pg_url() -> AsyncIterator[str]:
    if (why := await _pg_reachable()) is not None:
        pytest.skip(why)
    schema = f"t_{uuid.uuid4().hex[:12]}"
    yield f"{PG_URL}?schema={schema}"
    await _drop_schema(schema)


@pytest.mark.postgres
async def test_replicas_on_postgresql_share_one_database(tmp_path: Path, pg_url: str) -> None:
    """No lock on PostgreSQL: two daemons on one database both serve, and what one accepts
    is sent once between them."""
    sink = WebhookSink(secret=HOOK_SECRET)
    await sink.start()
    hooks = [sink.url.replace("/hook", f"/hook/{i}") for i in range(5)]
    replicas = []
    for name in ("a", "b"):
        config = write_config(tmp_path / f"{name}.toml", tmp_path / "unused.db", 0, hooks)
        text = config.read_text().replace(f'"sqlite:///{tmp_path / "unused.db"}"', f'"{pg_url}"')
        config.write_text(text)
        replicas.append(DaemonProcess(config, 0, tmp_path / f"{name}.log"))
    try:
        for daemon in replicas:
            await daemon.start()
        status, _ = await replicas[0].request(
            "POST",
            "/v1/incidents",
            data=json.dumps(incident()),
            headers={"Content-Type": "application/json"},
        )
        assert status == 202
        await until(lambda: len(sink.delivered_keys()) == 5, what="five deliveries")
        assert (await replicas[1].request("GET", "/healthz"))[0] == 200
    finally:
        codes = [daemon.stop() for daemon in replicas]
        await sink.stop()
    assert codes == [0, 0] and sorted(sink.keys().values()) == [1] * 5
