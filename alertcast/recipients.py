"""A per-recipient account's recipients file, read and checked line by line.

``alertcast recipients import ACCOUNT FILE`` streams a CSV (UTF-8, a byte-order mark allowed;
CRLF, LF and CR line ends, mixed or not) into the store. Its header names ``id`` (required,
unique in the file), optionally ``region`` (a GB/T 2260 code, checked as the API checks an
area's codes: six digits and a division the bundled data, or ``[regions] known``, knows; empty:
the recipient is everywhere), and the channel's own columns
(:meth:`~alertcast.channels.base.Channel.recipient_columns`: ``mobile`` for ``sms``, ``email``
for ``email``, each checked on every line; a webhook takes any). Every other column is kept as
the recipient's data (a webhook sends it in its ``recipient`` object).

Hostile input ends with one error naming the line and the column, never with a traceback or
unbounded memory. Limits:

* a record (its physical lines together, a quoted value may span several) holds at most
  :data:`MAX_RECORD` characters, read in pieces of that size: a 10 MB line, or a quote never
  closed, is refused after 64 KiB, whatever follows. csv's own ``field_size_limit`` (131,072
  by default, process-wide) can therefore never trip first, and is left alone;
* a value holds at most :data:`MAX_FIELD` characters, an id :data:`MAX_ID`;
* the header names at most :data:`MAX_COLUMNS` columns, each name at most :data:`MAX_NAME`;
* no value holds a NUL or another control character (a tab and line breaks inside quotes
  aside), nor bytes that are not UTF-8 (read as ``surrogateescape``, so the line and column of
  the first bad byte are named: a GBK or UTF-16 export is refused, not garbled);
* the header again, past line 1 (files joined), is refused rather than imported as a person.

:func:`read` yields ``(line, recipient)`` lazily, so a file of a million lines is never held
whole; the first bad line raises :class:`BadLine`, and the store's import (one transaction)
then keeps nothing of the file.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator, Mapping
from typing import Any, TextIO

from alertcast.channels import channel_class
from alertcast.channels.base import RecipientCheck
from alertcast.config import AccountConfig, Config
from alertcast.geocheck import code_problem
from alertcast.store.base import Recipient

__all__ = [
    "MAX_COLUMNS",
    "MAX_FIELD",
    "MAX_ID",
    "MAX_NAME",
    "MAX_RECORD",
    "BadLine",
    "NotPerRecipient",
    "columns_of",
    "per_recipient_account",
    "read",
]

MAX_ID = 128
MAX_RECORD = 65_536  # characters in one record
MAX_FIELD = 4_096  # characters in one value
MAX_COLUMNS = 100
MAX_NAME = 64  # characters in a column's name
_RESERVED = ("id", "region")
_BAD = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")
NOT_UTF8 = "not UTF-8 text (save the file as CSV UTF-8; GBK and UTF-16 are not read)"


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
        how = " (set per_recipient = true)" if "per_recipient" in cls.Options.model_fields else ""
        raise NotPerRecipient(
            f"account {account_id!r} ({account.channel}) does not send to recipients one by "
            f"one{how}: its recipients would never be used"
        )
    return account


def columns_of(account: AccountConfig) -> Mapping[str, RecipientCheck]:
    """The columns ``account``'s channel needs in its recipients file, with their checks."""
    cls = channel_class(account.channel)
    return cls.recipient_columns(cls.Options.model_validate(account.channel_options))


def read(
    stream: TextIO,
    known: frozenset[str] = frozenset(),
    columns: Mapping[str, RecipientCheck] | None = None,
) -> Iterator[tuple[int, Recipient]]:
    """``(line, recipient)`` for every record of the CSV ``stream`` (``known``: region codes
    accepted beyond the bundled data; ``columns``: the channel's, see :func:`columns_of`);
    :class:`BadLine` at the first bad one."""
    lines = _Lines(stream)
    reader = csv.reader(lines, strict=True)
    header = _header(_record(reader, lines, None), columns or {})
    while (fields := _record(reader, lines, header)) is not None:
        if fields:  # a blank line is no record
            yield lines.first, _recipient(header, fields, lines.first, known, columns or {})


class _TooLong(Exception):
    """A record past :data:`MAX_RECORD` characters."""


