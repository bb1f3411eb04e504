"""One process per SQLite store: the lock is taken before anything is read, named when
refused, and given back on close."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from alertcast.store import open_store
from alertcast.store.base import StoreInUse


async def test_a_second_open_is_refused_naming_the_store_and_its_holder(tmp_path: Path) -> None:
    """While one store holds the file, another open is refused before it creates anything."""
    db = tmp_path / "held.db"
    first, second = open_store(f"sqlite:///{db}"), open_store(f"sqlite:///{db}")
    await first.open()
    try:
        with pytest.raises(StoreInUse) as refused:
            await second.open()
    finally:
        await first.close()
    assert str(db.resolve()) in str(refused.value)
    assert f"pid {os.getpid()}" in str(refused.value)


async def test_the_lock_is_given_back_on_close(tmp_path: Path) -> None:
    """A store closed in order frees the file for the next one (a restart, a migration)."""
    url = f"sqlite:///{tmp_path / 'reused.db'}"
    for _ in range(2):
        store = open_store(url)
        await store.open()
        await store.close()
