"""The correction rule as a property, through the daemon against the platform fakes: every
audience that received the original receives each correction of it, or the correction ends
``failed`` or ``dead`` with its reason and its account shows the failure in ``/v1/channels``.

Hypothesis draws the accounts (Weibo with or without ``reply_and_delete``, a Weibo cluster
member of it, a WeChat subscription account with or without a paired template-mode service
account, its quota spent before the original or not, a WeCom robot of its own or as the WeChat
account's fallback, a webhook), the chain (alert, update, cancel or alert, cancel) and faults at
the fakes (a 5xx a retry absorbs, a refusal of the correction, a rejected Weibo token that is
replaced once the account shows paused).

The oracle reads only what the platforms recorded (statuses and comments on the Weibo fake, mass
sends, withdrawals and template messages on the WeChat fake, robot messages, the webhook sink)
and the daemon's public answers; it never asks the planner what it meant to do.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from aiohttp import ClientSession
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import HealthCheck, example, given, note, settings
from hypothesis import strategies as st

from alertcast.app import create_app
from alertcast.testing.fakes import FakeWechat, FakeWecom, FakeWeibo, serve
from alertcast.testing.sink import WebhookSink
from tests.conftest import HOOK_SECRET, TOKEN, Daemon, incident, make_config

AUTH = {"Authorization": f"Bearer {TOKEN}"}
SHANGHAI = ZoneInfo("Asia/Shanghai")
MARK = {"update": "【更新】", "cancel": "【取消】"}  # what each correction says first
WEIBO = {"weibo-city": ("T_WEIBO", 1001), "weibo-district": ("T_WEIBO_2", 1002)}
PHASE_S = 10.0  # a correction settles in about a second here; the rest is a loaded machine
SETTLED = {"delivered", "failed", "dead", "skipped"}
FOLLOWERS = ("o-alice", "o-bob", "o-carol")
SAFE_URL = "https://alerts.example.gov.cn/"
ENV = {
    "T_WEIBO": "weibo-token",
    "T_WEIBO_2": "weibo-token-2",
    "T_WX": "wx-secret",
    "T_SVC": "svc-secret",
    "T_WECOM": "wecom-key",
}


@dataclass(frozen=True)
class Fault:
    """A failure told to a fake just before correction number ``phase`` is posted."""

    account: str
    phase: int
    kind: str  # transient | refuse | token
    where: str = ""


@dataclass(frozen=True)
class Scenario:
    weibo: str | None  # None | plain | delete (on_cancel = reply_and_delete)
    member: str | None  # a cluster member of weibo-city, likewise
    wechat: str | None  # None | text | article
    paired: bool  # corrections_via a template-mode service account
    per_day: int  # the WeChat fake's mass_per_day
    prior: bool  # a mass send by someone else today, before the original
    wecom: str | None  # None | own (routed itself) | fallback (only the WeChat account's)
    webhook: bool
    chain: tuple[str, ...]
    faults: tuple[Fault, ...]


FAULTS: dict[str, list[tuple[str, str]]] = {
    "weibo": [
        ("transient", "/2/statuses/share.json"),
        ("transient", "/2/comments/create.json"),
        ("refuse", "/2/statuses/share.json"),
        ("refuse", "/2/comments/create.json"),
        ("token", ""),
    ],
    "wechat-sub": [
        ("transient", "/cgi-bin/message/mass/delete"),
        ("refuse", "/cgi-bin/message/mass/delete"),
        ("transient", "/cgi-bin/message/mass/sendall"),
        ("refuse", "/cgi-bin/message/mass/sendall"),
    ],
    "wechat-svc": [
        ("transient", "/cgi-bin/message/template/send"),
        ("refuse", "/cgi-bin/message/template/send"),
    ],
    "wecom-duty": [("transient", ""), ("refuse", "")],
    "hook-0": [("transient", ""), ("refuse", "")],
}


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    weibo = draw(st.sampled_from([None, "plain", "delete"]))
    member = draw(st.sampled_from([None, "plain", "delete"])) if weibo else None
    wechat = draw(st.sampled_from([None, "text", "article"]))
    wecom = draw(st.sampled_from([None, "own", "fallback"] if wechat else [None, "own"]))
    s = Scenario(
        weibo=weibo,
        member=member,
        wechat=wechat,
        paired=bool(wechat) and draw(st.booleans()),
        per_day=draw(st.sampled_from([0, 1, 2])) if wechat else 1,
        prior=bool(wechat) and draw(st.booleans()),
        wecom=wecom,
        webhook=draw(st.booleans()),
        chain=draw(st.sampled_from([("cancel",), ("update", "cancel")])),
        faults=(),
    )
    menu = [(a, k, w) for a in _ids(s) for k, w in FAULTS["weibo" if a in WEIBO else a]]
    picked = draw(st.lists(st.sampled_from(menu), max_size=2, unique=True)) if menu else []
    phases = st.integers(0, len(s.chain) - 1)
    faults = tuple(Fault(a, draw(phases), k, w) for a, k, w in picked)
    return Scenario(**{**s.__dict__, "faults": faults})


def _ids(s: Scenario) -> list[str]:
    ids = [i for i, on in (("weibo-city", s.weibo), ("weibo-district", s.member)) if on]
    ids += ["wechat-sub"] if s.wechat else []
    ids += ["wechat-svc"] if s.paired else []
    ids += ["wecom-duty"] if s.wecom else []
    return ids + (["hook-0"] if s.webhook else [])


@dataclass
class World:
    """The fakes, the sink and what the test saw on the way."""

    weibo: FakeWeibo
    wechat: FakeWechat
    wecom: FakeWecom
    sink: WebhookSink
    urls: dict[str, str] = field(default_factory=dict)
    rotated: set[str] = field(default_factory=set)
    original_mass: set[int] = field(default_factory=set)


def _accounts(s: Scenario, w: World) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for account_id, mode in (("weibo-city", s.weibo), ("weibo-district", s.member)):
        if mode is None:
            continue
        a = {
            "id": account_id,
            "channel": "weibo",
            "base_url": w.urls["weibo"],
            "access_token_env": WEIBO[account_id][0],
            "safe_domain_url": SAFE_URL,
        }
        a |= {"lead": "weibo-city"} if account_id == "weibo-district" else {}
        out.append(a | ({"on_cancel": "reply_and_delete"} if mode == "delete" else {}))
    if s.wechat:
        sub = {
            "id": "wechat-sub",
            "channel": "wechat_oa",
            "base_url": w.urls["wechat"],
            "app_id": "wx-app",
            "app_secret_env": "T_WX",
            "mode": s.wechat,
            **({"format": "text"} if s.wechat == "text" else {"thumb_media_id": "thumb-1"}),
            **({"corrections_via": ["wechat-svc"]} if s.paired else {}),
            **({"fallback": ["wecom-duty"]} if s.wecom == "fallback" else {}),
        }
        out.append(sub)
    if s.paired:
        out.append(
            {
                "id": "wechat-svc",
                "channel": "wechat_oa",
                "base_url": w.urls["wechat"],
                "app_id": "wx-svc",
                "app_secret_env": "T_SVC",
                "account_type": "service",
                "mode": "template",
                "template_id": "TPL-ALERT",
                "template_audience": "followers",
                "format": "wechat_template",
                "kinds": ["police"],  # routing never chooses it: it only carries corrections
            }
        )
    if s.wecom:
        robot = {"id": "wecom-duty", "channel": "wecom_robot", "base_url": w.urls["wecom"]}
        robot |= {"key_env": "T_WECOM"} | ({"kinds": ["fire"]} if s.wecom == "fallback" else {})
        out.append(robot)
    return out


def _inject(w: World, f: Fault) -> None:
    if f.account in WEIBO:
        if f.kind == "token":
            w.weibo.expired.add(_token(f.account, rotated=False))
        else:
            w.weibo.fail_next(10001 if f.kind == "transient" else 20021, path=f.where)
    elif f.account.startswith("wechat"):
        w.wechat.fail_next(-1 if f.kind == "transient" else 48001, path=f.where)
    elif f.account == "wecom-duty":
        w.wecom.fail_next(-1 if f.kind == "transient" else 40058, "injected")
    else:
        w.sink.script.append((503, {}) if f.kind == "transient" else (422, {}))


def _token(account: str, *, rotated: bool) -> str:
    base = "weibo-token" if account == "weibo-city" else "weibo-token-2"
    return f"{base}-new" if rotated else base


async def _spend_quota(w: World) -> None:
    """Someone else (the office's own console) makes today's mass send before the original."""
    async with ClientSession() as http:
        q = {"grant_type": "client_credential", "appid": "wx-app", "secret": "wx-secret"}
        async with http.get(f"{w.urls['wechat']}/cgi-bin/token", params=q) as resp:
            token = (await resp.json())["access_token"]
        body = {"filter": {"is_to_all": True}, "msgtype": "text", "text": {"content": "天气"}}
        url = f"{w.urls['wechat']}/cgi-bin/message/mass/sendall?access_token={token}"
        data = json.dumps(body, ensure_ascii=False).encode()  # WeChat refuses \\u escapes
        async with http.post(url, data=data) as resp:
            assert (await resp.json())["errcode"] in (0, 45028)  # 45028: no send today at all


async def _channels(d: Daemon) -> dict[str, dict[str, Any]]:
    status, body = await d.get("/v1/channels")
    assert status == 200, body
    return {a["id"]: a for a in body["accounts"]}


def _waiting(x: dict[str, Any]) -> bool:
    return x["state"] == "retrying" and "next send" in (x["reason"] or "")


async def _until_done(
    d: Daemon, w: World, first: dict[str, Any], incident_id: str, mp: pytest.MonkeyPatch
) -> dict[str, Any]:
    """The correction once each delivery for an audience of the original is settled or waits
    for the quota's return; a rejected token is replaced once its account shows paused."""
    audiences = {o["account"] for o in first["deliveries"] if o["state"] == "delivered"}
    audiences |= {"wechat-svc"} if "wechat-sub" in audiences else set()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + PHASE_S
    while True:
        status, view = await d.get(f"/v1/incidents/{incident_id}")
        assert status == 200, view
        mine = [x for x in view["deliveries"] if x["account"] in audiences]
        if all(x["state"] in SETTLED or _waiting(x) for x in mine):
            return dict(view)
        for account_id, row in (await _channels(d)).items():
            if account_id in WEIBO and row["paused"] and account_id not in w.rotated:
                assert row["healthy"] is False, row  # the operator sees why it waits
                w.rotated.add(account_id)
                w.weibo.tokens[_token(account_id, rotated=True)] = WEIBO[account_id][1]
                mp.setenv(WEIBO[account_id][0], _token(account_id, rotated=True))
        stuck = [(x["account"], x["path"], x["state"], x["reason"]) for x in mine]
        assert loop.time() < deadline, f"not settled nor waiting for the quota: {stuck}"
        await asyncio.sleep(0.05)


# -- the oracle: what the platforms recorded --------------------------------------------------


def _excused(
    c: dict[str, Any], ids: set[str], paths: set[str], flags: dict[str, dict[str, Any]]
) -> bool:
    """A delivery of the correction for this audience (on ``ids``, along ``paths``) ended
    failed or dead with its reason, and its account shows the failure."""
    for x in c["deliveries"]:
        if x["account"] in ids and x["path"] in paths and x["state"] in ("failed", "dead"):
            assert x["reason"], x
            row = flags[x["account"]]
            if "correction_failed" in row:
                assert row["correction_failed"] and row["healthy"] is False, row
            else:  # what /v1/channels has today: the failure counted and its error shown
                assert row["failed"] >= 1 and row["last_error"], row
            return True
    return False


def _weibo_reached(w: World, account: str, original: str, msg: str) -> tuple[bool, bool]:
    """(followers, openers): a new post of the account carrying the correction; a comment
    on its original carrying it, or the original deleted after such a post."""
    uid, mark = WEIBO[account][1], MARK[msg]
    posted = any(s["user"]["id"] == uid and mark in s["text"] for s in w.weibo.statuses.values())
    commented = any(
        c["status"]["idstr"] == original and c["user"]["id"] == uid and mark in c["text"]
        for c in w.weibo.comments.values()
    )
    gone = original not in w.weibo.statuses
    return posted, commented or (gone and posted)


def _wechat_reached(w: World, c: dict[str, Any], msg: str) -> bool:
    """Every follower got a template message carrying the correction, or a mass send of it
    went out, or the account's own send waits for the quota's reset."""
    mark = MARK[msg]
    templated = {m["touser"] for m in w.wechat.template_sent if mark in str(m["data"])}
    if templated >= set(FOLLOWERS):
        return True
    for m in w.wechat.mass_sent.values():
        if m["app_id"] != "wx-app":
            continue
        text = str(m.get("text", "")) + str(
            w.wechat.drafts.get(m.get("mpnews", {}).get("media_id"))
        )
        if mark in text:
            return True
    waits = [x for x in c["deliveries"] if x["account"] == "wechat-sub" and _waiting(x)]
    for x in waits:
        assert _at(x["next_attempt_at"]) == _next_midnight(), x  # at the quota's reset
    return bool(waits)


def _robot_reached(w: World, msg: str) -> bool:
    return any(MARK[msg] in str(m) for ms in w.wecom.received.values() for m in ms)


def _hook_reached(w: World, msg: str, original: str) -> bool:
    return any(
        r.body.get("msg_type") == msg and r.body.get("in_reply_to") == original
        for r in w.sink.received
    )


def _at(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def _next_midnight() -> float:
    today = datetime.now(SHANGHAI).date() + timedelta(days=1)
    return datetime(today.year, today.month, today.day, tzinfo=SHANGHAI).timestamp()


def _check(w: World, first: dict[str, Any], c: dict[str, Any], msg: str, flags: Any) -> None:
    """Every audience of the original reached by correction ``c`` (``msg``), or excused."""
    for o in first["deliveries"]:
        if o["state"] != "delivered":
            continue
        a, rid = o["account"], o["remote_id"]
        if a in WEIBO:
            followers, openers = _weibo_reached(w, a, rid, msg)
            assert followers or _excused(c, {a}, {"timeline"}, flags), (a, "timeline", c)
            assert openers or _excused(c, {a}, {"thread", "timeline"}, flags), (a, "thread", c)
        elif a == "wechat-sub":
            ids = {"wechat-sub", "wechat-svc"}
            ok = _wechat_reached(w, c, msg)
            assert ok or _excused(c, ids, {"timeline", "paired", "window"}, flags), c
        elif a == "wecom-duty":
            assert _robot_reached(w, msg) or _excused(c, {a}, {"timeline"}, flags), c
        elif a == "hook-0":
            assert _hook_reached(w, msg, rid) or _excused(c, {a}, {"timeline"}, flags), c


def _never(w: World, first: dict[str, Any], c: dict[str, Any], msg: str) -> None:
    """No Weibo original deleted while its correction did not reach the followers: a comment
    goes with its post, so the alarm would vanish uncorrected. (A WeChat article is withdrawn
    first, by the plan and the issue: the correction travels by other messages, not attached
    to the original, so withdrawing it loses none; ``_check`` holds it to reaching them.)"""
    for o in first["deliveries"]:
        if o["state"] != "delivered":
            continue
        a, rid = o["account"], o["remote_id"]
        if a in WEIBO and rid not in w.weibo.statuses:
            assert _weibo_reached(w, a, rid, "cancel")[0], (a, "deleted uncorrected")


# -- the run ----------------------------------------------------------------------------------


async def _run(s: Scenario, mp: pytest.MonkeyPatch) -> None:
    for var, value in ENV.items():
        mp.setenv(var, value)
    w = World(
        FakeWeibo({"weibo-token": 1001, "weibo-token-2": 1002}),
        FakeWechat({"wx-app": "wx-secret", "wx-svc": "svc-secret"}, mass_per_day=s.per_day),
        FakeWecom({"wecom-key"}),
        WebhookSink(secret=HOOK_SECRET),
    )
    await w.sink.start()
    async with AsyncExitStack() as stack:
        stack.push_async_callback(w.sink.stop)
        fakes = {"weibo": w.weibo, "wechat": w.wechat, "wecom": w.wecom}
        w.urls = {n: await stack.enter_async_context(serve(f)) for n, f in fakes.items()}
        if s.prior:
            await _spend_quota(w)
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        hooks = [w.sink.url.replace("/hook", "/hook/0")] if s.webhook else []
        config = make_config(tmp, hooks, accounts=_accounts(s, w))
        client = TestClient(TestServer(create_app(config)))
        await client.start_server()
        stack.push_async_callback(client.close)
        d = Daemon(client, config, w.sink, tmp / "alertcast.db")
        await _chain(d, w, s, mp)


async def _chain(d: Daemon, w: World, s: Scenario, mp: pytest.MonkeyPatch) -> None:
    first = await (await d.post(incident())).json()
    first = await d.settled(first["id"])
    w.original_mass = set(w.wechat.mass_sent)
    for phase, msg in enumerate(s.chain):
        for f in s.faults:
            if f.phase == phase:
                _inject(w, f)
        body = {"details": {"magnitude": 6.6}} if msg == "update" else {"reason": "误报，已核实"}
        resp = await d.client.post(f"/v1/incidents/{first['id']}/{msg}", json=body, headers=AUTH)
        assert resp.status == 202, await resp.text()
        c = await _until_done(d, w, first, (await resp.json())["id"], mp)
        _check(w, first, c, msg, await _channels(d))
        _never(w, first, c, msg)


# Counterexamples this test found, kept as examples that must hold:
# 1. STUCK: a WeChat text account without a pair, alert -> update -> cancel. The update's own
#    send waits for the quota, which pauses the account; the cancellation's own send then sat
#    `pending` with no reason. Now every correction of a quota-paused account is claimed: what
#    spends no quota (a withdrawal, customer-service messages) goes, the rest waits for the
#    quota's reset with the reason.
STUCK = Scenario(None, None, "text", False, 1, False, None, False, ("update", "cancel"), ())
# 2. WITHDRAWN: a WeChat article account whose pair's template send is refused (48001): the
#    article is withdrawn first (as the plan says: the correction does not travel on it), the
#    pair fails with its reason and flags its account, and the account's own send waits for
#    the quota.
REFUSED = (Fault("wechat-svc", 0, "refuse", "/cgi-bin/message/template/send"),)
WITHDRAWN = Scenario(None, None, "article", True, 1, False, None, False, ("cancel",), REFUSED)
# 3. ROTATED (CI, under load): Weibo rejects the token for the cancellation's post and comment,
#    sent at once; the post's rejection pauses the account, the token is replaced, the account
#    resumes, then the comment's late rejection of the old token paused it again on the new one
#    and the cancellation stayed `retrying` past the phase. Now a rejection of credentials
#    replaced since its send was claimed pauses nothing (tests/e2e/test_credentials_rotated.py
#    holds the comment to make the order certain).
TOKEN_AT_CANCEL = (Fault("weibo-city", 0, "token"),)
ROTATED = Scenario("plain", None, None, False, 1, False, None, False, ("cancel",), TOKEN_AT_CANCEL)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(s=scenarios())
@example(s=STUCK)
@example(s=WITHDRAWN)
@example(s=ROTATED)
def test_every_audience_of_the_original_gets_the_correction(
    s: Scenario, env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Reached, waiting for the quota's reset, or failed with its reason and flagged."""
    note(repr(s))
    asyncio.run(_run(s, monkeypatch))
