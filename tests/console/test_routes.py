"""The console's routes through the aiohttp test client: sign-in, the cookie, CSRF, roles, and
no server error on hostile input."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.conftest import Daemon, incident, until
from tests.console.conftest import NONCE, TOKENS, sign_in

JSON = {"Content-Type": "application/json"}


@contextlib.asynccontextmanager
async def browser(d: Daemon) -> AsyncIterator[aiohttp.ClientSession]:
    """A second browser: its own cookie jar, against the same daemon."""
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(str(d.client.make_url("")), cookie_jar=jar) as s:
        yield s


async def test_root_leads_to_the_console_and_the_console_to_sign_in(daemon: Daemon) -> None:
    """``/`` is the console; without a session every page leads to the sign-in form."""
    root = await daemon.client.get("/", allow_redirects=False)
    assert root.status == 302 and root.headers["Location"] == "/console/"
    for path in ["/console/", "/console/compose", "/console/incidents/x", "/console/accounts"]:
        resp = await daemon.client.get(path, allow_redirects=False)
        assert (resp.status, resp.headers["Location"]) == (302, "/console/sign-in"), path
    form = await daemon.client.get("/console/sign-in")
    assert form.status == 200 and 'type="password"' in await form.text()


async def test_the_session_cookie_is_httponly_strict_and_never_the_token(daemon: Daemon) -> None:
    """Sign-in sets an HttpOnly, SameSite=Strict, path-wide cookie holding a random id."""
    form = await daemon.client.get("/console/sign-in")
    nonce = NONCE.search(await form.text())
    assert nonce is not None
    resp = await daemon.client.post(
        "/console/sign-in",
        data={"token": TOKENS["author"], "csrf": nonce.group(1)},
        allow_redirects=False,
    )
    assert resp.status == 303 and resp.headers["Location"] == "/console/"
    cookie = next(c for c in resp.headers.getall("Set-Cookie") if "alertcast_session=" in c)
    flags = {p.strip().split("=")[0].lower(): p.strip() for p in cookie.split(";")}
    assert "httponly" in flags and flags["samesite"].lower() == "samesite=strict"
    assert flags["path"] == "Path=/"
    assert TOKENS["author"] not in cookie and len(cookie.split(";")[0]) > 40
    page = await daemon.client.get("/console/")
    assert TOKENS["author"] not in await page.text()
    assert page.headers["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]


async def test_sign_in_is_refused_without_its_form_token_or_with_a_wrong_token(
    daemon: Daemon,
) -> None:
    """A sign-in posted without the form's nonce (login CSRF) or with a wrong token starts
    no session."""
    await daemon.client.get("/console/sign-in")
    no_nonce = await daemon.client.post(
        "/console/sign-in", data={"token": TOKENS["author"]}, allow_redirects=False
    )
    assert no_nonce.status == 403
    form = await daemon.client.get("/console/sign-in")
    nonce = NONCE.search(await form.text())
    assert nonce is not None
    wrong = await daemon.client.post(
        "/console/sign-in",
        data={"token": "tok-wrong", "csrf": nonce.group(1)},
        headers={"Accept-Language": "en-GB,en;q=0.9"},
    )
    assert wrong.status == 401 and "Unknown or wrong token" in await wrong.text()
    for resp in (no_nonce, wrong):
        assert not any("alertcast_session=" in c for c in resp.headers.getall("Set-Cookie", []))
    home = await daemon.client.get("/console/", allow_redirects=False)
    assert home.status == 302


async def test_a_change_with_the_cookie_needs_the_csrf_token(daemon: Daemon) -> None:
    """With the session cookie, a POST to the API without X-CSRF-Token (or with a wrong one) is
    refused and stores nothing; with it, the API answers as for a bearer token."""
    csrf = await sign_in(daemon.client, "author")
    before = daemon.table_counts()
    body = json.dumps(incident())
    for headers in [JSON, {**JSON, "X-CSRF-Token": "forged"}]:
        refused = await daemon.client.post("/v1/incidents", data=body, headers=headers)
        assert refused.status == 403 and "X-CSRF-Token" in (await refused.json())["detail"]
    assert daemon.table_counts() == before
    read = await daemon.client.get("/v1/incidents")
    assert read.status == 200  # a read needs no CSRF token
    done = await daemon.client.post(
        "/v1/incidents", data=body, headers={**JSON, "X-CSRF-Token": csrf}
    )
    assert done.status == 202, await done.text()


async def test_the_cookie_binds_the_sessions_role(daemon: Daemon) -> None:
    """A reader's session is a reader: the API refuses its submit as it refuses its token."""
    csrf = await sign_in(daemon.client, "reader")
    resp = await daemon.client.post(
        "/v1/incidents", data=json.dumps(incident()), headers={**JSON, "X-CSRF-Token": csrf}
    )
    assert resp.status == 403 and "lacks the submit role" in (await resp.json())["detail"]


