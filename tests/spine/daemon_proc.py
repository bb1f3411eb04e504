"""Run ``alertcast serve`` as a real subprocess (for crash, CLI and log tests)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, Any

import aiohttp

from tests.conftest import HOOK_SECRET, OTHER_TOKEN, TOKEN

ENV = {"T_TOKEN": TOKEN, "T_OTHER_TOKEN": OTHER_TOKEN, "T_HOOK_SECRET": HOOK_SECRET}


def free_port() -> int:
    """A port free now. Another process may take it before the daemon binds it: prefer port 0,
    which :class:`DaemonProcess` resolves from the daemon's log."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_config(
    path: Path, db: Path, port: int, hook_urls: list[str], *, concurrency: int = 16, extra: str = ""
) -> Path:
    lines = [
        f'[server]\nhost = "127.0.0.1"\nport = {port}\n',
        f'[store]\nurl = "sqlite:///{db}"\n',
        f"[dispatch]\nconcurrency = {concurrency}\nbackoff_initial_s = 0.05\n"
        "backoff_max_s = 0.2\npoll_interval_s = 0.2\nmax_attempts = 20\n",
        '[logging]\nformat = "json"\nlevel = "debug"\n',
        '[[issuers]]\nname = "city"\ntoken_env = "T_TOKEN"\n',
    ]
    for i, url in enumerate(hook_urls):
        lines.append(
            f'[[accounts]]\nid = "hook-{i}"\nchannel = "webhook"\nurl = "{url}"\n'
            'secret_env = "T_HOOK_SECRET"\n'
        )
    path.write_text("\n".join(lines) + extra, encoding="utf-8")
    return path


class DaemonProcess:
    def __init__(
        self, config: Path | None, port: int, log: Path, env: dict[str, str] | None = None
    ) -> None:
        """``config`` None runs plain ``alertcast serve`` (the config comes from the env).

        ``port`` 0 means the daemon binds any free port (as its config must say too);
        :meth:`start` reads the one it bound from its ``alertcast.listening`` log line, so no
        other process can take the port between choosing and binding it.
        """
        self.config, self.port, self.log_path = config, port, log
        self.requested_port = port
        self.env = {**ENV, **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self, timeout_s: float = 60.0) -> None:
        """Start the daemon; return once it answers /healthz (within ``timeout_s``: a loaded
        machine can take many seconds to start Python and import everything)."""
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        self._log = self.log_path.open("ab")
        config = [] if self.config is None else ["--config", str(self.config)]
        self.proc = subprocess.Popen(  # noqa: ASYNC220 - returns at once; we poll /healthz
            [sys.executable, "-m", "alertcast.cli", "serve", *config],
            env={**os.environ, **self.env},
            stdout=self._log,
            stderr=self._log,
        )
        deadline = time.monotonic() + timeout_s
        async with aiohttp.ClientSession() as session:
            while time.monotonic() < deadline:
                assert self.proc.poll() is None, self.log_path.read_text()
                if self.requested_port == 0 and not self._bound_port(offset):
                    await asyncio.sleep(0.1)
                    continue
                try:
                    async with session.get(f"{self.url}/healthz") as resp:
                        if resp.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.1)
        raise AssertionError("daemon did not come up:\n" + self.log_path.read_text())

    def _bound_port(self, offset: int) -> bool:
        """Set ``port`` from this run's ``alertcast.listening`` line, once it is logged."""
        with self.log_path.open("rb") as f:
            f.seek(offset)
            lines = f.read().decode("utf-8", "replace").splitlines()
        for line in lines:
            with contextlib.suppress(ValueError):  # not JSON, or a line still being written
                entry = json.loads(line)
                if isinstance(entry, dict) and entry.get("event") == "alertcast.listening":
                    self.port = int(str(entry["url"]).rsplit(":", 1)[1])
                    return True
        return False

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        self._close_log()

    def stop(self) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(30)
        self._close_log()
        return int(self.proc.returncode)

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    async def request(self, method: str, path: str, **kw: Any) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {TOKEN}", **kw.pop("headers", {})}
        async with (
            aiohttp.ClientSession() as session,
            session.request(method, self.url + path, headers=headers, **kw) as resp,
        ):
            return resp.status, await resp.json(content_type=None)
