"""Configuration: public key names, secrets by reference only, every problem with its path."""

from __future__ import annotations

import json
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


LONE_SUBSCRIPTION = """
[[accounts]]
id = "wechat-city"
channel = "wechat_oa"
app_id = "wx-app"
app_secret_env = "T_WX"
mode = "text"
format = "text"
"""
NO_PATH = (
    "accounts[1] (wechat-city): a public WeChat subscription account has one mass send a day, "
    "and the alert spends it: no account carries its updates and cancellations to its followers"
)


def test_check_config_and_serve_refuse_a_subscription_account_without_a_correction_path(
    tmp_path: Path,
) -> None:
    """check-config and serve both refuse it, with one message naming the account and the fix."""
    bad = tmp_path / "bad.toml"
    bad.write_text(GOOD + LONE_SUBSCRIPTION, encoding="utf-8")
    checked = _cli("check-config", "--no-env", str(bad))
    assert checked.returncode == 2 and NO_PATH in checked.stderr, checked.stderr
    assert 'Add corrections_via = ["<id>"]' in checked.stderr
    served = _cli("serve", "--config", str(bad), env={"T_TOKEN": "t" * 20, "T_WX": "w" * 20})
    assert served.returncode == 2 and NO_PATH in served.stderr, served.stderr


WEIBO_OFF_DOMAIN = (
    '[[accounts]]\nid = "city-weibo"\nchannel = "weibo"\naccess_token_env = "T_WB"\n'
    'safe_domain_url = "https://weibo-app.example.org/"\n'
)


@pytest.mark.parametrize(
    ("public_url", "extra", "says"),
    [
        (
            None,
            LONE_SUBSCRIPTION + 'corrections_via = ["wechat-city"]\n',
            "accounts[1].corrections_via[0] (wechat-city): names wechat-city itself",
        ),
        (
            None,
            LONE_SUBSCRIPTION + 'fallback = ["ops"]\n',
            "accounts[1].fallback[0] (wechat-city): ops already gets every incident wechat-city "
            "gets",
        ),
        (None, WEIBO_OFF_DOMAIN, "accounts[1] (city-weibo): [server] public_url is unset"),
        (
            "https://alerts.example.gov.cn",
            WEIBO_OFF_DOMAIN,
            "accounts[1].safe_domain_url (city-weibo): https://weibo-app.example.org/ does not "
            "cover [server] public_url https://alerts.example.gov.cn",
        ),
    ],
)
def test_check_config_names_each_correction_mistake(
    tmp_path: Path, public_url: str | None, extra: str, says: str
) -> None:
    """Each refusal of check-config is one line naming the path and the account."""
    server = f'port = 8099\npublic_url = "{public_url}"' if public_url else "port = 8099"
    bad = tmp_path / "bad.toml"
    bad.write_text(GOOD.replace("port = 8099", server) + extra, encoding="utf-8")
    result = _cli("check-config", "--no-env", str(bad))
    assert result.returncode == 2
    assert f"  {says}" in result.stderr, result.stderr


def test_the_example_pairs_its_subscription_account_with_a_template_service_account() -> None:
    """wechat-sichuan's corrections go through a service account that routing sends no alert of
    its own; the staff robot is a copy, not a fallback."""
    config = load_config(ROOT / "config" / "example.toml")  # with every check
    subscription = config.account("wechat-sichuan")
    assert subscription is not None and subscription.corrections_via == ["wechat-sichuan-service"]
    assert "wecom-duty" not in subscription.fallback
    service = config.account("wechat-sichuan-service")
    assert service is not None and service.enabled
    assert service.options["account_type"] == "service" and service.options["mode"] == "template"
    preview = _cli(
        "render",
        "config/samples/earthquake.json",
        "--account",
        "wechat-sichuan-service",
        "--config",
        "config/example.toml",
    )
    assert preview.returncode == 0, preview.stderr
    (entry,) = json.loads(preview.stdout)["accounts"]
    assert not entry["chosen"] and "excluded by route" in entry["why"], entry
