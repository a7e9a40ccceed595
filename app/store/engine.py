"""The async engine for a database URL: SQLite in WAL mode (readers never wait for the writer)
or PostgreSQL through asyncpg."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from app.store.urls import async_url, is_sqlite, sqlite_path


def open_engine(url: str) -> AsyncEngine:
    """An engine for `url` (`sqlite:///tesoro.db`, `postgresql://…`); nothing connects yet."""
    target = async_url(url)
    if not is_sqlite(target):
        # A replica's few writers and readers; connections checked before use survive a
        # database restart without an error reaching history.
        return create_async_engine(
            target,
            pool_size=5,
            max_overflow=5,
            pool_pre_ping=True,
            # A database that does not answer is found out in seconds, not asyncpg's minute.
            connect_args={"timeout": 5, "command_timeout": 30},
        )
    path = sqlite_path(target)
    if path is not None and path.parent != path:
        path.parent.mkdir(parents=True, exist_ok=True)
    engine = create_async_engine(target)

    @event.listens_for(engine.sync_engine, "connect")
    def _pragmas(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        # WAL: answers read while the recorder writes; NORMAL is durable at each checkpoint
        # and never corrupts; a writer waits for another (a second replica) instead of failing.
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=10000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    return engine
