"""The rates route, and the reading of the questions every conversion shares (report currency,
policy, rate date)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.exceptions import RequestValidationError

from app.api.answers import Question
from app.api.caching import CACHED_RESPONSES, CONDITIONAL_REQUEST, answer_json
from app.api.deps import AnswersDep, RatesDep, Reader, Refresh
from app.api.errors import problem_responses
from app.domain.fx import Policy, Rate, missing_warning, rate_entry, report_currency_problem
from app.domain.models import CURRENCY_QUERY_PATTERN, RatesResponse
from app.services.rates import Rates
from app.services.treasury import Gathered

router = APIRouter(tags=["rates"])

# A day of this century (the rate sources publish nothing older), as YYYY-MM-DD.
DATE_PATTERN = r"^20[0-9]{2}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$"
# The schema says it is a date too, so generated clients send one.
DATE_SCHEMA: dict[str, Any] = {"format": "date"}

REPORT_CURRENCY_DESCRIPTION = (
    "Convert every total into this ISO 4217 currency (adds `converted` to each `totals` entry "
    "and `consolidated`); a code the policy cannot convert into is a 422."
)
POLICY_DESCRIPTION = (
    "The rate policy: `official` (the BCRA's A 3500 for ARS, the BNR for RON, the ECB for the "
    "rest), `market` (as `official`, ARS at the MEP rate) or one configured in "
    "`TESORO_FX_POLICIES`; default `TESORO_FX_DEFAULT_POLICY`. Unknown: a 422 listing the "
    "known ones."
)
RATE_DATE_DESCRIPTION = (
    "The day of the rates (YYYY-MM-DD, not after today in UTC): each leg uses its source's "
    "fixing of that day, or the latest before it (at most `TESORO_FX_MAX_AGE_DAYS` older). "
    "Default: today in UTC, meaning each source's latest fixing."
)


@dataclass(frozen=True)
class FxQuestion:
    policy: Policy
    report: str
    day: date

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.report, self.policy.name, self.day.isoformat())


def fx_options(
    rates: Rates,
    report_currency: str | None,
    policy_name: str | None,
    rate_date: str | None,
) -> FxQuestion | None:
    """The conversion `/positions` is asked for, if any; a policy or a date given without a
    report currency is checked all the same (a mistake is never ignored)."""
    if report_currency is None:
        fx_question(rates, None, policy_name, rate_date)
        return None
    return fx_question(rates, report_currency, policy_name, rate_date)


def fx_question(
    rates: Rates,
    report_currency: str | None,
    policy_name: str | None,
    rate_date: str | None,
    *,
    names: tuple[str, str, str] = ("report_currency", "rates", "rate_date"),
) -> FxQuestion:
    """The conversion asked, checked: every mistake is a 422 naming its parameter."""
    problems = []
    policy = rates.policies.get(policy_name or rates.default_policy)
    if policy is None:
        problems.append(
            (names[1], f"unknown rate policy {policy_name!r}; known: {', '.join(rates.policies)}")
        )
    report = (report_currency or "USD").strip().upper()
    if policy is not None and report_currency is not None:
        refused = report_currency_problem(policy, report)
        if refused is not None:
            problems.append((names[0], refused))
    today = rates.today()
    day = today
    if rate_date is not None:
        try:
            day = date.fromisoformat(rate_date)
        except ValueError:
            problems.append((names[2], f"{rate_date!r} is not a date (YYYY-MM-DD)"))
        else:
            if day > today:
                problems.append(
                    (names[2], f"{day.isoformat()} is after today in UTC ({today.isoformat()})")
                )
    if problems:
        raise RequestValidationError(
            [
                {"loc": ("query", name), "msg": message, "type": "value_error"}
                for name, message in problems
            ]
        )
    assert policy is not None
    return FxQuestion(policy, report, day)


@router.get(
    "/rates",
    name="list_rates",
    summary="Rates of some currencies in one, with every leg",
    description="The rates a consolidated `/positions` answer would use, on their own: for "
    "each currency asked, the report currency per one unit, exact (or rounded to 28 "
    "significant digits when it has no finite decimal form), and every published rate it is "
    "built from (a cross rate through a pivot shows each leg) with the fixing date used. A "
    "currency without a rate is listed in `missing_currencies` with an `fx_rate_missing` "
    "warning saying why; the rate sources asked are in `sources`.",
    response_model=RatesResponse,
    response_description="The rates, with the state of every rate source asked.",
    responses={**CACHED_RESPONSES, **problem_responses(401, 403, 422)},
    openapi_extra=CONDITIONAL_REQUEST,
)
async def list_rates(
    request: Request,
    caller: Reader,
    rates: RatesDep,
    answers: AnswersDep,
    refresh: Refresh,
    currency: Annotated[
        list[Annotated[str, Query(pattern=CURRENCY_QUERY_PATTERN)]],
        Query(
            description="The currencies to price (repeatable, case-insensitive).",
            min_length=1,
            max_length=50,
        ),
    ],
    to: Annotated[
        str,
        Query(
            pattern=CURRENCY_QUERY_PATTERN,
            description="The ISO 4217 currency the rates are in; one the policy cannot "
            "convert into is a 422.",
        ),
    ],
    policy: Annotated[
        str | None, Query(alias="rates", max_length=40, description=POLICY_DESCRIPTION)
    ] = None,
    day: Annotated[
        str | None,
        Query(
            alias="date",
            pattern=DATE_PATTERN,
            description=RATE_DATE_DESCRIPTION,
            json_schema_extra=DATE_SCHEMA,
        ),
    ] = None,
) -> Response:
    asked = fx_question(rates, to, policy, day, names=("to", "rates", "date"))
    currencies = sorted({code.strip().upper() for code in currency})
    fx = await rates.lookup(asked.policy, currencies, asked.report, asked.day, refresh=refresh)
    gathered = Gathered(
        sources=fx.sources,
        complete=True,
        max_age_seconds=fx.max_age_seconds if fx.max_age_seconds is not None else 86400,
        state=fx.state,
        generated_at=fx.generated_at or rates.started,
    )
    question = Question("rates", (tuple(currencies), *asked.key))

    generated_at = gathered.generated_at
    assert generated_at is not None

    def build() -> RatesResponse:
        found = [fx.rates[c] for c in currencies]
        missing = [rate for rate in found if not isinstance(rate, Rate)]
        return RatesResponse(
            sources=fx.sources,
            complete=not missing,
            warnings=[missing_warning(m, asked.report, asked.policy, asked.day) for m in missing],
            currency=asked.report,
            policy=asked.policy.name,
            rate_date=asked.day,
            rates=[rate_entry(rate, asked.day) for rate in found if isinstance(rate, Rate)],
            missing_currencies=[m.currency for m in missing],
            generated_at=generated_at,
        )

    return await answer_json(request, answers, question, build, gathered, refresh=refresh)
