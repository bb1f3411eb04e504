"""``alertcast recipients import`` as a subprocess against hostile files, on every engine: a
huge value, a 10 MB line, a million columns, NUL and control bytes, GBK and UTF-16, a quote
never closed, the header again, bad numbers and addresses. Each ends with one line naming the
line and the column, exit 2, no traceback, and the store as it was (the SQLite file byte for
byte); an endless standard input is refused after a bounded read, in bounded memory."""

from __future__ import annotations

import asyncio
import csv
import hashlib
import io
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from alertcast.store import open_store

pytestmark = pytest.mark.slow

H = b"id,region,name\n"
GOOD = H + "u-1,510104,张三\nu-2,,李四\nu-3,510105,王五\n".encode()
SMS = (
    '[[accounts]]\nid = "texts"\nchannel = "sms"\naccess_key_id_env = "T_AK"\n'
    'access_key_secret_env = "T_SK"\nsign_name = "成都应急"\ntemplate_code = "SMS_1000001"\n'
    "per_recipient = true\n"
)
EMAIL = (
    '[[accounts]]\nid = "mails"\nchannel = "email"\nhost = "127.0.0.1"\n'
    'mail_from = "alerts@office.example.org"\nper_recipient = true\n'
)


@dataclass
class Office:
    config: Path
    url: str

    @property
    def db(self) -> Path | None:
        return Path(self.url.removeprefix("sqlite:///")) if self.url.startswith("sqlite") else None


@pytest.fixture
def office(engine: str, tmp_path: Path) -> Iterator[Office]:
    """A per-recipient webhook, sms and email account, on the engine; three people loaded."""
    url = engine
    path = tmp_path / "c.toml"
    path.write_text(
        f'[store]\nurl = "{url}"\n[[issuers]]\nname = "city"\ntoken_env = "T_TOKEN"\n'
        '[[accounts]]\nid = "people"\nchannel = "webhook"\nurl = "http://127.0.0.1:9/h"\n'
        f'secret_env = "T_HOOK_SECRET"\nper_recipient = true\n{SMS}{EMAIL}',
        encoding="utf-8",
    )
    found = Office(path, url)
    for account, text in (("people", GOOD), ("texts", b"id,mobile\nt-1,+8613912345678\n")):
        done = cli(found, "import", account, "-", stdin=text)
        assert done.returncode == 0, done.stderr
    yield found


def cli(
    office: Office, *args: str, stdin: bytes | None = None
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "alertcast.cli",
            "recipients",
            *args,
            "--config",
            str(office.config),
        ],
        input=stdin,
        capture_output=True,
        env={**os.environ, "PYTHONUTF8": "1"},
        timeout=120,
        check=False,
    )


def snapshot(office: Office) -> tuple[str, ...]:
    """Every account's recipients as stored, and the SQLite file's digest."""

    async def read() -> list[str]:
        store = open_store(office.url)
        await store.open()
        try:
            return [repr(await store.list_recipients(a, limit=10_000)) for a in ("people", "texts")]
        finally:
            await store.close()

    digest = "" if office.db is None else hashlib.sha256(office.db.read_bytes()).hexdigest()
    return (*asyncio.run(read()), digest)


def lines_of(n: int) -> bytes:
    return "".join(f"p-{i:06d},510104,某{i}\n" for i in range(n)).encode()


