"""``alertcast recipients import | count | list``: a per-recipient account's recipients.

Local commands: they open the configured store (``[store] url``) themselves. A SQLite store
admits one process, so import into it while the daemon is stopped (or share PostgreSQL,
where an import runs beside the replicas: one transaction, visible at its commit).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
from collections.abc import AsyncIterator, Iterator
from functools import partial
from pathlib import Path
from typing import IO, TYPE_CHECKING, TextIO

from alertcast.cli._client import CliError, ExitCode
from alertcast.cli.local import _config  # the checked configuration, errors by path

if TYPE_CHECKING:
    from alertcast.config import AccountConfig
    from alertcast.store.base import Store

__all__ = ["add_parser"]

Sub = argparse._SubParsersAction


def add_parser(sub: Sub[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "recipients",
        help="load, count or list a per-recipient account's recipients (local: opens the store)",
    )
    what = p.add_subparsers(
        dest="action", required=True, metavar="ACTION", help="import, count or list"
    )
    i = what.add_parser("import", help="load a CSV (id, optional region, the channel's columns)")
    i.add_argument("account", help="the account's id")
    i.add_argument("file", help="the CSV file; - reads standard input")
    i.add_argument(
        "--replace", action="store_true", help="the account's recipients become the file's only"
    )
    c = what.add_parser("count", help="how many recipients the account has")
    c.add_argument("account", help="the account's id")
    ls = what.add_parser("list", help="the account's recipients, by id, as CSV")
    ls.add_argument("account", help="the account's id")
    ls.add_argument("--after", default="", help="only ids after this one (the next page)")
    ls.add_argument("--limit", type=int, default=100, help="at most this many (default 100)")
    for each in (i, c, ls):
        each.add_argument("--config", help="TOML file (default $ALERTCAST_CONFIG)")
        each.set_defaults(run=run)


async def run(args: argparse.Namespace) -> int:
    from alertcast.recipients import NotPerRecipient, per_recipient_account

    config = _config(args.config, check_env=False)
    try:
        account = per_recipient_account(config, args.account)
    except NotPerRecipient as exc:
        raise CliError(ExitCode.USAGE, str(exc)) from None
    if account is None:
        known = ", ".join(a.id for a in config.accounts) or "none"
        raise CliError(ExitCode.NOT_FOUND, f"no account {args.account!r} (accounts: {known})")
    known_codes = frozenset(
        {*config.regions.known, *config.regions.parents, *config.regions.parents.values()}
    )
    async with _store(config.store.url) as store:
        if args.action == "import":
            return await _import(store, args, known_codes, account)
        if args.action == "count":
            print(await store.count_recipients(args.account))
            return 0
        return await _list(store, args)


@contextlib.asynccontextmanager
async def _store(url: str) -> AsyncIterator[Store]:
    from alertcast.store import open_store
    from alertcast.store.base import StoreInUse

    store = open_store(url)
    try:
        await store.open()
    except StoreInUse as exc:
        raise CliError(ExitCode.REFUSED, f"{exc}") from None
    try:
        yield store
    finally:
        await store.close()


async def _import(
    store: Store, args: argparse.Namespace, known: frozenset[str], account: AccountConfig
) -> int:
    from alertcast.recipients import BadLine, columns_of, read
    from alertcast.store.base import DuplicateRecipient

    rows = partial(read, known=known, columns=columns_of(account))
    with _text(args.file) as stream:
        try:
            held = await store.import_recipients(args.account, rows(stream), replace=args.replace)
        except (BadLine, DuplicateRecipient) as exc:
            raise CliError(ExitCode.USAGE, f"{args.file}: {exc}; nothing was imported") from None
        except OSError as exc:  # the file, while it was read (the store's own errors aside)
            why = exc.strerror or type(exc).__name__
            raise CliError(ExitCode.USAGE, f"{args.file}: {why}; nothing was imported") from None
    total = await store.count_recipients(args.account)
    print(f"imported {held} recipients into {args.account}; it has {total}")
    return 0


async def _list(store: Store, args: argparse.Namespace) -> int:
    import csv

    if not 1 <= args.limit <= 10_000:
        raise CliError(ExitCode.USAGE, "--limit must be from 1 to 10000")
    rows = await store.list_recipients(args.account, after=args.after, limit=args.limit)
    columns = sorted({k for r in rows for k in r.data})
    out = csv.writer(sys.stdout)
    out.writerow(["id", "region", *columns])
    for r in rows:
        out.writerow([r.id, r.region or "", *(r.data.get(c, "") for c in columns)])
    return 0


@contextlib.contextmanager
def _text(path: str) -> Iterator[TextIO]:
    """The file (``-``: standard input) as UTF-8 text read as it goes, never whole; bytes that
    are not UTF-8 kept as surrogates, for the reader to name their line and column."""
    binary: IO[bytes]
    if path == "-":
        binary = sys.stdin.buffer
    else:
        try:
            binary = Path(path).open("rb")  # noqa: SIM115 - closed below
        except OSError as exc:
            raise CliError(
                ExitCode.USAGE, f"{path}: {exc.strerror or type(exc).__name__}"
            ) from None
    stream = io.TextIOWrapper(binary, encoding="utf-8-sig", errors="surrogateescape", newline="")
    try:
        yield stream
    finally:
        if path != "-":
            stream.close()
