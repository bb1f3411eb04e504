"""``alertcast recipients import`` as a subprocess when its PostgreSQL stops answering mid-COPY
(issue 15 item 6): reached through a TCP proxy the test blackholes or cuts while the import
reads its standard input, the store's own reason and exit 4, never the file's; after the
restore nothing of the file is stored, and the same file imports whole."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import asyncpg
import pytest

from alertcast.testing.tcpproxy import TcpProxy
from tests.conftest import PG_URL, until

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

HEAD = b"id,region,name\n"
KEPT = HEAD + "u-1,510104,张三\nu-2,,李四\nu-3,510105,王五\n".encode()
ROWS = b"".join(f"n-{i:05d},510104,n{i}\n".encode() for i in range(2_000))
# Bounds of a few seconds: the COPY (bulk_timeout_s) is told apart from a statement's.
BOUNDS = "connect_timeout_s=1.5&command_timeout_s=1.5&bulk_timeout_s=2.5"


async def _blackhole(proxy: TcpProxy) -> None:
    proxy.blackhole()


CASES: list[tuple[str, Callable[[TcpProxy], Awaitable[None]], str]] = [
    ("blackholed", _blackhole, "did not answer within 2.5 s"),  # the COPY's bound
    ("cut", TcpProxy.cut, "the store's connection was lost: "),
]


@pytest.fixture
def config(schema: str, proxy: TcpProxy, tmp_path: Path) -> Path:
    """A per-recipient webhook account on a PostgreSQL schema reached through the proxy (its
    connections named after the schema, for ``pg_stat_activity``)."""
    head, tail = PG_URL.rsplit("@", 1)
    db = tail.split("/", 1)[1]
    url = f"{head}@127.0.0.1:{proxy.port}/{db}?schema={schema}&{BOUNDS}&application_name={schema}"
    path = tmp_path / "c.toml"
    path.write_text(
        f'[store]\nurl = "{url}"\n[[issuers]]\nname = "city"\ntoken_env = "T_TOKEN"\n'
        '[[accounts]]\nid = "people"\nchannel = "webhook"\nurl = "http://127.0.0.1:9/h"\n'
        'secret_env = "T_HOOK_SECRET"\nper_recipient = true\n',
        encoding="utf-8",
    )
    return path


@pytest.mark.parametrize(("how", "fail", "reason"), CASES, ids=[c[0] for c in CASES])
async def test_a_store_lost_mid_import_is_the_stores_error_and_imports_nothing(
    config: Path,
    proxy: TcpProxy,
    schema: str,
    how: str,
    fail: Callable[[TcpProxy], Awaitable[None]],
    reason: str,
) -> None:
    """The store lost while the COPY reads standard input: exit 4, one line naming the store
    and its reason (not the file); restored, the account holds what it held, and the same
    file then imports whole."""
    code, _, err = await _import(config, KEPT)
    assert code == 0, err
    cli = await _start(config)
    assert cli.stdin is not None
    cli.stdin.write(HEAD + ROWS)
    await cli.stdin.drain()
    await until(lambda: _copying(schema), 10, "the COPY under way")
    await fail(proxy)
    cli.stdin.write(ROWS.replace(b"n-", b"m-"))
    cli.stdin.close()
    _, err_bytes = await asyncio.wait_for(cli.communicate(), 30)
    line = err_bytes.decode().strip()
    print(f"\n{how}: exit {cli.returncode}: {line}")
    assert cli.returncode == 4, line
    assert "\n" not in line and "Traceback" not in line, line
    assert line.startswith("alertcast recipients: postgresql://127.0.0.1:"), line
    assert reason in line and "run it again once the store answers" in line, line
    assert "-:" not in line and "nothing was imported" not in line, line  # not the file's
    proxy.restore()
    assert await _ids(schema) == ["u-1", "u-2", "u-3"]
    code, out, err = await _import(config, HEAD + ROWS)
    assert (code, out) == (0, "imported 2000 recipients into people; it has 2003\n"), err


async def test_a_file_that_fails_while_read_is_still_the_files_error(config: Path) -> None:
    """A file whose read fails mid-import (``/proc/self/mem`` opens, then EIO) still names the
    file, exit 2: the store's errors are OSErrors too, and told apart."""
    code, _, err = await _import(config, None, "/proc/self/mem")
    assert (code, err) == (
        2,
        "alertcast recipients: /proc/self/mem: Input/output error; nothing was imported\n",
    )


async def test_a_store_refusing_at_open_is_exit_4(config: Path, proxy: TcpProxy) -> None:
    """Cut before the command opens the store: exit 4 naming the store, no traceback."""
    await proxy.cut()
    code, _, err = await _import(config, KEPT)
    assert code == 4 and err.startswith("alertcast recipients: postgresql://"), err
    assert "Traceback" not in err and "nothing was imported" not in err, err


async def _start(config: Path, file: str = "-") -> asyncio.subprocess.Process:
    """The CLI, not waited for: the proxy runs on this loop meanwhile."""
    return await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "alertcast.cli", "recipients", "import", "people", file),
        *("--config", str(config)),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONUTF8": "1"},
    )


async def _import(config: Path, text: bytes | None, file: str = "-") -> tuple[int, str, str]:
    cli = await _start(config, file)
    out, err = await asyncio.wait_for(cli.communicate(text), 60)
    assert cli.returncode is not None
    return cli.returncode, out.decode(), err.decode()


async def _copying(schema: str) -> bool:
    """Whether the import's COPY into its staging table is waiting for its rows."""
    query = (
        "SELECT COUNT(*) FROM pg_stat_activity WHERE state = 'active' "
        f"AND application_name = '{schema}' AND query LIKE 'COPY %recipients_import%'"
    )
    return await _direct(schema, query) == 1


async def _ids(schema: str) -> list[str]:
    conn = await asyncpg.connect(PG_URL, server_settings={"search_path": schema})
    try:
        return [r[0] for r in await conn.fetch("SELECT id FROM recipients ORDER BY id")]
    finally:
        await conn.close()


async def _direct(schema: str, query: str) -> int:
    conn = await asyncpg.connect(PG_URL, server_settings={"search_path": schema})
    try:
        return int(await conn.fetchval(query))
    finally:
        await conn.close()
