"""``alertcast serve | send | status | render | check-config | demo``."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import aiohttp

from alertcast.checks import load_checked
from alertcast.config import Config, ConfigError
from alertcast.daemon import StartupError, serve
from alertcast.follow import delivery_line, follow

__all__ = ["main"]

DEFAULT_TOKEN_ENV = "ALERTCAST_TOKEN"


def _config(path: str | None, *, check_env: bool) -> Config:
    try:
        return load_checked(path, check_env=check_env)
    except ConfigError as exc:
        print(
            f"configuration {path or os.environ.get('ALERTCAST_CONFIG', '')} is not usable:",
            file=sys.stderr,
        )
        for where, what in exc.problems:
            print(f"  {where}: {what}", file=sys.stderr)
        raise SystemExit(2) from None


# -- serve -------------------------------------------------------------------------------------
def cmd_serve(args: argparse.Namespace) -> int:
    config = _config(args.config, check_env=True)
    from alertcast.logs import configure
    from alertcast.secrets import Secrets

    secrets = Secrets()
    configure(secrets, level=config.logging.level, fmt=config.logging.format)
    try:
        asyncio.run(serve(config, secrets, host=args.host, port=args.port))
    except StartupError as exc:
        print(f"alertcast serve: not started: {exc}", file=sys.stderr)
        return 1
    return 0


# -- client commands ---------------------------------------------------------------------------
def _base_url(args: argparse.Namespace) -> str:
    if args.url:
        return str(args.url).rstrip("/")
    if env := os.environ.get("ALERTCAST_URL"):
        return env.rstrip("/")
    return "http://127.0.0.1:8080"


def _headers(args: argparse.Namespace) -> dict[str, str]:
    token = os.environ.get(args.token_env, "")
    if not token:
        raise SystemExit(f"set {args.token_env} to your issuer token (or pass --token-env NAME)")
    return {"Authorization": f"Bearer {token}"}


def cmd_send(args: argparse.Namespace) -> int:
    return asyncio.run(_send(args))


async def _send(args: argparse.Namespace) -> int:
    body = await asyncio.to_thread(Path(args.file).read_bytes)
    ctype = "application/cap+xml" if args.file.endswith(".xml") else "application/json"
    headers = {**_headers(args), "Content-Type": ctype}
    if args.idempotency_key:
        headers["Idempotency-Key"] = args.idempotency_key
    async with aiohttp.ClientSession() as session:
        async with session.post(
            f"{_base_url(args)}/v1/incidents", data=body, headers=headers
        ) as resp:
            answer = await resp.json(content_type=None)
        if resp.status != 202:
            print(f"refused ({resp.status}): {answer.get('detail', answer)}", file=sys.stderr)
            for err in answer.get("errors") or []:
                print(f"  {err['field']}: {err['message']}", file=sys.stderr)
            return 1
        print(f"accepted {answer['id']}: {len(answer['deliveries'])} deliveries")
        if not args.follow:
            print(json.dumps(answer, ensure_ascii=False, indent=2))
            return 0
        return await follow(session, _base_url(args), headers, answer["id"], args.timeout)


def cmd_status(args: argparse.Namespace) -> int:
    async def run() -> int:
        async with (
            aiohttp.ClientSession() as session,
            session.get(
                f"{_base_url(args)}/v1/incidents/{args.id}", headers=_headers(args)
            ) as resp,
        ):
            view = await resp.json(content_type=None)
        if resp.status != 200:
            print(f"{resp.status}: {view.get('detail')}", file=sys.stderr)
            return 1
        print(f"{view['id']}  {view['kind']}/{view['status']}  {view['state']}  {view['headline']}")
        for d in view["deliveries"]:
            print(delivery_line(d))
        print("counts: " + ", ".join(f"{k} {v}" for k, v in sorted(view["counts"].items())))
        return 0

    return asyncio.run(run())


# -- offline commands --------------------------------------------------------------------------
def cmd_check_config(args: argparse.Namespace) -> int:
    config = _config(args.path, check_env=not args.no_env)
    from alertcast.channels import channel_class
    from alertcast.render import Renderer

    defaults = {a.id: channel_class(a.channel).default_format for a in config.accounts}
    problems = Renderer(config.render).check(list(config.accounts), defaults)
    for where, what in problems:
        print(f"  {where}: {what}", file=sys.stderr)
    if problems:
        return 2
    print(
        f"ok: {len(config.issuers)} issuers, {len(config.accounts)} accounts, "
        f"store {config.store.url.split('://')[0]}"
    )
    return 0


def cmd_render(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from alertcast.models import parse_incident
    from alertcast.preview import preview
    from alertcast.render import Renderer

    config = _config(args.config, check_env=False)
    try:
        incident = parse_incident(json.loads(Path(args.file).read_text(encoding="utf-8")))
    except ValidationError as exc:
        for err in exc.errors():
            print(f"  {'.'.join(map(str, err['loc'][1:]))}: {err['msg']}", file=sys.stderr)
        return 2
    result = preview(config, Renderer(config.render), incident, args.account)
    print(json.dumps(result, ensure_ascii=False, indent=2))
    return 1 if any("error" in a for a in result["accounts"]) else 0


def cmd_demo(args: argparse.Namespace) -> int:
    from alertcast.demo import run_demo

    return asyncio.run(run_demo(args.config, keep=args.keep))


# -- wiring ------------------------------------------------------------------------------------
def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="alertcast", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("serve", help="run the daemon")
    s.add_argument("--config", help="TOML file (default $ALERTCAST_CONFIG)")
    s.add_argument("--host")
    s.add_argument("--port", type=int)
    s.set_defaults(func=cmd_serve)
    for name, func, helptext in (
        ("send", cmd_send, "post an incident to a running daemon"),
        ("status", cmd_status, "show an incident's deliveries"),
    ):
        c = sub.add_parser(name, help=helptext)
        c.add_argument("file" if name == "send" else "id")
        c.add_argument("--url", help="daemon URL (default $ALERTCAST_URL or 127.0.0.1:8080)")
        c.add_argument("--token-env", default=DEFAULT_TOKEN_ENV)
        if name == "send":
            c.add_argument("--follow", action="store_true", help="show progress until settled")
            c.add_argument("--idempotency-key")
            c.add_argument("--timeout", type=float, default=300.0)
        c.set_defaults(func=func)
    c = sub.add_parser("check-config", help="explain every problem of a configuration")
    c.add_argument("path", nargs="?")
    c.add_argument("--no-env", action="store_true", help="do not require secrets to be set")
    c.set_defaults(func=cmd_check_config)
    r = sub.add_parser("render", help="preview every payload of an incident file")
    r.add_argument("file")
    r.add_argument("--account")
    r.add_argument("--config")
    r.set_defaults(func=cmd_render)
    d = sub.add_parser("demo", help="run the daemon on the example config against local fakes")
    d.add_argument("--config", default=None)
    d.add_argument("--keep", action="store_true", help="keep serving after the demo")
    d.set_defaults(func=cmd_demo)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    raise SystemExit(main())
