"""Dependency aliases, declared once and used by every route: one per service, the settings,
the authenticated caller, and the refresh request."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request, Security

from app.api.answers import AnswerCache
from app.api.auth import Caller, authenticate
from app.api.errors import NotReadyError
from app.api.state import Services, get_settings
from app.metrics import Metrics
from app.services.directory import Directory
from app.services.events import EventHub
from app.services.idempotency import IdempotencyStore
from app.services.treasury import Treasury
from app.settings import Settings


async def get_metrics(request: Request) -> Metrics:
    metrics: Metrics = request.app.state.metrics
    return metrics


def _services(request: Request) -> Services:
    # The lifespan's state (LifespanState); absent while the service starts or stops.
    services: Services | None = getattr(request.state, "services", None)
    if services is None:
        raise NotReadyError("the service is starting or stopping")
    return services


async def get_treasury(request: Request) -> Treasury:
    return _services(request).treasury


async def get_directory(request: Request) -> Directory:
    return _services(request).directory


async def get_idempotency(request: Request) -> IdempotencyStore:
    return _services(request).idempotency


async def get_answers(request: Request) -> AnswerCache:
    return _services(request).answers


async def get_events(request: Request) -> EventHub:
    return _services(request).events


async def wants_refresh(
    cache_control: Annotated[
        str | None,
        Header(
            description="`no-cache` refetches from the upstreams (coalesced, and never more "
            "often than the configured minimum interval per connection)."
        ),
    ] = None,
) -> bool:
    if cache_control is None:
        return False
    directives = {part.strip().lower() for part in cache_control.split(",")}
    return "no-cache" in directives or "max-age=0" in directives


SettingsDep = Annotated[Settings, Depends(get_settings)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]
TreasuryDep = Annotated[Treasury, Depends(get_treasury)]
DirectoryDep = Annotated[Directory, Depends(get_directory)]
IdempotencyDep = Annotated[IdempotencyStore, Depends(get_idempotency)]
AnswersDep = Annotated[AnswerCache, Depends(get_answers)]
EventsDep = Annotated[EventHub, Depends(get_events)]
Refresh = Annotated[bool, Depends(wants_refresh)]
Reader = Annotated[Caller, Security(authenticate, scopes=["read"])]
Writer = Annotated[Caller, Security(authenticate, scopes=["write"])]
