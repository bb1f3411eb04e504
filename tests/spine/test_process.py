"""The daemon and the CLI as real processes: send --follow, status, logs, secrets, SIGTERM."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from alertcast.testing.sink import BODY, WebhookSink
from tests.conftest import HOOK_SECRET, OTHER_TOKEN, ROOT, TOKEN, incident
from tests.spine.daemon_proc import ENV, DaemonProcess, write_config

pytestmark = pytest.mark.slow
SECRETS = (TOKEN, OTHER_TOKEN, HOOK_SECRET)


async def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    import asyncio

    def run() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "alertcast.cli", *args],
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=120,
            env={**os.environ, **ENV, "ALERTCAST_TOKEN": TOKEN},
        )

    return await asyncio.to_thread(run)


async def test_send_follow_status_and_no_secret_anywhere(tmp_path: Path) -> None:
    """send --follow settles; status shows it; no secret is in any log line or answer."""
    echo_secret = WebhookSink(
        secret=HOOK_SECRET, script=[(500, {BODY: f"upstream said token={TOKEN}"})]
    )
    leaky = WebhookSink(secret=HOOK_SECRET)
    await echo_secret.start()
    await leaky.start()
    port = 0  # any free port: the daemon says which in its log
    config = write_config(
        tmp_path / "c.toml", tmp_path / "p.db", port, [echo_secret.url, leaky.url]
    )
    daemon = DaemonProcess(config, port, tmp_path / "daemon.log")
    answers: list[str] = []
    try:
        await daemon.start()
        body = tmp_path / "eq.json"
        # A receiver that echoes our secret into its error body: it must be scrubbed.
        leaky.answer = lambda item: (400, {BODY: f"bad config: secret={HOOK_SECRET}"})
        body.write_text(json.dumps(incident(description=f"not a secret: {HOOK_SECRET[:4]}")))
        sent = await _cli("send", str(body), "--url", daemon.url, "--follow", "--timeout", "60")
        answers += [sent.stdout, sent.stderr]
        assert "settled:" in sent.stdout, sent.stdout + sent.stderr
        incident_id = sent.stdout.split()[1].rstrip(":")
        status = await _cli("status", incident_id, "--url", daemon.url)
        answers += [status.stdout, status.stderr]
        assert status.returncode == 0 and "hook-0" in status.stdout
        for path in (
            f"/v1/incidents/{incident_id}",
            "/v1/deliveries",
            "/v1/channels",
            "/v1/incidents",
            "/openapi.json",
        ):
            answers.append(json.dumps(await daemon.request("GET", path)))
        bad = await daemon.request(
            "POST", "/v1/incidents", data="{", headers={"Content-Type": "application/json"}
        )
        answers.append(json.dumps(bad))
    finally:
        assert daemon.stop() == 0
        await echo_secret.stop()
        await leaky.stop()
    log = daemon.log_path.read_text()
    lines = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    assert any(
        line.get("delivery_id") and line.get("account") and line.get("incident_id")
        for line in lines
    )
    assert any(line["event"] == "alertcast.stopped" for line in lines)
    assert "secret=***" in log  # the receiver's echo arrived, scrubbed
    for secret in SECRETS:
        assert secret not in log
        assert all(secret not in text for text in answers)


async def test_refused_send_exits_non_zero(tmp_path: Path) -> None:
    """A send the daemon refuses prints each field at fault and exits 1."""
    port = 0  # any free port: the daemon says which in its log
    config = write_config(tmp_path / "c.toml", tmp_path / "p.db", port, [])
    daemon = DaemonProcess(config, port, tmp_path / "daemon.log")
    try:
        await daemon.start()
        body = tmp_path / "bad.json"
        eq = incident()
        body.write_text(json.dumps(incident(details={**eq["details"], "latitude": 123})))
        result = await _cli("send", str(body), "--url", daemon.url)
    finally:
        daemon.stop()
    assert result.returncode == 1
    assert "details.latitude" in result.stderr
