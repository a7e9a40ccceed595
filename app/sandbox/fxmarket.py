"""The sandbox's European currency market: one deterministic value of every currency against
the euro for each day, and the two publishers' calendars (TARGET for the ECB, Romanian banking
days for the BNR). The ECB and BNR simulators both price from it, so their rates agree the way
the real ones do (the BNR's EUR within a few hundredths of a percent of the ECB's EUR/RON).

Each currency follows a seeded random walk in log space (uniform daily steps of at most
`VOLATILITY_BP` basis points), pinned to real ECB fixings (`ANCHORS`) by Brownian bridges:
on an anchor day the value is the real one exactly (EUR/RON 5.0972 and EUR/USD 1.1489 on
2026-03-19), and between two anchors the walk wanders and comes back. Before the first and
after the last anchor it walks freely. A day's value depends only on the currency and the
day, never on what "today" is, so history stays put as the simulators' today moves.

Everything is Decimal: the walk's steps are integers (basis points), and `ln`/`exp` are the
Decimal ones, so the numbers are the same on every machine.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable
from datetime import date, timedelta
from decimal import Context, Decimal
from functools import cache, lru_cache

import holidays

EPOCH = date(2020, 1, 1)
LAST_DAY = date(2035, 12, 31)
# The simulators keep every day from here as well as the last 365 days, so an example or a
# test dated in 2026 (the recorded samples' year) keeps its fixings as the calendar moves on.
HISTORY_FROM = date(2026, 1, 1)


def first_fixing_day(today: date, window: timedelta) -> date:
    """The first day a simulator keeps fixings for: the window's start, or HISTORY_FROM if
    that is earlier."""
    return min(today - window, HISTORY_FROM)


"""The walks are defined from EPOCH to LAST_DAY: a day outside is a ValueError."""

_CONTEXT = Context(prec=28)
_BASIS_POINT = Decimal("0.0001")

# Real ECB reference rates (units per 1 EUR) from the ECB's own history (2026-03-19,
# 2026-08-07 for PLN, 2026-08-19 and 2026-10-30). The last block is not quoted by the ECB:
# plausible values for the currencies only the BNR quotes, made up around 2026-10-30 (XAU in
# grams per EUR, from the BNR's RON 621.3365 a gram).
_OCTOBER_30 = date(2026, 10, 30)
ANCHORS: dict[str, tuple[tuple[date, Decimal], ...]] = {
    "USD": (
        (date(2026, 3, 19), Decimal("1.1489")),
        (date(2026, 8, 19), Decimal("1.1605")),
        (_OCTOBER_30, Decimal("1.1172")),
    ),
    "RON": (
        (date(2026, 3, 19), Decimal("5.0972")),
        (date(2026, 8, 19), Decimal("5.2464")),
        (_OCTOBER_30, Decimal("5.3447")),
    ),
    "PLN": ((date(2026, 8, 7), Decimal("4.2983")), (_OCTOBER_30, Decimal("4.4038"))),
    **{
        code: ((_OCTOBER_30, Decimal(value)),)
        for code, value in {
            "JPY": "175.68", "CZK": "24.353", "DKK": "7.4735", "GBP": "0.83380",
            "HUF": "366.33", "SEK": "10.9780", "CHF": "0.9194", "ISK": "136.00",
            "NOK": "10.3120", "TRY": "55.8015", "AUD": "1.5904", "BRL": "6.0692",
            "CAD": "1.5606", "CNY": "7.4326", "IDR": "20275.17", "ILS": "3.4950",
            "INR": "106.0840", "KRW": "1491.76", "MXN": "21.1237", "MYR": "4.5325",
            "NZD": "1.9823", "PHP": "71.143", "SGD": "1.4282", "THB": "37.683",
            "ZAR": "18.6455",
            # Not quoted by the ECB (made up, see above).
            "EGP": "54.60", "MDL": "19.65", "RSD": "117.20", "RUB": "95.00", "UAH": "48.90",
            "XAU": "0.0086019", "XDR": "0.8155",
        }.items()
    },
}  # fmt: skip

PEGGED_TO_USD: dict[str, Decimal] = {"AED": Decimal("3.6725"), "HKD": Decimal("7.8457")}
"""Currencies that move with the dollar: units per USD."""

VOLATILITY_BP: dict[str, int] = {
    "RON": 8, "DKK": 1, "RSD": 3, "CZK": 20, "PLN": 25, "HUF": 35, "GBP": 30, "CHF": 30,
    "USD": 45, "JPY": 55, "TRY": 45, "BRL": 70, "ZAR": 70, "MXN": 60, "RUB": 80, "XAU": 90,
    "EGP": 60, "XDR": 25,
}  # fmt: skip
"""The largest daily step of a currency's walk, in basis points (default `DEFAULT_BP`)."""
DEFAULT_BP = 40

