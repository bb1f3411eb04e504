"""``alertcast``: run the daemon, and operate a running one over its HTTP API.

The daemon: ``serve``, ``demo``; offline: ``check-config``, ``render``, ``recipients`` (a
per-recipient account's recipients, in the store); over the API (a token in
``$ALERTCAST_TOKEN`` or the file ``$ALERTCAST_TOKEN_FILE`` names, the daemon at ``--url`` or
``$ALERTCAST_URL``): ``send``, ``incidents``, ``show``, ``update``, ``cancel``, ``approve``,
``reject``, ``retry``, ``pause``, ``resume``, ``accounts``, ``feeds``, ``tail``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable, Sequence

from alertcast import __version__
from alertcast.cli import local
from alertcast.cli import recipients as recipients_cli
from alertcast.cli._client import DEFAULT_TOKEN_ENV, EXIT_CODES_HELP, CliError, ExitCode
from alertcast.cli.remote import COMMANDS
from alertcast.cli.send import send
from alertcast.cli.tail import tail

__all__ = ["ExitCode", "main", "parser"]

Remote = Callable[[argparse.Namespace], Awaitable[int]]
Sub = argparse._SubParsersAction
KINDS = ("earthquake", "fire", "police", "weather", "general")
DESCRIPTION = """Run the alertcast daemon, and operate a running one over its HTTP API.

