"""``alertcast tail``: the live stream, one line per event, reconnecting where it left off."""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp

from alertcast.cli._client import Client, CliError, ExitCode

__all__ = ["tail"]


class _Tail:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.last_id: str | None = args.last_event_id
        self.retry_s = 3.0
        self.shown = 0


async def tail(args: argparse.Namespace) -> int:
    """Print the stream's events until ``--count`` were shown (or for ever, reconnecting after
    a dropped connection or a daemon restart with the last id seen)."""
    state = _Tail(args)
    async with Client(args) as c:
        while True:
            try:
                async for event_id, kind, data in _events(c, state):
                    if kind == "shutdown":
                        print("the daemon is stopping; reconnecting", flush=True)
                        break
                    state.last_id = event_id or state.last_id
                    _show(args, kind, data)
                    state.shown += 1
                    if args.count and state.shown >= args.count:
                        return 0
            except CliError as exc:
                if exc.code != ExitCode.UNREACHABLE or not state.shown:
                    raise
            except aiohttp.ClientPayloadError:
                pass  # the connection dropped mid-event: reconnect from the last id
            await asyncio.sleep(state.retry_s)


async def _events(c: Client, state: _Tail) -> AsyncIterator[tuple[str | None, str, str]]:
    headers = {"Accept": "text/event-stream"}
    if state.last_id:
        headers["Last-Event-ID"] = state.last_id
    params = {"incident_id": state.args.incident} if state.args.incident else {}
    try:
        resp = await c.http.get(
            c.base + "/v1/stream", headers={**c.headers, **headers}, params=params
        )
    except (aiohttp.ClientConnectionError, TimeoutError) as exc:
        raise c.unreachable(exc) from None
    async with resp:
        if resp.status != 200:
            text = await resp.text()
            raise c.refusal(resp.status, _json(text), text)
        async for event in _parse(resp.content, state):
            yield event


async def _parse(
    content: aiohttp.StreamReader, state: _Tail
) -> AsyncIterator[tuple[str | None, str, str]]:
    """Server-sent events as (id, event, data); ``retry:`` sets the reconnection delay."""
    fields: dict[str, str] = {}
    async for raw in content:
        line = raw.decode("utf-8").rstrip("\r\n")
        if not line:
            if "data" in fields:
                yield fields.get("id"), fields.get("event", "message"), fields["data"]
            fields = {}
            continue
        name, _, value = line.partition(":")
        if name == "retry" and value.strip().isdigit():
            state.retry_s = int(value) / 1000
        elif name:
            fields[name] = value.removeprefix(" ")


def _show(args: argparse.Namespace, kind: str, data: str) -> None:
    if args.json:
        print(data, flush=True)
        return
    event = _json(data) or {}
    if kind == "gap":
        print(f"gap: {event.get('detail', 'events were missed')}", flush=True)
        return
    who = event.get("account") or event.get("msg_type") or ""
    what = event.get("state") or ""
    tries = f"try {event['attempts']}" if "attempts" in event else ""
    extra = event.get("last_error") or event.get("reason") or ""
    incident = event.get("incident_id") or event.get("id") or ""
    print(f"{kind:<9} {incident:<30} {who:<22} {what:<10} {tries:<6} {extra}".rstrip(), flush=True)


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None
