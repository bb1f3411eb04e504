"""The five Chinese platform adapters are built-ins with the platforms' documented limits."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from alertcast.channels import channel_class
from alertcast.channels.base import Limits


@pytest.mark.parametrize(
    ("name", "limits"),
    [
        ("weibo", Limits(concurrency=2)),
        ("wechat_oa", Limits(concurrency=8)),
        ("wecom_robot", Limits(concurrency=1, per_minute=20)),
        ("dingtalk_robot", Limits(concurrency=1, per_minute=20)),
        ("feishu_robot", Limits(concurrency=1, per_minute=100, per_second=5)),
    ],
)
def test_registered_with_the_documented_limits(name: str, limits: Limits) -> None:
    """Each adapter is a built-in and declares the platform's limits (facts §1–4)."""
    assert channel_class(name).limits == limits


@pytest.mark.parametrize(
    "name", ["weibo", "wechat_oa", "wecom_robot", "dingtalk_robot", "feishu_robot"]
)
def test_unknown_option_keys_are_refused(name: str) -> None:
    """Each adapter's options forbid keys it does not know (a typo is a config error)."""
    with pytest.raises(ValidationError, match="extra"):
        channel_class(name).Options.model_validate({"key_env": "K", "tokn_env": "T"})