The daemon: serve, demo. Offline: check-config, render, recipients (opens the store). Over the
API (the daemon at --url or $ALERTCAST_URL, default http://127.0.0.1:8080; an issuer token in
$ALERTCAST_TOKEN, or in the file $ALERTCAST_TOKEN_FILE names): send, incidents, show, update,
cancel, approve, reject, retry, pause, resume, accounts, feeds, tail. `alertcast COMMAND --help`
says more."""
SEVERITIES = ("extreme", "severe", "moderate", "minor", "unknown")


def _client_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--url", help="the daemon's URL (default $ALERTCAST_URL or http://127.0.0.1:8080)"
    )
    p.add_argument(
        "--token-env",
        default=DEFAULT_TOKEN_ENV,
        metavar="NAME",
        help="the variable holding the issuer token, or NAME_FILE a file holding it "
        f"(default {DEFAULT_TOKEN_ENV})",
    )


def _remote(
    sub: Sub[argparse.ArgumentParser], name: str, func: Remote, helptext: str
) -> argparse.ArgumentParser:
    p = sub.add_parser(name, help=helptext, description=helptext)
    _client_options(p)
    p.set_defaults(run=func)
    return p


def _follow_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--follow", action="store_true", help="show every delivery live until all settle"
    )
    p.add_argument(
        "--timeout", type=float, default=300.0, help="seconds --follow waits (default 300)"
    )


def _json_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print the API's JSON answer as it is")


def _send_parser(sub: Sub[argparse.ArgumentParser]) -> None:
    p = _remote(
        sub, "send", send, "post an incident (a file, - for standard input, or the quick form)"
    )
    p.add_argument("file", nargs="?", help="incident JSON or CAP 1.2 XML; - reads standard input")
    p.add_argument("--idempotency-key", help="replaying the same key returns the first answer")
    _follow_options(p)
    q = p.add_argument_group("quick form (instead of a file)")
    q.add_argument("--kind", choices=KINDS, help="what happened")
    q.add_argument("--headline", help="the one-line headline")
    q.add_argument(
        "--area",
        action="append",
        metavar="CODES",
        help="region codes, e.g. 510100 (repeat or comma-separate)",
    )
    q.add_argument("--area-name", help="the area's name (default: its codes)")
    q.add_argument("--text", help="the description")
    q.add_argument("--instruction", help="what people should do")
    q.add_argument("--severity", choices=SEVERITIES, default="unknown", help="default unknown")
    q.add_argument(
        "--status",
        choices=("actual", "exercise", "test"),
        default="actual",
        help="default actual; exercise and test go only to exercise accounts",
    )
    q.add_argument("--occurred-at", help="ISO 8601 with offset (default now)")
    q.add_argument("--expires-at", help="ISO 8601 with offset")
    q.add_argument("--language", default="zh-CN", help="default zh-CN")
    q.add_argument("--link", help="a URL with the full text")
    q.add_argument(
        "--detail",
        action="append",
        metavar="KEY=VALUE",
        help="one of the kind's details (repeat), e.g. magnitude=6.1",
    )


def _lifecycle_parsers(sub: Sub[argparse.ArgumentParser]) -> None:
    p = _remote(sub, "update", COMMANDS["update"], "post new facts for an incident")
    p.add_argument("id", help="the incident's id")
    p.add_argument(
        "file", nargs="?", help="a JSON object merged over the incident; - reads standard input"
    )
    for key, what in (
        ("headline", "a new headline"),
        ("text", "a new description"),
        ("severity", "a new severity"),
        ("instruction", "new instructions"),
        ("expires-at", "a new expiry, ISO 8601"),
    ):
        p.add_argument(f"--{key}", help=what)
    _follow_options(p)
    p = _remote(sub, "cancel", COMMANDS["cancel"], "cancel an incident everywhere it went")
    p.add_argument("id", help="the incident's id")
    p.add_argument("--reason", required=True, help="why (the cancellation's text says it)")
    _follow_options(p)
    p = _remote(sub, "approve", COMMANDS["approve"], "approve a message held for a second person")
    p.add_argument("id", help="the held incident, update or cancellation")
    _follow_options(p)
    p = _remote(sub, "reject", COMMANDS["reject"], "reject a held message: none of it goes out")
    p.add_argument("id", help="the held incident, update or cancellation")
    p.add_argument("--reason", required=True, help="why (kept in the audit trail)")


def _operate_parsers(sub: Sub[argparse.ArgumentParser]) -> None:
    p = _remote(sub, "retry", COMMANDS["retry"], "re-drive a failed, dead or skipped delivery")
    p.add_argument("id", help="the delivery's id (alertcast show lists them)")
    p = _remote(sub, "pause", COMMANDS["pause"], "pause an account until it is resumed")
    p.add_argument("account", help="the account's id")
    p.add_argument("--reason", required=True, help="why (shown in alertcast accounts)")
    p = _remote(sub, "resume", COMMANDS["resume"], "resume a paused account")
    p.add_argument("account", help="the account's id")


def _read_parsers(sub: Sub[argparse.ArgumentParser]) -> None:
    p = _remote(sub, "incidents", COMMANDS["incidents"], "list recent incidents")
    p.add_argument("--kind", choices=KINDS, help="only this kind")
    p.add_argument("--state", help="only this state (active, cancelled, awaiting_approval, …)")
    p.add_argument("--status", choices=("actual", "exercise", "test"), help="only this status")
    p.add_argument("--limit", type=int, help="at most this many (default 50)")
    _json_option(p)
    for name, alias in (("show", "status"),):
        for each in (name, alias):
            helptext = "show an incident's deliveries" + ("" if each == name else " (as show)")
            p = _remote(sub, each, COMMANDS["show"], helptext)
            p.add_argument("id", help="the incident's id")
            _json_option(p)
    for name, helptext in (
        ("accounts", "every account's health"),
        ("feeds", "every feed's health"),
    ):
        _json_option(_remote(sub, name, COMMANDS[name], helptext))
    p = _remote(sub, "tail", tail, "print the live stream, reconnecting where it left off")
    p.add_argument("--incident", metavar="ID", help="only this incident's events")
    p.add_argument("--count", type=int, help="stop after this many events")
    p.add_argument(
        "--last-event-id", metavar="ID", help="start after this event (replays what followed)"
    )
    _json_option(p)


def _local_parsers(sub: Sub[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("serve", help="run the daemon")
    p.add_argument("--config", help="TOML file (default $ALERTCAST_CONFIG)")
    p.add_argument("--host", help="listen on this address (default [server] host)")
    p.add_argument("--port", type=int, help="listen on this port (default [server] port)")
    p.set_defaults(run=local.run_serve)
    p = sub.add_parser("check-config", help="explain every problem of a configuration")
    p.add_argument("path", nargs="?", help="TOML file (default $ALERTCAST_CONFIG)")
    p.add_argument("--no-env", action="store_true", help="do not require secrets to be set")
    p.set_defaults(run=local.check_config)
    p = sub.add_parser("render", help="preview every payload of an incident file; sends nothing")
    p.add_argument("file", help="incident JSON; - reads standard input")
    p.add_argument("--account", help="only this account's payload")
    p.add_argument("--config", help="TOML file (default $ALERTCAST_CONFIG)")
    p.set_defaults(run=local.render)
    p = sub.add_parser("demo", help="run the daemon on the example config against local fakes")
    p.add_argument("--config", default=None, help="TOML file (default the example)")
    p.add_argument("--keep", action="store_true", help="keep serving after the demo")
    p.set_defaults(run=local.demo)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="alertcast",
        description=DESCRIPTION,
        epilog=EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--version", action="version", version=f"alertcast {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _local_parsers(sub)
    _send_parser(sub)
    _read_parsers(sub)
    _lifecycle_parsers(sub)
    _operate_parsers(sub)
    recipients_cli.add_parser(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        outcome = args.run(args)
        if asyncio.iscoroutine(outcome):
            outcome = asyncio.run(outcome)
        return int(outcome)
    except CliError as exc:
        print(f"alertcast {args.command}: {exc.line}", file=sys.stderr)
        for line in exc.more:
            print(line, file=sys.stderr)
        return int(exc.code)
    except KeyboardInterrupt:
        return 130
