"""Test data: the real USGS files (skipped when absent), hand-written CENC lists, event factory."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from alertcast.feeds.events import QuakeEvent

REPO_ROOT = Path(__file__).resolve().parents[2]
USGS_DATA = REPO_ROOT / ".." / "shared" / "data" / "usgs"
HERE_DATA = Path(__file__).resolve().parent / "data"
USGS_FILES = ("all_hour.geojson", "significant_month.geojson", "significant_week.geojson")


def usgs_bytes(name: str) -> bytes:
    """A real USGS feed file from ``../shared/data/usgs/``; the test skips when it is absent."""
    path = USGS_DATA / name
    if not path.is_file():
        pytest.skip(f"real USGS feed file {path} is absent (shared data not checked out)")
    return path.read_bytes()


def cenc_bytes(name: str) -> bytes:
    """A hand-written CENC list from ``tests/feeds/data/``, in the documented wire format."""
    return (HERE_DATA / name).read_bytes()


_BASE = QuakeEvent(
    source="usgs",
    event_id="us7000abcd",
    ids=frozenset({"us7000abcd"}),
    time=datetime(2024, 4, 2, 23, 58, 11, tzinfo=UTC),
    updated=datetime(2024, 4, 3, 0, 10, tzinfo=UTC),
    magnitude=7.4,
    magnitude_type="mww",
    depth_km=34.8,
    latitude=23.82,
    longitude=121.56,
    place="18 km SSW of Hualien City, Taiwan",
    report="automatic",
    status="automatic",
)


def quake(**changes: Any) -> QuakeEvent:
    """A plausible event (Hualien 2024) with ``changes`` applied."""
    return replace(_BASE, **changes)
