"""An account's ``budgets``: calls per hour by the name of a budget its channel declares."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from alertcast.accounts import Accounts
from alertcast.config import Config, ConfigError, load_config
from alertcast.ratelimit import CORRECTION
from alertcast.secrets import Secrets

WEIBO = """
[[accounts]]
id = "city-weibo"
channel = "weibo"
access_token_env = "T_WEIBO"
safe_domain_url = "https://alerts.example.gov.cn/"
"""


def _load(tmp_path: Path, text: str) -> Config:
    path = tmp_path / "c.toml"
    path.write_text(text, encoding="utf-8")
    return load_config(path)


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


def _accounts(config: Config, session: aiohttp.ClientSession) -> Accounts:
    return Accounts(config, session, Secrets({"T_WEIBO": "weibo-token"}))


async def test_an_account_sets_its_budgets_and_keeps_the_others(
    tmp_path: Path, session: aiohttp.ClientSession
) -> None:
    """``budgets = { post = 10 }``: ten posts an hour (one kept for corrections), the
    platform's 60 comments and 150 calls in all."""
    config = _load(tmp_path, WEIBO + "budgets = { post = 10 }\n")
    (account,) = _accounts(config, session)
    assert {w.limit for w in account.limiter.windows_for("post")} == {10, 150}
    assert {w.limit for w in account.limiter.windows_for("reply")} == {60, 150}
    assert account.free(0.0) == 2  # the concurrency binds first
    assert account.limiter.room() == 9 and account.limiter.room(CORRECTION, ["post"]) == 10


@pytest.mark.parametrize(
    ("budgets", "path", "says"),
    [
        ("{ post = 0 }", "accounts[0].budgets.post", "greater than or equal to 1"),
        ("{ post = 1.5 }", "accounts[0].budgets.post", "valid integer"),
        ('{ "Post!" = 3 }', "accounts[0].budgets.Post!.[key]", "should match pattern"),
        ("30", "accounts[0].budgets", "valid dictionary"),
    ],
)
def test_a_budget_that_is_not_a_count_per_hour_is_refused_by_path(
    tmp_path: Path, budgets: str, path: str, says: str
) -> None:
    """Each mistake of the table is named by its path."""
    with pytest.raises(ConfigError) as refused:
        _load(tmp_path, WEIBO + f"budgets = {budgets}\n")
    problems = dict(refused.value.problems)
    assert says in problems[path], problems


@pytest.mark.parametrize(
    ("extra", "path", "says"),
    [
        (WEIBO + "budgets = { posts = 30 }\n", "accounts[0].budgets.posts", "comment, post, total"),
        (
            '[[accounts]]\nid = "hook"\nchannel = "webhook"\nurl = "https://h.example/"\n'
            'secret_env = "T_WEIBO"\nbudgets = { post = 5 }\n',
            "accounts[0].budgets.post",
            "its budgets: none",
        ),
    ],
)
async def test_a_budget_the_channel_lacks_stops_the_start(
    tmp_path: Path, session: aiohttp.ClientSession, extra: str, path: str, says: str
) -> None:
    """A name the account's channel has no budget for is a configuration error, by path."""
    config = _load(tmp_path, extra)
    with pytest.raises(ConfigError) as refused:
        _accounts(config, session)
    problems = dict(refused.value.problems)
    assert says in problems[path], problems


def test_check_config_names_a_budget_the_channel_lacks(tmp_path: Path) -> None:
    """`alertcast check-config` refuses it too, by path, before anything starts."""
    import subprocess
    import sys

    path = tmp_path / "c.toml"
    path.write_text(
        '[server]\npublic_url = "https://alerts.example.gov.cn"\n'
        + WEIBO
        + "budgets = { posts = 30 }\n",
        encoding="utf-8",
    )
    cli = Path(sys.executable).with_name("alertcast")  # the installed console script
    done = subprocess.run(
        [str(cli), "check-config", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode != 0
    assert "accounts[0].budgets.posts" in done.stdout + done.stderr
    assert "its budgets: comment, post, total" in done.stdout + done.stderr