@pytest.mark.parametrize(
    ("who", "allowed", "refused"),
    [
        (
            "reader",
            ["/console/", "/console/accounts", "/console/feeds"],
            ["/console/compose", "/console/approvals"],
        ),
        ("author", ["/console/compose"], ["/console/approvals"]),
        ("approver", ["/console/compose", "/console/approvals"], []),
    ],
)
async def test_pages_and_navigation_follow_the_role(
    daemon: Daemon, who: str, allowed: list[str], refused: list[str]
) -> None:
    """Each role reaches its pages and is told, 403, which role it lacks on others; the
    navigation offers only what it may open."""
    await sign_in(daemon.client, who)
    home = await (await daemon.client.get("/console/")).text()
    for path in allowed:
        resp = await daemon.client.get(path)
        assert resp.status == 200, path
        assert f'href="{path}"' in home
    for path in refused:
        resp = await daemon.client.get(path, headers={"Accept-Language": "en"})
        assert resp.status == 403 and f"{who} lacks the" in (await resp.text()), path
        assert f'href="{path}"' not in home


async def test_sign_out_needs_its_csrf_token_and_ends_the_session(daemon: Daemon) -> None:
    """A sign-out posted without the token is refused; with it, the cookie opens nothing."""
    csrf = await sign_in(daemon.client, "author")
    forged = await daemon.client.post("/console/sign-out", data={}, allow_redirects=False)
    assert forged.status == 403
    assert (await daemon.client.get("/console/", allow_redirects=False)).status == 200
    out = await daemon.client.post("/console/sign-out", data={"csrf": csrf}, allow_redirects=False)
    assert out.status == 303 and out.headers["Location"] == "/console/sign-in"
    assert (await daemon.client.get("/console/", allow_redirects=False)).status == 302
    assert (await daemon.client.get("/v1/incidents")).status == 401


async def test_an_author_sees_that_they_cannot_approve_their_own(daemon: Daemon) -> None:
    """A held incident: its author's approval page says why no button works for them; a
    second approver gets the button; the texts of every account are shown side by side."""
    csrf = await sign_in(daemon.client, "approver")
    raised = await daemon.client.post(
        "/v1/incidents",
        data=json.dumps(incident(severity="extreme")),
        headers={**JSON, "X-CSRF-Token": csrf},
    )
    body = await raised.json()
    assert raised.status == 202 and body["state"] == "awaiting_approval", body
    own = await (await daemon.client.get("/console/approvals")).text()
    assert f'data-held="{body["id"]}"' in own
    assert f'data-approve="{body["id"]}"' not in own and 'class="own"' in own
    async with browser(daemon) as other:
        await sign_in(other, "author")  # no approve role: no approvals page at all
        assert (await other.get("/console/approvals")).status == 403


async def test_a_second_approver_rejects_a_held_incident_from_the_approvals_page(
    daemon: Daemon, tmp_path: Path
) -> None:
    """Reject, with its labelled reason, is offered to an approver on another's held incident
    and not on their own; the API call needs the session's CSRF token (without it: 403, nothing
    changes); with it the incident ends cancelled with the reason and nothing is delivered."""
    csrf = await sign_in(daemon.client, "approver")
    held = json.dumps(incident(severity="extreme"))
    own = await daemon.client.post(
        "/v1/incidents", data=held, headers={**JSON, "X-CSRF-Token": csrf}
    )
    own_id = (await own.json())["id"]
    async with browser(daemon) as other:
        token = await sign_in(other, "author")
        raised = await other.post(
            "/v1/incidents", data=held, headers={**JSON, "X-CSRF-Token": token}
        )
        body = await raised.json()
    assert raised.status == 202 and body["state"] == "awaiting_approval", body
    iid = body["id"]
    page = await (await daemon.client.get("/console/approvals")).text()
    assert f'data-reject="{iid}"' in page and f'<label for="reject-{iid}">驳回原因</label>' in page
    assert f'data-reject="{own_id}"' not in page and f'data-held="{own_id}"' in page
    before, path = daemon.table_counts(), f"/v1/incidents/{iid}/reject"
    reason = json.dumps({"reason": "震级有误"})
    for headers in [JSON, {**JSON, "X-CSRF-Token": "forged"}]:
        refused = await daemon.client.post(path, data=reason, headers=headers)
        assert refused.status == 403 and "X-CSRF-Token" in (await refused.json())["detail"]
    assert daemon.table_counts() == before
    done = await daemon.client.post(path, data=reason, headers={**JSON, "X-CSRF-Token": csrf})
    assert done.status == 200 and (await done.json())["state"] == "cancelled", await done.text()
    await asyncio.sleep(0.3)
    view = await (await daemon.client.get(f"/v1/incidents/{iid}")).json()
    assert view["state"] == "cancelled" and view["deliveries"]
    assert all(dv["state"] == "skipped" for dv in view["deliveries"]), view["deliveries"]
    for name in ("board", "robot", "drills"):
        sent = tmp_path / f"{name}.jsonl"
        assert not sent.exists() or sent.read_text() == "", name
    after = await (await daemon.client.get("/console/approvals")).text()
    assert f'data-held="{iid}"' not in after


