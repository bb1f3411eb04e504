"""A failed correction's flag (``correction_failed``) as a duty officer running replicas sees
it, through running daemons: every replica on one PostgreSQL shows it, a pause that lifts by
itself (the token replaced) leaves it on all of them, an operator's resume on any replica
clears it on all, and a restart still shows it until the correction is re-driven."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from alertcast.keys import STORE
from alertcast.store import open_store
from alertcast.store.base import AccountState, Store
from alertcast.store.sqlstore import SQLStore
from alertcast.testing.fakes import FakeWeibo, serve
from tests.conftest import TOKEN, Daemon, incident, until
from tests.spine.test_slot_clock import AHEAD_S, HourAhead

AUTH = {"Authorization": f"Bearer {TOKEN}"}
SHARE = "/2/statuses/share.json"
OLD, NEW = "weibo-token", "weibo-token-new"
HELD_S = 3.0  # two and more of a 5 s lease's sweeps (lease_s / 4): what another replica wrote
BOUND_S = 10.0  # a write, a sweep (1.25 s) and a loaded machine


def dispatch(lease_s: float) -> dict[str, Any]:
    """Fast retries; ``lease_s / 4`` is how often a replica adopts what the others stored."""
    return {
        "backoff_initial_s": 0.05,
        "backoff_max_s": 0.2,
        "max_attempts": 5,
        "poll_interval_s": 0.2,
        "lease_s": lease_s,
    }


@pytest.fixture
async def weibo(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[tuple[FakeWeibo, str]]:
    """The Weibo fake; replicas A and B read the token from variables of their own."""
    monkeypatch.setenv("T_WEIBO_A", OLD)
    monkeypatch.setenv("T_WEIBO_B", OLD)
    fake = FakeWeibo({OLD: 1001, NEW: 1001})
    async with serve(fake) as url:
        yield fake, url


def weibo_account(url: str, variable: str) -> dict[str, Any]:
    return {
        "id": "weibo-city",
        "channel": "weibo",
        "base_url": url,
        "access_token_env": variable,
        "safe_domain_url": "https://alerts.example.gov.cn/",
    }


async def account(d: Daemon, account_id: str) -> dict[str, Any]:
    _, body = await d.get("/v1/channels")
    return next(a for a in body["accounts"] if a["id"] == account_id)


async def cancel(d: Daemon, incident_id: str) -> str:
    resp = await d.client.post(
        f"/v1/incidents/{incident_id}/cancel", json={"reason": "误报，已核实"}, headers=AUTH
    )
    assert resp.status == 202, await resp.text()
    return str((await resp.json())["id"])


@pytest.fixture
async def reader(pg_url: str) -> AsyncIterator[Store]:
    """The daemons' PostgreSQL store, opened beside them to read what they wrote."""
    store = open_store(pg_url)
    await store.open()
    yield store
    await store.close()


async def stored(store: Store, account_id: str) -> AccountState | None:
    return (await store.account_states()).get(account_id)


async def states(d: Daemon, incident_id: str) -> dict[str, str]:
    _, view = await d.get(f"/v1/incidents/{incident_id}")
    return {x["path"]: x["state"] for x in view["deliveries"]}


