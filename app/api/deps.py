"""Dependency aliases, declared once and used by every route."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request

from app.api.auth import require
from app.api.errors import ProblemError
from app.api.state import Services


def get_services(request: Request) -> Services:
    services: Services | None = getattr(request.app.state, "services", None)
    if services is None:
        raise ProblemError(503, "the service is starting or stopping", kind="not-ready")
    return services


def wants_refresh(
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


ServicesDep = Annotated[Services, Depends(get_services)]
Refresh = Annotated[bool, Depends(wants_refresh)]
ReadAccess = Depends(require("read"))
WriteAccess = Depends(require("write"))
