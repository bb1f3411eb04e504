"""What the Dockerfile runs, run directly: its ENV, `alertcast serve`, its HEALTHCHECK."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.spine.daemon_proc import DaemonProcess

pytestmark = pytest.mark.slow
DOCKERFILE = (ROOT / "Dockerfile").read_text()


def _env() -> dict[str, str]:
    block = re.search(r"^ENV (.+?)(?=^\S)", DOCKERFILE, re.S | re.M)
    assert block is not None
    words = shlex.split(block.group(1).replace("\\\n", " "))
    return dict(w.split("=", 1) for w in words)


def _healthcheck(port: int) -> list[str]:
    line = re.search(r'CMD python -c "(.+)"', DOCKERFILE)
    assert line is not None
    return [sys.executable, "-c", line.group(1).replace("8080", str(port))]


async def test_image_command_serves_and_passes_its_healthcheck(tmp_path: Path) -> None:
    """The image's environment and command start a healthy daemon storing where it says."""
    env = _env()
    assert env["ALERTCAST_CONFIG"] == "/etc/alertcast/config.toml"
    assert "USER alertcast" in DOCKERFILE and 'CMD ["serve"]' in DOCKERFILE
    db = tmp_path / "alertcast.db"
    overrides = {
        **env,
        "ALERTCAST_CONFIG": str(ROOT / "config" / "example.toml"),
        "ALERTCAST_STORE__URL": env["ALERTCAST_STORE__URL"].replace(
            "/var/lib/alertcast/alertcast.db", str(db)
        ),
        "ALERTCAST_SERVER__PORT": "0",  # any free port: the daemon logs which
    }
    secrets = {
        n: "x" * 24
        for n in re.findall(r'_env = "(\w+)"', (ROOT / "config/example.toml").read_text())
    }
    daemon = DaemonProcess(None, 0, tmp_path / "d.log", env={**overrides, **secrets})
    try:
        await daemon.start()
        check = subprocess.run(_healthcheck(daemon.port), timeout=10)  # noqa: ASYNC221 - a 2 s probe
    finally:
        daemon.stop()
    assert check.returncode == 0
    assert db.exists()
    assert '"event": "alertcast.listening"' in daemon.log_path.read_text()
