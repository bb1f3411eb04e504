"""A part's take the database committed while its answer was lost: the part is leased to this
replica, which never received it. Its recipients must get the alert within the store's claim
bound, not after the part's lease (120 s), each once. PostgreSQL through a TCP proxy that
forwards one COMMIT and drops everything the server says after it; a real app, a real sink."""

from __future__ import annotations

import time
from typing import Any

import pytest
from structlog.testing import capture_logs

import alertcast.bulk
from alertcast.store import part_sql
from alertcast.store.recipient_store import RecipientMethods
from alertcast.testing.tcpproxy import TcpProxy
from tests.conftest import PG_URL, until
from tests.spine.bulk_people import account, load, people, quake, start

pytestmark = pytest.mark.postgres

TIMEOUT_S = 1.0  # connect and command timeouts: the claim bound is 1 + 2 x 1 = 3 s
CLAIM_BOUND_S = 3.0
# Released two bounds (and a 1 s margin) after the failed take, then sent; the rest is room
# for a loaded machine. The lease is 120 s: without the release nothing comes before it.
WITHIN_S = 2 * CLAIM_BOUND_S + 1 + 10
PER_PART = 10  # recipients per part (CHUNK, scaled down): 30 recipients, three parts
MARKER = b"lost-take-5b1e"


def _urls(proxy: TcpProxy, schema: str) -> tuple[str, str]:
    """The store's URL through the proxy (with the bounds), and straight to the server."""
    head, tail = PG_URL.rsplit("@", 1)
    database = tail.split("/", 1)[1]
    bounds = f"connect_timeout_s={TIMEOUT_S}&command_timeout_s={TIMEOUT_S}"
    proxied = f"{head}@127.0.0.1:{proxy.port}/{database}?schema={schema}&{bounds}"
    return proxied, f"{PG_URL}?schema={schema}"


async def test_a_part_whose_take_answer_is_lost_is_sent_within_the_bound_once(
    schema: str, proxy: TcpProxy, start_daemon: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The holder's second take of a part is committed and its answer lost (the take times
    out, the pass fails and is retried): two bounds later the part leased to this replica and
    held by none of its sweeps is given back, taken again and sent; each of the 30 recipients
    gets the alert once, well before the part's lease (120 s) would have freed it."""
    monkeypatch.setattr(alertcast.bulk, "CHUNK", PER_PART)
    proxied, direct = _urls(proxy, schema)
    await load(direct, people(chengdu=3 * PER_PART, nowhere=0, beijing=0))
    takes, armed = 0, [0.0]
    take = RecipientMethods.take_recipient_part

    async def second_lost(self: Any, delivery_id: str, **kw: Any) -> Any:
        """The proxy armed for the second take only: its statement carries the marker (a
        comment: the same statement), and the next COMMIT on its connection is its own."""
        nonlocal takes
        takes += 1
        if takes == 2:
            monkeypatch.setattr(part_sql, "TAKE", part_sql.TAKE + f" /* {MARKER.decode()} */")
            proxy.lose_answer(MARKER)
            armed[0] = time.monotonic()
        return await take(self, delivery_id, **kw)

    monkeypatch.setattr(RecipientMethods, "take_recipient_part", second_lost)
    dispatch = {"backoff_initial_s": 0.05, "backoff_max_s": 0.2, "poll_interval_s": 0.2}
    hook = account(concurrency=4)
    with capture_logs() as logs:
        b = await start(
            start_daemon, monkeypatch, accounts=[hook], store={"url": proxied}, dispatch=dispatch
        )
        first = await b.raise_(quake())
        await until(lambda: proxy.answers_lost == 1, 30, "the second take's commit forwarded")
        await until(lambda: len(b.got()) == 3 * PER_PART, WITHIN_S, "every recipient sent")
        took_s = time.monotonic() - armed[0]
        await b.settled(first["id"])
    assert b.got() == dict.fromkeys((f"cd-{i:04d}" for i in range(3 * PER_PART)), 1)
    released = [e for e in logs if e["event"] == "bulk.lost_parts_released"]
    assert [e["parts"] for e in released] == [1], released
    parent = await b.parent(first["id"])
    assert parent["state"] == "delivered", parent
    print(f"\nthe lost part's recipients sent {took_s:.1f} s after its take (lease 120 s)")
