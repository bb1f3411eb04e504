"""The whole CLI as a subprocess against a running daemon: one test per command, one per
common mistake (each a single line on stderr and its documented exit code, no traceback)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from alertcast.cli import ExitCode, parser
from tests.conftest import OTHER_TOKEN, ROOT, TOKEN, incident
from tests.spine.daemon_proc import ENV, DaemonProcess, free_port, write_config

pytestmark = pytest.mark.slow

ACCOUNTS = """
[[issuers]]
name = "province"
token_env = "T_OTHER_TOKEN"
can_approve = true

[[accounts]]
id = "file-0"
channel = "file"
path = "{sent}"

[[accounts]]
id = "hook-dead"
channel = "webhook"
url = "http://127.0.0.1:{dead}/"
secret_env = "T_HOOK_SECRET"
max_attempts = 1
"""
QUICK = ["--kind", "general", "--headline", "水厂检修停水", "--area", "510100"]


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    tmp = tmp_path_factory.mktemp("cli")
    extra = ACCOUNTS.format(sent=tmp / "sent.jsonl", dead=free_port())
    config = write_config(tmp / "c.toml", tmp / "p.db", 0, [], extra=extra)
    proc = DaemonProcess(config, 0, tmp / "daemon.log")
    asyncio.run(proc.start())
    yield proc
    proc.stop()


def cli(
    *args: str, daemon: DaemonProcess | None = None, stdin: str | None = None, **env: str
) -> subprocess.CompletedProcess[str]:
    base = {**os.environ, **ENV, "ALERTCAST_TOKEN": TOKEN}
    base.pop("ALERTCAST_URL", None)
    if daemon is not None:
        base["ALERTCAST_URL"] = daemon.url
    done = subprocess.run(
        [sys.executable, "-m", "alertcast.cli", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=90,
        input=stdin,
        env={**base, **env},
    )
    assert "Traceback" not in done.stderr, done.stderr
    return done


def accepted_id(out: str) -> str:
    found = re.search(r"accepted (\S+?):", out)
    assert found, out
    return found.group(1)


def one_line(done: subprocess.CompletedProcess[str], code: ExitCode, *words: str) -> None:
    assert done.returncode == code, done.stdout + done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    for word in words:
        assert word in done.stderr


def send_quick(daemon: DaemonProcess, *more: str) -> str:
    done = cli("send", *QUICK, "--text", "明日停水", *more, daemon=daemon)
    assert done.returncode == 0, done.stderr
    return accepted_id(done.stdout)


# -- help and version ---------------------------------------------------------------------------
def test_version_and_the_exit_codes_in_help() -> None:
    """--version names the version; --help documents every exit code."""
    assert cli("--version").stdout.strip().startswith("alertcast 0.")
    text = cli("--help").stdout
    for code in ExitCode:
        assert re.search(rf"^  {code.value}  ", text, re.M), code


def test_every_option_has_help() -> None:
    """Every option and argument of every command says what it is for."""
    missing = []
    for name, sub in parser()._subparsers._group_actions[0].choices.items():  # type: ignore[union-attr]
        missing += [f"{name} {a.dest}" for a in sub._actions if not a.help]
    assert missing == []


# -- the commands -------------------------------------------------------------------------------
def test_send_quick_form_then_show(daemon: DaemonProcess) -> None:
    """The quick form posts a general incident; show lists its deliveries and counts."""
    incident_id = send_quick(daemon)
    shown = cli("show", incident_id, daemon=daemon)
    assert shown.returncode == 0 and incident_id in shown.stdout and "file-0" in shown.stdout
    assert "counts:" in shown.stdout


def test_send_reads_standard_input(daemon: DaemonProcess) -> None:
    """send - takes the incident JSON from standard input."""
    done = cli("send", "-", daemon=daemon, stdin=json.dumps(incident()))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.split("\n", 1)[1])["id"] == accepted_id(done.stdout)


def test_send_follow_ends_with_each_deliverys_path_and_retry(daemon: DaemonProcess) -> None:
    """--follow on a terminal is a live table; it ends with every delivery's row and exits 1
    when one is dead."""
    done = cli("send", *QUICK, "--text", "x", "--follow", daemon=daemon, TTY_COMPATIBLE="1")
    assert done.returncode == ExitCode.REFUSED, done.stdout + done.stderr
    assert "next try" in done.stdout and "path" in done.stdout
    assert re.search(r"hook-dead .*dead", done.stdout) and "settled:" in done.stdout


def test_incidents_lists_recent_ones(daemon: DaemonProcess) -> None:
    """incidents lists what was sent, newest first; --json is the API's answer."""
    incident_id = send_quick(daemon)
    listed = cli("incidents", "--kind", "general", daemon=daemon)
    assert listed.returncode == 0 and incident_id in listed.stdout
    raw = json.loads(cli("incidents", "--json", "--limit", "1", daemon=daemon).stdout)
    assert len(raw["incidents"]) == 1


