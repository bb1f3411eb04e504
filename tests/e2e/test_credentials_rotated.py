"""A rotated credential resumes its paused account's corrections promptly, through the daemon
against the Weibo fake: a rejection of the old token that is answered after the token was
replaced never pauses the account on the new one."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from alertcast.testing.fakes import FakeWeibo, serve
from tests.conftest import TOKEN, Daemon, incident, until

AUTH = {"Authorization": f"Bearer {TOKEN}"}
COMMENT = "/2/comments/create.json"
SHARE = "/2/statuses/share.json"
OLD, NEW = "weibo-token", "weibo-token-new"
BOUND_S = 10.0  # replaced to delivered: a poll and a 1 s retry; the rest is a loaded machine


class Held(FakeWeibo):
    """The Weibo fake, holding the requests to :attr:`paths` until :attr:`release` is set
    (a slow answer); the token is checked once released."""

    def __init__(self) -> None:
        super().__init__({OLD: 1001})
        self.paths: set[str] = set()
        self.release = asyncio.Event()
        self.held = 0

    async def _hold(self, request: web.Request) -> None:
        if request.path in self.paths:
            self.held += 1
            await self.release.wait()

    async def _share(self, request: web.Request) -> web.Response:
        await self._hold(request)
        return await super()._share(request)

    async def _comment(self, request: web.Request) -> web.Response:
        await self._hold(request)
        return await super()._comment(request)


@pytest.fixture
async def weibo(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[tuple[Held, str]]:
    monkeypatch.setenv("T_WEIBO", OLD)
    fake = Held()
    async with serve(fake) as url:
        yield fake, url


async def _cancelled_behind_an_expired_token(
    start_daemon: Any, fake: Held, url: str, held: set[str], *, refused: int | None = None
) -> tuple[Daemon, str]:
    """A daemon whose original went out on Weibo, then the token expired, the requests to
    ``held`` are held (and the next post ``refused`` with that code): the incident's
    cancellation is on its way."""
    account = {
        "id": "weibo-city",
        "channel": "weibo",
        "base_url": url,
        "access_token_env": "T_WEIBO",
        "safe_domain_url": "https://alerts.example.gov.cn/",
    }
    d = await start_daemon(hooks=0, accounts=[account])
    first = await d.settled(str((await (await d.post(incident())).json())["id"]))
    assert [x["state"] for x in first["deliveries"]] == ["delivered"]
    fake.expired.add(OLD)
    fake.paths = held
    if refused is not None:
        fake.fail_next(refused, path=SHARE)  # before the token is looked at
    return d, await _cancel(d, first["id"])


def _replace(fake: Held, monkeypatch: pytest.MonkeyPatch) -> float:
    """The operator's fix: a new token Weibo accepts, in the variable; when (monotonic)."""
    fake.tokens[NEW] = 1001
    monkeypatch.setenv("T_WEIBO", NEW)
    return time.monotonic()


async def _delivered(d: Daemon, fake: Held, incident_id: str, deadline: float) -> None:
    """Both of the cancellation's deliveries delivered by ``deadline`` (monotonic), with the
    new token, and the account not paused."""
    while True:
        _, view = await d.get(f"/v1/incidents/{incident_id}")
        rows = [(x["path"], x["state"], x["reason"]) for x in view["deliveries"]]
        if view["deliveries"] and all(x["state"] == "delivered" for x in view["deliveries"]):
            break
        assert time.monotonic() < deadline, (rows, (await _account(d))["paused"])
        await asyncio.sleep(0.05)
    assert {p for p, _, _ in rows} == {"timeline", "thread"}, rows
    assert (await _account(d))["paused"] is None
    assert len(fake.comments) == 1 and any("【取消】" in s["text"] for s in fake.statuses.values())


async def _account(d: Daemon) -> dict[str, Any]:
    _, body = await d.get("/v1/channels")
    return next(a for a in body["accounts"] if a["id"] == "weibo-city")


async def _cancel(d: Daemon, incident_id: str) -> str:
    resp = await d.client.post(
        f"/v1/incidents/{incident_id}/cancel", json={"reason": "误报，已核实"}, headers=AUTH
    )
    assert resp.status == 202, await resp.text()
    return str((await resp.json())["id"])


@pytest.mark.timeout(60)
async def test_a_late_rejection_of_the_old_token_does_not_pause_the_new_one(
    start_daemon: Any, weibo: tuple[Held, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The cancellation's post is rejected (paused), its comment's answer comes after the
    token was replaced and noticed: both reach Weibo with the new token within the bound."""
    fake, url = weibo
    d, cancel = await _cancelled_behind_an_expired_token(start_daemon, fake, url, {COMMENT})

    async def paused() -> bool:
        return bool((await _account(d))["paused"])

    await until(paused, 20, "the account paused for its rejected token")
    await until(lambda: fake.held == 1, 20, "the comment sent with the old token, held")
    replaced = _replace(fake, monkeypatch)

    async def resumed() -> bool:
        return not await paused()

    await until(resumed, BOUND_S, "the replaced token noticed")
    fake.release.set()  # the old token's comment is refused now, after the resume
    await _delivered(d, fake, cancel, replaced + BOUND_S)


@pytest.mark.timeout(60)
async def test_a_token_replaced_while_its_rejected_sends_are_on_the_wire(
    start_daemon: Any, weibo: tuple[Held, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both of the cancellation's sends carry the old token; it is replaced before either is
    answered: the rejections pause nothing on the new token, and both go out with it."""
    fake, url = weibo
    d, cancel = await _cancelled_behind_an_expired_token(start_daemon, fake, url, {SHARE, COMMENT})
    await until(lambda: fake.held == 2, 20, "both sends on the wire with the old token")
    replaced = _replace(fake, monkeypatch)
    fake.release.set()
    await _delivered(d, fake, cancel, replaced + BOUND_S)


@pytest.mark.timeout(60)
async def test_a_refused_correction_still_shows_once_the_replaced_token_resumes_its_account(
    start_daemon: Any, weibo: tuple[Held, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Weibo refuses the cancellation's post (20021) and rejects its comment's token: the
    replaced token resumes the account, the comment goes out, the refusal still flags it."""
    fake, url = weibo
    d, cancel = await _cancelled_behind_an_expired_token(
        start_daemon, fake, url, set(), refused=20021
    )

    async def failed_and_paused() -> bool:
        _, view = await d.get(f"/v1/incidents/{cancel}")
        states = {x["path"]: x["state"] for x in view["deliveries"]}
        return states.get("timeline") == "failed" and bool((await _account(d))["paused"])

    await until(failed_and_paused, 20, "the post refused and the account paused")
    replaced = _replace(fake, monkeypatch)

    async def thread_delivered() -> bool:
        _, view = await d.get(f"/v1/incidents/{cancel}")
        return any(x["path"] == "thread" and x["state"] == "delivered" for x in view["deliveries"])

    await until(thread_delivered, BOUND_S, "the comment sent with the new token")
    assert time.monotonic() - replaced < BOUND_S
    row = await _account(d)
    assert row["paused"] is None and row["healthy"] is False, row
    assert "weibo 20021" in row["correction_failed"], row
