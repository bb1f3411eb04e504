"""check-config refuses what an account that sends to each recipient cannot do: lead a cluster
(it makes no public post to repost) or delete its original (there is no one post)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

PEOPLE = """
[[accounts]]
id = "people"
channel = "webhook"
url = "https://hooks.example.gov.cn/people"
secret_env = "T_HOOK"
per_recipient = true
"""
HALL = """
[[accounts]]
id = "hall"
channel = "webhook"
url = "https://hooks.example.gov.cn/hall"
secret_env = "T_HOOK"
"""


def _check(tmp_path: Path, accounts: str) -> tuple[int, str]:
    """``alertcast check-config`` as a subprocess on a file of ``accounts``."""
    path = tmp_path / "c.toml"
    path.write_text(
        '[server]\npublic_url = "https://alerts.example.gov.cn"\n' + accounts, encoding="utf-8"
    )
    cli = Path(sys.executable).with_name("alertcast")  # the installed console script
    env = {**os.environ, "T_HOOK": "hook-secret"}
    done = subprocess.run(
        [str(cli), "check-config", str(path)], capture_output=True, text=True, timeout=120, env=env
    )
    return done.returncode, done.stdout + done.stderr


def test_a_member_of_a_per_recipient_lead_is_refused_by_path(tmp_path: Path) -> None:
    """A member whose lead sends to each recipient would wait lead_wait_s for a post that
    never comes: refused, at the member's lead, with the lead's wait named."""
    code, out = _check(tmp_path, PEOPLE + HALL + 'lead = "people"\nlead_wait_s = 30\n')
    assert code != 0, out
    assert "accounts[1].lead (hall)" in out, out
    assert "people sends to each of its recipients" in out and "(30 s)" in out, out


@pytest.mark.parametrize("chosen", ["delete", "reply_and_delete"])
def test_a_per_recipient_account_that_would_delete_its_original_is_refused(
    tmp_path: Path, chosen: str
) -> None:
    """There is no one post to delete: refused at on_cancel, saying what to use instead."""
    code, out = _check(tmp_path, PEOPLE + f'on_cancel = "{chosen}"\n')
    assert code != 0, out
    assert "accounts[0].on_cancel (people)" in out, out
    assert 'use on_cancel = "reply"' in out, out


def test_the_same_on_accounts_that_post_publicly_is_accepted(tmp_path: Path) -> None:
    """The checks name per-recipient accounts only: a public webhook may lead and delete."""
    hall = HALL + 'on_cancel = "reply_and_delete"\n'
    member = HALL.replace('"hall"', '"member"', 1) + 'lead = "hall"\n'
    people = PEOPLE + 'on_cancel = "reply"\n'
    code, out = _check(tmp_path, hall + member + people)
    assert code == 0, out


def test_a_disabled_account_is_not_checked(tmp_path: Path) -> None:
    """A disabled account sends nothing: its lead and its on_cancel are not refused."""
    member = HALL + 'lead = "people"\nenabled = false\n'
    code, out = _check(tmp_path, PEOPLE + 'on_cancel = "delete"\nenabled = false\n' + member)
    assert code == 0, out
