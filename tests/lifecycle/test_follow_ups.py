"""Updates and cancellations through the daemon, threaded to the original at the receiver."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from alertcast.keys import ACCOUNTS
from alertcast.testing.sink import BODY
from tests.conftest import TOKEN, incident, until

AUTH = {"Authorization": f"Bearer {TOKEN}"}


async def _post(d: Any, path: str, body: dict[str, Any]) -> tuple[int, Any]:
    resp = await d.client.post(path, json=body, headers=AUTH)
    return resp.status, await resp.json()


def _by_key(d: Any) -> dict[str, Any]:
    return {r.key: r.body for r in d.sink.received}


async def test_update_replies_to_the_original_post(start_daemon: Any) -> None:
    """The official magnitude follows the automatic one as a reply to each original post
    (M6.8: severe by its magnitude, so no second person is needed)."""
    d = await start_daemon(hooks=2)
    eq = incident()
    auto = incident(details={**eq["details"], "report": "automatic", "magnitude": 5.9})
    first = await (await d.post(auto)).json()
    view = await d.settled(first["id"])
    remote = {x["account"]: x["remote_id"] for x in view["deliveries"]}
    status, upd = await _post(
        d,
        f"/v1/incidents/{first['id']}/update",
        {"details": {"magnitude": 6.8, "report": "official"}},
    )
    assert status == 202, upd
    assert upd["references"] == first["id"]
    after = await d.settled(upd["id"])
    bodies = _by_key(d)
    for delivery in after["deliveries"]:
        sent = bodies[delivery["id"]]
        assert sent["action"] == "reply"
        assert sent["in_reply_to"] == remote[delivery["account"]]
        assert sent["incident"]["details"]["magnitude"] == 6.8
        assert sent["references"] == first["id"] and sent["msg_type"] == "update"
    _, root = await d.get(f"/v1/incidents/{first['id']}")
    assert root["follow_ups"] == [upd["id"]] and after["references"] == first["id"]


async def test_update_cannot_change_kind_or_status(start_daemon: Any) -> None:
    """An update that would turn an exercise into an actual alert is refused."""
    d = await start_daemon()
    first = await (await d.post(incident(status="exercise"))).json()
    before = d.table_counts()
    status, problem = await _post(d, f"/v1/incidents/{first['id']}/update", {"status": "actual"})
    assert status == 422 and "status" in problem["detail"]
    assert d.table_counts() == before


async def test_cancel_after_delivery_is_threaded(start_daemon: Any) -> None:
    """A cancellation replies to every delivered original and marks the incident cancelled."""
    d = await start_daemon(hooks=3)
    first = await (await d.post(incident())).json()
    view = await d.settled(first["id"])
    remote = {x["account"]: x["remote_id"] for x in view["deliveries"]}
    status, cancel = await _post(
        d, f"/v1/incidents/{first['id']}/cancel", {"reason": "误报：系统测试数据"}
    )
    assert status == 202, cancel
    done = await d.settled(cancel["id"])
    assert done["counts"] == {"delivered": 3}
    bodies = _by_key(d)
    for delivery in done["deliveries"]:
        sent = bodies[delivery["id"]]
        assert sent["msg_type"] == "cancel" and sent["in_reply_to"] == remote[delivery["account"]]
    _, root = await d.get(f"/v1/incidents/{first['id']}")
    assert root["state"] == "cancelled"
    assert [a["action"] for a in root["audit"]] == ["incident.create", "incident.cancel"]
    status, _again = await _post(d, f"/v1/incidents/{first['id']}/cancel", {"reason": "x"})
    assert status == 409


async def test_cancel_withdraws_an_original_still_retrying(start_daemon: Any) -> None:
    """An original still failing is withdrawn; nothing at all is posted to that receiver."""
    d = await start_daemon()
    d.sink.answer = lambda _: (503, {})
    first = await (await d.post(incident())).json()
    await until(lambda: bool(d.sink.received), what="a first attempt")
    # Hold the account so the original stays "retrying" while we cancel: an attempt in flight
    # ("sending") would be followed by a cancellation instead of withdrawn.
    hook = d.client.app[ACCOUNTS].get("hook-0")
    assert hook is not None
    hook.pause("held by the test")

    async def retrying() -> bool:
        _, view = await d.get(f"/v1/incidents/{first['id']}")
        return bool(view["deliveries"][0]["state"] == "retrying")

    await until(retrying, what="the original retrying")
    status, cancel = await _post(d, f"/v1/incidents/{first['id']}/cancel", {"reason": "误报"})
    assert status == 202 and cancel["deliveries"] == []
    assert cancel["withdrawn"] == [first["deliveries"][0]["id"]]
    resumed = await d.client.post("/v1/channels/hook-0/resume", headers=AUTH)
    assert resumed.status == 200  # from here a row still due would be sent at once
    view = await d.settled(first["id"])
    (original,) = view["deliveries"]
    assert original["state"] == "skipped" and "cancelled" in original["reason"]
    tries = len(d.sink.received)
    await asyncio.sleep(0.5)
    assert len(d.sink.received) == tries
    assert all(r.body["msg_type"] == "alert" for r in d.sink.received)


async def test_cancel_reply_then_delete(start_daemon: Any) -> None:
    """on_cancel = reply_and_delete posts the cancellation, then deletes the original."""
    hook = {
        "id": "hall",
        "channel": "webhook",
        "url": "{sink}",
        "secret_env": "T_HOOK_SECRET",
        "on_cancel": "reply_and_delete",
    }
    d = await start_daemon(hooks=0, accounts=[hook])
    first = await (await d.post(incident())).json()
    view = await d.settled(first["id"])
    original_remote = view["deliveries"][0]["remote_id"]
    _, cancel = await _post(d, f"/v1/incidents/{first['id']}/cancel", {"reason": "误报"})
    done = await d.settled(cancel["id"])
    actions = [(r.body["action"], r.body["in_reply_to"]) for r in d.sink.received[1:]]
    assert actions == [("reply", original_remote), ("delete", original_remote)]
    assert done["counts"] == {"delivered": 2}


async def test_reply_and_delete_without_a_remote_id_cancels_once(start_daemon: Any) -> None:
    """An original accepted without a remote id: the cancellation stands alone, once; the
    deletion after it has nothing to delete and is skipped, not posted as a second one."""
    hook = {
        "id": "hall",
        "channel": "webhook",
        "url": "{sink}",
        "secret_env": "T_HOOK_SECRET",
        "on_cancel": "reply_and_delete",
    }
    d = await start_daemon(hooks=0, accounts=[hook])
    d.sink.script = [(200, {BODY: ""})]  # the receiver answers the original with no id
    first = await (await d.post(incident())).json()
    view = await d.settled(first["id"])
    assert view["deliveries"][0]["remote_id"] is None
    _, cancel = await _post(d, f"/v1/incidents/{first['id']}/cancel", {"reason": "误报"})
    done = await d.settled(cancel["id"])
    sent = [(r.body["msg_type"], r.body["action"]) for r in d.sink.received]
    assert sent == [("alert", "post"), ("cancel", "post")]
    states = {x["action"]: (x["state"], x["reason"]) for x in done["deliveries"]}
    assert states["reply"] == ("delivered", None)
    assert states["delete"][0] == "skipped" and "nothing to delete" in states["delete"][1]


async def test_failed_cancellation_can_be_redriven(start_daemon: Any) -> None:
    """A cancellation the receiver refused ends failed and flags its account unhealthy (it
    reached no one there); a retry re-drives it once it accepts, and the flag lifts."""
    d = await start_daemon()
    first = await (await d.post(incident())).json()
    await d.settled(first["id"])
    d.sink.answer = lambda r: (400, {}) if r.body["msg_type"] == "cancel" else None
    status, cancel = await _post(d, f"/v1/incidents/{first['id']}/cancel", {"reason": "误报"})
    assert status == 202, cancel
    (refused,) = (await d.settled(cancel["id"]))["deliveries"]
    assert refused["state"] == "failed" and refused["reason"]
    _, channels = await d.get("/v1/channels")
    (hook,) = channels["accounts"]
    assert hook["healthy"] is False and hook["consecutive_failures"] == 1
    assert hook["correction_failed"].startswith(f"{refused['id']} ({cancel['id']}): ")
    d.sink.answer = None
    resp = await d.client.post(f"/v1/deliveries/{refused['id']}/retry", headers=AUTH)
    assert resp.status == 202, await resp.text()
    done = await d.settled(cancel["id"])
    assert done["counts"] == {"delivered": 1}
    _, channels = await d.get("/v1/channels")
    assert channels["accounts"][0]["healthy"] is True
    assert channels["accounts"][0]["correction_failed"] is None
    assert [s for k, s in d.sink.answers if k == refused["id"]] == [400, 200]
    _, root = await d.get(f"/v1/incidents/{first['id']}")
    assert root["state"] == "cancelled"


async def test_expired_original_stops_retrying(start_daemon: Any) -> None:
    """An original that cannot go out before its expiry stops retrying: it ends dead with the
    reason (never sent late), whether a retry or the claim finds it past its expiry."""
    from datetime import UTC, datetime, timedelta

    d = await start_daemon(
        dispatch={
            "backoff_initial_s": 0.05,
            "backoff_max_s": 0.1,
            "max_attempts": 1000,
            "poll_interval_s": 0.1,
        }
    )
    d.sink.answer = lambda _: (503, {})
    now = datetime.now(UTC)
    body = incident(
        occurred_at=(now - timedelta(minutes=1)).isoformat(),
        expires_at=(now + timedelta(seconds=0.6)).isoformat(),
    )
    first = await (await d.post(body)).json()
    view = await d.settled(first["id"], timeout_s=30)
    (original,) = view["deliveries"]
    assert (original["state"], original["reason"][:8]) in {
        ("dead", "expired:"),
        ("dead", "too late"),
        ("dead", "expired "),
    }, original


async def test_cancellation_outlives_the_expiry(
    start_daemon: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cancellation of an expired, delivered incident still goes out."""
    from datetime import UTC, datetime, timedelta

    d = await start_daemon()
    now = datetime.now(UTC)
    body = incident(
        occurred_at=(now - timedelta(minutes=1)).isoformat(),
        expires_at=(now + timedelta(hours=1)).isoformat(),
    )
    first = await (await d.post(body)).json()
    view = await d.settled(first["id"])
    assert view["counts"] == {"delivered": 1}  # delivered well before it expires
    # Two hours on, for the whole process: the incident has expired. Moving the clock instead
    # of expiring it within a second keeps the delivery above clear of the expiry on a slow
    # machine. Nothing is in flight now, so no signature spans the jump.
    real_time = time.time
    monkeypatch.setattr(time, "time", lambda: real_time() + 2 * 3600)
    status, cancel = await _post(d, f"/v1/incidents/{first['id']}/cancel", {"reason": "解除"})
    assert status == 202, cancel
    done = await d.settled(cancel["id"])
    assert done["counts"] == {"delivered": 1}


async def test_follow_up_idempotency(start_daemon: Any) -> None:
    """A replayed cancellation key answers the first cancellation and adds nothing."""
    d = await start_daemon()
    first = await (await d.post(incident())).json()
    await d.settled(first["id"])
    path = f"/v1/incidents/{first['id']}/cancel"
    headers = {**AUTH, "Idempotency-Key": "cancel-1"}
    one = await (await d.client.post(path, json={"reason": "误报"}, headers=headers)).json()
    await d.settled(one["id"])  # its attempt recorded: the snapshot below is at rest
    counts = d.table_counts()
    two = await d.client.post(path, json={"reason": "误报"}, headers=headers)
    assert two.status == 202 and await two.json() == one
    assert d.table_counts() == counts
