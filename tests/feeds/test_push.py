"""Push path: one posted event, parsed with the feed's type, refused with a reason."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from alertcast.feeds.events import BadEvent, MalformedFeed
from alertcast.feeds.rules import FeedConfig
from alertcast.feeds.source import parse_pushed

from ._make import cenc_bytes, usgs_bytes

MakeConfig = Callable[..., FeedConfig]


def test_pushed_feature(feed_config: MakeConfig) -> None:
    """A single GeoJSON feature becomes an event sourced by the feed's type."""
    feature = json.loads(usgs_bytes("significant_month.geojson"))["features"][2]
    ev = parse_pushed(feed_config(type="fdsn", url=None), json.dumps(feature).encode())
    assert (ev.source, ev.event_id, len(ev.ids)) == ("fdsn", "uw61965081", 4)


def test_pushed_cenc_row(feed_config: MakeConfig) -> None:
    """A cenc push feed also takes one quick-report row."""
    row = json.loads(cenc_bytes("cenc_google.json"))[1]
    now = datetime(2013, 4, 20, tzinfo=UTC)
    ev = parse_pushed(feed_config(type="cenc"), json.dumps(row).encode(), now=now)
    assert (ev.source, ev.report, ev.magnitude) == ("cenc", "official", 7.0)


@pytest.mark.parametrize(
    ("body", "error", "reason"),
    [
        (b"", MalformedFeed, "body is empty"),
        (b"{", MalformedFeed, "not JSON"),
        (b'{"type":"FeatureCollection","features":[]}', BadEvent, "one GeoJSON Feature"),
        (b"[1]", BadEvent, "not a JSON object"),
        (b'{"type":"Feature","id":"x","properties":{}}', BadEvent, "coordinates"),
    ],
)
def test_pushed_garbage(
    feed_config: MakeConfig, body: bytes, error: type[Exception], reason: str
) -> None:
    """Anything but one good event is refused with a reason fit for a 400 answer."""
    with pytest.raises(error, match=reason):
        parse_pushed(feed_config(), body)
