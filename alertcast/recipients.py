"""A per-recipient account's recipients file, read and checked line by line.

``alertcast recipients import ACCOUNT FILE`` streams a CSV (UTF-8, a byte-order mark allowed)
into the store. Its header names ``id`` (required, unique in the file), optionally ``region``
(a GB/T 2260 code, checked as the API checks an area's codes: six digits and a division the
bundled data, or ``[regions] known``, knows; empty: the recipient is everywhere), and the
channel's own columns: for a webhook account with ``per_recipient = true`` any other columns,
kept as the recipient's data and sent in its ``recipient`` object.

:func:`read` yields ``(line, recipient)`` lazily, so a file of a million lines is never held
whole; the first bad line raises :class:`BadLine`, naming the line and the column, and the
store's import (one transaction) then keeps nothing of the file.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from typing import Any, TextIO

from alertcast.channels import channel_class
from alertcast.config import AccountConfig, Config
from alertcast.geocheck import code_problem
from alertcast.store.base import Recipient

__all__ = ["MAX_ID", "BadLine", "NotPerRecipient", "per_recipient_account", "read"]

MAX_ID = 128
_RESERVED = ("id", "region")


class BadLine(ValueError):
    """A line of the file that cannot be imported: where, and why."""

    def __init__(self, line: int, column: str, why: str) -> None:
        super().__init__(f"line {line}, column {column}: {why}")


class NotPerRecipient(ValueError):
    """The account does not send to recipients one by one."""


def per_recipient_account(config: Config, account_id: str) -> AccountConfig | None:
    """The configured account ``account_id`` (None: no such account), if it is per-recipient;
    :class:`NotPerRecipient` saying why not otherwise."""
    account = next((a for a in config.accounts if a.id == account_id), None)
    if account is None:
        return None
    cls = channel_class(account.channel)
    if not cls.per_recipient(cls.Options.model_validate(account.channel_options)):
        how = " (set per_recipient = true)" if account.channel == "webhook" else ""
        raise NotPerRecipient(
            f"account {account_id!r} ({account.channel}) does not send to recipients one by "
            f"one{how}: its recipients would never be used"
        )
    return account


def read(stream: TextIO, known: frozenset[str] = frozenset()) -> Iterator[tuple[int, Recipient]]:
    """``(line, recipient)`` for every record of the CSV ``stream`` (``known``: region codes
    accepted beyond the bundled data); :class:`BadLine` at the first bad one."""
    reader = csv.reader(stream, strict=True)
    header = _header(_next(reader), 1)
    while (fields := _next(reader)) is not None:
        if fields:  # a blank line is no record
            yield reader.line_num, _recipient(header, fields, reader.line_num, known)


def _next(reader: Any) -> list[str] | None:
    try:
        return next(reader, None)
    except csv.Error as exc:
        raise BadLine(reader.line_num, "-", f"not CSV: {exc}") from None
    except UnicodeDecodeError:
        raise BadLine(reader.line_num + 1, "-", "not UTF-8 text") from None


def _header(fields: list[str] | None, line: int) -> list[str]:
    if not fields:
        raise BadLine(line, "id", "the file is empty: its first line must name the columns")
    names = [f.strip() for f in fields]
    for name in names:
        if not name:
            raise BadLine(line, "-", "a column has no name")
        if names.count(name) > 1:
            raise BadLine(line, name, "the column is named twice")
    if "id" not in names:
        raise BadLine(line, "id", f"the header has no id column (it names {', '.join(names)})")
    return names


def _recipient(header: list[str], fields: list[str], line: int, known: frozenset[str]) -> Recipient:
    if len(fields) != len(header):
        column = header[len(fields)] if len(fields) < len(header) else "-"
        why = f"{len(fields)} fields where the header names {len(header)}"
        raise BadLine(line, column, why)
    values = dict(zip(header, fields, strict=True))
    rid = values["id"].strip()
    if not rid or len(rid) > MAX_ID or not rid.isprintable():
        why = f"an id is 1 to {MAX_ID} printable characters, not {values['id'][:40]!r}"
        raise BadLine(line, "id", why)
    region = values.get("region", "").strip() or None
    if region is not None and (problem := code_problem(region, known)) is not None:
        raise BadLine(line, "region", problem)
    data = {k: v for k, v in values.items() if k not in _RESERVED}
    return Recipient(rid, region, data)
