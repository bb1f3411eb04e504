"""Durable state behind a small protocol; the engine is chosen from the URL scheme."""

from __future__ import annotations

from alertcast.store.base import Store

__all__ = ["Store", "open_store"]


def open_store(url: str) -> Store:
    """``sqlite:///relative.db``, ``sqlite:////absolute.db`` or ``postgresql://…``."""
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

        return PostgresStore(url)
    raise ValueError(f"unknown store URL scheme in {url.split(':', 1)[0]!r}")
