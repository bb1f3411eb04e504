"""A lost-claims release must never give back rows whose claiming call is still on its way.

``alertcast.lost`` reasons from stamps: a row claimed more than two claim bounds ago that the
replica does not hold was never received. An intake's claim at creation is stamped with the
incident's ``created_at``, read by the door *before* it plans (renders every account's text)
and before the commit path's task gets its turn of the event loop; if the loop is held longer
than a bound meanwhile (a burst of renders, any CPU work in the process), the rows are stamped
"old" while their call is still running. A release that runs while such a call's answer is on
its way (a slow network) gave back rows the intake was about to hand to the dispatcher: both
sent them (each of 3 deliveries twice, 3 runs of 3, before the store kept a release apart from
its claiming calls in flight). PostgreSQL through a proxy that delays one commit's answer; a
real app, a real sink.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from alertcast.keys import DISPATCHER, PLANNER
from alertcast.testing import tcpproxy
from alertcast.testing.tcpproxy import TcpProxy
from tests.conftest import PG_URL, TOKEN, Daemon, incident, until

pytestmark = pytest.mark.postgres

CONNECT_S, COMMAND_S = 1.0, 2.5  # the claim bound: 1 + 2 x 2.5 = 6 s
STALL_S = 13.5  # the event loop held between the door's clock and the store call (> 2 bounds)
ANSWER_DELAY_S = 1.8  # the commit's answer on its way (within its 2.5 s statement bound)
# Sweeps (and with them a release) every lease_s / 4 = 1.25 s: one falls while the answer waits.
DISPATCH = {"lease_s": 5.0, "poll_interval_s": 0.2, "backoff_initial_s": 0.05}


class SlowAnswer(TcpProxy):
    """``lose_answer(marker)``'s commit, answered ``ANSWER_DELAY_S`` late instead of never."""

    async def _pipe(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        link: tcpproxy.Link,
        *,
        upstream: bool = False,
    ) -> None:
        try:
            while data := await reader.read(tcpproxy.CHUNK):
                if upstream and self._marker is not None:
                    self._watch(link, data)
                elif not upstream and link in self._silenced:
                    self._silenced.discard(link)
                    await asyncio.sleep(ANSWER_DELAY_S)
                writer.write(data)
                await writer.drain()
        except (OSError, asyncio.IncompleteReadError):
            return
        finally:
            tcpproxy._reset(writer)


@pytest.fixture
async def slow_proxy() -> AsyncIterator[SlowAnswer]:
    """A :class:`SlowAnswer` in front of the server at :data:`PG_URL` (stopped after the app)."""
    host, _, port = PG_URL.rsplit("@", 1)[1].split("/", 1)[0].partition(":")
    proxy = SlowAnswer(host, int(port or 5432))
    await proxy.start()
    yield proxy
    await proxy.stop()


def _url(proxy: TcpProxy, schema: str) -> str:
    head, tail = PG_URL.rsplit("@", 1)
    bounds = f"connect_timeout_s={CONNECT_S}&command_timeout_s={COMMAND_S}"
    return f"{head}@127.0.0.1:{proxy.port}/{tail.split('/', 1)[1]}?schema={schema}&{bounds}"


def _stall_once(d: Daemon) -> None:
    """The next plan holds the event loop ``STALL_S`` (a render burst), as CPU work does."""
    planner = d.client.app[PLANNER]
    plan = planner.alert

    def slow(*args: Any) -> Any:
        planner.alert = plan  # type: ignore[method-assign]
        time.sleep(STALL_S)
        return plan(*args)

    planner.alert = slow  # type: ignore[method-assign]


async def test_an_intake_claim_in_flight_is_not_released_when_its_stamp_is_old(
    schema: str, slow_proxy: SlowAnswer, start_daemon: Any
) -> None:
    """The door's plan holds the loop 13.5 s, the commit's answer comes 1.8 s late (within its
    bound): the intake hands its claims, and each account is sent the alert once."""
    hooks = 3
    url = _url(slow_proxy, schema)
    d = await start_daemon(hooks=hooks, store={"url": url}, dispatch=DISPATCH)
    inbox = d.client.app[DISPATCHER].inbox
    await until(lambda: inbox.open, 10, "the dispatcher takes what intake claims")
    _stall_once(d)
    slow_proxy.lose_answer(b"stale-stamp-4c1d")  # its Idempotency-Key: a column of its own
    resp = await d.client.post(
        "/v1/incidents",
        json=incident(headline="规划拖延时的地震速报"),
        headers={"Authorization": f"Bearer {TOKEN}", "Idempotency-Key": "stale-stamp-4c1d"},
        timeout=aiohttp.ClientTimeout(total=60),
    )
    first = await resp.json(content_type=None)
    assert slow_proxy.answers_lost == 1, "the intake's commit did not go through the proxy"
    assert resp.status == 202, first  # answered within the bound: claimed and handed
    await d.settled(first["id"])
    await asyncio.sleep(1.0)  # a second send, if any, has landed
    keys = d.sink.keys()
    assert set(keys) == {x["id"] for x in first["deliveries"]}
    assert sorted(keys.values()) == [1] * hooks, keys  # each once: none given back
