"""Following an incident from a terminal: every delivery's state as it changes, until settled.

``alertcast send --follow`` (and ``update``, ``cancel``, ``approve`` with ``--follow``) and the
demo use it, over the HTTP API like any client. On a terminal it is a live table (rich): one row
per delivery with its state, attempts, when it is retried next and why; elsewhere (a pipe, a
log) one line per change. Either way it ends with a summary: each delivery's path (how a
correction reached people: timeline, thread, withdraw, …), its state and what the platform said.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import aiohttp
from rich.console import Console
from rich.live import Live
from rich.table import Table

__all__ = ["delivery_line", "follow", "summary_table"]

POLL_S = 0.3
LOG_WIDTH = 160
OK = {"delivered", "skipped"}  # the API's state names (no models import: a quick start)
STYLES = {"delivered": "green", "failed": "red", "dead": "red", "retrying": "yellow"}


async def follow(
    session: aiohttp.ClientSession,
    base: str,
    headers: dict[str, str],
    incident_id: str,
    timeout_s: float,
    *,
    live: bool | None = None,
) -> int:
    """Show each delivery's state until every one is settled: 0 when all were delivered or
    skipped, 1 when one failed or died, 3 when ``timeout_s`` ran out first."""
    console = Console(highlight=False)
    live = console.is_terminal if live is None else live
    if not console.is_terminal:
        console.width = LOG_WIDTH  # a pipe or a log: no terminal to fit, keep rows whole
    deadline = asyncio.get_running_loop().time() + timeout_s
    seen: dict[str, tuple[str, int]] = {}
    with Live(console=console, auto_refresh=False, transient=True) if live else _Quiet() as board:
        while True:
            view = await _view(session, base, headers, incident_id)
            if board is not None:
                board.update(_table(view, f"{incident_id}: following"), refresh=True)
            else:
                _print_changes(view, seen)
            if view["settled"] or asyncio.get_running_loop().time() > deadline:
                break
            await asyncio.sleep(POLL_S)
    return _close(console, view, incident_id)


class _Quiet:
    """No live board (not a terminal): changes are printed as lines instead."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


async def _view(
    session: aiohttp.ClientSession, base: str, headers: dict[str, str], incident_id: str
) -> dict[str, Any]:
    async with session.get(f"{base}/v1/incidents/{incident_id}", headers=headers) as resp:
        resp.raise_for_status()
        view: dict[str, Any] = await resp.json()
    return view


def _print_changes(view: dict[str, Any], seen: dict[str, tuple[str, int]]) -> None:
    for d in view["deliveries"]:
        now = (d["state"], d["attempts"])
        if seen.get(d["id"]) != now:
            seen[d["id"]] = now
            print(delivery_line(d), flush=True)


def _close(console: Console, view: dict[str, Any], incident_id: str) -> int:
    console.print(summary_table(view))
    counts = ", ".join(f"{k} {v}" for k, v in sorted(view["counts"].items()))
    if not view["settled"]:
        print(f"still in progress ({counts}); follow with: alertcast show {incident_id}")
        return 3
    print(f"settled: {counts}", flush=True)
    return 0 if set(view["counts"]) <= OK else 1  # failed or dead: exit 1


def summary_table(view: dict[str, Any]) -> Table:
    """Every delivery as it ended: its account, path, state, attempts and what was said."""
    return _table(view, f"{view['id']}  {view.get('kind', '')}/{view.get('state', '')}")


def _table(view: dict[str, Any], title: str) -> Table:
    table = Table(title=title, title_justify="left", expand=False)
    for column in ("account", "channel", "path", "state", "try", "next try"):
        table.add_column(column, no_wrap=True)
    table.add_column("detail", overflow="fold")
    for d in view["deliveries"]:
        style = STYLES.get(d["state"], "")
        table.add_row(
            d["account"],
            d["channel"],
            d.get("path") or d.get("action") or "",
            f"[{style}]{d['state']}[/]" if style else d["state"],
            f"{d['attempts']}/{d.get('max_attempts', '?')}",
            _next_try(d),
            _detail(d),
        )
    return table


def _next_try(d: dict[str, Any]) -> str:
    """When a retrying delivery goes again: ``in 12s (01:02:03Z)``."""
    at = d.get("next_attempt_at")
    if d["state"] != "retrying" or not at:
        return ""
    when = datetime.fromisoformat(str(at).replace("Z", "+00:00"))
    wait_s = max(0, round((when - datetime.now(UTC)).total_seconds()))
    return f"in {wait_s}s ({when.astimezone(UTC):%H:%M:%S}Z)"


def _detail(d: dict[str, Any]) -> str:
    return str(d.get("remote_id") or d.get("last_error") or d.get("reason") or "")


def delivery_line(d: dict[str, Any]) -> str:
    """One delivery: its account, channel, how a correction reaches people (its path), state."""
    way = d.get("path") or d.get("action") or ""
    retry = f"  next {_next_try(d)}" if _next_try(d) else ""
    return (
        f"  {d['account']:<22} {d['channel']:<14} {way:<9} {d['state']:<10} "
        f"try {d['attempts']}  {_detail(d)}{retry}"
    )
