"""The typed state the lifespan builds and every request reads, through `app.api.deps`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypedDict

from fastapi import Request

from app.api.answers import AnswerCache
from app.services.directory import Directory
from app.services.events import EventHub
from app.services.idempotency import IdempotencyStore
from app.services.treasury import Treasury
from app.settings import Settings


@dataclass(frozen=True)
class Services:
    """What the lifespan opens for the routes: each is reached through its own dependency."""

    treasury: Treasury
    directory: Directory
    idempotency: IdempotencyStore
    answers: AnswerCache
    events: EventHub


class LifespanState(TypedDict):
    """What the lifespan yields; Starlette hands it to every request as `request.state`."""

    services: Services


async def get_settings(request: Request) -> Settings:
    """The one way to reach the settings: the ones create_app was built with."""
    settings: Settings = request.app.state.settings
    return settings
