"""The web console: server-rendered pages at ``/console/`` (``/`` leads there), signed in by a
session cookie, acting through the JSON API with the session's CSRF token (docs/console.md).

:func:`setup` mounts the pages; :func:`session_issuer` is what the app's authentication asks
when a ``/v1/`` request carries the console's cookie instead of a bearer token.
"""

from __future__ import annotations

from aiohttp import web

from alertcast.config import IssuerConfig
from alertcast.console.pages import issuer_named, routes
from alertcast.console.sessions import COOKIE, CSRF_HEADER, SESSIONS, Sessions, same_token

__all__ = ["PREFIX", "is_console", "session_issuer", "setup"]

PREFIX = "/console/"
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


def setup(app: web.Application) -> None:
    app[SESSIONS] = Sessions()
    app.add_routes(routes)


def is_console(path: str) -> bool:
    """The console's own pages: they sign in by themselves (no bearer token)."""
    return path == "/" or path.startswith(PREFIX)


def session_issuer(request: web.Request) -> IssuerConfig | None:
    """The issuer the console's cookie signed in, or None; a change needs the CSRF token."""
    session = request.app[SESSIONS].get(request.cookies.get(COOKIE))
    if session is None:
        return None
    if request.method not in SAFE_METHODS and not same_token(
        request.headers.get(CSRF_HEADER), session.csrf
    ):
        raise web.HTTPForbidden(text=f"a console session's change needs its {CSRF_HEADER} header")
    return issuer_named(request.app, session.issuer)
