"""The dispatcher against a real sink: retries, Retry-After, permanent errors, the budget."""

from __future__ import annotations

from typing import Any

from tests.conftest import TOKEN, incident


async def test_recovers_after_server_errors(start_daemon: Any) -> None:
    """Two 500s then 200: delivered on the third attempt, every attempt recorded."""
    d = await start_daemon()
    d.sink.script = [(500, {}), (500, {})]
    answer = await (await d.post(incident())).json()
    view = await d.settled(answer["id"])
    (delivery,) = view["deliveries"]
    assert delivery["state"] == "delivered" and delivery["attempts"] == 3
    _status, full = await d.get(f"/v1/deliveries/{delivery['id']}")
    log = full["attempt_log"]
    assert [a["outcome"] for a in log] == ["retrying", "retrying", "delivered"]
    assert [a["http_status"] for a in log] == [500, 500, 200]
    assert log[0]["error"].startswith("HTTP 500") and log[0]["next_attempt_at"]
    assert len(d.sink.keys()) == 1 and d.sink.keys()[delivery["id"]] == 3


async def test_retry_after_is_honoured(start_daemon: Any) -> None:
    """429 with Retry-After: 2 (under backoff_max_s) means no new attempt for two seconds."""
    dispatch = {"backoff_initial_s": 0.05, "backoff_max_s": 5.0, "poll_interval_s": 0.2}
    d = await start_daemon(dispatch=dispatch)
    d.sink.script = [(429, {"Retry-After": "2"})]
    answer = await (await d.post(incident())).json()
    await d.settled(answer["id"])
    first, second = d.sink.received
    assert second.at - first.at >= 2.0
    _status, full = await d.get(f"/v1/deliveries/{answer['deliveries'][0]['id']}")
    assert full["attempt_log"][0]["http_status"] == 429


async def test_permanent_error_is_not_retried(start_daemon: Any) -> None:
    """A 400 fails the delivery at once with the receiver's reason."""
    d = await start_daemon()
    d.sink.script = [(400, {})]
    answer = await (await d.post(incident())).json()
    view = await d.settled(answer["id"])
    (delivery,) = view["deliveries"]
    assert delivery["state"] == "failed" and delivery["attempts"] == 1
    assert "HTTP 400" in delivery["last_error"]
    assert len(d.sink.received) == 1


async def test_budget_runs_out_to_dead(start_daemon: Any) -> None:
    """A receiver that keeps failing leaves the delivery dead after max_attempts."""
    d = await start_daemon()
    d.sink.answer = lambda _: (503, {})
    answer = await (await d.post(incident())).json()
    view = await d.settled(answer["id"])
    (delivery,) = view["deliveries"]
    assert delivery["state"] == "dead"
    assert delivery["attempts"] == d.config.dispatch.max_attempts
    assert len(d.sink.received) == d.config.dispatch.max_attempts


async def test_operator_retry_redrives_a_dead_delivery(start_daemon: Any) -> None:
    """POST /v1/deliveries/{id}/retry gives a dead delivery a new budget and it lands."""
    d = await start_daemon()
    d.sink.answer = lambda _: (503, {})
    answer = await (await d.post(incident())).json()
    await d.settled(answer["id"])
    delivery_id = answer["deliveries"][0]["id"]
    d.sink.answer = None
    resp = await d.client.post(
        f"/v1/deliveries/{delivery_id}/retry", headers={"Authorization": f"Bearer {TOKEN}"}
    )
    assert resp.status == 202
    view = await d.settled(answer["id"])
    assert view["deliveries"][0]["state"] == "delivered"
    assert [a["action"] for a in view["audit"]] == ["incident.create", "delivery.retry"]
    again = await d.client.post(
        f"/v1/deliveries/{delivery_id}/retry", headers={"Authorization": f"Bearer {TOKEN}"}
    )
    assert again.status == 409


async def test_unreachable_receiver_is_transient(start_daemon: Any, refused_port: int) -> None:
    """A connection refused is retried, then dead, with the error recorded."""
    dead_port = {
        "id": "nowhere",
        "channel": "webhook",
        "url": f"http://127.0.0.1:{refused_port}/hook",
        "secret_env": "T_HOOK_SECRET",
        "max_attempts": 2,
    }
    d = await start_daemon(hooks=0, accounts=[dead_port])
    answer = await (await d.post(incident())).json()
    view = await d.settled(answer["id"])
    (delivery,) = view["deliveries"]
    assert delivery["state"] == "dead" and delivery["attempts"] == 2
    assert "connection error" in delivery["last_error"]
