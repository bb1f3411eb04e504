"""``alertcast send``: an incident from a file, standard input or the quick form, to the daemon."""

from __future__ import annotations

import argparse
import json
from datetime import datetime
from typing import Any

from alertcast.cli._client import Client, CliError, ExitCode, read_input
from alertcast.follow import follow

__all__ = ["QUICK", "send"]

QUICK = ("kind", "headline", "area", "text")  # the quick form's required options
CAP = "application/cap+xml"


def _value(raw: str) -> Any:
    """A ``--detail`` value: JSON when it reads as JSON (numbers, true), else the text."""
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def quick_incident(args: argparse.Namespace) -> dict[str, Any]:
    """The incident the quick form describes (the daemon validates it like any other)."""
    missing = [f"--{k}" for k in QUICK if not getattr(args, k)]
    if missing:
        raise CliError(ExitCode.USAGE, f"the quick form also needs {', '.join(missing)}")
    codes = [c.strip() for given in args.area for c in given.split(",") if c.strip()]
    details = {}
    for pair in args.detail or []:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise CliError(ExitCode.USAGE, f"--detail {pair!r}: write it as key=value")
        details[key] = _value(raw)
    incident: dict[str, Any] = {
        "kind": args.kind,
        "status": args.status,
        "severity": args.severity,
        "headline": args.headline,
        "description": args.text,
        "area": {"name": args.area_name or " ".join(codes), "codes": codes},
        "occurred_at": args.occurred_at or datetime.now().astimezone().isoformat(),
        "language": args.language,
    }
    optional = {"instruction": args.instruction, "expires_at": args.expires_at, "url": args.link}
    return {**incident, **{k: v for k, v in optional.items() if v}, "details": details}


def _body(args: argparse.Namespace) -> tuple[bytes, str]:
    """What to post and its media type: the file (or ``-``), or the quick form."""
    quick = any(getattr(args, k) for k in QUICK)
    if args.file and quick:
        raise CliError(ExitCode.USAGE, "give a file (or -) or the quick form, not both")
    if not args.file:
        if not quick:
            raise CliError(
                ExitCode.USAGE,
                "nothing to send: give a JSON or CAP file, - for standard input, or the quick "
                "form (--kind general --headline … --area 510100 --text …)",
            )
        return json.dumps(quick_incident(args), ensure_ascii=False).encode(), "application/json"
    body = read_input(args.file)
    is_cap = args.file.endswith(".xml") or body.lstrip()[:1] == b"<"
    return body, CAP if is_cap else "application/json"


async def send(args: argparse.Namespace) -> int:
    body, ctype = _body(args)
    headers = {"Content-Type": ctype}
    if args.idempotency_key:
        headers["Idempotency-Key"] = args.idempotency_key
    async with Client(args) as c:
        answer = await c.call("POST", "/v1/incidents", data=body, headers=headers)
        print(f"accepted {answer['id']}: {len(answer['deliveries'])} deliveries", flush=True)
        if not args.follow:
            print(json.dumps(answer, ensure_ascii=False, indent=2))
            return 0
        return await follow(c.http, c.base, c.headers, answer["id"], args.timeout)
