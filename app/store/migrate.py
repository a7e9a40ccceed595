"""Applying the history store's migrations (Alembic, configured here: no alembic.ini), once
even when several replicas start together: PostgreSQL under an advisory lock, SQLite under a
lock on a file beside the database."""

from __future__ import annotations

import asyncio
import fcntl
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.store.urls import sqlite_path

logger = logging.getLogger(__name__)

# pg_advisory_xact_lock's key: any fixed number, the same on every replica ("tesoro" in ASCII).
MIGRATION_LOCK_KEY = 0x74_65_73_6F_72_6F

_SCRIPTS = str(Path(__file__).parent / "migrations")


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", _SCRIPTS)
    return config


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def _upgrade(connection: Connection) -> tuple[str | None, str | None]:
    before = MigrationContext.configure(connection).get_current_revision()
    config = alembic_config()
    config.attributes["connection"] = connection
    command.upgrade(config, "head")
    after = MigrationContext.configure(connection).get_current_revision()
    return before, after


def current_revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


@contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    lock = path.with_name(path.name + ".migrate-lock")
    with lock.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


async def upgrade(engine: AsyncEngine) -> tuple[str | None, str | None]:
    """Bring the store to the latest revision; returns (revision before, after)."""
    if engine.dialect.name == "postgresql":
        async with engine.begin() as connection:
            # Held to the end of this transaction: a replica starting at the same moment waits
            # here, then finds the store already at head.
            await connection.execute(
                text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY}
            )
            before, after = await connection.run_sync(_upgrade)
    else:
        path = sqlite_path(engine.url)
        if path is None:
            async with engine.begin() as connection:
                before, after = await connection.run_sync(_upgrade)
        else:
            lock = _file_lock(path)
            # flock blocks: taken in a thread, so the event loop goes on meanwhile.
            await asyncio.to_thread(lock.__enter__)
            try:
                async with engine.begin() as connection:
                    before, after = await connection.run_sync(_upgrade)
            finally:
                lock.__exit__(None, None, None)
    if before != after:
        logger.info("history store migrated from %s to %s", before or "empty", after)
    return before, after
