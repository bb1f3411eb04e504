"""Account state on every engine: pauses stored and read back, and a spent account's alerts."""

from __future__ import annotations

import time
from dataclasses import replace

from alertcast.models import DeliveryState
from alertcast.store.base import AccountState, Store
from tests.store.test_contract import _delivery, _incident, create, store, store_url

__all__ = ["store", "store_url"]  # the engine fixtures, shared with the contract suite

QUOTA = AccountState(
    "wechat-city",
    paused_for="quota",
    paused_reason="quota exhausted: wechat 45028: has no masssend quota",
    paused_until=1_800_000_000.0,
    updated_at=100.0,
)
CREDENTIALS = AccountState(
    "weibo-city",
    paused_for="credentials",
    paused_reason="credentials rejected: weibo 21327",
    paused_credentials="00ff$abcd",
    updated_at=100.0,
)


async def test_account_states_read_back_whole(store: Store) -> None:
    """Every stored pause reads back as written, by account id; nothing stored reads empty."""
    assert await store.account_states() == {}
    await store.put_account_state(QUOTA)
    await store.put_account_state(CREDENTIALS)
    assert await store.account_states() == {"wechat-city": QUOTA, "weibo-city": CREDENTIALS}


async def test_a_later_state_replaces_the_stored_one(store: Store) -> None:
    """A resume written after the pause replaces it."""
    await store.put_account_state(QUOTA)
    resumed = AccountState("wechat-city", updated_at=200.0)
    await store.put_account_state(resumed)
    assert await store.account_states() == {"wechat-city": resumed}


async def test_an_older_state_never_replaces_a_newer_one(store: Store) -> None:
    """A replica that lagged (an older updated_at) changes nothing."""
    await store.put_account_state(QUOTA)
    await store.put_account_state(AccountState("wechat-city", updated_at=50.0))
    assert await store.account_states() == {"wechat-city": QUOTA}


async def test_claim_spent_takes_due_alerts_of_the_spent_accounts_only(store: Store) -> None:
    """Due alerts of the named accounts are claimed; other accounts', follow-ups', held,
    expired and not yet due ones are not."""
    now = time.time()
    alert = _incident(0)
    update = replace(_incident(1), msg_type="update", references=alert.id)
    await create(
        store,
        alert,
        [
            _delivery(1, "spent"),
            _delivery(2, "other"),
            _delivery(3, "spent", hold=True),
            _delivery(4, "spent", expires_at=now - 1),
            _delivery(5, "spent", not_before=now + 3600),
        ],
    )
    await create(store, update, [_delivery(6, "spent")])
    claims = await store.claim_spent(
        accounts=["spent"], now=now + 2, limit=10, lease_s=30, worker="w1"
    )
    assert [(c.delivery.id, c.msg_type) for c in claims] == [("d_1", "alert")]
    (row,) = [c.delivery for c in claims]
    assert (row.state, row.attempts) == (DeliveryState.sending, 1)
    stored = {d.id: d.state for d in await store.list_deliveries()}
    assert stored["d_1"] is DeliveryState.sending
    assert stored["d_6"] is DeliveryState.pending  # the update waits for the quota
    again = await store.claim_spent(
        accounts=["spent"], now=now + 2, limit=10, lease_s=30, worker="w2"
    )
    assert again == []  # claimed once: another worker does not take it too


async def test_claim_spent_honours_the_limit_and_priority(store: Store) -> None:
    """At most ``limit`` alerts, the highest priority first; none for no accounts."""
    await create(store, _incident(), [_delivery(i, "spent", priority=i) for i in range(1, 4)])
    now = time.time() + 2
    assert await store.claim_spent(accounts=[], now=now, limit=5, lease_s=30, worker="w") == []
    claims = await store.claim_spent(accounts=["spent"], now=now, limit=2, lease_s=30, worker="w")
    assert sorted(c.delivery.id for c in claims) == ["d_2", "d_3"]
