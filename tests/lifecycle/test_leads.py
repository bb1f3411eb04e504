"""A release hall whose lead cannot post: its members post the text alone, and say why.

A member waits for its lead's post at most its ``lead_wait_s``, and not at all once the lead
is paused (its token rejected) or its delivery failed; it never also reposts a lead that
delivers later. A healthy lead is still reposted.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from alertcast.testing.fakes import FakeWeibo, serve
from alertcast.testing.sink import Received
from tests.conftest import incident, until

MEMBERS = ("weibo-chengdu", "weibo-mianyang")


@pytest.fixture
async def weibo(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[tuple[FakeWeibo, str]]:
    monkeypatch.setenv("T_SICHUAN", "tok-sichuan")
    monkeypatch.setenv("T_CHENGDU", "tok-chengdu")
    monkeypatch.setenv("T_MIANYANG", "tok-mianyang")
    fake = FakeWeibo(
        {"tok-sichuan": 1001, "tok-sichuan-new": 1001, "tok-chengdu": 1002, "tok-mianyang": 1003}
    )
    async with serve(fake) as url:
        yield fake, url


def _weibo(account_id: str, url: str, token_env: str, **keys: Any) -> dict[str, Any]:
    return {
        "id": account_id,
        "channel": "weibo",
        "base_url": url,
        "access_token_env": token_env,
        "safe_domain_url": "https://alerts.example.gov.cn/",
        **keys,
    }


def _hall(url: str, lead_wait_s: float) -> list[dict[str, Any]]:
    lead = _weibo("weibo-sichuan", url, "T_SICHUAN")
    members = [
        _weibo(m, url, f"T_{m.removeprefix('weibo-').upper()}", lead="weibo-sichuan")
        for m in MEMBERS
    ]
    return [lead, *[{**m, "lead_wait_s": lead_wait_s} for m in members]]


async def _view(d: Any, incident_id: str) -> dict[str, dict[str, Any]]:
    _, view = await d.get(f"/v1/incidents/{incident_id}")
    return {x["account"]: x for x in view["deliveries"]}


async def test_members_of_a_lead_whose_token_is_rejected_post_alone(
    start_daemon: Any, weibo: tuple[FakeWeibo, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The lead's token is rejected: its members post at once, long before their wait."""
    fake, url = weibo
    fake.expired.add("tok-sichuan")
    d = await start_daemon(hooks=0, accounts=_hall(url, lead_wait_s=30))
    answer = await (await d.post(incident())).json()
    started = time.monotonic()
    rows: dict[str, dict[str, Any]] = {}

    async def members_delivered() -> bool:
        nonlocal rows
        rows = await _view(d, answer["id"])
        return all(rows[m]["state"] == "delivered" for m in MEMBERS)

    await until(members_delivered, timeout_s=15, what="the members delivered")
    assert time.monotonic() - started < 15 < 30  # the pause, not the wait, let them go
    assert rows["weibo-sichuan"]["state"] == "retrying"
    for m in MEMBERS:
        reason = rows[m]["reason"]
        assert reason.startswith("lead weibo-sichuan paused: credentials rejected"), reason
        assert reason.endswith("; posted alone") and "tok-" not in reason
        post = fake.statuses[rows[m]["remote_id"]]
        assert "retweeted_status" not in post and "6.8" in post["text"]
    monkeypatch.setenv("T_SICHUAN", "tok-sichuan-new")  # the token replaced: the lead resumes
    view = await d.settled(answer["id"])
    assert view["counts"] == {"delivered": 3}
    by_user = sorted(s["user"]["id"] for s in fake.statuses.values())
    assert by_user == [1001, 1002, 1003]  # the lead's post came; the members did not repost it


async def test_members_stop_waiting_for_a_lead_that_keeps_retrying(start_daemon: Any) -> None:
    """A lead stuck retrying: members post alone once lead_wait_s is over, and only once."""
    lead = {"id": "hall", "channel": "webhook", "url": "{sink}/lead", "secret_env": "T_HOOK_SECRET"}
    members = [
        {**lead, "id": f"agency-{i}", "url": f"{{sink}}/m{i}", "lead": "hall", "lead_wait_s": 0.5}
        for i in range(2)
    ]
    d = await start_daemon(hooks=0, accounts=[{**lead, "max_attempts": 1000}, *members])
    lead_down = True

    def answer(item: Received) -> tuple[int, dict[str, str]] | None:
        return (503, {}) if lead_down and item.path.endswith("/lead") else None

    d.sink.answer = answer
    posted_at = time.time()
    first = await (await d.post(incident())).json()

    def members_arrived() -> list[Received]:
        return [r for r in d.sink.received if "/m" in r.path]

    await until(lambda: len(members_arrived()) == 2, timeout_s=10, what="the members' posts")
    assert all(r.at - posted_at >= 0.5 for r in members_arrived())  # they waited for the lead
    assert all(
        r.body["action"] == "post" and r.body["in_reply_to"] is None for r in members_arrived()
    )
    lead_down = False
    view = await d.settled(first["id"])
    reasons = {x["account"]: (x["state"], x["reason"]) for x in view["deliveries"]}
    waited = "lead hall not delivered within lead_wait_s (0.5 s); posted alone"
    assert reasons == {
        "hall": ("delivered", None),
        "agency-0": ("delivered", waited),
        "agency-1": ("delivered", waited),
    }
    assert len(members_arrived()) == 2  # the lead delivered late: no member reposts it


async def test_members_of_a_failed_lead_post_alone_at_once(start_daemon: Any) -> None:
    """The lead's receiver refuses it (401, permanent): members post alone, saying so."""
    lead = {"id": "hall", "channel": "webhook", "url": "{sink}/lead", "secret_env": "T_HOOK_SECRET"}
    member = {**lead, "id": "agency", "url": "{sink}/m", "lead": "hall", "lead_wait_s": 30}
    d = await start_daemon(hooks=0, accounts=[lead, member])
    d.sink.answer = lambda item: (401, {}) if item.path.endswith("/lead") else None
    first = await (await d.post(incident())).json()
    view = await d.settled(first["id"], timeout_s=15)
    rows = {x["account"]: x for x in view["deliveries"]}
    assert rows["hall"]["state"] == "failed"
    assert rows["agency"]["reason"] == "lead hall failed; posted alone"
    (own,) = [r.body for r in d.sink.received if r.path.endswith("/m")]
    assert own["action"] == "post" and own["in_reply_to"] is None


async def test_members_still_repost_a_healthy_lead(start_daemon: Any) -> None:
    """A lead that fails once and then delivers within the wait is reposted, as before."""
    lead = {"id": "hall", "channel": "webhook", "url": "{sink}/lead", "secret_env": "T_HOOK_SECRET"}
    members = [
        {**lead, "id": f"agency-{i}", "url": f"{{sink}}/m{i}", "lead": "hall", "lead_wait_s": 3}
        for i in range(2)
    ]
    d = await start_daemon(hooks=0, accounts=[lead, *members])
    d.sink.script = [(503, {})]  # the lead's first attempt (the members wait for it)
    first = await (await d.post(incident())).json()
    view = await d.settled(first["id"], timeout_s=15)
    rows = {x["account"]: x for x in view["deliveries"]}
    assert rows["hall"]["attempts"] == 2
    for i in range(2):
        assert rows[f"agency-{i}"]["reason"] is None
        (sent,) = [r.body for r in d.sink.received if r.path.endswith(f"/m{i}")]
        assert sent["action"] == "repost" and sent["in_reply_to"] == rows["hall"]["remote_id"]
