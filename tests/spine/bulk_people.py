"""What the edge tests of per-recipient accounts share: the issuers (an author, a second
approver, narrower roles), a per-recipient webhook account on the test's sink, recipients
loaded into the store, and the sink's requests counted per recipient and message."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from alertcast.store.base import Recipient
from alertcast.testing.sink import BODY, Received, WebhookSink
from tests.conftest import TOKEN, incident
from tests.spine.test_bulk import load

__all__ = ["CHENGDU", "TOKENS", "Bulk", "auth", "load", "people", "quake", "start"]

CHENGDU = {"name": "四川省成都市", "codes": ["510100"]}
TOKENS = {
    "city": TOKEN,  # every role, an approver (can_approve)
    "duty": "tok-duty-edge-7f3e91c2a4",  # a second approver
    "clerk": "tok-clerk-edge-0b8d5e61f9",  # submits, may not approve
    "reader": "tok-reader-edge-9e4f1a7b33",  # read only
    "fire": "tok-fire-edge-3c2a9d7e15",  # every role, fire only, in Chengdu only
    **{f"only-{r}": f"tok-only-{r}-edge-55d0c3a1" for r in ("submit", "approve", "operate")},
}
ISSUERS: list[dict[str, Any]] = [
    {"name": "city", "token_env": "T_CITY", "can_approve": True},
    {"name": "duty", "token_env": "T_DUTY", "roles": ["approve", "read"]},
    {"name": "clerk", "token_env": "T_CLERK"},
    {"name": "reader", "token_env": "T_READER", "roles": ["read"]},
    {"name": "fire", "token_env": "T_FIRE", "kinds": ["fire"], "regions": ["510100"]},
    *(
        {"name": f"only-{r}", "token_env": f"T_ONLY_{r.upper()}", "roles": [r]}
        for r in ("submit", "approve", "operate")
    ),
]
PHONE = "1390000{:04d}"  # a channel's own column: never shown by the status API


def people(chengdu: int = 60, nowhere: int = 10, beijing: int = 10) -> Iterator[Recipient]:
    """Recipients in Chengdu's two districts, without a region, and in Beijing (outside),
    each with a phone number in the channel's own columns."""
    for i in range(chengdu):
        region = "510104" if i % 2 else "510105"
        yield Recipient(f"cd-{i:04d}", region, {"phone": PHONE.format(i)})
    for i in range(nowhere):
        yield Recipient(f"nr-{i:04d}", None, {"phone": PHONE.format(5000 + i)})
    for i in range(beijing):
        yield Recipient(f"bj-{i:04d}", "110101", {"phone": PHONE.format(8000 + i)})


def in_chengdu(chengdu: int = 60, nowhere: int = 10) -> set[str]:
    """The ids :func:`people` places inside an incident in Chengdu."""
    return {f"cd-{i:04d}" for i in range(chengdu)} | {f"nr-{i:04d}" for i in range(nowhere)}


def quake(**changes: Any) -> dict[str, Any]:
    """An earthquake in Chengdu (``severity="extreme"`` needs a second person's approval)."""
    return incident(area=CHENGDU, **changes)


def account(**options: Any) -> dict[str, Any]:
    """The per-recipient webhook account ``people`` on the sink."""
    return {
        "id": "people",
        "channel": "webhook",
        "url": "{sink}",
        "secret_env": "T_HOOK_SECRET",
        "per_recipient": True,
        "concurrency": 8,
        **options,
    }


def auth(who: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS[who]}"}


async def start(
    start_daemon: Any,
    monkeypatch: pytest.MonkeyPatch,
    *,
    accounts: list[dict[str, Any]] | None = None,
    **kw: Any,
) -> Bulk:
    """A daemon with the edge issuers and the ``people`` account (or ``accounts``)."""
    for name, token in TOKENS.items():
        monkeypatch.setenv(f"T_{name.upper().replace('-', '_')}", token)
    kw.setdefault("expiry", {"earthquake_h": None})  # the sample quake is years old
    d = await start_daemon(hooks=0, issuers=ISSUERS, accounts=accounts or [account()], **kw)
    return Bulk(d)


class Bulk:
    """A running daemon (tests/conftest.py's) seen through its per-recipient account."""

    def __init__(self, daemon: Any) -> None:
        self.d = daemon
        self.sink: WebhookSink = daemon.sink

    async def call(self, who: str, path: str, body: Any = None) -> tuple[int, Any]:
        kw = {} if body is None else {"json": body}
        resp = await self.d.client.post(path, headers=auth(who), **kw)
        return resp.status, await resp.json()

    async def get(self, path: str, who: str = "city") -> tuple[int, Any]:
        resp = await self.d.client.get(path, headers=auth(who))
        return resp.status, await resp.json()

    async def raise_(self, body: dict[str, Any], who: str = "city") -> dict[str, Any]:
        status, answer = await self.call(who, "/v1/incidents", body)
        assert status == 202, answer
        return dict(answer)

    async def follow(self, incident_id: str, what: str, who: str = "city", **body: Any) -> Any:
        """POST /v1/incidents/{id}/<what> (update, cancel, approve, reject); its 2xx answer."""
        status, answer = await self.call(who, f"/v1/incidents/{incident_id}/{what}", body or None)
        assert status in (200, 202), (status, answer)
        return answer

    async def view(self, incident_id: str) -> dict[str, Any]:
        status, view = await self.get(f"/v1/incidents/{incident_id}")
        assert status == 200, view
        return dict(view)

    async def parent(self, incident_id: str, account_id: str = "people") -> dict[str, Any]:
        (found,) = [
            d for d in (await self.view(incident_id))["deliveries"] if d["account"] == account_id
        ]
        return dict(found)

    async def settled(self, incident_id: str, timeout_s: float = 60.0) -> dict[str, Any]:
        return dict(await self.d.settled(incident_id, timeout_s=timeout_s))

    # -- what the sink saw ------------------------------------------------------------------
    def got(self, msg_type: str | None = None, since: float = 0.0) -> Counter[str]:
        """How many POSTs each recipient received (of ``msg_type``, arriving after ``since``)."""
        return Counter(
            r.body["recipient"]["id"]
            for r in self.sink.received
            if "recipient" in r.body
            and (msg_type is None or r.body.get("msg_type") == msg_type)
            and r.at >= since
        )

    def posts(self, msg_type: str) -> list[Received]:
        return [r for r in self.sink.received if r.body.get("msg_type") == msg_type]

    async def until_received(self, n: int, msg_type: str = "alert", timeout_s: float = 30) -> None:
        deadline = time.monotonic() + timeout_s
        while len(self.posts(msg_type)) < n:
            assert time.monotonic() < deadline, f"{n} {msg_type} posts not seen in {timeout_s} s"
            await asyncio.sleep(0.01)


def answer_with_ids(item: Received) -> tuple[int, dict[str, str]]:
    """A receiver that answers each POST with its own id (``<msg_type>-<recipient>``)."""
    rid = item.body.get("recipient", {}).get("id", "")
    return 200, {BODY: json.dumps({"id": f"{item.body.get('msg_type')}-{rid}"})}
