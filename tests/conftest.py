"""Shared pytest configuration: async tests run on asyncio through anyio's plugin."""

import os
from pathlib import Path

import pytest


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Only the TESORO_* variables a test sets count: a developer's .env or shell must not
    leak in (the test runs in an empty folder, with every TESORO_* variable unset)."""
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.startswith("TESORO_"):
            monkeypatch.delenv(name)
