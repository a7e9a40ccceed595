"""The positions route: every interpreted position with per-currency totals."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from app.api.answers import Question
from app.api.caching import (
    CACHED_RESPONSES,
    CONDITIONAL_REQUEST,
    answer_json,
    gathered_for,
    gathering_again,
    previous_json,
)
from app.api.deps import AnswersDep, RatesDep, Reader, Refresh, SettingsDep, TreasuryDep
from app.api.errors import problem_responses
from app.api.params import ASCII_INTEGER, WELL_FORMED_ID
from app.api.routes.history import INSTANT, answer_as_of
from app.api.routes.rates import (
    DATE_PATTERN,
    DATE_SCHEMA,
    POLICY_DESCRIPTION,
    RATE_DATE_DESCRIPTION,
    REPORT_CURRENCY_DESCRIPTION,
    fx_options,
)
from app.domain.counterparties import paginate
from app.domain.fx import convert_totals
from app.domain.ids import COUNTERPARTY_ID_PATTERN
from app.domain.models import (
    CURRENCY_QUERY_PATTERN,
    CurrencyTotal,
    Kind,
    Meaning,
    PositionsResponse,
    Side,
    Source,
)
from app.domain.positions import filter_positions, positions_of, totals
from app.domain.snapshot import Position
from app.services.rates import FxGathered
from app.services.treasury import Gathered, data_of, still_true

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
    "(`complete` is false). With `report_currency`, every total is also converted into that "
    "currency under a rate policy (`converted`, `consolidated`), and the rate sources asked "
    "are listed in `sources`; a rate source down makes the conversion incomplete "
    "(`consolidated.complete`), never the answer a 503. With `as_of`, the same answer as "
    "tesoro last observed it at or before that instant (from history: no upstream is asked); "
    "each `sources` entry gives the observation used (`fetched_at`, its status then).",
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
    rates: RatesDep,
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
    report_currency: Annotated[
        str | None,
        Query(pattern=CURRENCY_QUERY_PATTERN, description=REPORT_CURRENCY_DESCRIPTION),
    ] = None,
    policy: Annotated[
        str | None, Query(alias="rates", max_length=40, description=POLICY_DESCRIPTION)
    ] = None,
    rate_date: Annotated[
        str | None,
        Query(
            pattern=DATE_PATTERN, description=RATE_DATE_DESCRIPTION, json_schema_extra=DATE_SCHEMA
        ),
    ] = None,
    as_of: Annotated[
        str | None,
        Query(
            description="An RFC 3339 instant with its offset, not in the future: the answer "
            "as tesoro observed it then (404 `history-not-available` before history starts).",
            json_schema_extra=INSTANT,
        ),
    ] = None,
) -> Response:
    fx_asked = fx_options(rates, report_currency, policy, rate_date)
    if fx_asked is not None:
        # The rates recent answers needed are asked at once with the connections.
        rates.warm(fx_asked.policy, fx_asked.report, fx_asked.day)
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
            request,
            settings,
            scope,
            as_of,
            filters=as_of_filters,
            page=page,
            page_size=page_size,
            rates=rates,
            fx=fx_asked,
            rate_date_given=rate_date is not None,
        )
    gathered = await gathered_for(request, treasury, scope, refresh=refresh)

    # Positions depend on the connections' data alone (`data`): a change of status (a TTL
    # lapse) reuses them, and only the page is written again.
    def every_position() -> list[Position]:
        return answers.per_state(
            "positions", gathered.data, lambda: positions_of(gathered.held_counterparties)
        )

    filters = (
        tuple(sorted({code.strip().upper() for code in currency or ()})),
        kind,
        source,
        side,
        tuple(sorted(set(meaning or ()))),
        counterparty_id,
        include_zero,
    )
    question = Question(
        "positions",
        (
            *filters,
            page,
            page_size,
            # Only when asked: a plain question keeps its key (and its answers' ETags).
            *(() if fx_asked is None else (fx_asked.key,)),
        ),
    )

    def matching_and_totals() -> tuple[list[Position], list[CurrencyTotal]]:
        matching = filter_positions(
            every_position(),
            currencies=currency or (),
            kind=kind,
            source=source,
            side=side,
            meanings=meaning or (),
            counterparty_id=counterparty_id,
            include_zero=include_zero,
        )
        return matching, totals(matching)

    def builder(held: Gathered, fx: FxGathered | None) -> Callable[[], PositionsResponse]:
        assert held.generated_at is not None  # a gathered answer always says when
        generated_at = held.generated_at

        def build() -> PositionsResponse:
            # Every page of one filter shares the filtering and the totals (the question
            # without its page): a page past the end costs a slice, not a pass over all.
            matching, per_currency = answers.derived(
                "positions", gathered.data, filters, matching_and_totals
            )
            if fx_asked is None or fx is None:
                # A page of the snapshot's Structs: `answers` writes them (see `_dump`).
                return PositionsResponse.model_construct(
                    positions=paginate(matching, page, page_size),  # type: ignore[arg-type]
                    totals=per_currency,
                    total=len(matching),
                    page=page,
                    page_size=page_size,
                    complete=gathered.complete,
                    warnings=gathered.warnings,
                    sources=held.sources,
                    generated_at=generated_at,
                )
            conversion = convert_totals(
                per_currency,
                fx.rates,
                report=fx_asked.report,
                policy=fx_asked.policy,
                requested=fx_asked.day,
            )
            return PositionsResponse.model_construct(
                positions=paginate(matching, page, page_size),  # type: ignore[arg-type]
                totals=conversion.totals,
                total=len(matching),
                page=page,
                page_size=page_size,
                complete=gathered.complete,
                warnings=[*gathered.warnings, *conversion.warnings],
                sources=held.sources,
                consolidated=conversion.consolidated,
                generated_at=generated_at,
            )

        return build

    if fx_asked is None:
        # A plain question's data state is its connections' alone: the edge may answer it
        # again (a consolidated one's includes the rates').
        again = gathering_again(treasury, scope)
        build = builder(gathered, None)
        return await answer_json(
            request, answers, question, build, gathered, refresh=refresh, again=again
        )
    asked = fx_asked

    async def currencies_held() -> list[str]:
        def read() -> list[str]:
            every = every_position()
            return answers.per_state(
                "currencies", gathered.data, lambda: sorted({p.currency for p in every})
            )

        currencies = await asyncio.to_thread(read)
        rates.remember_currencies(gathered.data, currencies)
        return currencies

    async def with_rates(held_currencies: list[str]) -> tuple[Gathered, FxGathered]:
        wanted = {code.strip().upper() for code in currency or ()}
        needed = [code for code in held_currencies if not wanted or code.upper() in wanted]
        fx = await rates.lookup(asked.policy, needed, asked.report, asked.day, refresh=refresh)
        # The rate sources asked are part of the answer's data state and its `sources`.
        held = dataclasses.replace(
            gathered,
            sources=[*gathered.sources, *fx.sources],
            state=(*gathered.state, *fx.state),
            generated_at=max(
                moment for moment in (gathered.generated_at, fx.generated_at) if moment
            ),
            max_age_seconds=gathered.max_age_seconds
            if fx.max_age_seconds is None
            else min(gathered.max_age_seconds, fx.max_age_seconds),
        )
        return held, fx

    # The currencies held say which rates the question needs, before its answer is built:
    # read once per data state (in a worker thread, like the answers).
    held_currencies = rates.currencies_held(gathered.data)
    if held_currencies is None and not refresh:
        # New data: reading its currencies means a pass over every position. The previous
        # answer serves meanwhile when it is still true, its rates included (looked up again
        # for its own currencies), and the new answer is worked out behind it.
        previous = answers.previous(question)
        before = None if previous is None else rates.currencies_held(data_of(previous.state))
        if previous is not None and before is not None:
            then, _ = await with_rates(before)
            if still_true(previous.state, then.state):

                async def behind() -> None:
                    held, fx = await with_rates(await currencies_held())
                    answers.build_behind(question, held.state, builder(held, fx))

                answers.run_behind((question, gathered.data), behind)
                return await previous_json(request, answers, previous)
    if held_currencies is None:
        held_currencies = await currencies_held()
    held, fx = await with_rates(held_currencies)
    return await answer_json(request, answers, question, builder(held, fx), held, refresh=refresh)
