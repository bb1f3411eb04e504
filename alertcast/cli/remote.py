"""The commands that read and change a running daemon's incidents, deliveries and accounts."""

from __future__ import annotations

import argparse
import json
from typing import Any
from urllib.parse import quote

from alertcast.cli._client import Client, CliError, ExitCode, read_input
from alertcast.follow import delivery_line, follow

__all__ = ["COMMANDS"]


def _print_json(data: Any) -> None:
    print(json.dumps(data, ensure_ascii=False, indent=2))


def _id(raw: str) -> str:
    return quote(raw, safe="")


async def incidents(args: argparse.Namespace) -> int:
    query = {k: v for k in ("kind", "state", "status", "limit") if (v := getattr(args, k))}
    async with Client(args) as c:
        answer = await c.call("GET", "/v1/incidents", params={k: str(v) for k, v in query.items()})
    if args.json:
        _print_json(answer)
        return 0
    for i in answer["incidents"]:
        kind = f"{i['kind']}/{i['status']}"
        print(f"{i['id']}  {i['created_at'] or '':<25} {kind:<20} {i['state']:<18} {i['headline']}")
    if not answer["incidents"]:
        print("no incidents")
    return 0


async def show(args: argparse.Namespace) -> int:
    async with Client(args) as c:
        view = await c.call("GET", f"/v1/incidents/{_id(args.id)}")
    if args.json:
        _print_json(view)
        return 0
    print(f"{view['id']}  {view['kind']}/{view['status']}  {view['state']}  {view['headline']}")
    if view.get("references"):
        print(f"  corrects {view['references']}")
    for d in view["deliveries"]:
        print(delivery_line(d))
    print("counts: " + ", ".join(f"{k} {v}" for k, v in sorted(view["counts"].items())))
    if view.get("follow_ups"):
        print("follow-ups: " + ", ".join(view["follow_ups"]))
    return 0


def _patch(args: argparse.Namespace) -> dict[str, Any]:
    patch: dict[str, Any] = {}
    if args.file:
        raw = read_input(args.file)
        try:
            patch = json.loads(raw)
        except ValueError as exc:
            raise CliError(ExitCode.USAGE, f"{args.file} is not JSON: {exc}") from None
        if not isinstance(patch, dict):
            raise CliError(ExitCode.USAGE, f"{args.file}: the update must be a JSON object")
    for key in ("headline", "severity", "instruction", "expires_at"):
        if (value := getattr(args, key)) is not None:
            patch[key] = value
    if args.text is not None:
        patch["description"] = args.text
    if not patch:
        raise CliError(ExitCode.USAGE, "nothing to update: give a JSON file (or -) or --headline …")
    return patch


async def _followed(c: Client, args: argparse.Namespace, answer: dict[str, Any]) -> int:
    """Print what was accepted; with ``--follow``, follow it until settled."""
    count = len(answer.get("deliveries") or [])
    print(f"accepted {answer['id']}: {answer['state']}, {count} deliveries", flush=True)
    if not getattr(args, "follow", False):
        return 0
    return await follow(c.http, c.base, c.headers, answer["id"], args.timeout)


async def update(args: argparse.Namespace) -> int:
    patch = _patch(args)
    async with Client(args) as c:
        answer = await c.call("POST", f"/v1/incidents/{_id(args.id)}/update", json=patch)
        return await _followed(c, args, answer)


async def cancel(args: argparse.Namespace) -> int:
    async with Client(args) as c:
        path = f"/v1/incidents/{_id(args.id)}/cancel"
        answer = await c.call("POST", path, json={"reason": args.reason})
        return await _followed(c, args, answer)


async def reject(args: argparse.Namespace) -> int:
    async with Client(args) as c:
        path = f"/v1/incidents/{_id(args.id)}/reject"
        answer = await c.call("POST", path, json={"reason": args.reason})
        print(f"rejected {answer['id']} by {answer['rejected_by']}: {answer['reason']}")
        return 0


async def approve(args: argparse.Namespace) -> int:
    async with Client(args) as c:
        answer = await c.call("POST", f"/v1/incidents/{_id(args.id)}/approve")
        print(f"approved {answer['id']} by {answer['approved_by']}: {answer['released']} released")
        if not args.follow:
            return 0
        return await follow(c.http, c.base, c.headers, answer["id"], args.timeout)


async def retry(args: argparse.Namespace) -> int:
    async with Client(args) as c:
        d = await c.call("POST", f"/v1/deliveries/{_id(args.id)}/retry")
    print(f"re-driven {d['id']} ({d['incident_id']}):")
    print(delivery_line(d))
    return 0


async def pause(args: argparse.Namespace) -> int:
    async with Client(args) as c:
        path = f"/v1/channels/{_id(args.account)}/pause"
        account = await c.call("POST", path, json={"reason": args.reason})
    print(f"paused {account['id']}: {account['paused']}")
    return 0


async def resume(args: argparse.Namespace) -> int:
    async with Client(args) as c:
        account = await c.call("POST", f"/v1/channels/{_id(args.account)}/resume")
    print(f"resumed {account['id']}: {'healthy' if account['healthy'] else 'not healthy yet'}")
    return 0


async def accounts(args: argparse.Namespace) -> int:
    async with Client(args) as c:
        answer = await c.call("GET", "/v1/channels")
    if args.json:
        _print_json(answer)
        return 0
    for a in answer["accounts"]:
        print(_account_line(a))
    return 0


def _account_line(a: dict[str, Any]) -> str:
    health = "healthy" if a["healthy"] else "UNHEALTHY"
    silent = "never delivered" if a["silent_for_s"] is None else f"silent {a['silent_for_s']}s"
    why = f"  paused: {a['paused']}" if a["paused"] else ""
    error = f"  last error: {a['last_error']}" if a["last_error"] and not why else ""
    return (
        f"{a['id']:<24} {a['channel']:<14} {health:<9} failures in a row "
        f"{a['consecutive_failures']}, {silent}{why}{error}"
    )


async def feeds(args: argparse.Namespace) -> int:
    async with Client(args) as c:
        answer = await c.call("GET", "/v1/feeds")
    if args.json:
        _print_json(answer)
        return 0
    for f in answer["feeds"]:
        last = f.get("last_success_at") or "never"
        error = f"  last error: {f['last_error']}" if f.get("last_error") else ""
        print(
            f"{f['name']:<20} {f['type']:<8} last success {last}, events {f['events_seen']}{error}"
        )
    if not answer["feeds"]:
        print("no feeds (or none this token may read)")
    return 0


COMMANDS = {
    "incidents": incidents,
    "show": show,
    "update": update,
    "cancel": cancel,
    "approve": approve,
    "reject": reject,
    "retry": retry,
    "pause": pause,
    "resume": resume,
    "accounts": accounts,
    "feeds": feeds,
}
