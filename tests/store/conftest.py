"""The history store on both engines: a SQLite file per test, and one real PostgreSQL for the
session (emptied before each test)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from app.store.history import HistoryStore
from tests.support.postgres import PostgresServer, history_database, running_postgres


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    with running_postgres() as server:
        yield server


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return history_database(request, tmp_path)


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[HistoryStore]:
    opened = HistoryStore.open(database_url)
    await opened.upgrade()
    try:
        yield opened
    finally:
        await opened.close()
