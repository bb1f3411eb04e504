"""Through the daemon: a platform's day-long ``Retry-After`` is capped, and an alert that would
go out after its expiry ends dead with the reason, visible in the API."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from tests.conftest import incident

A_DAY = {"Retry-After": "86400"}


def _expiring_in(seconds: float) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat(timespec="seconds")


async def test_retry_after_a_day_is_retried_within_backoff_max(start_daemon: Any) -> None:
    """429 Retry-After: 86400 -> the next attempt within backoff_max_s (0.2 s), then delivered."""
    d = await start_daemon()
    d.sink.script = [(429, A_DAY)]
    answer = await (await d.post(incident())).json()
    view = await d.settled(answer["id"], timeout_s=20)
    assert view["counts"] == {"delivered": 1}, view["deliveries"]
    first, second = d.sink.received[:2]
    assert second.at - first.at < 5.0  # the cap is 0.2 s; the rest is the poll and a loaded box
    status, dlv = await d.get(f"/v1/deliveries/{view['deliveries'][0]['id']}")
    assert status == 200
    retried = dlv["attempt_log"][0]
    started = datetime.fromisoformat(retried["started_at"])
    assert datetime.fromisoformat(retried["next_attempt_at"]) - started < timedelta(seconds=5)


async def test_a_retry_that_would_pass_the_expiry_ends_dead(start_daemon: Any) -> None:
    """The cap (60 s) is past the expiry (10 s ahead): dead at once, the reason says why."""
    dispatch = {"backoff_initial_s": 0.05, "backoff_max_s": 60.0, "max_attempts": 5}
    d = await start_daemon(dispatch={**dispatch, "poll_interval_s": 0.2})
    d.sink.answer = lambda _item: (429, A_DAY)
    answer = await (await d.post(incident(expires_at=_expiring_in(10)))).json()
    view = await d.settled(answer["id"], timeout_s=8)  # settled before the alert even expires
    delivery = view["deliveries"][0]
    assert delivery["state"] == "dead" and len(d.sink.received) == 1
    assert "too late" in delivery["reason"] and "expires at" in delivery["reason"]
    assert delivery["last_error"].startswith("HTTP 429")
    status, listed = await d.get(f"/v1/deliveries?state=dead&incident_id={answer['id']}")
    assert status == 200
    assert [x["reason"] for x in listed["deliveries"]] == [delivery["reason"]]


async def test_an_accounts_own_backoff_cap_wins(start_daemon: Any) -> None:
    """[dispatch] caps waits at an hour; the account says 0.2 s: its day-long Retry-After is
    retried within the account's cap."""
    dispatch = {"backoff_initial_s": 0.05, "backoff_max_s": 3600.0, "poll_interval_s": 0.2}
    hook = {"channel": "webhook", "url": "{sink}", "secret_env": "T_HOOK_SECRET"}
    d = await start_daemon(
        hooks=0, dispatch=dispatch, accounts=[{"id": "quick", **hook, "backoff_max_s": 0.2}]
    )
    d.sink.script = [(429, A_DAY)]
    answer = await (await d.post(incident())).json()
    view = await d.settled(answer["id"], timeout_s=20)
    assert view["counts"] == {"delivered": 1}, view["deliveries"]
    first, second = d.sink.received[:2]
    assert second.at - first.at < 5.0
