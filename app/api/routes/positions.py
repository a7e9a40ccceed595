"""The positions route: every interpreted position with per-currency totals."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from app.api.answers import EPOCH, NO_SOURCES, Question
from app.api.caching import CACHED_RESPONSES, CONDITIONAL_REQUEST, answer_json
from app.api.deps import AnswersDep, Reader, Refresh, SettingsDep, TreasuryDep
from app.api.errors import problem_responses
from app.api.params import ASCII_INTEGER, WELL_FORMED_ID
from app.api.routes.history import INSTANT, answer_as_of
from app.domain.counterparties import paginate
from app.domain.ids import COUNTERPARTY_ID_PATTERN
from app.domain.models import (
    CURRENCY_QUERY_PATTERN,
    CurrencyTotal,
    Kind,
    Meaning,
    Position,
    PositionsResponse,
    Side,
    Source,
)
from app.domain.positions import filter_positions, positions_of, totals

router = APIRouter(tags=["positions"])


@router.get(
    "/positions",
    name="list_positions",
    summary="List interpreted positions with totals",
    description="Every interpreted position (one per account and currency), signed from the "
    "company's point of view, ordered by counterparty name then account, with exact "
    "per-currency totals over every match (not only the page). Positions whose amount is "
    "zero are left out unless `include_zero` is true. Only the connections the filters need "
    "are asked (`source`, `kind=external`, `counterparty_id`). A connection that fails while "
    "others answer is reported in `sources` and the answer is still a 200: `stale` when its "
    "last good data is served (`complete` stays true), `unavailable` when it has none "
    "(`complete` is false). With `as_of`, the same answer as tesoro last observed it at or "
    "before that instant (from history: no upstream is asked); each `sources` entry gives "
    "the observation used (`fetched_at`, its status then).",
    response_model=PositionsResponse,
    response_description="The positions and totals, with the state of every connection.",
    responses={**CACHED_RESPONSES, **problem_responses(401, 403, 404, 422, 429, 503)},
    openapi_extra=CONDITIONAL_REQUEST,
)
async def list_positions(
    request: Request,
    caller: Reader,
    treasury: TreasuryDep,
    answers: AnswersDep,
    refresh: Refresh,
    settings: SettingsDep,
    currency: Annotated[
        list[Annotated[str, Query(pattern=CURRENCY_QUERY_PATTERN)]] | None,
        Query(description="Only these currencies (repeatable, case-insensitive).", max_length=50),
    ] = None,
    kind: Annotated[Kind | None, Query(description="Only this kind.")] = None,
    source: Annotated[Source | None, Query(description="Only this source.")] = None,
    side: Annotated[Side | None, Query(description="Only this side.")] = None,
    meaning: Annotated[
        list[Meaning] | None,
        Query(description="Only these meanings (repeatable).", max_length=5),
    ] = None,
    counterparty_id: Annotated[
        str | None,
        Query(
            max_length=200,
            # Enforced by WELL_FORMED_ID, whose 422 says what an id looks like.
            json_schema_extra={"pattern": COUNTERPARTY_ID_PATTERN},
            description="Only this counterparty; only its connection is asked. A malformed "
            "id is a 422; a well-formed id nobody has matches nothing.",
        ),
        WELL_FORMED_ID,
    ] = None,
    include_zero: Annotated[
        bool, Query(description="Include positions whose amount is zero.")
    ] = False,
    page: Annotated[
        int, Query(ge=1, le=1_000_000, description="Page number, from 1."), ASCII_INTEGER
    ] = 1,
    page_size: Annotated[
        int,
        Query(ge=1, le=10_000, description="Positions per page (totals cover every page)."),
        ASCII_INTEGER,
    ] = 1000,
    as_of: Annotated[
        str | None,
        Query(
            description="An RFC 3339 instant with its offset, not in the future: the answer "
            "as tesoro observed it then (404 `history-not-available` before history starts).",
            json_schema_extra=INSTANT,
        ),
    ] = None,
) -> Response:
    scope = treasury.scope(source=source, kind=kind, counterparty_id=counterparty_id)
    if as_of is not None:
        as_of_filters = {
            "currencies": currency or (),
            "kind": kind,
            "source": source,
            "side": side,
            "meanings": meaning or (),
            "counterparty_id": counterparty_id,
            "include_zero": include_zero,
        }
        return await answer_as_of(
            request, settings, scope, as_of, filters=as_of_filters, page=page, page_size=page_size
        )
    gathered = await treasury.gather(refresh=refresh, connections=scope)
    filters = (
        tuple(sorted({code.strip().upper() for code in currency or ()})),
        kind,
        source,
        side,
        tuple(sorted(set(meaning or ()))),
        counterparty_id,
        include_zero,
    )
    question = Question("positions", (*filters, page, page_size), generated_at=True)

    def matching_and_totals() -> tuple[list[Position], list[CurrencyTotal]]:
        every = answers.shared(
            "positions", gathered.state, lambda: positions_of(gathered.counterparties)
        )
        matching = filter_positions(
            every,
            currencies=currency or (),
            kind=kind,
            source=source,
            side=side,
            meanings=meaning or (),
            counterparty_id=counterparty_id,
            include_zero=include_zero,
        )
        return matching, totals(matching)

    def build() -> PositionsResponse:
        # Every page of one filter shares the filtering and the totals (the question
        # without its page): a page past the end costs a slice, not a pass over everything.
        matching, summed = answers.derived(
            "positions", gathered.state, filters, matching_and_totals
        )
        return PositionsResponse(
            positions=paginate(matching, page, page_size),
            totals=summed,
            total=len(matching),
            page=page,
            page_size=page_size,
            complete=gathered.complete,
            warnings=gathered.warnings,
            sources=list(NO_SOURCES),
            generated_at=EPOCH,
        )

    return await answer_json(request, answers, question, build, gathered)
