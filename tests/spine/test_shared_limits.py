"""Limits shared through the store, through running daemons: two replicas on one PostgreSQL
never together exceed an account's window, and a restart keeps the windows and WeChat's
daily mass send (issue 15 item 1)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Any

import pytest
from structlog.testing import capture_logs

from alertcast.keys import ACCOUNTS
from alertcast.ratelimit import Limiter
from alertcast.shared_limiter import SharedLimiter
from alertcast.testing.fakes import FakeWechat, serve
from alertcast.testing.sink import WebhookSink
from tests.conftest import Daemon, incident, until

PER_SECOND = 3
SENDS = 12


def limited(**limits: Any) -> dict[str, Any]:
    """A webhook account on the test's sink with a rate window."""
    return {
        "id": "limited",
        "channel": "webhook",
        "url": "{sink}",
        "secret_env": "T_HOOK_SECRET",
        **limits,
    }


def most_in_one_window(sink: WebhookSink, window_s: float) -> int:
    """The most arrivals any ``window_s`` of the sink's clock held."""
    times = sorted(r.at for r in sink.received)
    return max(sum(1 for u in times if t <= u < t + window_s) for t in times)


async def delivered_by(d: Daemon, account: str) -> int:
    """Sends of ``account`` this replica recorded as delivered (its own health count)."""
    _, channels = await d.get("/v1/channels")
    (row,) = [a for a in channels["accounts"] if a["id"] == account]
    return int(row["delivered"])


