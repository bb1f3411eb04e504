"""The console's fixtures: a daemon with an author, an approver, a reader and an operator, two
file accounts (one rendering Weibo's format, counted in Weibo units), the two-person rule on
extreme incidents; and sign-in through the real form."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from tests.conftest import Daemon, DaemonFactory

TOKENS = {
    "author": "tok-console-author-2b7e91f0c4",
    "approver": "tok-console-approver-88a1d3e5f2",
    "reader": "tok-console-reader-4c0f6a9b13",
    "operator": "tok-console-operator-7d2e5c8a60",
}
ROLES = {
    "author": ["submit", "read"],
    "approver": ["approve", "submit", "read"],
    "reader": ["read"],
    "operator": ["operate", "read"],
}
NONCE = re.compile(r'name="csrf" value="([^"]+)"')


def console_config(tmp_path: Path) -> dict[str, Any]:
    """The ``[[issuers]]`` and ``[[accounts]]`` every console test runs with."""
    issuers = [
        {"name": name, "token_env": f"T_CONSOLE_{name.upper()}", "roles": roles}
        for name, roles in ROLES.items()
    ]
    accounts = [
        {
            "id": "board",
            "channel": "file",
            "path": str(tmp_path / "board.jsonl"),
            "format": "weibo",
        },
        {"id": "robot", "channel": "file", "path": str(tmp_path / "robot.jsonl")},
        {
            "id": "drills",
            "channel": "file",
            "path": str(tmp_path / "drills.jsonl"),
            "exercise": True,
        },
    ]
    return {"issuers": issuers, "accounts": accounts, "approval": {"severities": ["extreme"]}}


@pytest.fixture
def console_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, token in TOKENS.items():
        monkeypatch.setenv(f"T_CONSOLE_{name.upper()}", token)


@pytest.fixture
async def daemon(start_daemon: DaemonFactory, console_env: None, tmp_path: Path) -> Daemon:
    d: Daemon = await start_daemon(hooks=0, **console_config(tmp_path))
    return d


async def sign_in(client: TestClient[Any, Any], who: str) -> str:
    """Sign ``who`` in through the form (its nonce cookie and field); the session's CSRF token."""
    form = await client.get("/console/sign-in")
    nonce = NONCE.search(await form.text())
    assert nonce is not None
    resp = await client.post(
        "/console/sign-in",
        data={"token": TOKENS[who], "csrf": nonce.group(1)},
        allow_redirects=False,
    )
    assert resp.status == 303, await resp.text()
    page = await client.get("/console/")
    found = re.search(r'name="csrf-token" content="([^"]+)"', await page.text())
    assert found is not None
    return found.group(1)
