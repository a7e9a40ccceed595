"""Operational probes: liveness and readiness."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from app.api.deps import SettingsDep, TreasuryDep
from app.api.errors import NotReadyError, problem_responses

router = APIRouter(tags=["operations"])


class Health(BaseModel):
    """The process is alive."""

    model_config = ConfigDict(json_schema_serialization_defaults_required=True)

    status: Literal["ok"] = Field(default="ok", description="Always `ok`.")


class Readiness(BaseModel):
    """The service is configured and started."""

    model_config = ConfigDict(json_schema_serialization_defaults_required=True)

    status: Literal["ready"] = Field(default="ready", description="Always `ready`.")
    connections: list[str] = Field(description="The upstream connections this instance serves.")
    sandbox: bool = Field(description="True when serving the built-in simulators.")
    redis: Literal["off", "ok", "unavailable"] = Field(
        default="off",
        description="The shared tier: `off` (TESORO_REDIS_URL not set), `ok`, or `unavailable` "
        "(this replica serves from its own cache and the upstreams until Redis answers again; "
        "never makes the service unready).",
    )
    history: Literal["off", "ok", "unavailable"] = Field(
        default="off",
        description="The history store: `off` (TESORO_HISTORY_ENABLED is false), `ok`, or "
        "`unavailable` (answers are served as before and observations wait in a bounded "
        "queue; never makes the service unready).",
    )


@router.get(
    "/healthz",
    name="get_health",
    summary="Liveness",
    description="Answers while the process is alive; calls nothing. No authentication.",
    response_model=Health,
    response_description="Alive.",
)
async def get_health() -> Health:
    return Health()


@router.get(
    "/readyz",
    name="get_readiness",
    summary="Readiness",
    description="Ready when configured and started; does not call the upstreams (it pings "
    "Redis and the history store when they are on, and reports them without depending on "
    "them). No authentication.",
    response_model=Readiness,
    response_description="Ready to serve.",
    responses=problem_responses(503, descriptions={503: "Not started, or stopping."}),
)
async def get_readiness(
    request: Request, treasury: TreasuryDep, settings: SettingsDep
) -> Readiness:
    if not treasury.connections:
        raise NotReadyError("the service has no upstream connection")
    # Redis is an optional tier: its state is reported, never a reason to be unready.
    shared = getattr(request.app.state, "redis", None)
    redis: Literal["off", "ok", "unavailable"] = "off"
    if shared is not None:
        redis = "ok" if await shared.ping() else "unavailable"
    # So is the history store.
    recorder = getattr(request.app.state, "history", None)
    history: Literal["off", "ok", "unavailable"] = "off"
    if recorder is not None:
        history = "ok" if await recorder.ping() else "unavailable"
    return Readiness(
        connections=[c.key for c in treasury.connections],
        sandbox=settings.sandbox,
        redis=redis,
        history=history,
    )
