"""The console's pages: sign-in and sign-out, and one page per task of a duty officer.

Every page needs a live session (else it leads to sign-in) and a role (else it says which
role is missing, ``403``); the navigation offers only what the session's role allows. Pages
change nothing: changes go through the JSON API (``/v1/``) from ``static/console.js``, with the
session's CSRF token, so the API's own validation and authority answer them. Sign-in and
sign-out are the two changes made here, each CSRF-checked.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from importlib import resources
from typing import Any

from aiohttp import web
from jinja2 import Environment, PackageLoader, select_autoescape

from alertcast import keys
from alertcast.config import IssuerConfig
from alertcast.console import reading
from alertcast.console.sessions import (
    COOKIE,
    CSRF_FIELD,
    PRE_COOKIE,
    SESSIONS,
    Session,
    same_token,
    set_cookie,
)
from alertcast.console.words import LANG_COOKIE, Words, for_script, words_for
from alertcast.models import Kind
from alertcast.reads import Reader

__all__ = ["issuer_named", "routes"]

routes = web.RouteTableDef()
_ENV = Environment(
    loader=PackageLoader("alertcast.console", "templates"),
    autoescape=select_autoescape(default=True),
    trim_blocks=True,
    lstrip_blocks=True,
)
STATIC = {"console.js": "text/javascript", "console.css": "text/css"}
HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; "
    "img-src 'self' data:; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


@dataclass(frozen=True)
class Viewer:
    """Who is looking, in which language."""

    session: Session | None
    issuer: IssuerConfig | None
    w: Words

    def can(self, role: str) -> bool:
        return self.issuer is not None and role in self.issuer.granted


def issuer_named(app: web.Application, name: str) -> IssuerConfig | None:
    return next((i for _, i in app[keys.TOKENS] if i.name == name), None)


def _viewer(request: web.Request) -> Viewer:
    session = request.app[SESSIONS].get(request.cookies.get(COOKIE))
    issuer = issuer_named(request.app, session.issuer) if session else None
    return Viewer(session if issuer else None, issuer, words_for(request))


def render(
    request: web.Request, viewer: Viewer, name: str, status: int = 200, **ctx: Any
) -> web.Response:
    js = for_script(viewer.w)
    html = _ENV.get_template(name).render(v=viewer, w=viewer.w, js=js, path=request.path, **ctx)
    response = web.Response(text=html, status=status, content_type="text/html", headers=HEADERS)
    lang = request.query.get("lang")
    if lang in ("en", "zh"):
        set_cookie(request, response, LANG_COOKIE, lang, 365 * 86400)
    return response


def _see_other(location: str) -> web.Response:
    return web.Response(status=303, headers={"Location": location, **HEADERS})


Page = Callable[[web.Request, Viewer], Awaitable[web.Response]]


def page(role: str) -> Callable[[Page], Callable[[web.Request], Awaitable[web.Response]]]:
    """A page for a signed-in ``role``: others are led to sign in, or told what they lack."""

    def wrap(fn: Page) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def handler(request: web.Request) -> web.Response:
            viewer = _viewer(request)
            if viewer.issuer is None:
                return web.Response(status=302, headers={"Location": "/console/sign-in"})
            if not viewer.can(role):
                why = viewer.w["lacks"].format(issuer=viewer.issuer.name, role=role)
                return render(request, viewer, "refused.html", 403, why=why)
            return await fn(request, viewer)

        return handler

    return wrap


@routes.get("/")
async def root(request: web.Request) -> web.Response:
    return web.Response(status=302, headers={"Location": "/console/"})


@routes.get("/console/sign-in")
async def sign_in_form(request: web.Request) -> web.Response:
    return _sign_in_page(request, _viewer(request), 200)


def _sign_in_page(
    request: web.Request, viewer: Viewer, status: int, error: str = ""
) -> web.Response:
    nonce = secrets.token_urlsafe(24)
    response = render(request, viewer, "sign_in.html", status, nonce=nonce, error=error)
    set_cookie(request, response, PRE_COOKIE, nonce, 3600)
    return response


async def _form(request: web.Request) -> dict[str, str]:
    """The posted form's text fields; an unreadable form reads as empty (and fails its CSRF
    check, a 403), never as an error."""
    if request.content_type not in FORM_TYPES:
        return {}
    try:
        data = await request.post()
    except (ValueError, UnicodeDecodeError):
        return {}
    return {k: v for k, v in data.items() if isinstance(v, str)}


@routes.post("/console/sign-in")
async def sign_in(request: web.Request) -> web.Response:
    viewer, form = _viewer(request), await _form(request)
    if not same_token(form.get(CSRF_FIELD), request.cookies.get(PRE_COOKIE, "")):
        return _sign_in_page(request, viewer, 403, viewer.w["stale_form"])
    issuer = _issuer_for_token(request.app, form.get("token", "").strip())
    if issuer is None:
        return _sign_in_page(request, viewer, 401, viewer.w["wrong_token"])
    session = request.app[SESSIONS].start(issuer)
    response = _see_other("/console/")
    set_cookie(request, response, COOKIE, session.id, 12 * 3600)
    response.del_cookie(PRE_COOKIE, path="/")
    return response


def _issuer_for_token(app: web.Application, token: str) -> IssuerConfig | None:
    """Like the bearer check: digests compared in constant time, every issuer tried."""
    if not token or len(token) > 4096:
        return None
    given, found = hashlib.sha256(token.encode("utf-8", "replace")).digest(), None
    for digest, issuer in app[keys.TOKENS]:
        if hmac.compare_digest(given, digest):
            found = issuer
    return found


@routes.post("/console/sign-out")
async def sign_out(request: web.Request) -> web.Response:
    viewer, form = _viewer(request), await _form(request)
    if viewer.session is None or not same_token(form.get(CSRF_FIELD), viewer.session.csrf):
        return render(request, viewer, "refused.html", 403, why=viewer.w["stale_form"])
    request.app[SESSIONS].end(viewer.session.id)
    response = _see_other("/console/sign-in")
    response.del_cookie(COOKIE, path="/")
    return response


@routes.get("/console/static/{name}")
async def static(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    if name not in STATIC:
        raise web.HTTPNotFound(text=f"no console asset {name}")
    body = resources.files("alertcast.console").joinpath("static", name).read_bytes()
    return web.Response(
        body=body,
        content_type=STATIC[name],
        headers={"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"},
    )


def _reader(request: web.Request, viewer: Viewer) -> Reader:
    assert viewer.issuer is not None
    return Reader(request.app[keys.STORE], viewer.issuer, request.app[keys.PLANNER].regions)


@routes.get("/console/")
@page("read")
async def home(request: web.Request, viewer: Viewer) -> web.Response:
    rows = await _reader(request, viewer).incidents(50)
    summaries = [reading.summary(request.app, r) for r in rows]
    return render(request, viewer, "home.html", incidents=summaries)


@routes.get("/console/compose")
@page("submit")
async def compose(request: web.Request, viewer: Viewer) -> web.Response:
    granted = viewer.issuer.kinds if viewer.issuer else []
    kinds = [(k.value, viewer.w[f"kind_{k.value}"]) for k in Kind if k in granted]
    return render(request, viewer, "compose.html", kinds=kinds)


@routes.get("/console/approvals")
@page("approve")
async def approvals(request: web.Request, viewer: Viewer) -> web.Response:
    reader = _reader(request, viewer)
    held = await reader.incidents(50, state="awaiting_approval")
    items = [await reading.held_item(request.app, reader, row) for row in held]
    return render(request, viewer, "approvals.html", items=items)


@routes.get("/console/incidents/{id}")
@page("read")
async def incident(request: web.Request, viewer: Viewer) -> web.Response:
    data = await reading.incident_page(
        request.app, _reader(request, viewer), request.match_info["id"]
    )
    if data is None:
        why = viewer.w["no_incident"].format(id=request.match_info["id"])
        return render(request, viewer, "refused.html", 404, why=why)
    return render(request, viewer, "incident.html", **data)


@routes.get("/console/incidents/{id}/grid")
@page("read")
async def grid(request: web.Request, viewer: Viewer) -> web.Response:
    data = await reading.incident_page(
        request.app, _reader(request, viewer), request.match_info["id"]
    )
    if data is None:
        return render(
            request,
            viewer,
            "refused.html",
            404,
            why=viewer.w["no_incident"].format(id=request.match_info["id"]),
        )
    return render(request, viewer, "grid.html", **data)


@routes.get("/console/incidents/{id}/cancel-preview")
@page("submit")
async def cancel_preview(request: web.Request, viewer: Viewer) -> web.Response:
    reader, reason = _reader(request, viewer), request.query.get("reason", "")[:500]
    texts = await reading.cancel_texts(request.app, reader, request.match_info["id"], reason)
    if texts is None:
        return render(
            request,
            viewer,
            "refused.html",
            404,
            why=viewer.w["no_incident"].format(id=request.match_info["id"]),
        )
    return render(request, viewer, "texts.html", texts=texts)


@routes.get("/console/accounts")
@page("read")
async def accounts(request: web.Request, viewer: Viewer) -> web.Response:
    now, runtimes = time.time(), request.app[keys.ACCOUNTS]
    shown = [a.describe(now) for a in _reader(request, viewer).accounts(iter(runtimes))]
    return render(request, viewer, "accounts.html", accounts=shown, now=now)


@routes.get("/console/feeds")
@page("read")
async def feeds(request: web.Request, viewer: Viewer) -> web.Response:
    issuer = viewer.issuer
    shown = issuer is not None and Kind.earthquake in issuer.kinds  # as GET /v1/feeds
    status = request.app[keys.FEEDS].status() if shown else []
    return render(request, viewer, "feeds.html", feeds=[reading.feed_row(f) for f in status])
