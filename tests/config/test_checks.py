"""The configuration is a leaf of tables; the channel cross-checks live in alertcast.checks."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from alertcast.checks import channel_problems, load_checked
from alertcast.config import Config, ConfigError, load_config

WEIBO = """
[server]
public_url = "https://alerts.example.gov.cn"
[[accounts]]
id = "city-weibo"
channel = "weibo"
access_token_env = "T_WEIBO"
safe_domain_url = "https://alerts.example.gov.cn/"
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "c.toml"
    path.write_text(text, encoding="utf-8")
    return path


def _problems(path: Path, *, check_env: bool = False) -> dict[str, str]:
    with pytest.raises(ConfigError) as caught:
        load_checked(path, check_env=check_env)
    return dict(caught.value.problems)


def test_config_imports_neither_channels_nor_renderer() -> None:
    """Importing alertcast.config loads no channel adapter and no renderer."""
    code = (
        "import sys, alertcast.config\n"
        "print(sorted(m for m in sys.modules if m.startswith(('alertcast.channels',"
        " 'alertcast.render', 'alertcast.checks'))))\n"
    )
    found = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert found.stdout.strip() == "[]"


def test_tables_alone_do_not_know_the_channels(tmp_path: Path) -> None:
    """load_config checks the tables only; load_checked adds what the channels refuse."""
    path = _write(tmp_path, WEIBO.replace('channel = "weibo"', 'channel = "pigeon"'))
    assert load_config(path).accounts[0].channel == "pigeon"
    assert "unknown channel 'pigeon'" in _problems(path)["accounts[0].channel"]


@pytest.mark.parametrize(
    ("edit", "path", "says"),
    [
        (('channel = "weibo"', 'channel = "pigeon"'), "accounts[0].channel", "unknown channel"),
        (("safe_domain_url", "safe_domain"), "accounts[0].safe_domain_url", "Field required"),
        (("[[accounts]]", "[[accounts]]\nformat = 'text'"), "accounts[0].format", "not 'text'"),
        (("[[accounts]]", "[[accounts]]\nrip = 'x'"), "accounts[0].rip", "IP"),
    ],
)
def test_each_channel_mistake_is_named_by_path(
    tmp_path: Path, edit: tuple[str, str], path: str, says: str
) -> None:
    """An account its channel refuses is reported at the key, with the channel's reason."""
    problems = _problems(_write(tmp_path, WEIBO.replace(*edit, 1)))
    assert says in problems[path], problems


def test_a_format_the_channel_does_not_take_names_those_it_does(tmp_path: Path) -> None:
    """format = "text" on a Weibo account: refused, naming the formats Weibo takes."""
    path = _write(tmp_path, WEIBO + 'format = "text"\n')
    assert _problems(path) == {
        "accounts[0].format": "channel weibo takes the formats weibo; not 'text'"
    }


def test_channel_and_table_problems_come_together(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A channel problem does not hide an unset variable, nor a table problem a channel one."""
    monkeypatch.delenv("T_WEIBO", raising=False)
    text = WEIBO.replace("[server]", "[server]\nport = 99999") + 'format = "sms"\n'
    problems = _problems(_write(tmp_path, text.replace("city-weibo", "bad id!")), check_env=True)
    assert set(problems) >= {"server.port", "accounts[0].id"}
    problems = _problems(_write(tmp_path, WEIBO + 'format = "sms"\n'), check_env=True)
    assert set(problems) == {"accounts[0].format", "accounts[0].access_token_env"}


def test_channel_problems_of_a_config_built_in_code() -> None:
    """The checks run on any Config, not only on one read from a file."""
    config = Config(accounts=[{"id": "c", "channel": "console", "format": "fax"}])
    assert channel_problems(config) == []  # the console takes any format; the renderer says
    config = Config(
        accounts=[{"id": "w", "channel": "wecom_robot", "key_env": "K", "format": "weibo"}]
    )
    assert [path for path, _ in channel_problems(config)] == ["accounts[0].format"]
