"""``alertcast recipients`` as a subprocess, on every engine: a file is imported whole or not
at all, a bad line is one line naming its number and column (exit 2), replace, count, list."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

GOOD = '\ufeffid,region,name,team\nu-1,510104,张三,"a, b"\n\nu-2,,李四,c\nu-3,510105,王五,d\n'


@pytest.fixture
def config(engine: str, tmp_path: Path) -> Path:
    """A configuration with per-recipient webhook, sms and email accounts, and plain ones."""
    url = engine
    path = tmp_path / "c.toml"
    path.write_text(
        f'[store]\nurl = "{url}"\n'
        '[[issuers]]\nname = "city"\ntoken_env = "T_TOKEN"\n'
        '[[accounts]]\nid = "people"\nchannel = "webhook"\nurl = "http://127.0.0.1:9/h"\n'
        'secret_env = "T_HOOK_SECRET"\nper_recipient = true\n'
        '[[accounts]]\nid = "plain"\nchannel = "webhook"\nurl = "http://127.0.0.1:9/h"\n'
        'secret_env = "T_HOOK_SECRET"\n'
        + _sms("texts", "per_recipient = true")
        + _sms("sms-duty", 'recipients = ["+8613912345678"]')
        + '[[accounts]]\nid = "mails"\nchannel = "email"\nhost = "127.0.0.1"\n'
        'mail_from = "alerts@office.example.org"\nper_recipient = true\n',
        encoding="utf-8",
    )
    return path


def _sms(account: str, how: str) -> str:
    return (
        f'[[accounts]]\nid = "{account}"\nchannel = "sms"\naccess_key_id_env = "T_AK"\n'
        'access_key_secret_env = "T_SK"\nsign_name = "成都应急"\ntemplate_code = "SMS_1000001"\n'
        f"{how}\n"
    )


def cli(config: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "alertcast.cli", "recipients", *args, "--config", str(config)],
        input=stdin,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONUTF8": "1"},
        timeout=120,
        check=False,
    )


def count(config: Path, account: str = "people") -> int:
    done = cli(config, "count", account)
    assert done.returncode == 0, done.stderr
    return int(done.stdout)


def _csv(tmp_path: Path, text: str, name: str = "r.csv") -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_a_good_file_is_imported_and_listed(config: Path, tmp_path: Path) -> None:
    """Three recipients (a BOM, a quoted comma, a blank line, one without a region): stored,
    counted and listed with their columns."""
    done = cli(config, "import", "people", _csv(tmp_path, GOOD))
    assert (done.returncode, done.stdout) == (0, "imported 3 recipients into people; it has 3\n")
    assert count(config) == 3
    listed = cli(config, "list", "people")
    assert listed.stdout.splitlines() == [
        "id,region,name,team",
        'u-1,510104,张三,"a, b"',
        "u-2,,李四,c",
        "u-3,510105,王五,d",
    ]


BAD = [
    ("id,region\nu-1,510104\nu-2,5101\n", "line 3, column region: '5101' is not a GB/T 2260"),
    ("id,region\nu-1,519999\n", "line 2, column region: '519999' is no GB/T 2260 division"),
    ("id,region,name\nu-1,510104,a\nu-2,510104\n", "line 3, column name: 2 fields"),
    ("id,region\nu-1,510104\n,510104\n", "line 3, column id: an id is 1 to 128"),
    ("region,name\n510104,a\n", "line 1, column id: the header has no id column"),
    ("id,name,name\nu-1,a,b\n", "line 1, column name: the column is named twice"),
    ("id\nu-1\nu-2\nu-1\n", "line 4, column id: 'u-1' is already on line 2"),
    ("", "line 1, column id: the file is empty"),
]


def test_a_bad_line_is_named_and_nothing_is_imported(config: Path, tmp_path: Path) -> None:
    """Each bad file: exit 2, one line naming the line and column; the account unchanged."""
    cli(config, "import", "people", _csv(tmp_path, GOOD, "good.csv"))
    for text, where in BAD:
        done = cli(config, "import", "people", "-", stdin=text)
        assert done.returncode == 2, done
        (line,) = done.stderr.splitlines()
        assert where in line and line.endswith("nothing was imported"), line
    assert count(config) == 3


def test_a_bad_line_deep_in_a_big_file_imports_nothing(config: Path, tmp_path: Path) -> None:
    """20,000 good lines then a bad one (past several batches): nothing is stored."""
    rows = "".join(f"p-{i:06d},510104,n{i}\n" for i in range(20_000))
    done = cli(config, "import", "people", _csv(tmp_path, "id,region,name\n" + rows + "x,51,n\n"))
    assert done.returncode == 2 and "line 20002, column region" in done.stderr
    assert count(config) == 0
    done = cli(config, "import", "people", "-", stdin="id,region,name\n" + rows)
    assert done.returncode == 0, done.stderr
    assert count(config) == 20_000


def test_replace_keeps_only_the_file(config: Path, tmp_path: Path) -> None:
    """Without --replace ids are added or updated; with it the account holds the file only."""
    cli(config, "import", "people", _csv(tmp_path, GOOD))
    done = cli(config, "import", "people", "-", stdin="id,region\nu-9,510104\nu-1,\n")
    assert done.stdout == "imported 2 recipients into people; it has 4\n"
    done = cli(config, "import", "people", "-", "--replace", stdin="id\nu-7\n")
    assert done.stdout == "imported 1 recipients into people; it has 1\n"
    assert cli(config, "list", "people").stdout.splitlines() == ["id,region", "u-7,"]


def test_an_unknown_or_plain_account_is_refused(config: Path, tmp_path: Path) -> None:
    """An unknown account exits 6 naming the accounts; one without per_recipient exits 2."""
    path = _csv(tmp_path, GOOD)
    done = cli(config, "import", "nobody", path)
    known = "people, plain, texts, sms-duty, mails"
    assert done.returncode == 6 and f"no account 'nobody' (accounts: {known})" in done.stderr
    done = cli(config, "import", "plain", path)
    assert done.returncode == 2 and "set per_recipient = true" in done.stderr
    done = cli(config, "import", "people", str(tmp_path / "missing.csv"))
    assert done.returncode == 2 and "missing.csv" in done.stderr


def test_sms_and_email_recipients_carry_their_own_column(config: Path) -> None:
    """An sms account's file has a mobile column, an email account's an email column: each
    checked and stored trimmed, the other columns kept; listed as imported."""
    texts = "id,region,mobile,name\nt-1,510104, +8613912345678 ,张三\nt-2,,+8615912345678,李四\n"
    done = cli(config, "import", "texts", "-", stdin=texts)
    assert (done.returncode, done.stdout) == (0, "imported 2 recipients into texts; it has 2\n")
    assert cli(config, "list", "texts").stdout.splitlines() == [
        "id,region,mobile,name",
        "t-1,510104,+8613912345678,张三",
        "t-2,,+8615912345678,李四",
    ]
    mails = "id,email\nm-1,duty@office.example.org\nm-2, chief@office.example.org\n"
    assert cli(config, "import", "mails", "-", stdin=mails).returncode == 0
    assert cli(config, "list", "mails").stdout.splitlines() == [
        "id,region,email",
        "m-1,,duty@office.example.org",
        "m-2,,chief@office.example.org",
    ]


@pytest.mark.parametrize(
    ("account", "text", "where"),
    [
        ("texts", "id,mobile\nt-1,+8613912345678\nt-2,+861391234567\n", "line 3, column mobile"),
        ("texts", "id,phone\nt-1,+8613912345678\n", "line 1, column mobile: the header has no"),
        ("mails", "id,email\nm-1,duty@office\nm-2,not-an-address\n", "line 3, column email"),
        ("mails", "id,mail\nm-1,duty@office.example.org\n", "line 1, column email"),
    ],
)
def test_a_bad_number_or_address_is_named_and_masked(
    config: Path, account: str, text: str, where: str
) -> None:
    """A number that is not E.164 mainland, an address that is not one, the column missing:
    exit 2 naming the line and column, a number shown by its last four digits only."""
    done = cli(config, "import", account, "-", stdin=text)
    assert done.returncode == 2 and where in done.stderr, done.stderr
    assert "391234567" not in done.stderr and count(config, account) == 0


def test_a_plain_sms_account_is_refused(config: Path) -> None:
    """An sms account with its own recipients list takes no file: exit 2, saying how."""
    done = cli(config, "import", "sms-duty", "-", stdin="id,mobile\nt-1,+8613912345678\n")
    assert done.returncode == 2 and "(sms) does not send to recipients one by one" in done.stderr
    assert "set per_recipient = true" in done.stderr
