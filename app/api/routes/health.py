"""Operational probes: liveness and readiness."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from app.api.errors import ProblemError, problem_responses
from app.api.state import Services

router = APIRouter(tags=["operations"])


class Health(BaseModel):
    status: Literal["ok"] = "ok"


class Readiness(BaseModel):
    status: Literal["ready"] = "ready"
    connections: list[str] = Field(description="The upstream connections this instance serves.")
    sandbox: bool = Field(description="True when serving the built-in simulators.")


@router.get("/healthz", name="get_health", summary="Liveness", response_model=Health)
async def get_health() -> Health:
    return Health()


@router.get(
    "/readyz",
    name="get_readiness",
    summary="Readiness",
    description="Ready when configured and started; does not call the upstreams.",
    response_model=Readiness,
    responses=problem_responses(503),
)
async def get_readiness(request: Request) -> Readiness:
    services: Services | None = getattr(request.app.state, "services", None)
    if services is None or not services.treasury.connections:
        raise ProblemError(503, "the service is not ready", kind="not-ready")
    return Readiness(
        connections=[c.key for c in services.treasury.connections],
        sandbox=services.settings.sandbox,
    )