@pytest.mark.postgres
async def test_two_replicas_on_one_database_never_exceed_the_window(
    start_daemon: Any, sink: WebhookSink, pg_url: str
) -> None:
    """Twelve alerts, half raised on each replica, to an account of 3 a second: any second
    of the sink's holds at most 3, and both replicas sent."""
    store = {"url": pg_url}
    a = await start_daemon(hooks=0, accounts=[limited(per_second=PER_SECOND)], store=store)
    b = await start_daemon(hooks=0, accounts=[limited(per_second=PER_SECOND)], store=store)
    posted = await asyncio.gather(*(d.post(incident()) for d in (a, b) * (SENDS // 2)))
    assert all(r.status == 202 for r in posted)
    await until(lambda: len(sink.received) >= SENDS, timeout_s=30, what="every send")
    await asyncio.sleep(0.3)  # nothing more arrives
    assert len(sink.received) == SENDS
    assert most_in_one_window(sink, 1.0) <= PER_SECOND
    assert await delivered_by(a, "limited") > 0 and await delivered_by(b, "limited") > 0


async def test_only_accounts_with_a_window_count_in_the_store(start_daemon: Any) -> None:
    """A webhook without a rate keeps the plain limiter (no store call per send); one with
    per_minute counts in the store."""
    d = await start_daemon(hooks=1, accounts=[limited(per_minute=2)])
    accounts = d.client.app[ACCOUNTS]
    plain, shared = accounts.get("hook-0"), accounts.get("limited")
    assert plain is not None and shared is not None
    assert type(plain.limiter) is Limiter and not plain.limiter.windows_for("post")
    assert isinstance(shared.limiter, SharedLimiter)


async def test_a_restarted_daemon_honours_the_window_of_the_sends_before(
    start_daemon: Any, sink: WebhookSink
) -> None:
    """Two a minute, both sent, then a restart: the third alert waits for the window."""
    first = await start_daemon(hooks=0, accounts=[limited(per_minute=2)])
    for _ in range(2):
        answer = await (await first.post(incident())).json()
        await first.settled(answer["id"])
    await first.client.close()
    again = await start_daemon(hooks=0, accounts=[limited(per_minute=2)])
    third = await (await again.post(incident())).json()
    await asyncio.sleep(1.5)
    _, view = await again.get(f"/v1/incidents/{third['id']}")
    assert [d["state"] for d in view["deliveries"]] == ["pending"]
    assert len(sink.received) == 2


@pytest.fixture
async def wechat(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[tuple[FakeWechat, str]]:
    monkeypatch.setenv("T_WX", "wx-secret")
    fake = FakeWechat({"wx-app": "wx-secret"})
    async with AsyncExitStack() as stack:
        yield fake, await stack.enter_async_context(serve(fake))


def subscription(url: str) -> dict[str, Any]:
    return {
        "id": "wechat-sub",
        "channel": "wechat_oa",
        "base_url": url,
        "app_id": "wx-app",
        "app_secret_env": "T_WX",
    }


async def mass_left(d: Daemon) -> int:
    _, channels = await d.get("/v1/channels")
    (row,) = [a for a in channels["accounts"] if a["id"] == "wechat-sub"]
    return int(row["quota_left"]["mass_sends_today"])


async def test_the_days_mass_send_survives_a_restart(
    start_daemon: Any, wechat: tuple[FakeWechat, str]
) -> None:
    """The day's one mass send, then a restart: quota_left reads 0 at once, and the next
    alert does not call the platform."""
    fake, url = wechat
    first = await start_daemon(hooks=0, accounts=[subscription(url)])
    assert await mass_left(first) == 1
    sent = await (await first.post(incident())).json()
    assert (await first.settled(sent["id"]))["counts"] == {"delivered": 1}
    await first.client.close()
    again = await start_daemon(hooks=0, accounts=[subscription(url)])
    assert await mass_left(again) == 0
    refused = await (await again.post(incident())).json()
    view = await again.settled(refused["id"])
    assert view["counts"] == {"skipped": 1}, view["deliveries"]
    assert "quota" in str(view["deliveries"][0]["reason"])
    assert len(fake.mass_sent) == 1 and len(fake.calls("/cgi-bin/message/mass/sendall")) == 1


@pytest.mark.postgres
async def test_a_send_that_waits_past_half_its_lease_gives_up_without_an_error(
    start_daemon: Any, sink: WebhookSink, pg_url: str
) -> None:
    """Two replicas, one send a minute: each claims an alert (each saw the window's room);
    the one whose take the other beat gives up waiting after half the claim's lease, says so at
    warning (no traceback, no failed record), and nothing goes out past the window."""
    store = {"url": pg_url}
    dispatch = {"lease_s": 5.0, "backoff_initial_s": 0.05, "poll_interval_s": 0.2}
    account = [limited(per_minute=1)]
    a = await start_daemon(hooks=0, accounts=account, store=store, dispatch=dispatch)
    b = await start_daemon(hooks=0, accounts=account, store=store, dispatch=dispatch)
    with capture_logs() as logs:
        posted = await asyncio.gather(*(d.post(incident()) for d in (a, b)))
        assert all(r.status == 202 for r in posted)
        await until(
            lambda: any(e["event"] == "dispatch.window_wait_gave_up" for e in logs),
            8,
            "a replica giving up its wait",
        )
        gave_up_at = time.monotonic()
        # Given back at once, not after the rest of its lease: due again, its attempt taken
        # back (nothing was sent), while the window stays shut.
        ids = [(await r.json())["deliveries"][0]["id"] for r in posted]
        await until(lambda: _back_in_queue(a, ids), 4, "the claim given back")
        assert time.monotonic() - gave_up_at < dispatch["lease_s"] / 2
    gave_up = [e for e in logs if e["event"] == "dispatch.window_wait_gave_up"]
    assert gave_up[0]["log_level"] == "warning" and "waited" in gave_up[0]["reason"]
    assert not [e for e in logs if e["event"] == "dispatch.record_failed"]
    assert len(sink.received) == 1  # nothing sent past the window


async def _back_in_queue(d: Daemon, ids: list[str]) -> bool:
    """One delivery delivered, the other due again with no attempt counted."""
    rows = [await d.get(f"/v1/deliveries/{i}") for i in ids]
    states = sorted((row[1]["state"], row[1]["attempts"]) for row in rows)
    return states == [("delivered", 1), ("pending", 0)]