LONG = "65,536 characters"
HOSTILE: list[tuple[str, str, bytes, str]] = [
    ("a 1 MB value", "people", H + b"u-9,510104," + b"x" * 1_000_000 + b"\n",
     rf"line 2, column name: the line is longer than {LONG}"),
    ("a value past 4,096 characters", "people", H + b"u-9,510104," + b"x" * 5000 + b"\n",
     r"line 2, column name: a value of 5,000 characters; at most 4,096"),
    ("a 10 MB line that never ends", "people", H + b"u-9," + b"y" * 10_000_000,
     rf"line 2, column region: the line is longer than {LONG}"),
    ("a line of a million columns", "people", H + b"," * 1_000_000 + b"\n",
     rf"line 2, column \d+ \(the header names 3\): the line is longer than {LONG}"),
    ("a header of a million columns", "people", b",".join(b"c%d" % i for i in range(10**6)),
     rf"line 1, column \d+: the line is longer than {LONG}"),
    ("a header of 101 columns", "people", b"id," + b",".join(b"c%d" % i for i in range(100)),
     r"line 1, column -: the header names 101 columns; at most 100"),
    ("a NUL byte in a value", "people", H + b"u-9,510104,a\x00b\n",
     r"line 2, column name: a NUL byte"),
    ("a NUL byte in an id", "people", H + b"u-1,510104,a\nu-\x009,510104,b\n",
     r"line 3, column id: a NUL byte"),
    ("a NUL byte in the header", "people", b"id,na\x00me\nu-9,a\n",
     r"line 1, column 2: a NUL byte"),
    ("a terminal escape", "people", H + b"u-9,510104,a\x1b[31mb\n",
     r"line 2, column name: a control character \(U\+001B\)"),
    ("a GBK export", "people", "id,region,name\nu-9,510104,张三\n".encode("gbk"),
     r"line 2, column name: not UTF-8 text \(save the file as CSV UTF-8"),
    ("a UTF-16 export", "people", "id,region,name\nu-9,510104,张三\n".encode("utf-16"),
     r"line 1, column 1: not UTF-8 text"),
    ("a Latin-1 byte on line 30,002", "people", H + lines_of(30_000) + b"u-x,510104,caf\xe9\n",
     r"line 30002, column name: not UTF-8 text"),
    ("binary bytes", "people", bytes(range(256)) * 40,
     r"line 1, column 1: a NUL byte"),
    ("the header again (files joined)", "people", GOOD + GOOD,
     r"line 5, column id: the header again \(files joined\?\)"),
    ("a quote never closed", "people", H + b'u-9,510104,"abc\nu-10,510104,def\n',
     r"line 2, column name: not CSV: unexpected end of data"),
    ("a quote never closed in a long file", "people", H + b'u-9,510104,"a\n' + lines_of(9000),
     rf"line 2, column name: the record runs past {LONG} over [\d,]+ lines"),
    ("a bare CR inside a value", "people", H + b"u-9,510104,a\rb\r\n",
     r"line 3, column region: 1 fields where the header names 3"),
    ("a number not E.164", "texts", b"id,mobile\nt-2,+8613912345670\nt-3,13912345679\n",
     r"line 3, column mobile: '\*{7}5679' is not an E.164 mainland mobile number"),
    ("no mobile column", "texts", b"id,name\nt-2,+8613912345670\n",
     r"line 1, column mobile: the header has no mobile column, which the account's channel"),
    ("an address with a name", "mails", "id,email\nm-1,张三 <a@b.org>\n".encode(),
     r"line 2, column email: .* is not a mail address"),
    ("an address with a header in it", "mails", b'id,email\nm-1,"a@b.org\r\nBcc: x@y.org"\n',
     r"line 2, column email: .* is not a mail address"),
    ("an empty file", "people", b"", r"line 1, column id: the file is empty"),
    ("a byte-order mark alone", "people", b"\xef\xbb\xbf", r"line 1, column id: the file is empty"),
    ("a column's name of 70 characters", "people", b"id," + b"n" * 70 + b"\nu-9,a\n",
     r"line 1, column 2: a column's name is 1 to 64 printable characters"),
]  # fmt: skip


