"""Commands that need no daemon: ``serve`` (it is one), ``check-config``, ``render``, ``demo``."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from alertcast.cli._client import CliError, ExitCode, read_input

if TYPE_CHECKING:
    from alertcast.config import Config

__all__ = ["check_config", "demo", "render", "run_serve"]


def _config(path: str | None, *, check_env: bool) -> Config:
    """The checked configuration (imported here: the client commands start faster without)."""
    from alertcast.checks import load_checked
    from alertcast.config import ConfigError

    try:
        return load_checked(path, check_env=check_env)
    except ConfigError as exc:
        where = (
            path or os.environ.get("ALERTCAST_CONFIG", "") or "(no --config, no $ALERTCAST_CONFIG)"
        )
        more = [f"  {at}: {what}" for at, what in exc.problems]
        raise CliError(ExitCode.USAGE, f"configuration {where} is not usable:", more) from None


def run_serve(args: argparse.Namespace) -> int:
    config = _config(args.config, check_env=True)
    from alertcast.daemon import StartupError, serve
    from alertcast.logs import configure
    from alertcast.secrets import MissingSecret, Secrets

    secrets = Secrets()
    configure(secrets, level=config.logging.level, fmt=config.logging.format)
    try:
        asyncio.run(serve(config, secrets, host=args.host, port=args.port))
    except StartupError as exc:
        print(f"alertcast serve: not started: {exc}", file=sys.stderr)
        return 1
    except MissingSecret as exc:  # e.g. a NAME_FILE that cannot be read
        raise CliError(ExitCode.USAGE, f"not started: {_missing(exc.variable)}") from None
    return 0


def _missing(variable: str) -> str:
    """Why a secret has no value: the variable unset, or the file its ``_FILE`` names."""
    path = os.environ.get(f"{variable}_FILE")
    if not path:
        return f"environment variable {variable} is not set (nor {variable}_FILE)"
    try:
        empty = not Path(path).read_text(encoding="utf-8").strip()
    except OSError as exc:
        return f"{variable}_FILE names {path}: {exc.strerror or type(exc).__name__}"
    return f"{variable}_FILE names {path}, which is empty" if empty else f"{variable}: no value"


def check_config(args: argparse.Namespace) -> int:
    config = _config(args.path, check_env=not args.no_env)
    from alertcast.channels import channel_class
    from alertcast.render import Renderer

    defaults = {a.id: channel_class(a.channel).default_format for a in config.accounts}
    problems = Renderer(config.render).check(list(config.accounts), defaults)
    for where, what in problems:
        print(f"  {where}: {what}", file=sys.stderr)
    if problems:
        return int(ExitCode.USAGE)
    print(
        f"ok: {len(config.issuers)} issuers, {len(config.accounts)} accounts, "
        f"store {config.store.url.split('://')[0]}"
    )
    return 0


def _incident_file(path: str) -> object:
    raw = read_input(path)
    if path.endswith(".xml") or raw.lstrip()[:1] == b"<":
        raise CliError(
            ExitCode.USAGE,
            f"{path} is CAP XML; render previews an incident in JSON (a running daemon previews "
            "CAP: POST it to /v1/render as application/cap+xml)",
        )
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise CliError(ExitCode.USAGE, f"{path} is not JSON: {exc}") from None


def render(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from alertcast.models import parse_incident
    from alertcast.preview import preview
    from alertcast.render import Renderer

    data = _incident_file(args.file)
    config = _config(args.config, check_env=False)
    known = [a.id for a in config.accounts]
    if args.account is not None and args.account not in known:
        raise CliError(
            ExitCode.NOT_FOUND, f"no account {args.account!r}; accounts: {', '.join(known)}"
        )
    try:
        incident = parse_incident(data)
    except ValidationError as exc:
        more = [f"  {'.'.join(map(str, e['loc'][1:]))}: {e['msg']}" for e in exc.errors()]
        raise CliError(ExitCode.USAGE, f"{args.file} is not a valid incident:", more) from None
    result = preview(config, Renderer(config.render), incident, args.account)
    print(json.dumps(result, ensure_ascii=False, indent=2))
    return 1 if any("error" in a for a in result["accounts"]) else 0


def demo(args: argparse.Namespace) -> int:
    from alertcast.demo import run_demo

    return asyncio.run(run_demo(args.config, keep=args.keep))
