"""A per-recipient webhook account through the daemon, on every engine: each recipient in the
incident's area gets one signed POST carrying its ``recipient``, transient failures retry that
recipient alone, the status API summarises and pages, the stream sends summaries only."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import aiohttp

from alertcast.store import open_store
from alertcast.store.base import Recipient
from alertcast.testing.sink import Received
from tests.conftest import TOKEN, engine, incident

__all__ = ["engine", "load", "people"]  # engine: the fixture, from tests.conftest

AUTH = {"Authorization": f"Bearer {TOKEN}"}
CHENGDU = {"name": "四川省成都市", "codes": ["510100"]}
PEOPLE = {
    "id": "people",
    "channel": "webhook",
    "url": "{sink}",
    "secret_env": "T_HOOK_SECRET",
    "per_recipient": True,
    "concurrency": 32,
}


def people(chengdu: int = 1500, nowhere: int = 300, beijing: int = 200) -> Iterator[Recipient]:
    """Recipients in Chengdu's districts, without a region, and in Beijing (outside)."""
    for i in range(chengdu):
        yield Recipient(f"cd-{i:05d}", "510104" if i % 2 else "510105", {"name": f"成都{i}"})
    for i in range(nowhere):
        yield Recipient(f"nr-{i:05d}", None, {"name": f"n{i}"})
    for i in range(beijing):
        yield Recipient(f"bj-{i:05d}", "110101", {"name": f"b{i}"})


async def load(url: str, recipients: Iterator[Recipient], account: str = "people") -> None:
    store = open_store(url)
    await store.open()
    try:
        await store.import_recipients(account, ((n + 2, r) for n, r in enumerate(recipients)))
    finally:
        await store.close()


async def _alert(d: Any) -> tuple[str, dict[str, Any]]:
    """Post an earthquake in Chengdu; its id and the people account's delivery once settled."""
    answer = await (await d.post(incident(area=CHENGDU))).json()
    view = await d.settled(answer["id"], timeout_s=120)
    (parent,) = [x for x in view["deliveries"] if x["account"] == "people"]
    return answer["id"], parent


async def test_every_recipient_in_the_area_gets_one_post(start_daemon: Any, engine: str) -> None:
    """2,000 recipients: the 1,800 in Chengdu or nowhere get one signed POST each, with their
    recipient and their own key; Beijing's 200 none; the parent delivered, summarised."""
    await load(engine, people())
    d = await start_daemon(hooks=0, accounts=[PEOPLE], store={"url": engine})
    _, parent = await _alert(d)
    assert parent["state"] == "delivered", parent
    assert parent["recipients"] == {"delivered": 1800}
    got = d.sink.received
    keys = Counter(r.key for r in got)
    assert len(got) == 1800 and set(keys.values()) == {1}
    assert all(r.signed for r in got)
    by_id = {r.body["recipient"]["id"]: r for r in got}
    assert not [i for i in by_id if i.startswith("bj-")]
    one = by_id["cd-00003"]
    assert one.body["recipient"] == {"id": "cd-00003", "region": "510104", "name": "成都3"}
    assert one.key.endswith(":cd-00003") and one.body["idempotency_key"] == one.key
    assert by_id["nr-00000"].body["recipient"]["region"] is None


async def test_transient_failures_retry_the_recipient_alone(start_daemon: Any, engine: str) -> None:
    """Every 7th recipient's first POST gets a 503, two get a 400: the 503s are retried once
    (seen twice), the 400s fail, everyone else is seen once; the parent fails with counts."""
    await load(engine, people(chengdu=300, nowhere=0, beijing=0))
    d = await start_daemon(hooks=0, accounts=[PEOPLE], store={"url": engine})
    seen: Counter[str] = Counter()

    def answer(item: Received) -> tuple[int, dict[str, str]] | None:
        rid = item.body["recipient"]["id"]
        seen[rid] += 1
        if rid in ("cd-00010", "cd-00011"):
            return 400, {}
        return (503, {}) if int(rid[3:]) % 7 == 0 and seen[rid] == 1 else None

    d.sink.answer = answer
    _, parent = await _alert(d)
    flaky = {f"cd-{i:05d}" for i in range(0, 300, 7)}
    assert {rid: n for rid, n in seen.items() if n > 1} == dict.fromkeys(flaky, 2)
    assert parent["state"] == "failed"
    assert parent["recipients"] == {"delivered": 298, "failed": 2}
    assert "298 of 300 recipients delivered; 2 failed" in parent["reason"]
    status, page = await d.get(f"/v1/deliveries/{parent['id']}/recipients?state=failed")
    assert status == 200
    assert [(r["id"], r["http_status"], r["attempts"]) for r in page["recipients"]] == [
        ("cd-00010", 400, 1),
        ("cd-00011", 400, 1),
    ]
    status, page = await d.get(f"/v1/deliveries/{parent['id']}/recipients?after=cd-00006&limit=1")
    assert [(r["id"], r["state"], r["attempts"]) for r in page["recipients"]] == [
        ("cd-00007", "delivered", 2)
    ]


