"""A store call that gets no answer while the store still answers a probe (issue 15 item 6): a
statement held past its bound by a lock taken elsewhere, a connection reset under a request
by a short blackhole. The request is refused with a ``503`` to send again, naming the store's
reason, and logged as a warning; a bug (a row the code cannot read) is still a ``500``. A real
app on PostgreSQL through a TCP proxy, 1.5 s bounds."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from structlog.testing import capture_logs

from alertcast.testing.tcpproxy import TcpProxy
from tests.conftest import PG_URL, TOKEN, Daemon, incident, until

pytestmark = pytest.mark.postgres

TIMEOUT_S = 1.5


@pytest.fixture
async def daemon(schema: str, proxy: TcpProxy, start_daemon: Any) -> Daemon:
    """The app on PostgreSQL through the proxy, its connections named after the schema."""
    head, tail = PG_URL.rsplit("@", 1)
    bounds = f"connect_timeout_s={TIMEOUT_S}&command_timeout_s={TIMEOUT_S}"
    db = tail.split("/", 1)[1]
    url = f"{head}@127.0.0.1:{proxy.port}/{db}?schema={schema}&{bounds}&application_name={schema}"
    return await start_daemon(store={"url": url})  # type: ignore[no-any-return]


async def test_a_statement_held_past_its_bound_is_a_503_to_send_again(
    daemon: Daemon, schema: str
) -> None:
    """Intake while another session locks the incidents table: the insert waits out its 1.5 s,
    the probe answers (the store is only slow), so 503 with Retry-After naming the bound, a
    warning and no traceback; once the lock is gone the same key stores the alert once."""
    async with _locked(schema, "LOCK TABLE incidents IN EXCLUSIVE MODE"):
        with capture_logs() as logs:
            resp = await daemon.post(
                incident(headline="锁住时的警报"), **{"Idempotency-Key": "k-1"}
            )
            body = await resp.json(content_type=None)
    assert resp.status == 503, body
    assert resp.content_type == "application/problem+json" and resp.headers["Retry-After"]
    assert f"TimeoutError: the store did not answer within {TIMEOUT_S:g} s" in body["detail"]
    assert "send it again" in body["detail"] and "unreachable" not in body["detail"]
    _warned_once(logs, "TimeoutError: the store did not answer within 1.5 s")
    assert (await _health(daemon))[0] == 200  # slow, not away
    resp = await daemon.post(incident(headline="锁住时的警报"), **{"Idempotency-Key": "k-1"})
    assert resp.status == 202, await resp.text()
    assert await _count(schema, "SELECT COUNT(*) FROM incidents") == 1


async def test_a_connection_reset_under_a_request_is_a_503_to_send_again(
    daemon: Daemon, proxy: TcpProxy, schema: str
) -> None:
    """A short blackhole under intake, restored before any bound runs out: the request's
    connection is reset, the probe answers on another, so 503 naming the lost connection (not
    a 500); sent again with its key, the alert is stored once."""
    with capture_logs() as logs:
        async with _locked(schema, "LOCK TABLE incidents IN EXCLUSIVE MODE"):
            request = asyncio.create_task(
                daemon.post(incident(headline="断线时的警报"), **{"Idempotency-Key": "k-2"})
            )
            await until(lambda: _waiting(schema), 5, "the insert waiting on the lock")
            proxy.blackhole()
        await until(_not_waiting(schema), 5, "the insert answered, into the blackhole")
        proxy.restore()  # resets the connections that lost bytes: the request's among them
        resp = await request
        body = await resp.json(content_type=None)
    assert resp.status == 503, body
    assert resp.headers["Retry-After"] and "send it again" in body["detail"]
    assert "ConnectionError: the store's connection was lost: " in body["detail"], body
    _warned_once(logs, "ConnectionError: the store's connection was lost: ")
    resp = await daemon.post(incident(headline="断线时的警报"), **{"Idempotency-Key": "k-2"})
    assert resp.status == 202, await resp.text()
    assert await _count(schema, "SELECT COUNT(*) FROM incidents") == 1


async def test_what_a_503_says_follows_what_the_request_may_have_done(
    daemon: Daemon, schema: str
) -> None:
    """Held past the bound by a lock on the table it reads: a read is told to send it again; a
    re-drive (a change no key replays) that it may have been carried out, to look first; an
    intake (replayed by its key) that it may have been stored, to resend with the same key."""
    resp = await daemon.post(incident(headline="已送达的警报"))
    (delivery,) = (await daemon.settled((await resp.json())["id"]))["deliveries"]
    async with _locked(schema, "LOCK TABLE deliveries, incidents IN ACCESS EXCLUSIVE MODE"):
        status, read = await daemon.get("/v1/incidents")
        retried = await daemon.client.post(
            f"/v1/deliveries/{delivery['id']}/retry", headers={"Authorization": f"Bearer {TOKEN}"}
        )
        redrive = await retried.json(content_type=None)
        posted = await daemon.post(incident(headline="锁住时"), **{"Idempotency-Key": "k-3"})
        intake = await posted.json(content_type=None)
    assert (status, retried.status, posted.status) == (503, 503, 503), (read, redrive, intake)
    assert read["detail"].endswith("send it again"), read
    assert "may have been carried out" in redrive["detail"], redrive
    assert "Idempotency-Key" not in redrive["detail"], redrive
    assert "may have been stored" in intake["detail"], intake
    assert "same Idempotency-Key" in intake["detail"], intake


async def test_a_row_the_code_cannot_read_is_still_a_500(daemon: Daemon, schema: str) -> None:
    """Not every failure is the store's: an incident whose body is not JSON is a 500 and an
    error with its traceback, though the store answers every call."""
    resp = await daemon.post(incident())
    incident_id = (await resp.json())["id"]
    await _count(schema, f"UPDATE incidents SET body = 'not json' WHERE id = '{incident_id}'")
    with capture_logs() as logs:
        status, body = await daemon.get(f"/v1/incidents/{incident_id}")
    assert status == 500 and body["detail"].startswith("internal error"), body
    events = {e["event"]: e for e in logs}
    assert "http.store_unanswered" not in events
    assert events["http.unhandled"]["log_level"] == "error" and events["http.unhandled"]["exc_info"]


def _warned_once(logs: list[dict[str, Any]], error: str) -> None:
    """One warning naming the store's reason, no error and no traceback."""
    (warning,) = [e for e in logs if e["event"] == "http.store_unanswered"]
    assert warning["log_level"] == "warning" and warning["error"].startswith(error), warning
    assert warning["path"] == "/v1/incidents"
    assert not [e for e in logs if e["event"] == "http.unhandled"]


@contextlib.asynccontextmanager
async def _locked(schema: str, statement: str) -> AsyncIterator[None]:
    """``statement`` held in an open transaction of another session, until the block ends."""
    conn = await asyncpg.connect(PG_URL, server_settings={"search_path": schema})
    try:
        async with conn.transaction():
            await conn.execute(statement)
            yield
    finally:
        await conn.close()


async def _waiting(schema: str) -> bool:
    """Whether one of the app's statements waits on a lock."""
    query = (
        "SELECT COUNT(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
        f"AND application_name = '{schema}'"
    )
    return await _count(schema, query) > 0


def _not_waiting(schema: str) -> Any:
    async def check() -> bool:
        return not await _waiting(schema)

    return check


async def _health(d: Daemon) -> tuple[int, dict[str, Any]]:
    resp = await d.client.get("/healthz")
    return resp.status, await resp.json()


async def _count(schema: str, query: str) -> int:
    conn = await asyncpg.connect(PG_URL, server_settings={"search_path": schema})
    try:
        if query.startswith("UPDATE"):
            return int((await conn.execute(query)).rsplit(" ", 1)[1])
        return int(await conn.fetchval(query))
    finally:
        await conn.close()
