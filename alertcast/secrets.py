"""Secrets by reference: the config names environment variables, never values.

A variable ``NAME`` holds the secret itself, or ``NAME_FILE`` names a file that does (the
Docker/Kubernetes secrets convention). :class:`Secrets` resolves on every use, so replacing the
file replaces the token without a restart: an account paused for rejected credentials resumes
by itself once they change.

:class:`Secrets` is also the process's one redactor. :meth:`Secrets.redact` scrubs from any text,
before it is logged or stored:

* every configured value handed out so far, and every credential a channel obtained at run time
  and :meth:`Secrets.remember`-ed (an access token it fetched), as written and as it appears
  percent-encoded in a URL, HTML-escaped or with JSON's escaped slashes;
* whatever value follows a parameter named like a credential — ``access_token=``, ``sign=``,
  ``key=``, ``secret=``, ``token=``, ``signature=``, ``password=`` and names ending so
  (``app_secret``, ``api_key``) — in a query string, a form or JSON (``"sign": "…"``), and the
  token after ``Bearer``: a per-request signature is never remembered, but it always travels
  under its name.
"""

from __future__ import annotations

import hashlib
import html
import os
import re
import threading
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from pathlib import Path
from urllib.parse import quote, quote_plus

__all__ = ["MissingSecret", "Secrets", "scrub_credentials"]

_MIN_REDACT_LEN = 4
RUNTIME_MAX = 256  # remembered run-time credentials (a token lives hours; old ones drop out)
MASK = "***"
_NAME = r"(?:[A-Za-z0-9]+[_-])*(?:access_token|token|sign|signature|key|secret|password)"
_QUERY_PARAM = re.compile(
    rf"(?i)(?<![A-Za-z0-9_-])({_NAME})(=|%3D)((?:\\/|(?!%26)[^&\s\"'<>#\\])+)"
)
_JSON_FIELD = re.compile(rf"(?i)([\"']{_NAME}[\"']\s*:\s*)([\"'])((?:\\.|(?!\2).)*)\2")
_BEARER = re.compile(r"(?i)\b(bearer\s+)[A-Za-z0-9._~+/=-]+")


class MissingSecret(LookupError):
    """A referenced environment variable is not set (or empty)."""

    def __init__(self, variable: str) -> None:
        super().__init__(f"environment variable {variable} is not set")
        self.variable = variable


def scrub_credentials(text: str) -> str:
    """``text`` with the value of every credential-named parameter or field masked."""
    if "=" in text or "%3D" in text or "%3d" in text:  # cheap tests first: logs call this a lot
        text = _QUERY_PARAM.sub(rf"\1\2{MASK}", text)
    if ":" in text:
        text = _JSON_FIELD.sub(rf"\1\2{MASK}\2", text)
    if "earer" in text or "EARER" in text:
        text = _BEARER.sub(rf"\1{MASK}", text)
    return text


def _forms(value: str) -> Iterator[str]:
    """``value`` as written and as URLs, HTML and JSON may show it."""
    yield value
    yield quote(value, safe="")
    yield quote_plus(value, safe="")
    yield html.escape(value)
    yield value.replace("/", "\\/")


class Secrets:
    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self._environ = os.environ if environ is None else environ
        self._configured: set[str] = set()
        self._runtime: OrderedDict[str, None] = OrderedDict()
        self._pattern: re.Pattern[str] | None = None
        self._stale = False
        self._lock = threading.Lock()

    def _lookup(self, variable: str) -> str:
        value = self._environ.get(variable, "")
        path = self._environ.get(f"{variable}_FILE", "")
        if not value and path:
            try:
                value = Path(path).read_text(encoding="utf-8").strip()
            except OSError:
                value = ""
        return value

    def get(self, variable: str) -> str:
        """The value of ``variable`` (or of the file ``variable_FILE`` names); raises
        :class:`MissingSecret` when neither gives one."""
        value = self._lookup(variable)
        if not value:
            raise MissingSecret(variable)
        if len(value) >= _MIN_REDACT_LEN and value not in self._configured:
            with self._lock:
                self._configured.add(value)
                self._stale = True
        return value

    def remember(self, value: str) -> str:
        """Scrub ``value`` — a credential obtained at run time, such as a fetched access
        token — from everything :meth:`redact` sees from now on; returns it. The latest
        :data:`RUNTIME_MAX` are kept (an older token has long expired)."""
        if len(value) < _MIN_REDACT_LEN:
            return value
        with self._lock:
            if value not in self._runtime:
                self._runtime[value] = None
                while len(self._runtime) > RUNTIME_MAX:
                    self._runtime.popitem(last=False)
                self._stale = True
            self._runtime.move_to_end(value)
        return value

    def has(self, variable: str) -> bool:
        return bool(self._lookup(variable))

    def fingerprint(self, variables: list[str]) -> str:
        """A digest of the current values: it changes when any of the secrets is replaced."""
        digest = hashlib.sha256()
        for variable in variables:
            digest.update(self._lookup(variable).encode() + b"\0")
        return digest.hexdigest()

    def redact(self, text: str) -> str:
        """``text`` without any secret: every value handed out or remembered so far, and every
        credential-named parameter's value, replaced by ``***``."""
        pattern = self._current()
        if pattern is not None:
            text = pattern.sub(MASK, text)
        return scrub_credentials(text)

    def _current(self) -> re.Pattern[str] | None:
        if not self._stale:
            return self._pattern
        with self._lock:
            values = {form for v in (*self._configured, *self._runtime) for form in _forms(v)}
            longest_first = sorted(values, key=len, reverse=True)
            alternatives = "|".join(map(re.escape, longest_first))
            self._pattern = re.compile(alternatives) if alternatives else None
            self._stale = False
            return self._pattern
