"""Fixtures for the rendering tests: one renderer for the session, accounts, shared data."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from alertcast.config import AccountConfig, RenderConfig
from alertcast.render import Renderer

ROOT = Path(__file__).resolve().parents[2]
SHARED_DATA = ROOT.parent / "shared" / "data"
# Every format the renderer must offer: the reviewed list both golden and property tests walk.
FORMATS = [
    "dingtalk_markdown",
    "feishu_post",
    "mastodon",
    "sms",
    "telegram",
    "text",
    "twitter",
    "webhook",
    "wechat_article",
    "wechat_template",
    "wecom_markdown",
    "wecom_text",
    "weibo",
]


@pytest.fixture(scope="session")
def renderer() -> Renderer:
    return Renderer(RenderConfig())


@pytest.fixture(scope="session")
def account() -> Callable[..., AccountConfig]:
    def make(fmt: str, language: str = "zh-CN", **options: Any) -> AccountConfig:
        return AccountConfig(
            id=f"{fmt}-{language}",
            channel="console",
            format=fmt,
            language=language,
            exercise=True,
            **options,
        )

    return make


@pytest.fixture(scope="session")
def shared_file() -> Callable[..., Path]:
    def find(*parts: str) -> Path:
        path = SHARED_DATA.joinpath(*parts)
        if not path.exists():
            pytest.skip(f"shared test data {path} is absent (needs ../shared beside the repo)")
        return path

    return find