async def flagged_throughout(d: Daemon, account_id: str, what: str, seconds: float) -> None:
    """The account shows ``what`` in its ``correction_failed`` for ``seconds``, unhealthy."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        row = await account(d, account_id)
        assert what in (row["correction_failed"] or ""), row
        assert row["healthy"] is False, row
        await asyncio.sleep(0.1)


@pytest.mark.postgres
@pytest.mark.timeout(90)
async def test_replacing_the_token_on_each_replica_leaves_the_failed_correction_flagged(
    start_daemon: Any,
    weibo: tuple[FakeWeibo, str],
    pg_url: str,
    reader: Store,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Weibo refuses A's cancellation post (20021) and rejects the token; B starts paused.
    The token replaced on A, then on B (B's unpaused row the newest): both still flag it."""
    fake, url = weibo
    store = {"url": pg_url}
    a = await start_daemon(
        hooks=0, accounts=[weibo_account(url, "T_WEIBO_A")], store=store, dispatch=dispatch(5)
    )
    first = await a.settled(str((await (await a.post(incident())).json())["id"]))
    assert [x["state"] for x in first["deliveries"]] == ["delivered"]
    fake.expired.add(OLD)
    fake.fail_next(20021, path=SHARE)  # before the token is looked at
    cancelled = await cancel(a, first["id"])

    async def refused_and_paused_in_store() -> bool:
        row = await stored(reader, "weibo-city")
        failed = (await states(a, cancelled)).get("timeline") == "failed"
        return failed and row is not None and row.paused_for == "credentials"

    await until(refused_and_paused_in_store, 20, "the post refused, the pause stored")
    # B adopts what others store only at start and every 30 s: it keeps the pause it restored
    # until its own token is replaced, and then writes the newest row.
    b = await start_daemon(
        hooks=0, accounts=[weibo_account(url, "T_WEIBO_B")], store=store, dispatch=dispatch(120)
    )
    assert (await account(b, "weibo-city"))["paused"], "B restores the stored pause"
    await asyncio.sleep(1.0)  # B's first loop and its sweep are behind it
    monkeypatch.setenv("T_WEIBO_A", NEW)

    async def thread_delivered() -> bool:
        return (await states(a, cancelled)).get("thread") == "delivered"

    await until(thread_delivered, BOUND_S, "A's comment sent with the new token")
    lifted_on_a = await stored(reader, "weibo-city")
    assert lifted_on_a is not None and lifted_on_a.paused_for is None, lifted_on_a
    assert (await account(b, "weibo-city"))["paused"], "B has not adopted A's lift yet"
    monkeypatch.setenv("T_WEIBO_B", NEW)

    async def written_by_b() -> bool:
        row = await stored(reader, "weibo-city")
        return row is not None and row.updated_at > lifted_on_a.updated_at

    await until(written_by_b, BOUND_S, "B's lift written, after A's")
    await flagged_throughout(a, "weibo-city", "weibo 20021", HELD_S)  # B's row adopted
    for d in (a, b):
        row = await account(d, "weibo-city")
        assert row["paused"] is None and "weibo 20021" in (row["correction_failed"] or ""), row


async def refused_cancellation(d: Daemon) -> tuple[str, str]:
    """An alert delivered on the webhook, its cancellation refused (400): ``(incident,
    delivery)`` of the cancellation, which flags the account."""
    first = await (await d.post(incident())).json()
    await d.settled(first["id"])
    d.sink.answer = lambda r: (400, {}) if r.body["msg_type"] == "cancel" else None
    cancelled = await cancel(d, first["id"])
    (refused,) = (await d.settled(cancelled))["deliveries"]
    assert refused["state"] == "failed", refused
    row = await account(d, "hook-0")
    assert (row["correction_failed"] or "").startswith(f"{refused['id']} ({cancelled}): "), row
    return cancelled, str(refused["id"])


@pytest.mark.postgres
@pytest.mark.timeout(60)
async def test_an_operators_resume_on_one_replica_clears_the_flag_on_the_other(
    start_daemon: Any, pg_url: str
) -> None:
    """A's cancellation is refused; B shows the flag too; resumed on B, A shows it cleared."""
    store = {"url": pg_url}
    a = await start_daemon(hooks=1, store=store, dispatch=dispatch(5))
    _, refused = await refused_cancellation(a)
    b = await start_daemon(hooks=1, store=store, dispatch=dispatch(5))
    shown = await account(b, "hook-0")
    assert (shown["correction_failed"] or "").startswith(f"{refused} "), shown
    resp = await b.client.post("/v1/channels/hook-0/resume", headers=AUTH)
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["correction_failed"] is None

    async def cleared_on_a() -> bool:
        return (await account(a, "hook-0"))["correction_failed"] is None

    await until(cleared_on_a, BOUND_S, "the resume adopted by A")
    await asyncio.sleep(HELD_S)  # a sweep of each: neither takes the old flag back
    for d in (a, b):
        row = await account(d, "hook-0")
        assert row["correction_failed"] is None and row["healthy"] is True, row