async def test_the_recipients_page_by_cursor_and_bad_parameters_are_400(
    start_daemon: Any, engine: str
) -> None:
    """Pages of 400 cover the 1,800 once, ``next`` null on the last; a bad state, limit or
    after is a 400 naming it; an unknown delivery a 404."""
    await load(engine, people())
    d = await start_daemon(hooks=0, accounts=[PEOPLE], store={"url": engine})
    incident_id, parent = await _alert(d)
    status, view = await d.get(f"/v1/deliveries/{parent['id']}")
    assert status == 200 and view["recipients"] == {"delivered": 1800}
    ids: list[str] = []
    after = ""
    while True:
        status, page = await d.get(
            f"/v1/deliveries/{parent['id']}/recipients?limit=400&after={after}"
        )
        assert status == 200 and page["summary"] == {"delivered": 1800}
        ids += [r["id"] for r in page["recipients"]]
        if page["next"] is None:
            break
        after = page["next"]
    assert len(ids) == len(set(ids)) == 1800 and ids == sorted(ids)
    for query, name in (("state=lost", "state"), ("limit=0", "limit"), ("limit=x", "limit")):
        status, problem = await d.get(f"/v1/deliveries/{parent['id']}/recipients?{query}")
        assert status == 400, problem
        assert [e["field"] for e in problem["errors"]] == [name], problem
    status, problem = await d.get(f"/v1/deliveries/{parent['id']}/recipients?after={'x' * 200}")
    assert status == 400 and problem["errors"][0]["field"] == "after"
    status, _ = await d.get("/v1/deliveries/nope/recipients")
    assert status == 404
    assert incident_id


async def test_the_stream_sends_summaries_not_an_event_per_recipient(
    start_daemon: Any, engine: str
) -> None:
    """While 1,800 are sent the stream carries a handful of recipients summaries (at most one
    a second, plus the final one with every count), and two delivery events for the parent."""
    await load(engine, people())
    d = await start_daemon(hooks=0, accounts=[PEOPLE], store={"url": engine})
    resp = await d.client.get("/v1/stream", headers=AUTH)
    await resp.content.readuntil(b": connected\n\n")
    started = time.monotonic()
    incident_id, parent = await _alert(d)
    took_s = time.monotonic() - started
    events = await _events(resp, until=lambda e: e.get("state") == "delivered")
    resp.close()
    summaries = [e for e in events if e["type"] == "recipients"]
    assert [e["final"] for e in summaries][-1:] == [True]
    assert summaries[-1]["recipients"] == {"delivered": 1800} and summaries[-1]["total"] == 1800
    assert all(e["incident_id"] == incident_id and e["id"] == parent["id"] for e in summaries)
    assert 1 <= len(summaries) <= took_s / 1.0 + 2
    mine = [e for e in events if e["type"] == "delivery" and e["id"] == parent["id"]]
    assert [e["state"] for e in mine] == ["sending", "delivered"]


async def _events(resp: aiohttp.ClientResponse, until: Any) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    while not out or not until(out[-1]):
        line = (await asyncio.wait_for(resp.content.readline(), 30)).decode()
        if line.startswith("data: "):
            out.append(json.loads(line[6:]))
    return out


async def test_a_cancellation_goes_to_every_recipient_too(start_daemon: Any, engine: str) -> None:
    """The alert's 40 recipients each get the cancellation as well (a reply to the remote id
    their alert got), under its own key; the cancellation's parent summarised alike."""
    await load(engine, people(chengdu=40, nowhere=0, beijing=0))
    d = await start_daemon(hooks=0, accounts=[PEOPLE], store={"url": engine})
    incident_id, _ = await _alert(d)
    resp = await d.client.post(
        f"/v1/incidents/{incident_id}/cancel", json={"reason": "误报"}, headers=AUTH
    )
    cancel = await d.settled((await resp.json())["id"], timeout_s=60)
    (parent,) = cancel["deliveries"]
    assert parent["state"] == "delivered" and parent["recipients"] == {"delivered": 40}, parent
    by_key = Counter(r.key for r in d.sink.received)
    assert len(by_key) == 80 and set(by_key.values()) == {1}
    actions = Counter((r.body["action"], r.body["msg_type"]) for r in d.sink.received)
    assert actions == {("post", "alert"): 40, ("reply", "cancel"): 40}, actions
