"""Channel adapters: an explicit table of built-ins plus the ``alertcast.channels`` entry points.

A third party adds an adapter by declaring an entry point in that group; a name that collides
with a built-in or another plug-in is an error at start-up, never a silent override.
"""

from __future__ import annotations

from functools import cache
from importlib import import_module
from importlib.metadata import entry_points

from alertcast.channels.base import (
    AuthExpired,
    Channel,
    ChannelError,
    Outgoing,
    Permanent,
    QuotaExhausted,
    RateLimited,
    Receipt,
    Transient,
)

__all__ = [
    "AuthExpired",
    "Channel",
    "ChannelError",
    "DuplicateChannel",
    "Outgoing",
    "Permanent",
    "QuotaExhausted",
    "RateLimited",
    "Receipt",
    "Transient",
    "UnknownChannel",
    "channel_class",
    "registry",
]

ENTRY_POINT_GROUP = "alertcast.channels"

BUILTINS: dict[str, str] = {
    "console": "alertcast.channels.console:ConsoleChannel",
    "file": "alertcast.channels.file:FileChannel",
    "webhook": "alertcast.channels.webhook:WebhookChannel",
    "weibo": "alertcast.channels.weibo:WeiboChannel",
    "wechat_oa": "alertcast.channels.wechat:WechatChannel",
    "wecom_robot": "alertcast.channels.wecom:WecomChannel",
    "dingtalk_robot": "alertcast.channels.dingtalk:DingtalkChannel",
    "feishu_robot": "alertcast.channels.feishu:FeishuChannel",
    "mastodon": "alertcast.channels.mastodon:MastodonChannel",
    "telegram": "alertcast.channels.telegram:TelegramChannel",
    "email": "alertcast.channels.smtp:EmailChannel",
    "sms": "alertcast.channels.sms:SmsChannel",
}


class UnknownChannel(LookupError):
    def __init__(self, name: str, known: list[str]) -> None:
        super().__init__(f"unknown channel {name!r}; known channels: {', '.join(known)}")


class DuplicateChannel(RuntimeError):
    """Two plug-ins (or a plug-in and a built-in) claim one channel name."""


@cache
def _load(target: str) -> type[Channel]:
    module, _, attr = target.partition(":")
    cls = getattr(import_module(module), attr)
    if not (isinstance(cls, type) and issubclass(cls, Channel)):
        raise TypeError(f"{target} is not a Channel subclass")
    return cls


@cache
def registry() -> dict[str, str]:
    """Channel name -> ``module:Class``; built-ins first, then entry points, collisions refused."""
    table = dict(BUILTINS)
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        known = table.get(ep.name)
        if known is not None and known != ep.value:
            raise DuplicateChannel(f"channel {ep.name!r} is claimed by {known} and {ep.value}")
        table[ep.name] = ep.value
    return table


def channel_class(name: str) -> type[Channel]:
    table = registry()
    if name not in table:
        raise UnknownChannel(name, sorted(table))
    return _load(table[name])