class _Lines:
    """The stream's physical lines, each read with a bound, and the current record's text
    (bounded too), so that an error can say which column it reached."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.line = 0  # physical lines read
        self.first = 1  # the current record's first line
        self.text: list[str] = []
        self.size = 0  # characters in ``text``

    def start(self) -> None:
        self.first, self.text, self.size = self.line + 1, [], 0

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        line = self.stream.readline(MAX_RECORD + 1)
        if not line:
            raise StopIteration
        self.line += 1
        self.text.append(line)
        self.size += len(line)
        if self.size > MAX_RECORD:
            raise _TooLong
        return line


def _record(reader: Any, lines: _Lines, header: list[str] | None) -> list[str] | None:
    """The next record's fields (None at the end), or :class:`BadLine` saying what is wrong."""
    lines.start()
    try:
        return next(reader, None)
    except _TooLong:
        why = f"the line is longer than {MAX_RECORD:,} characters"
        if len(lines.text) > 1:
            why = f"the record runs past {MAX_RECORD:,} characters over {len(lines.text):,} "
            why += "lines (a quote never closed?)"
    except csv.Error as exc:
        why = f"not CSV: {exc}"
    except UnicodeDecodeError:
        raise BadLine(lines.line + 1, "-", NOT_UTF8) from None
    raise BadLine(lines.first, _reached(lines, header), why)


def _reached(lines: _Lines, header: list[str] | None) -> str:
    """The column a broken record had reached (counting its fields, quotes forgiven)."""
    text = "".join(lines.text).replace("\r", " ").replace("\n", " ")
    try:
        at = len(next(csv.reader([text]), []))
    except csv.Error:
        return "-"
    return _column(max(0, at - 1), header)


def _column(index: int, header: list[str] | None) -> str:
    if header is None:
        return str(index + 1)
    if index < len(header):
        return header[index]
    return f"{index + 1} (the header names {len(header)})"


def _header(fields: list[str] | None, columns: Mapping[str, RecipientCheck]) -> list[str]:
    if not fields:
        raise BadLine(1, "id", "the file is empty: its first line must name the columns")
    if len(fields) > MAX_COLUMNS:
        raise BadLine(1, "-", f"the header names {len(fields):,} columns; at most {MAX_COLUMNS}")
    names = [f.strip() for f in fields]
    for i, name in enumerate(names):
        if (problem := _name_problem(name)) is not None:
            raise BadLine(1, str(i + 1), problem)
        if names.count(name) > 1:
            raise BadLine(1, name, "the column is named twice")
    for needed in ("id", *columns):
        if needed not in names:
            whose = "" if needed == "id" else ", which the account's channel needs"
            raise BadLine(
                1, needed, f"the header has no {needed} column{whose} (it names {', '.join(names)})"
            )
    return names


def _name_problem(name: str) -> str | None:
    if not name:
        return "a column has no name"
    if (problem := _text_problem(name)) is not None:
        return problem
    if len(name) > MAX_NAME or not name.isprintable():
        return f"a column's name is 1 to {MAX_NAME} printable characters, not {name[:40]!r}"
    return None


def _text_problem(value: str) -> str | None:
    """Why ``value`` cannot be stored (None: it can): a NUL, a control character, bytes that
    were not UTF-8."""
    found = _BAD.search(value)
    if found is None:
        return None
    char = found.group()
    if "\ud800" <= char <= "\udfff":
        return NOT_UTF8
    return "a NUL byte" if char == "\0" else f"a control character (U+{ord(char):04X})"


def _recipient(
    header: list[str],
    fields: list[str],
    line: int,
    known: frozenset[str],
    columns: Mapping[str, RecipientCheck],
) -> Recipient:
    if len(fields) != len(header):
        column = header[len(fields)] if len(fields) < len(header) else "-"
        why = f"{len(fields)} fields where the header names {len(header)}"
        raise BadLine(line, column, why)
    if [f.strip() for f in fields] == header:
        raise BadLine(line, "id", "the header again (files joined?): it belongs on line 1 only")
    values = dict(zip(header, fields, strict=True))
    for name, value in values.items():
        _check_value(line, name, value)
    rid = values["id"].strip()
    if not rid or len(rid) > MAX_ID or not rid.isprintable():
        why = f"an id is 1 to {MAX_ID} printable characters, not {values['id'][:40]!r}"
        raise BadLine(line, "id", why)
    region = values.get("region", "").strip() or None
    if region is not None and (problem := code_problem(region, known)) is not None:
        raise BadLine(line, "region", problem)
    data = {k: v for k, v in values.items() if k not in _RESERVED}
    for name, check in columns.items():
        try:
            data[name] = check(values[name])
        except ValueError as exc:
            raise BadLine(line, name, str(exc)) from None
    return Recipient(rid, region, data)


def _check_value(line: int, column: str, value: str) -> None:
    if len(value) > MAX_FIELD:
        raise BadLine(line, column, f"a value of {len(value):,} characters; at most {MAX_FIELD:,}")
    if (problem := _text_problem(value)) is not None:
        raise BadLine(line, column, problem)
