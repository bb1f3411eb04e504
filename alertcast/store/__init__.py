"""Durable state behind a small protocol; the engine is chosen from the URL scheme."""

from __future__ import annotations

from collections.abc import Callable

from alertcast.store.base import Store

__all__ = ["Store", "open_store"]


def open_store(url: str, *, on_due: Callable[[], None] | None = None) -> Store:
    """``sqlite:///relative.db``, ``sqlite:////absolute.db`` or ``postgresql://…``.

    ``on_due`` is called when another process stores due work (PostgreSQL's LISTEN/NOTIFY);
    SQLite has one process, which knows what it stored.
    """
    if url.startswith("sqlite://"):
        from alertcast.store.sqlite import SQLiteStore

        path = url.removeprefix("sqlite://")
        path = path[1:] if path.startswith("/") else path
        if not path or path == ":memory:":
            raise ValueError(
                "sqlite store needs a file path (WAL needs a file): sqlite:///alertcast.db"
            )
        return SQLiteStore(path)
    if url.startswith(("postgresql://", "postgres://")):
        from alertcast.store.postgres import PostgresStore

        return PostgresStore(url, on_due=on_due)
    raise ValueError(f"unknown store URL scheme in {url.split(':', 1)[0]!r}")
