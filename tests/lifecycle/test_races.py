"""What the review found: each hole in the safety rules, closed and kept closed."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from tests.conftest import OTHER_TOKEN, TOKEN, incident, until

AUTH = {"Authorization": f"Bearer {TOKEN}"}
APPROVER = "tok-duty-officer-44c1e0a9d2"


async def _start(start_daemon: Any, monkeypatch: pytest.MonkeyPatch, **kw: Any) -> Any:
    monkeypatch.setenv("T_APPROVER", APPROVER)
    issuers = [
        {"name": "city", "token_env": "T_TOKEN", "can_approve": True},
        {
            "name": "fire",
            "token_env": "T_OTHER_TOKEN",
            "kinds": ["fire"],
            "regions": ["510100"],
            "can_approve": True,
        },
        {"name": "duty", "token_env": "T_APPROVER", "can_approve": True},
    ]
    return await start_daemon(issuers=issuers, **kw)


async def test_update_of_an_unapproved_incident_stays_held(
    start_daemon: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An update cannot slip an incident awaiting approval past the two-person rule."""
    d = await _start(start_daemon, monkeypatch)
    first = await (await d.post(incident(severity="extreme"))).json()
    upd = await d.client.post(
        f"/v1/incidents/{first['id']}/update", json={"headline": "更正"}, headers=AUTH
    )
    answer = await upd.json()
    assert upd.status == 202 and answer["state"] == "awaiting_approval"
    await asyncio.sleep(0.5)
    assert d.sink.received == []
    ok = await d.client.post(
        f"/v1/incidents/{first['id']}/approve", headers={"Authorization": f"Bearer {APPROVER}"}
    )
    assert ok.status == 200
    await d.settled(answer["id"])
    assert [r.body["msg_type"] for r in d.sink.received] == ["update"]


