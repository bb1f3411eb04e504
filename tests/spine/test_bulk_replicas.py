"""Two replicas on one PostgreSQL share one per-recipient delivery: each takes parts of its
sends (issue 15 item 4), every recipient gets one POST, the parent one verdict; and when one of
the two is killed with SIGKILL half way, the other finishes without loss."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from alertcast.store.base import Recipient
from alertcast.testing.sink import WebhookSink
from tests.conftest import HOOK_SECRET, incident
from tests.spine.daemon_proc import DaemonProcess
from tests.spine.test_bulk import CHENGDU, PEOPLE, load
from tests.spine.test_bulk_crash import WIDTH, Sends, _config

pytestmark = pytest.mark.postgres

N = 12_001  # three parts (the expansion writes 5,000 a part)


def everyone(n: int) -> Any:
    return (Recipient(f"p-{i:06d}", "510104", {}) for i in range(n))


async def parts_by_worker(url: str) -> dict[str, int]:
    """Who took the parts (the holder last, once done): sends per worker."""
    rows = await Sends(url).rows(
        "SELECT worker, SUM(size) FROM recipient_parts WHERE worker IS NOT NULL GROUP BY worker"
    )
    return {str(w): int(n) for w, n in rows}


async def verdicts(url: str, delivery_id: str) -> list[str]:
    query = f"SELECT outcome FROM attempts WHERE delivery_id = '{delivery_id}'"
    rows = await Sends(url).rows(query)
    return [str(r[0]) for r in rows]


@pytest.mark.timeout(300)
async def test_two_replicas_each_send_parts_of_one_parent(
    pg_url: str, start_daemon: Any, sink: WebhookSink
) -> None:
    """12,001 recipients, the alert posted to one replica: both send parts of it, each
    recipient gets exactly one POST, the parent is delivered once with every count."""
    await load(pg_url, everyone(N))
    store = {"url": pg_url}
    a = await start_daemon(hooks=0, accounts=[PEOPLE], store=store)
    b = await start_daemon(hooks=0, accounts=[PEOPLE], store=store)
    answer = await (await a.post(incident(area=CHENGDU))).json()
    view = await a.settled(answer["id"], timeout_s=240)
    (parent,) = view["deliveries"]
    assert parent["state"] == "delivered", parent
    assert parent["recipients"] == {"delivered": N} and parent["attempts"] == 1
    keys = Counter(r.key for r in sink.received)
    assert len(keys) == N and set(keys.values()) == {1}
    assert all(r.signed for r in sink.received)
    workers = await parts_by_worker(pg_url)
    assert len(workers) == 2 and sum(workers.values()) == N, workers
    assert await verdicts(pg_url, parent["id"]) == ["delivered"]
    _, seen_by_b = await b.get(f"/v1/deliveries/{parent['id']}")
    assert seen_by_b["state"] == "delivered" and seen_by_b["recipients"] == {"delivered": N}


async def _holder(daemons: list[DaemonProcess]) -> int:
    """Which daemon holds the parent: the one with a delivery in flight (the helper's parts
    are not deliveries of its own)."""
    inflight = []
    for d in daemons:
        _, health = await d.request("GET", "/healthz")
        inflight.append(int(health["inflight"]))
    assert sorted(inflight) == [0, 1], inflight
    return inflight.index(1)


@pytest.mark.slow
@pytest.mark.timeout(400)
@pytest.mark.parametrize("killed", ["holder", "helper"])
async def test_kill9_of_one_replica_the_other_finishes(
    tmp_path: Path, pg_url: str, killed: str
) -> None:
    """Two daemons share 20,001 recipients; once both send parts and a quarter has gone out,
    the parent's holder (or the helper) gets SIGKILL; the other delivers everyone (taking the
    dead one's parts once their lease runs out, and the parent too if it held it), one verdict;
    a recipient gets one request per recorded attempt, plus one if it was in flight at the kill."""
    n = 20_001
    sink = WebhookSink(secret=HOOK_SECRET)
    await sink.start()
    await load(pg_url, everyone(n))
    sends = Sends(pg_url)
    config = _config(tmp_path, pg_url, sink.url)
    daemons = [DaemonProcess(config, 0, tmp_path / f"daemon-{i}.log") for i in range(2)]
    try:
        for d in daemons:
            await d.start()
        body = json.dumps(incident(area={"name": "成都市锦江区", "codes": ["510104"]}))
        status, answer = await daemons[0].request(
            "POST", "/v1/incidents", data=body, headers={"Content-Type": "application/json"}
        )
        assert status == 202, answer
        (parent_id,) = [x["id"] for x in answer["deliveries"]]

        async def both_sending() -> bool:
            assert len(sink.received) < n, "one replica sent every part alone"
            return len(await parts_by_worker(pg_url)) == 2 and len(sink.received) >= n // 4

        await _until(both_sending, "both replicas sending")
        holder = await _holder(daemons)
        victim = holder if killed == "holder" else 1 - holder
        daemons[victim].kill9()
        await asyncio.sleep(0.5)  # what the killed process wrote is read by the sink first
        seen = {r.key.rsplit(":", 1)[1] for r in sink.received}
        recorded = await sends.delivered()
        survivor = daemons[1 - victim]

        async def settled() -> bool:
            _, view = await survivor.request("GET", f"/v1/deliveries/{parent_id}")
            return bool(view["state"] == "delivered")

        await _until(settled, "the parent delivered", 300)
        attempts = await sends.attempts()
    finally:
        for d in daemons:
            if d.proc is not None and d.proc.poll() is None:
                d.stop()
        await sink.stop()
    assert len(await sends.delivered()) == n
    keys = Counter(r.key.rsplit(":", 1)[1] for r in sink.received)
    assert len(keys) == n and {r.key for r in sink.received} == sink.delivered_keys()
    in_flight = seen - recorded  # reached the sink, not recorded delivered when killed
    assert len(in_flight) <= 2 * (WIDTH + 2 * 256)  # both replicas' sends and batches
    over = {rid: k for rid, k in keys.items() if k > attempts[rid] + (rid in in_flight)}
    assert over == {}
    assert await verdicts(pg_url, parent_id) == ["delivered"]
    again = sum(1 for rid, k in keys.items() if k > 1)
    print(f"\n{killed} killed: {len(in_flight)} in flight at the kill, {again} sent again")


async def _until(check: Any, what: str, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not await check():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.05)
