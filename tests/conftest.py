"""Shared pytest configuration: async tests run on asyncio through anyio's plugin."""

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import stamina


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def one_try_per_read() -> Iterator[None]:
    """stamina's testing switch: one try per read, so a test's upstream faults and call counts
    mean what they say; tests of the retries themselves allow more (`retrying`)."""
    with stamina.set_testing(True, attempts=1):
        yield


@pytest.fixture(autouse=True)
def no_history_unless_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    """History is on by default and writes a SQLite file in the working directory: tests that
    are not about history leave it off (they turn it on, with a database of their own)."""
    monkeypatch.setenv("TESORO_HISTORY_ENABLED", "false")
    # Nor does the sandbox seed past history or move its balances, unless a test asks.
    monkeypatch.setenv("TESORO_SANDBOX_HISTORY_DAYS", "0")
    monkeypatch.setenv("TESORO_SANDBOX_MOVES_SECONDS", "0")


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Only the TESORO_* variables a test sets count: a developer's .env or shell must not
    leak in (the test runs in an empty folder, with every TESORO_* variable unset)."""
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.startswith("TESORO_"):
            monkeypatch.delenv(name)
