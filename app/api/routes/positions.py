"""The positions route: every interpreted position with per-currency totals."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from app.api.caching import CACHED_RESPONSES, CONDITIONAL_REQUEST, cached_json
from app.api.deps import ReadAccess, Refresh, ServicesDep
from app.api.errors import problem_responses
from app.domain.models import CURRENCY_PATTERN, Kind, PositionsResponse, Side, Source
from app.domain.positions import filter_positions, positions_of, totals

router = APIRouter(tags=["positions"])


@router.get(
    "/positions",
    name="list_positions",
    summary="List interpreted positions with totals",
    description="Every interpreted position (one per account and currency), signed from the "
    "company's point of view, with exact per-currency totals. Positions whose amount is zero "
    "are left out unless `include_zero` is true. A connection that fails while others "
    "answer is reported in `sources` and the answer is still a 200 (`complete` is false).",
    response_model=PositionsResponse,
    response_description="The positions and totals, with the state of every connection.",
    dependencies=[ReadAccess],
    responses={**CACHED_RESPONSES, **problem_responses(401, 403, 422, 503)},
    openapi_extra=CONDITIONAL_REQUEST,
)
async def list_positions(
    request: Request,
    services: ServicesDep,
    refresh: Refresh,
    currency: Annotated[
        list[Annotated[str, Query(pattern=CURRENCY_PATTERN)]] | None,
        Query(description="Only these currencies (repeatable).", max_length=50),
    ] = None,
    kind: Annotated[Kind | None, Query(description="Only this kind.")] = None,
    source: Annotated[Source | None, Query(description="Only this source.")] = None,
    side: Annotated[Side | None, Query(description="Only this side.")] = None,
    counterparty_id: Annotated[
        str | None, Query(max_length=200, description="Only this counterparty.")
    ] = None,
    include_zero: Annotated[
        bool, Query(description="Include positions whose amount is zero.")
    ] = False,
) -> Response:
    gathered = await services.treasury.gather(refresh=refresh)
    positions = filter_positions(
        positions_of(gathered.counterparties),
        currencies=currency or (),
        kind=kind,
        source=source,
        side=side,
        counterparty_id=counterparty_id,
        include_zero=include_zero,
    )
    body = PositionsResponse(
        positions=positions,
        totals=totals(positions),
        sources=gathered.sources,
        complete=gathered.complete,
        warnings=gathered.warnings,
        generated_at=datetime.now(UTC),
    )
    return cached_json(request, body, max_age_seconds=gathered.max_age_seconds)
