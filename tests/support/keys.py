"""Caller API keys for tests: a read-scoped and a write-scoped key, and how to send them."""

from __future__ import annotations

import hashlib
from typing import Any

READ_KEY = "reader-key-0123456789"
WRITE_KEY = "writer-key-0123456789"


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def reader_and_writer() -> dict[str, dict[str, Any]]:
    """`api_keys` settings with a ``reader`` (READ_KEY, read) and a ``writer`` (WRITE_KEY,
    read and write)."""
    return {
        "reader": {"sha256": sha256(READ_KEY), "scopes": ["read"]},
        "writer": {"sha256": sha256(WRITE_KEY), "scopes": ["read", "write"]},
    }


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}