_TARGET = holidays.financial_holidays("XECB")
_ROMANIA = holidays.country_holidays("RO")


def target_day(day: date) -> bool:
    """Whether the ECB fixes on `day`: a weekday that is not a TARGET closing day (1 Jan,
    Good Friday, Easter Monday, 1 May, 25 and 26 Dec)."""
    return day.weekday() < 5 and day not in _TARGET


def romanian_banking_day(day: date) -> bool:
    """Whether the BNR fixes on `day`: a weekday that is not a Romanian public holiday
    (2 Jan, 6-7 Jan, 24 Jan, Orthodox Good Friday and Easter Monday, Whit Monday, ...)."""
    return day.weekday() < 5 and day not in _ROMANIA


def publishing_days(start: date, end: date, publishes: Callable[[date], bool]) -> list[date]:
    """The days from `start` to `end` (both included) on which `publishes` says yes."""
    days: list[date] = []
    day = start
    while day <= end:
        if publishes(day):
            days.append(day)
        day += timedelta(days=1)
    return days


@cache
def _walk(currency: str) -> tuple[int, ...]:
    """The cumulative steps of `currency`'s walk, in basis points, one per day from EPOCH."""
    rng = random.Random(f"tesoro-fx:{currency}")
    bound = VOLATILITY_BP.get(currency, DEFAULT_BP)
    total = 0
    steps = [0]
    for _ in range((LAST_DAY - EPOCH).days):
        total += rng.randint(-bound, bound)
        steps.append(total)
    return tuple(steps)


def _index(day: date) -> int:
    if not EPOCH <= day <= LAST_DAY:
        raise ValueError(f"the sandbox market has no value for {day.isoformat()}")
    return (day - EPOCH).days


def _log_value(currency: str, day: date) -> Decimal:
    anchors = ANCHORS[currency]
    walk = _walk(currency)
    at = _index(day)

    def drift(start: date) -> Decimal:
        return Decimal(walk[at] - walk[_index(start)]) * _BASIS_POINT

    first_day, first_value = anchors[0]
    if day <= first_day:
        return first_value.ln(_CONTEXT) + drift(first_day)
    for (start, low), (end, high) in itertools.pairwise(anchors):
        if day <= end:
            share = Decimal((day - start).days) / Decimal((end - start).days)
            trend = low.ln(_CONTEXT) + share * (high.ln(_CONTEXT) - low.ln(_CONTEXT))
            # The walk's wandering since `start`, less the part that would miss `end`.
            span = Decimal(walk[_index(end)] - walk[_index(start)]) * _BASIS_POINT
            return trend + drift(start) - share * span
    last_day, last_value = anchors[-1]
    return last_value.ln(_CONTEXT) + drift(last_day)


@lru_cache(maxsize=65536)
def per_euro(currency: str, day: date) -> Decimal:
    """Units of `currency` one euro buys on `day` in the sandbox market, unrounded (28
    significant digits). KeyError for a currency the market does not have."""
    peg = PEGGED_TO_USD.get(currency)
    if peg is not None:
        return _CONTEXT.multiply(per_euro("USD", day), peg)
    return _log_value(currency, day).exp(_CONTEXT)


def currencies() -> frozenset[str]:
    """Every currency the sandbox market prices against the euro."""
    return frozenset(ANCHORS) | frozenset(PEGGED_TO_USD)