async def test_the_incident_page_shows_the_grid_and_a_cancellation_preview(
    daemon: Daemon,
) -> None:
    """An incident's page has one grid row per delivery, and the cancellation text of every
    account the original went to, with the reason in it."""
    csrf = await sign_in(daemon.client, "author")
    raised = await daemon.client.post(
        "/v1/incidents", data=json.dumps(incident()), headers={**JSON, "X-CSRF-Token": csrf}
    )
    iid = (await raised.json())["id"]
    await settled(daemon, iid)
    page = await (await daemon.client.get(f"/console/incidents/{iid}")).text()
    assert page.count('data-state="delivered"') == 2 and 'data-account="board"' in page
    preview = await daemon.client.get(
        f"/console/incidents/{iid}/cancel-preview", params={"reason": "误报，已核实"}
    )
    text = await preview.text()
    assert preview.status == 200 and text.count("误报，已核实") == 2
    assert "微博字" in text  # the Weibo account's length in Weibo units


async def settled(d: Daemon, iid: str) -> None:
    """Until the incident's grid says every delivery has settled."""

    async def check() -> bool:
        grid = await d.client.get(f"/console/incidents/{iid}/grid")
        return 'data-settled="yes"' in await grid.text()

    await until(check, what=f"{iid} settled")


HOSTILE: list[tuple[str, str, dict[str, Any]]] = [
    ("GET", "/console/incidents/%00", {}),
    ("GET", "/console/incidents/%3Cscript%3E", {}),
    ("GET", "/console/incidents/x/cancel-preview?reason=%ED%A0%80", {}),
    ("GET", "/console/incidents/x/grid", {}),
    ("GET", "/console/static/..%2F..%2Fpages.py", {}),
    ("GET", "/console/static/nothing.js", {}),
    ("GET", "/console/?lang=%3Cscript%3E", {}),
    ("GET", "/console/", {"headers": {"Cookie": "alertcast_session=\x7f; alertcast_lang=<x>"}}),
    ("GET", "/console/", {"headers": {"Accept-Language": "ü" * 5000}}),
    (
        "POST",
        "/console/sign-in",
        {"data": b"\xff\xfe\x00", "headers": {"Content-Type": "application/x-www-form-urlencoded"}},
    ),
    ("POST", "/console/sign-in", {"json": {"token": TOKENS["author"]}}),
    ("POST", "/console/sign-in", {"data": {"token": "x" * 100_000, "csrf": "y"}}),
    (
        "POST",
        "/console/sign-in",
        {
            "data": "token=%00&csrf=%00",
            "headers": {"Content-Type": "application/x-www-form-urlencoded"},
        },
    ),
    (
        "POST",
        "/console/sign-out",
        {"data": b"--x\r\n", "headers": {"Content-Type": "multipart/form-data; boundary=x"}},
    ),
    ("PUT", "/console/sign-in", {}),
]


@pytest.mark.parametrize(("method", "path", "kwargs"), HOSTILE)
async def test_hostile_input_gets_a_refusal_never_a_server_error(
    daemon: Daemon, method: str, path: str, kwargs: dict[str, Any]
) -> None:
    """Odd paths, cookies, languages and bodies: a 4xx or the sign-in page, never a 5xx, and
    nothing they carry is echoed unescaped."""
    await sign_in(daemon.client, "reader")
    resp = await daemon.client.request(method, path, allow_redirects=False, **kwargs)
    assert resp.status < 500, (path, resp.status, await resp.text())
    assert "<script>" not in await resp.text()


async def test_language_follows_the_switch_then_the_browser(daemon: Daemon) -> None:
    """``?lang=en`` switches to English and is remembered; without it Accept-Language
    decides; Chinese otherwise."""
    zh = await (await daemon.client.get("/console/sign-in")).text()
    assert 'lang="zh-CN"' in zh and "访问令牌" in zh
    en = await daemon.client.get("/console/sign-in", headers={"Accept-Language": "en-US,en"})
    assert "Access token" in await en.text()
    await daemon.client.get("/console/sign-in?lang=en")
    kept = await (await daemon.client.get("/console/sign-in")).text()
    assert 'lang="en"' in kept and "Access token" in kept


async def test_the_session_opens_the_event_stream(daemon: Daemon) -> None:
    """The live stream takes the session cookie (EventSource sends no header)."""
    await sign_in(daemon.client, "reader")
    resp = await daemon.client.get("/v1/stream")
    assert resp.status == 200 and resp.content_type == "text/event-stream"
    resp.close()


async def test_the_accounts_page_shows_each_accounts_quota_left(daemon: Daemon) -> None:
    """Health with what is left (a file account has no quota: a dash), in the reader's
    language."""
    await sign_in(daemon.client, "reader")
    page = await (await daemon.client.get("/console/accounts?lang=zh")).text()
    assert "剩余额度" in page
    page = await (await daemon.client.get("/console/accounts?lang=en")).text()
    assert "Quota left" in page and "<td>—</td>" in page
