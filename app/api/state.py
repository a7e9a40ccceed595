"""The typed state the lifespan builds and every request reads."""

from __future__ import annotations

from dataclasses import dataclass

from app.api.idempotency import IdempotencyStore
from app.domain.directory import Directory
from app.domain.treasury import Treasury
from app.settings import Settings


@dataclass(frozen=True)
class Services:
    settings: Settings
    treasury: Treasury
    directory: Directory
    idempotency: IdempotencyStore
