"""Cross-checks of a configuration against the channels and feeds: what tables cannot know.

:mod:`alertcast.config` validates every table and knows no channel; this module checks each
account against its channel — the name is one an adapter claims, the channel's own options
validate, the format is one the channel takes — and :func:`load_checked` is how the daemon and
the CLI load a configuration: every problem, of the tables and of these checks, by path.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

from pydantic import ValidationError

from alertcast.channels import UnknownChannel, channel_class
from alertcast.config import AccountConfig, Config, load_config
from alertcast.feeds.association import group_problems

__all__ = ["CHECKS", "account_problems", "channel_problems", "feed_problems", "load_checked"]


def load_checked(path: str | Path | None = None, *, check_env: bool = False) -> Config:
    """:func:`~alertcast.config.load_config` with :data:`CHECKS`: the configuration, or a
    :class:`~alertcast.config.ConfigError` listing every problem by path."""
    return load_config(path, check_env=check_env, checks=CHECKS)


def channel_problems(config: Config) -> list[tuple[str, str]]:
    """``(path, message)`` for every account its channel refuses."""
    return [
        (f"accounts[{i}]{where}", message)
        for i, account in enumerate(config.accounts)
        for where, message in account_problems(account)
    ]


def account_problems(account: AccountConfig) -> Iterator[tuple[str, str]]:
    """``(".key", message)`` for what the account's channel refuses: an unknown channel, its
    options, a format it does not take."""
    try:
        cls = channel_class(account.channel)
    except UnknownChannel as exc:
        yield ".channel", str(exc)
        return
    try:
        cls.Options.model_validate(account.channel_options)
    except ValidationError as exc:
        yield from ((_dotted(e["loc"]), e["msg"]) for e in exc.errors())
    if account.format is not None and not cls.takes(account.format):
        takes = ", ".join(sorted(cls.formats or {}))
        yield ".format", f"channel {cls.name} takes the formats {takes}; not {account.format!r}"


def _dotted(loc: Iterable[int | str]) -> str:
    """``.key[0].sub`` from a pydantic location, without the tags of union members."""
    return "".join(
        f"[{part}]" if isinstance(part, int) else f".{part}"
        for part in loc
        if isinstance(part, int) or part.isidentifier()
    )


def feed_problems(config: Config) -> list[tuple[str, str]]:
    """``(path, message)`` for every ``associate`` group of feeds that cannot work."""
    return group_problems(config.feeds)


CHECKS = (channel_problems, feed_problems)
"""Every cross-check :func:`load_checked` runs."""
