"""``alertcast recipients import | count | list``: a per-recipient account's recipients.

Local commands: they open the configured store (``[store] url``) themselves. A SQLite store
admits one process, so import into it while the daemon is stopped (or share PostgreSQL,
where an import runs beside the replicas: one transaction, visible at its commit).

A store that does not answer (its bound ran out, its connection dropped, it refused the
connection) exits 4 with the store's own reason; a file that cannot be read exits 2 naming
the file. The file's read errors are told apart where they happen, never by their type
(``TimeoutError`` and ``ConnectionError`` are ``OSError`` too).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import sys
from collections.abc import AsyncIterator, Iterable, Iterator
from functools import partial
from pathlib import Path
from typing import IO, TYPE_CHECKING, TextIO, TypeVar

from alertcast.cli._client import CliError, ExitCode
from alertcast.cli.local import _config  # the checked configuration, errors by path

if TYPE_CHECKING:
    from alertcast.config import AccountConfig
    from alertcast.store.base import Store

__all__ = ["add_parser"]

Sub = argparse._SubParsersAction
T = TypeVar("T")


class _Unreadable(Exception):
    """The file failed while it was read (the ``OSError`` it raised, as ``cause``)."""

    def __init__(self, cause: OSError) -> None:
        super().__init__(cause.strerror or type(cause).__name__)


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
    async with _store(config.store.url, args.action) as store:
        if args.action == "import":
            out = await _import(store, args, known_codes, account)
        elif args.action == "count":
            out = f"{await store.count_recipients(args.account)}\n"
        else:
            out = await _list(store, args)
    sys.stdout.write(out)  # after the store closed: a broken pipe here is not the store's
    return 0


@contextlib.asynccontextmanager
async def _store(url: str, action: str) -> AsyncIterator[Store]:
    """The store, open; one that does not answer (opening, or under the command) exits 4
    with its own reason (a file that fails is :class:`_Unreadable`, never caught here)."""
    from alertcast.outage import UNANSWERED
    from alertcast.store import open_store
    from alertcast.store.base import StoreInUse

    # The driver's own warnings (a pool refilling its floor, with a traceback) stay unprinted:
    # the one line below says what failed.
    logging.getLogger("asyncpg").addHandler(logging.NullHandler())
    store = open_store(url)
    try:
        await store.open()
    except StoreInUse as exc:
        raise CliError(ExitCode.REFUSED, f"{exc}") from None
    except OSError as exc:  # refused, unanswered, no such host
        raise CliError(ExitCode.UNREACHABLE, _unanswered(store, exc, "open")) from None
    try:
        yield store
    except UNANSWERED as exc:
        raise CliError(ExitCode.UNREACHABLE, _unanswered(store, exc, action)) from None
    finally:
        await store.close()


def _unanswered(store: Store, exc: OSError, action: str) -> str:
    """The line for a store that did not answer: the store, its reason, what to do."""
    line = f"{store.describe()}: {str(exc) or type(exc).__name__}"
    if action != "import":
        return line
    return (
        f"{line}; the import may not have been stored: run it again once the store answers "
        "(the same file stores the same recipients)"
    )


async def _import(
    store: Store, args: argparse.Namespace, known: frozenset[str], account: AccountConfig
) -> str:
    from alertcast.recipients import BadLine, columns_of, read
    from alertcast.store.base import DuplicateRecipient

    rows = partial(read, known=known, columns=columns_of(account))
    with _text(args.file) as stream:
        try:
            held = await store.import_recipients(
                args.account, _read(rows(stream)), replace=args.replace
            )
        except (BadLine, DuplicateRecipient, _Unreadable) as exc:
            raise CliError(ExitCode.USAGE, f"{args.file}: {exc}; nothing was imported") from None
    total = await store.count_recipients(args.account)
    return f"imported {held} recipients into {args.account}; it has {total}\n"


async def _list(store: Store, args: argparse.Namespace) -> str:
    import csv

    if not 1 <= args.limit <= 10_000:
        raise CliError(ExitCode.USAGE, "--limit must be from 1 to 10000")
    rows = await store.list_recipients(args.account, after=args.after, limit=args.limit)
    columns = sorted({k for r in rows for k in r.data})
    text = io.StringIO()
    out = csv.writer(text)
    out.writerow(["id", "region", *columns])
    for r in rows:
        out.writerow([r.id, r.region or "", *(r.data.get(c, "") for c in columns)])
    return text.getvalue()


def _read(rows: Iterable[T]) -> Iterator[T]:
    """``rows``, the file's error while it is read raised as :class:`_Unreadable`: the store's
    errors are ``OSError`` too, and raised from the same call."""
    try:
        yield from rows
    except OSError as exc:
        raise _Unreadable(exc) from exc


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