def test_update_and_cancel_with_reason(daemon: DaemonProcess) -> None:
    """update posts new facts; cancel --reason --follow ends with the correction's paths."""
    incident_id = send_quick(daemon)
    updated = cli("update", incident_id, "--headline", "停水延长", daemon=daemon)
    assert updated.returncode == 0 and "accepted" in updated.stdout, updated.stderr
    cancelled = cli(
        "cancel", incident_id, "--reason", "检修取消", "--follow", "--timeout", "60", daemon=daemon
    )
    assert "settled:" in cancelled.stdout, cancelled.stdout + cancelled.stderr
    assert "file-0" in cancelled.stdout and "path" in cancelled.stdout
    shown = json.loads(cli("show", incident_id, "--json", daemon=daemon).stdout)
    assert shown["state"] == "cancelled"


def test_update_reads_a_patch_from_standard_input(daemon: DaemonProcess) -> None:
    """update ID - merges the JSON object read from standard input."""
    incident_id = send_quick(daemon)
    done = cli("update", incident_id, "-", daemon=daemon, stdin='{"instruction": "储水"}')
    assert done.returncode == 0, done.stderr


def test_approve_by_a_second_person(daemon: DaemonProcess) -> None:
    """An extreme incident waits; the second issuer's approve releases it."""
    incident_id = send_quick(daemon, "--severity", "extreme")
    held = json.loads(cli("show", incident_id, "--json", daemon=daemon).stdout)
    assert held["state"] == "awaiting_approval"
    done = cli("approve", incident_id, daemon=daemon, ALERTCAST_TOKEN=OTHER_TOKEN)
    assert done.returncode == 0 and "approved" in done.stdout, done.stderr
    assert json.loads(cli("show", incident_id, "--json", daemon=daemon).stdout)["state"] == "active"


def test_reject_by_a_second_person(daemon: DaemonProcess) -> None:
    """The second issuer's reject --reason withdraws a held incident: it ends cancelled."""
    incident_id = send_quick(daemon, "--severity", "extreme")
    done = cli(
        "reject", incident_id, "--reason", "震级有误", daemon=daemon, ALERTCAST_TOKEN=OTHER_TOKEN
    )
    assert done.returncode == 0 and "rejected" in done.stdout, done.stderr
    shown = json.loads(cli("show", incident_id, "--json", daemon=daemon).stdout)
    assert shown["state"] == "cancelled"


def test_retry_a_dead_delivery(daemon: DaemonProcess) -> None:
    """retry re-drives the delivery the dead webhook ended."""
    incident_id = send_quick(daemon)
    dead = _wait_for(daemon, incident_id, "hook-dead", "dead")
    done = cli("retry", dead["id"], daemon=daemon)
    assert done.returncode == 0 and "re-driven" in done.stdout, done.stderr
    _wait_for(daemon, incident_id, "hook-dead", "dead", attempts=2)


def test_pause_accounts_resume(daemon: DaemonProcess) -> None:
    """pause with a reason shows in accounts (and holds the account); resume frees it."""
    paused = cli("pause", "file-0", "--reason", "换令牌", daemon=daemon)
    assert paused.returncode == 0 and "换令牌" in paused.stdout, paused.stderr
    try:
        listed = cli("accounts", daemon=daemon)
        assert re.search(r"file-0 .*UNHEALTHY.*paused: .*换令牌", listed.stdout), listed.stdout
        incident_id = send_quick(daemon)
        time.sleep(1.0)
        assert _delivery(daemon, incident_id, "file-0")["state"] == "pending"
    finally:
        resumed = cli("resume", "file-0", daemon=daemon)
    assert resumed.returncode == 0 and "resumed file-0" in resumed.stdout, resumed.stderr
    _wait_for(daemon, incident_id, "file-0", "delivered")


def test_feeds(daemon: DaemonProcess) -> None:
    """feeds lists the feeds (none here) and exits 0."""
    done = cli("feeds", daemon=daemon)
    assert done.returncode == 0 and "no feeds" in done.stdout
    assert json.loads(cli("feeds", "--json", daemon=daemon).stdout) == {"feeds": []}


