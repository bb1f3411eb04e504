"""Shared fixtures for the feed tests."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from alertcast.feeds.rules import FeedConfig


@pytest.fixture
def feed_config() -> Callable[..., FeedConfig]:
    """A factory for feed configs: ``feed_config(type="cenc", min_magnitude=5)``."""

    def make(**overrides: Any) -> FeedConfig:
        # The recorded feeds are years old: the age gate is tested on its own (test_rules).
        data: dict[str, Any] = {
            "name": "test",
            "type": "usgs",
            "url": "https://feed.test/x",
            "max_age_s": None,
        }
        return FeedConfig.model_validate(data | overrides)

    return make
