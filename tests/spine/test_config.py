"""Configuration: public key names, secrets by reference only, every problem with its path."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from alertcast.checks import load_checked as load_config
from alertcast.config import ConfigError
from tests.conftest import ROOT

GOOD = """
[server]
port = 8099
[store]
url = "sqlite:///var/x.db"
[[issuers]]
name = "city"
token_env = "T_TOKEN"
[[accounts]]
id = "ops"
channel = "webhook"
url = "http://127.0.0.1:9/hook"
secret_env = "T_HOOK_SECRET"
"""


def _problems(tmp_path: Path, text: str, *, check_env: bool = False) -> dict[str, str]:
    path = tmp_path / "c.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(path, check_env=check_env)
    return dict(caught.value.problems)


def test_good_config_loads(tmp_path: Path, env: None) -> None:
    """A correct file loads with every secret present."""
    path = tmp_path / "c.toml"
    path.write_text(GOOD, encoding="utf-8")
    config = load_config(path, check_env=True)
    assert config.server.port == 8099
    assert config.accounts[0].options == {
        "url": "http://127.0.0.1:9/hook",
        "secret_env": "T_HOOK_SECRET",
    }


@pytest.mark.parametrize(
    ("edit", "path", "says"),
    [
        (
            ('token_env = "T_TOKEN"', 'token = "abc123"'),
            "issuers[0].token",
            "never written in the config",
        ),
        (
            ('secret_env = "T_HOOK_SECRET"', 'secret = "s3cr3t"'),
            "accounts[0].secret",
            "never written",
        ),
        (('channel = "webhook"', 'channel = "pigeon"'), "accounts[0].channel", "unknown channel"),
        (("port = 8099", "port = 99999"), "server.port", "less than or equal"),
        (("[server]", "[server]\nhots = 1"), "server.hots", "Extra inputs"),
        (('url = "http://127.0.0.1:9/hook"', 'url = "not a url"'), "accounts[0].url", "URL"),
        (('url = "sqlite:///var/x.db"', 'url = "mysql://x"'), "store.url", "sqlite://"),
    ],
)
def test_each_mistake_is_named_by_path(
    tmp_path: Path, edit: tuple[str, str], path: str, says: str
) -> None:
    """A broken key is reported at its dotted path with a reason."""
    problems = _problems(tmp_path, GOOD.replace(*edit, 1))
    assert path in problems, problems
    assert says in problems[path]


def test_missing_environment_variable_is_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """check_env lists every unset secret variable by the key that names it."""
    monkeypatch.delenv("T_TOKEN", raising=False)
    monkeypatch.delenv("T_HOOK_SECRET", raising=False)
    problems = _problems(tmp_path, GOOD, check_env=True)
    assert problems == {
        "issuers[0].token_env": "environment variable T_TOKEN is not set",
        "accounts[0].secret_env": "environment variable T_HOOK_SECRET is not set",
    }


def test_drill_statuses_need_the_exercise_flag(tmp_path: Path) -> None:
    """An account cannot take drills without exercise = true."""
    problems = _problems(tmp_path, GOOD + 'statuses = ["actual", "exercise"]\n')
    assert any("exercise" in m for m in problems.values())


def test_duplicate_account_ids(tmp_path: Path) -> None:
    """Two accounts with one id are refused."""
    text = GOOD + GOOD[GOOD.index("[[accounts]]") :]
    problems = _problems(tmp_path, text)
    assert any("duplicate" in m for m in problems.values())


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run(
        [sys.executable, "-m", "alertcast.cli", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        timeout=60,
    )


def test_check_config_cli_explains_and_fails(tmp_path: Path) -> None:
    """alertcast check-config prints each problem and exits non-zero."""
    bad = tmp_path / "bad.toml"
    bad.write_text(GOOD.replace('channel = "webhook"', 'channel = "pigeon"'), encoding="utf-8")
    result = _cli("check-config", str(bad))
    assert result.returncode == 2
    assert "accounts[0].channel: unknown channel 'pigeon'" in result.stderr
    assert "issuers[0].token_env: environment variable T_TOKEN is not set" in result.stderr


def test_check_config_cli_accepts_the_example() -> None:
    """The shipped example passes check-config once the variables it names are set."""
    import re

    names = re.findall(r'_env = "(\w+)"', (ROOT / "config" / "example.toml").read_text())
    result = _cli("check-config", "config/example.toml", env={n: "x" * 20 for n in names})
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ok:")
