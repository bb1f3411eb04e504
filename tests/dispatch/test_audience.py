"""The audience of a ``custom`` send: the store's window in, the sends noted back, each once."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from alertcast.audience import Audience
from alertcast.channels._fanout import Result, fan_out, one_page
from alertcast.channels.base import Outgoing, Receipt, Transient
from alertcast.store import open_store
from alertcast.store.base import Store

FOLLOWERS = [f"o-{n}" for n in range(6)]


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    s = open_store(f"sqlite:///{tmp_path / 'audience.db'}")
    await s.open()
    for openid in FOLLOWERS:
        await s.note_interaction("wx", openid, "message", time.time())
    yield s
    await s.close()


async def left(store: Store) -> dict[str, int]:
    return {w.openid: w.left for w in await store.window("wx", now=time.time(), limit=50)}


def custom(
    progress: dict[str, Any] | None = None, checkpoint: Callable[[], Awaitable[bool]] | None = None
) -> Outgoing:
    return Outgoing(
        delivery_id="d-1",
        incident_id="inc-1",
        idempotency_key="d-1",
        payload={"format": "text", "text": "更正"},
        action="custom",
        progress=progress if progress is not None else {},
        checkpoint=checkpoint,
    )


def adapter(busy: set[str], addressed: list[list[str]]) -> Callable[[Outgoing], Awaitable[Receipt]]:
    """A per-recipient sender on the real fan-out cursor, checkpointing after every send."""

    async def deliver(msg: Outgoing) -> Receipt:
        addressed.append(list(msg.recipients or ()))

        async def send_one(openid: str) -> Result:
            if openid in busy:
                raise Transient("system busy")
            return Result(sent=True)

        pages = one_page(list(msg.recipients or ()))
        await fan_out(msg, pages, send_one, concurrency=1, timeout_s=5, every=1)
        return Receipt()

    return deliver


async def test_other_actions_pass_through_unaddressed(store: Store) -> None:
    """A post is handed to the adapter as it is: no recipients, nothing noted."""
    seen: list[Outgoing] = []

    async def deliver(msg: Outgoing) -> Receipt:
        seen.append(msg)
        return Receipt()

    post = Outgoing("d-1", "inc-1", "d-1", {"text": "x"})
    await Audience(store).send("wx", post, deliver)
    assert seen == [post] and await left(store) == dict.fromkeys(FOLLOWERS, 5)


async def test_the_window_is_addressed_and_sends_are_noted_before_each_checkpoint(
    store: Store,
) -> None:
    """Recipients come from the window; each checkpoint finds the sends so far counted."""
    counted: list[dict[str, int]] = []

    async def checkpoint() -> bool:
        counted.append(await left(store))
        return True

    addressed: list[list[str]] = []
    msg = custom(checkpoint=checkpoint)
    with pytest.raises(Transient):
        await Audience(store).send("wx", msg, adapter({"o-3"}, addressed))
    assert addressed == [FOLLOWERS]
    assert counted[0] == {"o-0": 4, **dict.fromkeys(FOLLOWERS[1:], 5)}
    assert await left(store) == {
        **dict.fromkeys(FOLLOWERS[:3], 4),
        **dict.fromkeys(FOLLOWERS[3:], 5),
    }


async def test_a_retry_notes_only_what_it_sent(store: Store) -> None:
    """The second attempt resumes from the cursor: every follower is counted exactly once."""
    addressed: list[list[str]] = []
    first = custom()
    with pytest.raises(Transient):
        await Audience(store).send("wx", first, adapter({"o-3"}, addressed))
    await Audience(store).send("wx", custom(first.progress), adapter(set(), addressed))
    assert first.progress["sent"] == len(FOLLOWERS)
    assert await left(store) == dict.fromkeys(FOLLOWERS, 4)


async def test_at_most_the_configured_number_are_addressed(store: Store) -> None:
    """A delivery addresses at most ``most`` followers, paged through the window by openid."""
    addressed: list[list[str]] = []
    await Audience(store, most=4).send("wx", custom(), adapter(set(), addressed))
    assert addressed == [FOLLOWERS[:4]]


async def test_a_store_that_cannot_say_is_a_transient_error(tmp_path: Path) -> None:
    """Reading the window fails: the send is retried later, the adapter never called."""
    broken = open_store(f"sqlite:///{tmp_path / 'closed.db'}")
    addressed: list[list[str]] = []
    with pytest.raises(Transient, match="inside the window"):
        await Audience(broken).send("wx", custom(), adapter(set(), addressed))
    assert addressed == []
