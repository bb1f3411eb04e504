"""Following an incident from a terminal: each delivery's state as it changes, until settled.

``alertcast send --follow`` and the demo use it, over the HTTP API like any client.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp

from alertcast.models import DeliveryState

__all__ = ["delivery_line", "follow"]


async def follow(
    session: aiohttp.ClientSession,
    base: str,
    headers: dict[str, str],
    incident_id: str,
    timeout_s: float,
) -> int:
    """Print each delivery's state as it changes until every one is settled."""
    seen: dict[str, tuple[str, int]] = {}
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        async with session.get(f"{base}/v1/incidents/{incident_id}", headers=headers) as resp:
            view = await resp.json()
        for d in view["deliveries"]:
            now = (d["state"], d["attempts"])
            if seen.get(d["id"]) != now:
                seen[d["id"]] = now
                print(delivery_line(d), flush=True)
        if view["settled"]:
            print("settled: " + ", ".join(f"{k} {v}" for k, v in sorted(view["counts"].items())))
            ok = {DeliveryState.delivered.value, DeliveryState.skipped.value}
            return 0 if set(view["counts"]) <= ok else 1  # failed or dead: exit 1
        if asyncio.get_running_loop().time() > deadline:
            print("still in progress; follow with: alertcast status " + incident_id)
            return 3
        await asyncio.sleep(0.3)


def delivery_line(d: dict[str, Any]) -> str:
    """One delivery: its account, channel, how a correction reaches people (its path), state."""
    extra = d.get("remote_id") or d.get("last_error") or d.get("reason") or ""
    way = d.get("path") or d.get("action") or ""
    return (
        f"  {d['account']:<22} {d['channel']:<14} {way:<9} {d['state']:<10} "
        f"try {d['attempts']}  {extra}"
    )
