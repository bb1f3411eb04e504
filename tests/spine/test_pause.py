"""An operator's pause (POST /v1/channels/{id}/pause) holds the account, survives a restart
and ends only by a resume; it needs the operate role and a reason."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from tests.conftest import OTHER_TOKEN, incident
from tests.spine.daemon_proc import DaemonProcess, write_config

pytestmark = pytest.mark.slow
FILE = '\n[[accounts]]\nid = "file-0"\nchannel = "file"\npath = "{}"\n'
READER = '\n[[issuers]]\nname = "watch"\ntoken_env = "T_OTHER_TOKEN"\nroles = ["read"]\n'


async def test_an_operators_pause_survives_a_restart_until_resumed(tmp_path: Path) -> None:
    """Paused with a reason: held, still paused after a restart, delivered once resumed."""
    extra = FILE.format(tmp_path / "sent.jsonl") + READER
    config = write_config(tmp_path / "c.toml", tmp_path / "p.db", 0, [], extra=extra)
    daemon = DaemonProcess(config, 0, tmp_path / "daemon.log")
    await daemon.start()
    try:
        status, account = await daemon.request(
            "POST", "/v1/channels/file-0/pause", json={"reason": "rotating the token"}
        )
        assert status == 200 and "rotating the token" in account["paused"]
        await asyncio.sleep(0.5)  # the dispatcher stores it on waking
        daemon.stop()
        await daemon.start()
        status, answer = await daemon.request("POST", "/v1/incidents", json=incident())
        await asyncio.sleep(1.0)
        _, view = await daemon.request("GET", f"/v1/incidents/{answer['id']}")
        assert [d["state"] for d in view["deliveries"]] == ["pending"]
        _, accounts = await daemon.request("GET", "/v1/channels")
        assert "rotating the token" in (accounts["accounts"][0]["paused"] or "")
        status, _ = await daemon.request("POST", "/v1/channels/file-0/resume")
        assert status == 200
        for _ in range(100):
            _, view = await daemon.request("GET", f"/v1/incidents/{answer['id']}")
            if view["settled"]:
                break
            await asyncio.sleep(0.1)
    finally:
        daemon.stop()
    assert view["counts"] == {"delivered": 1}
    assert (tmp_path / "sent.jsonl").read_text().strip()


async def test_a_pause_needs_a_reason_and_the_operate_role(tmp_path: Path) -> None:
    """A pause without a reason (or with unknown keys) is a 422 naming the field; a reader's
    is a 403; the account stays unpaused."""
    extra = FILE.format(tmp_path / "s") + READER
    config = write_config(tmp_path / "c.toml", tmp_path / "p.db", 0, [], extra=extra)
    daemon = DaemonProcess(config, 0, tmp_path / "daemon.log")
    await daemon.start()
    path = "/v1/channels/file-0/pause"
    try:
        answers = [
            (field, *await daemon.request("POST", path, json=body))
            for body, field in (
                ({}, "reason"),
                ({"reason": ""}, "reason"),
                ({"reason": "x", "y": 1}, "y"),
            )
        ]
        reader = {"Authorization": f"Bearer {OTHER_TOKEN}"}
        denied, _ = await daemon.request("POST", path, json={"reason": "x"}, headers=reader)
        _, accounts = await daemon.request("GET", "/v1/channels")
    finally:
        daemon.stop()
    for field, status, answer in answers:
        assert status == 422 and field in json.dumps(answer["errors"]), answer
    assert denied == 403 and accounts["accounts"][0]["paused"] is None
