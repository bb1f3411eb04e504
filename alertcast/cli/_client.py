"""The CLI's one door to a running daemon: its URL, the token, and every failure as one line.

A command raises :class:`CliError` with an :class:`ExitCode` and a line a person can act on;
:func:`alertcast.cli.main` prints it and exits with the code. Nothing here prints a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
from enum import IntEnum
from pathlib import Path
from types import TracebackType
from typing import Any

import aiohttp

__all__ = ["DEFAULT_TOKEN_ENV", "CliError", "Client", "ExitCode", "read_input"]

DEFAULT_TOKEN_ENV = "ALERTCAST_TOKEN"
DEFAULT_URL = "http://127.0.0.1:8080"


class ExitCode(IntEnum):
    """What ``alertcast`` exits with (README "Using it", ``alertcast --help``)."""

    OK = 0
    REFUSED = 1  # the daemon refused the request, or a delivery ended failed or dead
    USAGE = 2  # bad arguments or input: a missing file, not JSON, CAP to render, a bad config
    PENDING = 3  # --follow's --timeout ran out before every delivery settled
    UNREACHABLE = 4  # no daemon answers at the URL, or it failed; recipients: no store answers
    AUTH = 5  # no token (variable unset, its _FILE missing), or the daemon refused it
    NOT_FOUND = 6  # no such incident, delivery, account or feed (or not in the token's scope)


EXIT_CODES_HELP = """exit codes:
  0  done
  1  the daemon refused the request (the fields at fault are listed),
     or a followed delivery ended failed or dead
  2  bad arguments or input: a missing or unreadable file, not JSON,
     CAP given to render, an unusable configuration
  3  --follow: still in progress when --timeout ran out
  4  the daemon cannot be reached at --url / $ALERTCAST_URL, or failed;
     recipients: the store did not answer (or dropped the connection)
  5  no token ($ALERTCAST_TOKEN unset, or its _FILE missing), or the
     daemon refused it (unknown token, or a role it lacks)
  6  no such incident, delivery, account or feed (or outside the token's scope)"""


class CliError(Exception):
    def __init__(self, code: ExitCode, line: str, more: list[str] | None = None) -> None:
        super().__init__(line)
        self.code, self.line, self.more = code, line, more or []


def base_url(args: argparse.Namespace) -> str:
    return str(args.url or os.environ.get("ALERTCAST_URL") or DEFAULT_URL).rstrip("/")


def token(variable: str) -> str:
    """The token in ``variable``, or in the file ``variable_FILE`` names."""
    if value := os.environ.get(variable, "").strip():
        return value
    if path := os.environ.get(f"{variable}_FILE", ""):
        try:
            if value := Path(path).read_text(encoding="utf-8").strip():
                return value
        except OSError as exc:
            why = exc.strerror or type(exc).__name__
            raise CliError(ExitCode.AUTH, f"{variable}_FILE names {path}: {why}") from None
        raise CliError(ExitCode.AUTH, f"{variable}_FILE names {path}, which is empty")
    raise CliError(
        ExitCode.AUTH,
        f"set {variable} to your issuer token (or {variable}_FILE to a file holding it, "
        "or pass --token-env NAME)",
    )


def read_input(path: str) -> bytes:
    """The bytes of ``path`` (``-``: standard input), or a usage error naming the file."""
    import sys

    if path == "-":
        return sys.stdin.buffer.read()
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise CliError(ExitCode.USAGE, f"{path}: {exc.strerror or type(exc).__name__}") from None


class Client:
    """One session to the daemon at ``--url`` with the token of ``--token-env``."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.base = base_url(args)
        self.variable = str(args.token_env)
        self.headers = {"Authorization": f"Bearer {token(self.variable)}"}
        self.session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Client:
        timeout = aiohttp.ClientTimeout(total=None, connect=10, sock_read=None)
        self.session = aiohttp.ClientSession(timeout=timeout)
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.session is not None:
            await self.session.close()

    @property
    def http(self) -> aiohttp.ClientSession:
        assert self.session is not None, "use the client in `async with`"
        return self.session

    async def call(self, method: str, path: str, **kw: Any) -> Any:
        """The JSON answer of a 2xx; every other outcome as a :class:`CliError`."""
        headers = {**self.headers, **kw.pop("headers", {})}
        try:
            async with self.http.request(method, self.base + path, headers=headers, **kw) as resp:
                text = await resp.text()
                status = resp.status
        except (aiohttp.ClientConnectionError, TimeoutError) as exc:
            raise self.unreachable(exc) from None
        answer = _json(text)
        if status >= 300:
            raise self.refusal(status, answer, text)
        if answer is None:
            raise CliError(ExitCode.UNREACHABLE, f"{self.base} answered {status} without JSON")
        return answer

    def unreachable(self, exc: BaseException) -> CliError:
        why = str(exc) or type(exc).__name__
        return CliError(
            ExitCode.UNREACHABLE,
            f"cannot reach the daemon at {self.base} ({why}); is `alertcast serve` running? "
            "(--url or $ALERTCAST_URL says where)",
        )

    def refusal(self, status: int, answer: Any, text: str) -> CliError:
        detail = answer.get("detail") if isinstance(answer, dict) else None
        detail = str(detail or text.strip()[:200] or "(no detail)")
        errors = answer.get("errors") if isinstance(answer, dict) else None
        more = [f"  {e.get('field')}: {e.get('message')}" for e in errors or []]
        if status == 401:
            return CliError(
                ExitCode.AUTH, f"the daemon refused the token in ${self.variable}: {detail}"
            )
        if status == 403:
            return CliError(ExitCode.AUTH, f"not allowed: {detail}")
        if status == 404:
            return CliError(ExitCode.NOT_FOUND, f"not found: {detail}")
        if status >= 500:
            return CliError(ExitCode.UNREACHABLE, f"the daemon failed ({status}): {detail}")
        return CliError(ExitCode.REFUSED, f"refused ({status}): {detail}", more)


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None
