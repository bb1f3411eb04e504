"""A per-recipient account that cannot send at all, through a running daemon: its credentials
rejected by the SMS gateway, or a receiver that no connection reaches. The pass stops at once,
with the sends already on the wire, instead of failing (or retrying) every recipient one by
one; the recipients not tried stay due, untouched, and nobody is failed for the account's
fault."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from alertcast.testing.fakes import SmsRefusal, serve
from tests.conftest import TOKEN, incident
from tests.spine.bulk_people import Bulk, account, load, people, quake, start
from tests.spine.test_bulk_sms_email import (
    CHENGDU,
    FAST,
    gateway,
    number,
    phone_numbers,
    sms_env,
    texts_account,
)
from tests.spine.test_bulk_sms_email import load as load_texts
from tests.spine.test_bulk_sms_email import people as texts_people

WIDTH = 8
__all__ = ["sms_env"]  # the fixture, used here
SETTLE_S = 1.5


async def test_rejected_credentials_stop_the_fan_out_at_once(
    start_daemon: Any, engine: str, sms_env: None
) -> None:
    """The gateway takes 10 texts, then rejects the access key for good: at most the sends
    then in flight are asked after the first rejection, not the other 40; the account is
    paused for its credentials; no recipient is failed, the rest stay due."""
    sms = gateway()
    sms.inject(
        SmsRefusal("InvalidAccessKeyId.NotFound", "Specified access key is not found"),
        times=10_000,
        after=10,
    )
    async with serve(sms) as url:
        texts = texts_account(url)
        await load_texts(engine, texts, texts_people("mobile", number))
        d = await start_daemon(hooks=0, accounts=[texts], store={"url": engine}, dispatch=FAST)
        answer = await (await d.post(incident(area=CHENGDU))).json()
        await asyncio.sleep(SETTLE_S)
        asked = phone_numbers(sms)
        view = await (await d.client.get(f"/v1/incidents/{answer['id']}", headers=_auth())).json()
        channels = await (await d.client.get("/v1/channels", headers=_auth())).json()
    (parent,) = view["deliveries"]
    assert 10 < len(asked) <= 10 + WIDTH, len(asked)
    assert parent["state"] == "retrying", parent
    assert parent["recipients"].get("failed", 0) == 0, parent
    assert parent["recipients"]["delivered"] == 10, parent
    assert parent["recipients"]["pending"] >= 50 - 10 - WIDTH, parent
    (row,) = [a for a in channels["accounts"] if a["id"] == "texts"]
    assert row["healthy"] is False and "credentials" in str(row["paused"]), row


@contextlib.asynccontextmanager
async def closing_server() -> AsyncIterator[tuple[str, list[int]]]:
    """A TCP server on 127.0.0.1 that closes every connection at once (a receiver no send
    reaches: TLS refused, a proxy down); its URL and the connections it was asked for."""
    seen: list[int] = []

    async def close(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(1)
        writer.close()

    server = await asyncio.start_server(close, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"https://127.0.0.1:{port}/hook", seen
    finally:
        server.close()
        await server.wait_closed()


async def test_a_receiver_nothing_reaches_stops_the_pass_not_each_recipient(
    start_daemon: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Every connection to the receiver is closed before TLS: the parent's first attempt
    stops after about as many sends as run at once (not 200 recipients each retried alone),
    the parent retries as a whole, and the recipients not tried keep their first attempt."""
    await load(f"sqlite:///{tmp_path / 'alertcast.db'}", people(chengdu=200, nowhere=0, beijing=0))
    async with closing_server() as (url, seen):
        accounts = [account(url=url, concurrency=WIDTH)]
        dispatch = {"backoff_initial_s": 5.0, "backoff_max_s": 5.0}
        b = await start(start_daemon, monkeypatch, accounts=accounts, dispatch=dispatch)
        first = await b.raise_(quake())
        await asyncio.sleep(SETTLE_S)
        connections = len(seen)
        parent = await b.parent(first["id"])
    assert 0 < connections <= 3 * WIDTH, connections
    assert parent["state"] == "retrying" and "not reached" in str(parent["last_error"]), parent
    assert parent["recipients"]["pending"] >= 200 - 2 * WIDTH, parent
    await _no_failed(b, parent)


async def _no_failed(b: Bulk, parent: dict[str, Any]) -> None:
    status, page = await b.get(f"/v1/deliveries/{parent['id']}/recipients?state=failed")
    assert status == 200 and page["recipients"] == [], page


def _auth() -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKEN}"}
