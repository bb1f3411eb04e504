"""The twitter-text v3 weighted length against the upstream conformance cases and config."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from alertcast.render.twitter import LIGHT_RANGES, MAX_WEIGHTED_LENGTH, tweet_length

SECTIONS = [
    ("WeightedTweetsWithDiscountedEmojiCounterTest", True),
    ("WeightedTweetsCounterTest", False),
    ("UnicodeDirectionalMarkerCounterTest", True),
]


def _cases(path: Path) -> list[tuple[str, dict[str, Any], bool]]:
    tests = yaml.safe_load(path.read_text(encoding="utf-8"))["tests"]
    return [(section, case, emoji) for section, emoji in SECTIONS for case in tests[section]]


@pytest.fixture(scope="module")
def conformance(shared_file: Callable[..., Path]) -> list[tuple[str, dict[str, Any], bool]]:
    return _cases(shared_file("twitter-text", "validate.yml"))


def test_every_conformance_case(conformance: list[tuple[str, dict[str, Any], bool]]) -> None:
    """Weighted length and validity match upstream for every weighted-length case."""
    failures = []
    for section, case, emoji in conformance:
        got = tweet_length(case["text"], emoji_parsing=emoji)
        want = case["expected"]
        if (got.weighted_length, got.valid) != (want["weightedLength"], want["valid"]):
            failures.append(f"{section}: {case['description']}: {got} != {want}")
    assert len(conformance) >= 40
    assert failures == []


def test_config_matches_upstream_v3(shared_file: Callable[..., Path]) -> None:
    """The weights in code are upstream's config/v3.json."""
    config = json.loads(shared_file("twitter-text", "v3.json").read_text(encoding="utf-8"))
    assert [(r["start"], r["end"], r["weight"]) for r in config["ranges"]] == list(LIGHT_RANGES)
    assert config["maxWeightedTweetLength"] == MAX_WEIGHTED_LENGTH
    assert (config["transformedURLLength"], config["defaultWeight"]) == (23, 200)


LOCAL = [
    ("cjk weighs two", "地震", 4),
    ("url weighs 23", "详情 https://alerts.example.org/i/inc_01J0", 2 * 2 + 1 + 23),
    ("unknown tld never under-counts", "https://alerts.example.internal/incident/1", 42),
    ("ip host is not a link", "http://127.0.0.1:8080/x", 23),
]


@pytest.mark.parametrize(("name", "text", "length"), LOCAL, ids=[c[0] for c in LOCAL])
def test_local_cases(name: str, text: str, length: int) -> None:
    """Our own links and texts are weighed as upstream would (or more, never less)."""
    assert tweet_length(text).weighted_length == length
