"""The event bus: ids one above the last, a bounded replay that says when it has a gap, and a
slow subscriber told to re-read instead of slowing anyone."""

from __future__ import annotations

import asyncio

from alertcast.events import GAP, EventBus, Item


def _drain(queue: asyncio.Queue[Item]) -> list[Item]:
    items = []
    while not queue.empty():
        items.append(queue.get_nowait())
    return items


async def test_replay_after_an_id_held_then_a_gap_once_it_is_not() -> None:
    """since(id) gives every later event while they are held, a gap once the oldest is gone."""
    bus = EventBus(history=3)
    for n in range(3):
        bus.publish({"type": "incident", "id": f"i{n}"})
    first = bus.first_id + 1
    assert [e["id"] for _, e in bus.since(first)] == ["i1", "i2"]
    assert [e["id"] for _, e in bus.since(first - 1)] == ["i0", "i1", "i2"]
    bus.publish({"type": "incident", "id": "i3"})  # i0 falls out of the history
    assert [e["type"] for _, e in bus.since(first - 1)] == [GAP]
    assert bus.since(bus.last_id) == [] and bus.since(bus.last_id + 1)[0][1]["type"] == GAP


async def test_a_subscriber_that_falls_behind_gets_one_gap_then_what_follows() -> None:
    """A full queue is emptied and given one gap carrying the newest id it missed."""
    bus = EventBus(queue_size=2)
    async with bus.subscribe() as queue:
        for n in range(3):
            bus.publish({"type": "delivery", "id": f"d{n}"})
        missed = bus.last_id
        bus.publish({"type": "delivery", "id": "d3"})
        items = _drain(queue)
    assert [(i, e["type"]) for i, e in items] == [(missed, GAP), (missed + 1, "delivery")]


async def test_subscribe_after_replays_before_anything_live() -> None:
    """subscribe(after) queues the missed events first, then the live ones, none twice."""
    bus = EventBus()
    bus.publish({"type": "incident", "id": "a"})
    seen = bus.last_id
    bus.publish({"type": "incident", "id": "b"})
    async with bus.subscribe(seen) as queue:
        bus.publish({"type": "incident", "id": "c"})
        assert [e["id"] for _, e in _drain(queue)] == ["b", "c"]