def test_tail_prints_events_and_resumes_after_the_last_id(daemon: DaemonProcess) -> None:
    """tail prints each event as it happens; --last-event-id replays what came after."""
    base = {**os.environ, **ENV, "ALERTCAST_TOKEN": TOKEN, "ALERTCAST_URL": daemon.url}
    with subprocess.Popen(
        [sys.executable, "-m", "alertcast.cli", "tail", "--count", "2", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env=base,
    ) as tail:
        time.sleep(2.0)  # connected before the send (a replay would not need it)
        incident_id = send_quick(daemon)
        out, err = tail.communicate(timeout=60)
    assert tail.returncode == 0, err
    first = [json.loads(line) for line in out.splitlines()]
    assert first[0] == {**first[0], "type": "incident", "id": incident_id}
    again = cli("tail", "--count", "1", "--json", "--last-event-id", "1", daemon=daemon)
    assert json.loads(again.stdout)["type"] == "gap", again.stdout + again.stderr


# -- the common mistakes ------------------------------------------------------------------------
def test_daemon_down(refused_port: int) -> None:
    """No daemon at the URL: one line naming it, exit 4."""
    done = cli("incidents", "--url", f"http://127.0.0.1:{refused_port}")
    one_line(done, ExitCode.UNREACHABLE, f"127.0.0.1:{refused_port}", "alertcast serve")


def test_missing_file(daemon: DaemonProcess) -> None:
    """send of a file that is not there: one line naming it, exit 2."""
    one_line(cli("send", "nope.json", daemon=daemon), ExitCode.USAGE, "nope.json")


def test_not_json(daemon: DaemonProcess, tmp_path: Path) -> None:
    """render of a file that is not JSON: one line, exit 2."""
    path = tmp_path / "bad.json"
    path.write_text("{", encoding="utf-8")
    one_line(cli("render", str(path), "--config", "config/example.toml"), ExitCode.USAGE, "JSON")


def test_cap_given_to_render(tmp_path: Path) -> None:
    """render of a CAP file: one line saying render takes JSON, exit 2."""
    path = tmp_path / "alert.xml"
    path.write_text("<alert/>", encoding="utf-8")
    done = cli("render", str(path), "--config", "config/example.toml")
    one_line(done, ExitCode.USAGE, "CAP", "JSON")


def test_unknown_account_to_render() -> None:
    """render --account that the configuration does not have: one line, exit 6."""
    done = cli(
        "render",
        "config/samples/earthquake.json",
        "--account",
        "nope",
        "--config",
        "config/example.toml",
    )
    one_line(done, ExitCode.NOT_FOUND, "nope")


def test_unknown_account_to_pause(daemon: DaemonProcess) -> None:
    """pause of an account the daemon does not have: one line, exit 6."""
    done = cli("pause", "nope", "--reason", "x", daemon=daemon)
    one_line(done, ExitCode.NOT_FOUND, "nope")


def test_unknown_incident(daemon: DaemonProcess) -> None:
    """show of an incident that does not exist: one line, exit 6."""
    one_line(cli("show", "inc_nope", daemon=daemon), ExitCode.NOT_FOUND, "inc_nope")


def test_token_unset(daemon: DaemonProcess) -> None:
    """No token in the environment: one line saying which variable, exit 5."""
    one_line(cli("incidents", daemon=daemon, ALERTCAST_TOKEN=""), ExitCode.AUTH, "ALERTCAST_TOKEN")


def test_missing_secret_file(daemon: DaemonProcess, tmp_path: Path) -> None:
    """A token _FILE that does not exist: one line naming it, exit 5; an existing one works."""
    gone = tmp_path / "gone"
    done = cli("incidents", daemon=daemon, ALERTCAST_TOKEN="", ALERTCAST_TOKEN_FILE=str(gone))
    one_line(done, ExitCode.AUTH, "ALERTCAST_TOKEN_FILE", str(gone))
    (tmp_path / "tok").write_text(TOKEN + "\n", encoding="utf-8")
    good = cli(
        "incidents", daemon=daemon, ALERTCAST_TOKEN="", ALERTCAST_TOKEN_FILE=str(tmp_path / "tok")
    )
    assert good.returncode == 0, good.stderr


def test_serve_with_a_missing_secret_file(tmp_path: Path) -> None:
    """serve whose issuer token's _FILE does not exist: one line naming the file, exit 2."""
    config = write_config(tmp_path / "c.toml", tmp_path / "p.db", 0, [])
    gone = tmp_path / "token"
    done = cli("serve", "--config", str(config), T_TOKEN="", T_TOKEN_FILE=str(gone))
    one_line(done, ExitCode.USAGE, "T_TOKEN_FILE", str(gone))


def test_bad_token(daemon: DaemonProcess) -> None:
    """A token the daemon does not know: one line, exit 5."""
    done = cli("incidents", daemon=daemon, ALERTCAST_TOKEN="not-a-token-at-all")
    one_line(done, ExitCode.AUTH, "refused the token")


def test_refused_send_names_the_fields(daemon: DaemonProcess) -> None:
    """An incident the daemon refuses: the first line says so, each field follows; exit 1."""
    done = cli(
        "send",
        "--kind",
        "general",
        "--headline",
        "x",
        "--area",
        "510100",
        "--text",
        "y",
        "--occurred-at",
        "yesterday",
        daemon=daemon,
    )
    assert done.returncode == ExitCode.REFUSED and "occurred_at" in done.stderr, done.stderr


def test_quick_form_incomplete(daemon: DaemonProcess) -> None:
    """A quick form without its text: one line naming what is missing, exit 2."""
    one_line(cli("send", *QUICK, daemon=daemon), ExitCode.USAGE, "--text")


# -- helpers ------------------------------------------------------------------------------------
def _delivery(daemon: DaemonProcess, incident_id: str, account: str) -> dict[str, Any]:
    view = json.loads(cli("show", incident_id, "--json", daemon=daemon).stdout)
    return next(d for d in view["deliveries"] if d["account"] == account)


def _wait_for(
    daemon: DaemonProcess, incident_id: str, account: str, state: str, attempts: int = 1
) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while True:
        d = _delivery(daemon, incident_id, account)
        if d["state"] == state and d["attempts"] >= attempts:
            return d
        assert time.monotonic() < deadline, d
        time.sleep(0.2)
