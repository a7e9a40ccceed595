"""Property: conversion through any policy equals a slow reference computed with `Fraction`."""

from __future__ import annotations

import json
import math
from datetime import date
from decimal import Decimal
from fractions import Fraction

from hypothesis import given, settings
from hypothesis import strategies as st

from app.domain.fx import (
    BUILT_IN,
    NoRate,
    Policy,
    Rate,
    convert_totals,
    parse_policies,
    resolve,
)
from app.domain.models import ConvertedTotal, CurrencyTotal
from app.domain.money import minor_units
from app.upstreams.fixings import Fixing

DAY = date(2026, 3, 19)
POOL = ("USD", "EUR", "ARS", "RON", "HUF", "JPY", "GBP", "AED", "USDT", "KWD")
FIELDS = ("assets", "liabilities", "net", "cash", "overdraft", "receivable", "payable")
FAST = settings(max_examples=200, deadline=None)


def decimals(places: int = 8) -> st.SearchStrategy[Decimal]:
    return st.decimals(
        min_value=Decimal("0.00000001"),
        max_value=Decimal("100000"),
        places=places,
        allow_nan=False,
        allow_infinity=False,
    )


def amounts() -> st.SearchStrategy[Decimal]:
    return st.decimals(
        min_value=Decimal("-1E+12"),
        max_value=Decimal("1E+12"),
        places=6,
        allow_nan=False,
        allow_infinity=False,
    )


@st.composite
def policies(draw: st.DrawFn) -> Policy:
    """A built-in policy, or one configured with own rates and pegs (maybe extending one)."""
    if draw(st.booleans()):
        return draw(st.sampled_from(list(BUILT_IN.values())))
    pairs = draw(
        st.lists(
            st.tuples(st.sampled_from(POOL), st.sampled_from(POOL)).filter(lambda p: p[0] != p[1]),
            max_size=4,
            unique_by=lambda p: frozenset(p),
        )
    )
    spec: dict[str, object] = {
        "rates": {f"{b}/{q}": str(draw(decimals(4))) for b, q in pairs},
    }
    if draw(st.booleans()):
        spec["pegs"] = {"USDT": "USD"} if not any("USDT" in p and "USD" in p for p in pairs) else {}
    extends = draw(st.sampled_from([None, *BUILT_IN]))
    if extends is not None:
        spec["extends"] = extends
    if not pairs and not spec.get("pegs") and extends is None:
        spec["extends"] = "official"
    return parse_policies(json.dumps({"drawn": spec}))["drawn"]


def reference_round(value: Fraction, places: int) -> Fraction:
    """Half-even to `places` decimals, the slow way: floor, then look at the remainder."""
    scaled = value * 10**places
    floor = math.floor(scaled)
    remainder = scaled - floor
    if remainder > Fraction(1, 2) or (remainder == Fraction(1, 2) and floor % 2 == 1):
        floor += 1
    return Fraction(floor, 10**places)


def reference_rate_text(value: Fraction) -> Fraction:
    """The value the rate's text must denote: exact when finite, else 28 significant digits."""
    denominator = value.denominator
    while denominator % 2 == 0:
        denominator //= 2
    while denominator % 5 == 0:
        denominator //= 5
    if denominator == 1:
        return value
    exponent = math.floor(math.log10(value))
    while Fraction(10) ** exponent > value:
        exponent -= 1
    while Fraction(10) ** (exponent + 1) <= value:
        exponent += 1
    places = 27 - exponent
    scaled = value * Fraction(10) ** places
    floor = math.floor(scaled)
    remainder = scaled - floor
    if remainder > Fraction(1, 2) or (remainder == Fraction(1, 2) and floor % 2 == 1):
        floor += 1
    return floor / Fraction(10) ** places


def reference_rate(
    policy: Policy, currency: str, report: str, found: dict[tuple[str, str], Fixing]
) -> Fraction | None:
    chain = policy.chain(currency, report)
    if chain is None:
        return None
    value = Fraction(1)
    for step in chain:
        quote = step.quote
        if quote.fetched:
            fixing = found[quote.source, quote.code]
            figure = Fraction(str(fixing.published)) / fixing.unit
        else:
            assert quote.published is not None
            figure = Fraction(str(quote.published))
        value = value / figure if step.inverted else value * figure
    return value


@FAST
@given(
    policy=policies(),
    report=st.sampled_from(["USD", "EUR", "ARS", "RON", "JPY", "GBP", "KWD"]),
    figures=st.dictionaries(
        st.sampled_from(POOL), st.lists(amounts(), min_size=7, max_size=7), min_size=1
    ),
    published=st.lists(st.tuples(decimals(), st.sampled_from([1, 100, 1000])), min_size=80),
)
def test_conversion_equals_a_slow_fraction_reference(
    policy: Policy,
    report: str,
    figures: dict[str, list[Decimal]],
    published: list[tuple[Decimal, int]],
) -> None:
    if report not in policy.currencies:
        return  # a 422 before any conversion
    places = minor_units(report)
    assert places is not None
    found: dict[tuple[str, str], Fixing] = {}
    figures_left = iter(published)
    for quote in policy.quotes:
        if quote.fetched and (quote.source, quote.code) not in found:
            figure, unit = next(figures_left, (Decimal("1.5"), 1))
            found[quote.source, quote.code] = Fixing(
                quote.source, quote.series, quote.base, quote.quote, figure, unit, DAY
            )
    totals = [
        CurrencyTotal(currency=code, **dict(zip(FIELDS, values, strict=True)))
        for code, values in sorted(figures.items())
    ]
    rates: dict[str, Rate | NoRate] = {
        t.currency: resolve(
            policy,
            t.currency,
            report,
            dict(found),
            requested=DAY,
            max_age_days=7,
        )
        for t in totals
    }
    conversion = convert_totals(
        totals,
        rates,
        report=report,
        policy=policy,
        requested=DAY,
    )
    sums = dict.fromkeys(FIELDS, Fraction(0))
    missing = []
    for shown in conversion.totals:
        rate = reference_rate(policy, shown.currency, report, found)
        if rate is None:
            assert shown.converted is None
            missing.append(shown.currency)
            continue
        converted = shown.converted
        assert isinstance(converted, ConvertedTotal)
        assert Fraction(converted.rate) == reference_rate_text(rate)
        for name in FIELDS:
            exact = Fraction(str(getattr(shown, name))) * rate
            sums[name] += exact
            figure = getattr(converted, name)
            assert Fraction(figure) == reference_round(exact, places)
            assert -figure.as_tuple().exponent == places  # written to the minor units
            assert not (figure.is_zero() and figure.is_signed())
    consolidated = conversion.consolidated
    for name in FIELDS:
        assert Fraction(getattr(consolidated, name)) == reference_round(sums[name], places)
    assert consolidated.missing_currencies == missing
    assert consolidated.complete is (not missing)