@pytest.mark.timeout(60)
async def test_a_restart_shows_the_failed_correction_until_it_is_redriven(
    start_daemon: Any, engine: str
) -> None:
    """Refused, then a restart: still flagged; re-driven and delivered, a restart shows none."""
    config = {"store": {"url": engine}, "dispatch": dispatch(5)}
    d = await start_daemon(hooks=1, **config)
    cancelled, refused = await refused_cancellation(d)
    await d.client.close()
    d = await start_daemon(hooks=1, **config)
    row = await account(d, "hook-0")
    assert (row["correction_failed"] or "").startswith(f"{refused} ({cancelled}): "), row
    assert row["healthy"] is False, row
    d.sink.answer = None
    resp = await d.client.post(f"/v1/deliveries/{refused}/retry", headers=AUTH)
    assert resp.status == 202, await resp.text()
    assert (await d.settled(cancelled))["counts"] == {"delivered": 1}
    assert (await account(d, "hook-0"))["correction_failed"] is None
    await d.client.close()
    d = await start_daemon(hooks=1, **config)
    row = await account(d, "hook-0")
    assert row["correction_failed"] is None and row["healthy"] is True, row


@pytest.mark.postgres
@pytest.mark.timeout(60)
async def test_a_replica_that_has_not_heard_of_the_failure_does_not_clear_it_by_writing(
    start_daemon: Any, pg_url: str
) -> None:
    """B (the account disabled there, adopting every 30 s) is started first; A's cancellation
    is refused; an operator pauses the account on B: a restarted A shows both."""
    store = {"url": pg_url}
    a = await start_daemon(hooks=1, store=store, dispatch=dispatch(5))
    b = await start_daemon(
        hooks=0,
        accounts=[
            {
                "id": "hook-0",
                "channel": "webhook",
                "url": "{sink}/0",
                "secret_env": "T_HOOK_SECRET",
                "enabled": False,
            }
        ],
        store=store,
        dispatch=dispatch(120),
    )
    await asyncio.sleep(1.0)  # B's first loop and its sweep are behind it
    cancelled, refused = await refused_cancellation(a)
    assert (await account(b, "hook-0"))["correction_failed"] is None  # not adopted yet
    resp = await b.client.post("/v1/channels/hook-0/pause", json={"reason": "演练"}, headers=AUTH)
    assert resp.status == 200, await resp.text()

    async def paused_in_store() -> bool:
        _, body = await a.get("/v1/channels")  # A adopts B's pause at a sweep
        return bool(body["accounts"][0]["paused"])

    await until(paused_in_store, BOUND_S, "B's pause written and adopted by A")
    await a.client.close()
    a = await start_daemon(hooks=1, store=store, dispatch=dispatch(5))
    row = await account(a, "hook-0")
    assert "演练" in (row["paused"] or ""), row
    assert (row["correction_failed"] or "").startswith(f"{refused} ({cancelled}): "), row


@pytest.mark.postgres
@pytest.mark.timeout(60)
async def test_the_flag_is_stamped_on_the_clock_the_replicas_share(
    start_daemon: Any, pg_url: str, reader: Store
) -> None:
    """Replicas keep the newest flag (set or cleared), so its instant is read on the clock
    they share, the store's (here a database an hour ahead of this machine), not each
    machine's own: with its own, a replica whose clock runs ahead keeps a flag an operator
    cleared after it on another. The failure and the resume are both stamped an hour ahead."""
    d = await start_daemon(hooks=1, store={"url": pg_url}, dispatch=dispatch(5))
    store = d.client.app[STORE]
    assert isinstance(store, SQLStore)
    await store.shared_clock.stop()
    store.shared_clock = HourAhead()
    await refused_cancellation(d)

    async def stamped(flagged: bool) -> bool:
        row = await stored(reader, "hook-0")
        if row is None or row.correction_failed_at is None:
            return False
        ahead = row.correction_failed_at - time.time()
        return (row.correction_failed is not None) == flagged and abs(ahead - AHEAD_S) < 60

    await until(lambda: stamped(True), BOUND_S, "the failure stamped on the store's clock")
    resp = await d.client.post("/v1/channels/hook-0/resume", headers=AUTH)
    assert resp.status == 200, await resp.text()
    await until(lambda: stamped(False), BOUND_S, "the resume stamped on the store's clock")