def test_each_hostile_file_is_named_and_changes_nothing(office: Office, tmp_path: Path) -> None:
    """Each hostile file, from standard input or as a file (a third also with --replace):
    exit 2, one line naming the line and column, no number whole, no traceback, the store as
    it was."""
    before = snapshot(office)
    for i, (what, account, data, where) in enumerate(HOSTILE):
        path = tmp_path / f"hostile-{i}.csv"
        path.write_bytes(data)
        how = ("-",) if i % 2 else (str(path),)
        for args in (how, (*how, "--replace")) if i % 3 == 0 else (how,):
            done = cli(office, "import", account, *args, stdin=data if how == ("-",) else None)
            err = done.stderr.decode("utf-8", "replace")
            assert done.returncode == 2, (what, err)
            (line,) = err.splitlines()
            assert re.search(where, line) and line.endswith("; nothing was imported"), (what, line)
            assert "Traceback" not in err and done.stdout == b"", what
            for number in re.findall(rb"1[3-9][0-9]{9}", data):
                assert number.decode() not in line, line  # masked: never whole
        assert snapshot(office) == before, what


def test_numbers_are_masked_in_the_errors(office: Office) -> None:
    """A bad number in the file: the error shows its last four digits only."""
    done = cli(office, "import", "texts", "-", stdin=b"id,mobile\nt-9,1391234567x\n")
    err = done.stderr.decode()
    assert done.returncode == 2 and "1391234567" not in err and "'******4567x'" in err, err


def test_an_endless_input_is_refused_in_bounded_memory(office: Office) -> None:
    """A line that never ends on standard input (500 MB offered): refused after reading a few
    MB at most, the process never past 200 MB, the store as it was."""
    before = snapshot(office)
    rss = "import resource, subprocess, sys\n"
    rss += "code = subprocess.run(sys.argv[1:]).returncode\n"
    rss += (
        "print('maxrss', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr)\n"
    )
    rss += "sys.exit(code)\n"
    command = [sys.executable, "-c", rss, sys.executable, "-m", "alertcast.cli", "recipients"]
    proc = subprocess.Popen(
        [*command, "import", "people", "-", "--config", str(office.config)],
        stdin=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        env={**os.environ, "PYTHONUTF8": "1"},
    )
    written = [0]

    def feed() -> None:
        assert proc.stdin is not None
        chunk = b"z" * (1 << 20)
        try:
            proc.stdin.write(H + b"u-1,510104,")
            while written[0] < 500 << 20:
                proc.stdin.write(chunk)
                written[0] += len(chunk)
            proc.stdin.close()
        except (BrokenPipeError, ValueError):
            pass

    writer = threading.Thread(target=feed, daemon=True)
    writer.start()
    _, err = proc.communicate(timeout=120)
    writer.join(10)
    text = err.decode()
    assert proc.returncode == 2, text
    assert f"line 2, column name: the line is longer than {LONG}" in text
    assert written[0] < 16 << 20, written[0]  # a pipe's buffer and a read's chunk, not 500 MB
    (peak,) = [int(line.split()[1]) for line in text.splitlines() if line.startswith("maxrss")]
    assert peak < 200 * 1024, f"{peak} KiB"
    assert snapshot(office) == before


def test_crlf_lf_and_cr_line_ends_mixed_import_as_written(office: Office) -> None:
    """CRLF, LF and CR line ends in one file (and a quoted value holding a line break): the
    records as written, no stray CR in any value."""
    data = (
        b"\xef\xbb\xbfid,region,name\r\n"
        b'm-1,510104,crlf\r\nm-2,,lf\nm-3,510105,cr\rm-4,,"two\r\nlines"\r\n'
    )
    done = cli(office, "import", "people", "-", "--replace", stdin=data)
    assert done.returncode == 0, done.stderr
    listed = cli(office, "list", "people").stdout.decode()
    rows = list(csv.reader(io.StringIO(listed, newline="")))
    assert rows == [
        ["id", "region", "name"],
        ["m-1", "510104", "crlf"],
        ["m-2", "", "lf"],
        ["m-3", "510105", "cr"],
        ["m-4", "", "two\r\nlines"],
    ]
