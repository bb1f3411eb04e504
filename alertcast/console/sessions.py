"""The console's sign-in: server-side sessions keyed by a random id, and their CSRF tokens.

A token pasted into the sign-in form is checked like a bearer token (the same digests), then
forgotten: the browser holds only ``alertcast_session``, a random id (HttpOnly,
SameSite=Strict, Secure over HTTPS). The session holds the issuer's *name* and a CSRF token;
every state-changing request made with the cookie must carry that token (a hidden field or the
``X-CSRF-Token`` header), compared in constant time. Sessions live in this process's memory:
a restart signs everyone out (docs/console.md says why that is the right trade here).
"""

from __future__ import annotations

import hmac
import secrets
import time
from dataclasses import dataclass, field

from aiohttp import web

from alertcast.config import IssuerConfig

__all__ = [
    "COOKIE",
    "CSRF_FIELD",
    "CSRF_HEADER",
    "PRE_COOKIE",
    "SESSIONS",
    "Session",
    "Sessions",
    "same_token",
    "set_cookie",
]

COOKIE = "alertcast_session"
PRE_COOKIE = "alertcast_signin"  # the sign-in form's own CSRF nonce (double submit)
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf"
IDLE_S = 8 * 3600.0  # a shift
ABSOLUTE_S = 12 * 3600.0
MAX_SESSIONS = 10_000


@dataclass
class Session:
    id: str
    issuer: str
    csrf: str
    started_at: float
    seen_at: float = field(default=0.0)

    def live(self, now: float) -> bool:
        return now - self.seen_at < IDLE_S and now - self.started_at < ABSOLUTE_S


class Sessions:
    """Every signed-in browser of this process, bounded (the oldest go first when full)."""

    def __init__(self) -> None:
        self._by_id: dict[str, Session] = {}

    def start(self, issuer: IssuerConfig) -> Session:
        now = time.time()
        self._prune(now)
        session = Session(secrets.token_urlsafe(32), issuer.name, secrets.token_urlsafe(32), now)
        session.seen_at = now
        self._by_id[session.id] = session
        return session

    def get(self, session_id: str | None) -> Session | None:
        """The live session of ``session_id``; its idle clock restarts."""
        if not session_id:
            return None
        now, session = time.time(), self._by_id.get(session_id)
        if session is None or not session.live(now):
            self._by_id.pop(session_id, None)
            return None
        session.seen_at = now
        return session

    def end(self, session_id: str | None) -> None:
        if session_id:
            self._by_id.pop(session_id, None)

    def _prune(self, now: float) -> None:
        for sid in [s.id for s in self._by_id.values() if not s.live(now)]:
            del self._by_id[sid]
        while len(self._by_id) >= MAX_SESSIONS:
            del self._by_id[next(iter(self._by_id))]


SESSIONS: web.AppKey[Sessions] = web.AppKey("console_sessions", Sessions)


def same_token(given: str | None, expected: str) -> bool:
    """Constant-time comparison; a missing or empty token never matches."""
    return bool(given) and hmac.compare_digest(str(given).encode(), expected.encode())


def set_cookie(
    request: web.Request, response: web.StreamResponse, name: str, value: str, max_age: float
) -> None:
    """A cookie only this site's own pages send back, never readable by script."""
    https = request.secure or request.headers.get("X-Forwarded-Proto", "") == "https"
    response.set_cookie(
        name,
        value,
        max_age=int(max_age),
        path="/",
        httponly=True,
        samesite="Strict",
        secure=https,
    )