async def test_update_to_extreme_needs_approval(
    start_daemon: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Raising an active incident to extreme waits for a second issuer."""
    d = await _start(start_daemon, monkeypatch)
    first = await (await d.post(incident())).json()
    await d.settled(first["id"])
    upd = await (
        await d.client.post(
            f"/v1/incidents/{first['id']}/update", json={"severity": "extreme"}, headers=AUTH
        )
    ).json()
    assert upd["state"] == "awaiting_approval"
    await asyncio.sleep(0.3)
    assert len(d.sink.received) == 1


async def test_withdrawn_delivery_cannot_be_redriven(start_daemon: Any) -> None:
    """Retrying an original withdrawn by a cancellation is refused: it would re-alert."""
    d = await start_daemon()
    first = await (await d.post(incident(severity="extreme"))).json()
    await d.client.post(
        f"/v1/incidents/{first['id']}/cancel", json={"reason": "误报"}, headers=AUTH
    )
    retry = await d.client.post(
        f"/v1/deliveries/{first['deliveries'][0]['id']}/retry", headers=AUTH
    )
    assert retry.status == 409
    await asyncio.sleep(0.3)
    assert d.sink.received == []


async def test_concurrent_cancels_post_one_cancellation(start_daemon: Any) -> None:
    """Three simultaneous cancels: one 202, two 409, one cancellation at the receiver."""
    d = await start_daemon()
    first = await (await d.post(incident())).json()
    await d.settled(first["id"])
    resps = await asyncio.gather(
        *(
            d.client.post(
                f"/v1/incidents/{first['id']}/cancel", json={"reason": f"误报{i}"}, headers=AUTH
            )
            for i in range(3)
        )
    )
    assert sorted(r.status for r in resps) == [202, 409, 409]
    (won,) = [r for r in resps if r.status == 202]
    await d.settled((await won.json())["id"])  # the cancellation has gone out
    await asyncio.sleep(0.5)  # time for a second one to go out, were there one
    assert [r.body["msg_type"] for r in d.sink.received] == ["alert", "cancel"]


async def test_approval_respects_the_approvers_scope(
    start_daemon: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An approver limited to fires in Chengdu cannot approve an earthquake in Ganzi."""
    d = await _start(start_daemon, monkeypatch)
    first = await (await d.post(incident(severity="extreme"))).json()
    resp = await d.client.post(
        f"/v1/incidents/{first['id']}/approve", headers={"Authorization": f"Bearer {OTHER_TOKEN}"}
    )
    assert resp.status == 403


async def test_a_rate_limited_account_is_claimed_only_within_its_window(
    start_daemon: Any,
) -> None:
    """per_minute 2 and a 5 s lease: one of three alerts waits unclaimed, past the lease, and
    nothing goes out twice. Which one waits is not fixed: an alert posted while the
    dispatcher's own claim is on its way is not claimed at creation, and the next one is."""
    hook = {
        "id": "slow",
        "channel": "webhook",
        "url": "{sink}",
        "secret_env": "T_HOOK_SECRET",
        "per_minute": 2,
    }
    d = await start_daemon(
        hooks=0, accounts=[hook], dispatch={"lease_s": 5, "poll_interval_s": 0.2}
    )
    ids = [(await (await d.post(incident(headline=f"第{n}条"))).json())["id"] for n in range(3)]
    posted = time.monotonic()
    await until(lambda: len(d.sink.received) >= 2, what="the first two alerts sent")
    # Past the lease: a claimed-and-waiting third would be re-claimed.
    await asyncio.sleep(max(0.0, posted + 6.5 - time.monotonic()))
    states = [(await d.get(f"/v1/incidents/{i}"))[1]["deliveries"][0]["state"] for i in ids]
    assert sorted(states) == ["delivered", "delivered", "pending"], states
    assert len(d.sink.received) == 2 and len(d.sink.keys()) == 2


def test_limit_must_be_ascii_digits() -> None:
    """A superscript two is not a number of incidents: a 400 naming ``limit``."""
    from alertcast.api import _limit
    from alertcast.edge import BadRequest

    with pytest.raises(BadRequest) as refused:
        _limit("²")
    assert [e.field for e in refused.value.errors] == ["limit"]


async def test_an_original_claimed_while_the_cancellation_is_planned_is_still_corrected(
    start_daemon: Any,
) -> None:
    """The cancellation reads the original as unsent and plans to withdraw it; before it
    commits, a worker claims the original. The withdrawal would touch nothing and the original
    would go out uncorrected: instead the cancellation is planned again, waits for the
    original and replies to it."""
    from alertcast.keys import ACCOUNTS, DOOR, STORE
    from alertcast.models import DeliveryState
    from alertcast.store.base import AttemptRow, Outcome

    d = await start_daemon()
    hook = d.client.app[ACCOUNTS].get("hook-0")
    assert hook is not None
    hook.pause("held by the test")  # the original stays pending, unclaimed
    first = await (await d.post(incident())).json()
    (original_id,) = [x["id"] for x in first["deliveries"]]
    store, committer = d.client.app[STORE], d.client.app[DOOR].committer
    commit = committer.apply
    raced: list[str] = []

    async def claimed_meanwhile(plan: Any) -> Any:
        if not raced:  # another worker claims the original between the read and the commit
            (claim,) = await store.claim_due(
                now=time.time() + 1, limit=10, lease_s=60, worker="w-other", free={}
            )
            raced.append(claim.delivery.id)
        return await commit(plan)

    committer.apply = claimed_meanwhile  # type: ignore[method-assign]
    resp = await d.client.post(
        f"/v1/incidents/{first['id']}/cancel", json={"reason": "误报"}, headers=AUTH
    )
    cancel = await resp.json()
    assert resp.status == 202 and raced == [original_id]
    assert cancel["withdrawn"] == []
    (correction,) = cancel["deliveries"]
    # The other worker delivers the original; the cancellation, waiting for it, follows it.
    row = await store.get_delivery(original_id)
    assert row is not None and row.state is DeliveryState.sending
    await store.finish_attempt(
        row,
        AttemptRow(original_id, 1, time.time(), 1, "delivered"),
        Outcome(DeliveryState.delivered, remote_id="post-1"),
        worker="w-other",
    )
    hook.resume(time.time())
    view = await d.settled(cancel["id"])
    (sent,) = view["deliveries"]
    assert sent["id"] == correction["id"] and sent["state"] == "delivered"
    assert sent["target_delivery_id"] == original_id


async def test_two_spent_accounts_sharing_a_fallback_add_it_once(start_daemon: Any) -> None:
    """Two accounts run out of quota at the same moment and both hand over to the same
    fallback account: it gets the message once."""
    from alertcast.keys import DOOR, STORE

    hook = {"channel": "webhook", "url": "{sink}", "secret_env": "T_HOOK_SECRET"}
    d = await start_daemon(
        hooks=0,
        accounts=[
            {"id": "a", **hook, "fallback": ["spare"]},
            {"id": "b", **hook, "fallback": ["spare"]},
            {"id": "spare", **hook, "kinds": ["fire"]},  # only what falls back to it
        ],
    )
    first = await (await d.post(incident())).json()
    await d.settled(first["id"])
    store, door = d.client.app[STORE], d.client.app[DOOR]
    spent = await store.list_deliveries(incident_id=first["id"])
    assert sorted(x.account for x in spent) == ["a", "b"]
    await asyncio.gather(*(door.fallback(x) for x in spent))
    view = await d.settled(first["id"])
    assert sorted(x["account"] for x in view["deliveries"]) == ["a", "b", "spare"]
    assert sum(1 for r in d.sink.received if r.path.endswith("/hook")) == 3
