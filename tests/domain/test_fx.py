"""Tests of conversion into a reporting currency: policies, chains of legs, exact figures."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from fractions import Fraction

import pytest

from app.domain.fx import (
    FX_RATE_MISSING,
    MARKET,
    OFFICIAL,
    NoRate,
    Policy,
    PolicyConfigError,
    Rate,
    convert_totals,
    parse_policies,
    per_unit,
    rate_text,
    report_currency_problem,
    resolve,
    round_half_even,
)
from app.domain.models import ConvertedTotal, CurrencyTotal
from app.upstreams.fixings import Fixing

DAY = date(2026, 3, 19)
# The recorded fixings of 2026-03-19: BCRA A 3500, ECB USD and RON, BNR EUR and USD (the
# BNR's of that day is not recorded: a plausible figure).
REF = Fixing("bcra", "BCRA:REF", "USD", "ARS", Decimal("1395.51420000"), 1, DAY)
ECB_USD = Fixing("ecb", "ECB:USD", "EUR", "USD", Decimal("1.1489"), 1, DAY)
ECB_HUF = Fixing("ecb", "ECB:HUF", "EUR", "HUF", Decimal("366.51"), 1, DAY)
BNR_USD = Fixing("bnr", "BNR:USD", "USD", "RON", Decimal("4.4390"), 1, DAY)
BNR_EUR = Fixing("bnr", "BNR:EUR", "EUR", "RON", Decimal("5.0952"), 1, DAY)
BNR_HUF = Fixing("bnr", "BNR:HUF", "HUF", "RON", Decimal("1.4430"), 100, DAY)
BNR_AED = Fixing("bnr", "BNR:AED", "AED", "RON", Decimal("1.2087"), 1, DAY)
MEP = Fixing("dolarapi", "DOLARAPI:MEP", "USD", "ARS", Decimal("1545.3"), 1, DAY)

FOUND: dict[tuple[str, str], Fixing | Exception | None] = {
    ("bcra", "REF"): REF,
    ("ecb", "USD"): ECB_USD,
    ("ecb", "HUF"): ECB_HUF,
    ("bnr", "USD"): BNR_USD,
    ("bnr", "EUR"): BNR_EUR,
    ("bnr", "HUF"): BNR_HUF,
    ("bnr", "AED"): BNR_AED,
    ("dolarapi", "MEP"): MEP,
}


def series_of(policy: Policy, currency: str, report: str) -> list[tuple[str, bool]] | None:
    chain = policy.chain(currency, report)
    return None if chain is None else [(step.quote.series, step.inverted) for step in chain]


def total(currency: str, assets: str = "0", liabilities: str = "0") -> CurrencyTotal:
    a, li = Decimal(assets), Decimal(liabilities)
    return CurrencyTotal(
        currency=currency,
        assets=a,
        liabilities=li,
        net=a - li,
        cash=a,
        overdraft=-li,
        receivable=Decimal(0),
        payable=Decimal(0),
    )


def rate_of(policy: Policy, currency: str, report: str) -> Rate:
    resolved = resolve(policy, currency, report, FOUND, requested=DAY, max_age_days=7)
    assert isinstance(resolved, Rate), resolved
    return resolved


# -- chains ------------------------------------------------------------------------------


def test_official_converts_ars_through_the_bcra_reference_rate_inverted() -> None:
    assert series_of(OFFICIAL, "ARS", "USD") == [("BCRA:REF", True)]
    assert series_of(OFFICIAL, "USD", "ARS") == [("BCRA:REF", False)]


def test_market_converts_ars_at_mep_and_the_rest_as_official() -> None:
    assert series_of(MARKET, "ARS", "USD") == [("DOLARAPI:MEP", True)]
    assert series_of(MARKET, "RON", "USD") == series_of(OFFICIAL, "RON", "USD")
    assert series_of(MARKET, "EUR", "USD") == [("ECB:USD", False)]


def test_official_prices_ron_at_the_bnr_even_where_the_ecb_quotes_the_pair() -> None:
    assert series_of(OFFICIAL, "RON", "EUR") == [("BNR:EUR", True)]
    assert series_of(OFFICIAL, "EUR", "RON") == [("BNR:EUR", False)]
    assert series_of(OFFICIAL, "RON", "USD") == [("BNR:USD", True)]


def test_ars_into_eur_or_ron_is_crossed_through_usd_with_both_legs() -> None:
    assert series_of(OFFICIAL, "ARS", "EUR") == [("BCRA:REF", True), ("ECB:USD", True)]
    assert series_of(OFFICIAL, "ARS", "RON") == [("BCRA:REF", True), ("BNR:USD", False)]


def test_an_ecb_currency_crosses_through_eur_rather_than_ron() -> None:
    assert series_of(OFFICIAL, "HUF", "USD") == [("ECB:HUF", True), ("ECB:USD", False)]


def test_a_bnr_only_currency_crosses_through_ron_and_usd_to_ars() -> None:
    assert series_of(OFFICIAL, "AED", "ARS") == [
        ("BNR:AED", False),
        ("BNR:USD", True),
        ("BCRA:REF", False),
    ]


def test_the_report_currency_itself_has_no_legs_and_a_rate_of_one() -> None:
    assert series_of(OFFICIAL, "USD", "USD") == []
    resolved = rate_of(OFFICIAL, "USD", "USD")
    assert resolved.legs == ()
    assert resolved.value == 1


def test_usdt_converts_under_no_built_in_policy() -> None:
    assert series_of(OFFICIAL, "USDT", "USD") is None
    assert series_of(MARKET, "USDT", "ARS") is None
    missing = resolve(OFFICIAL, "USDT", "USD", FOUND, requested=DAY, max_age_days=7)
    assert isinstance(missing, NoRate)
    assert "peg" in missing.reason
    assert missing.connection == "config"


def test_a_peg_converts_usdt_one_for_one_and_is_shown_as_a_leg() -> None:
    policy = parse_policies('{"usdt": {"extends": "official", "pegs": {"USDT": "USD"}}}')["usdt"]
    assert series_of(policy, "USDT", "ARS") == [("PEG:USDT", False), ("BCRA:REF", False)]
    resolved = rate_of(policy, "USDT", "ARS")
    assert resolved.value == Fraction("1395.5142")
    peg = resolved.legs[0]
    assert (peg.fixing.source, peg.fixing.published, peg.fixing.rate_date) == (
        "config",
        Decimal(1),
        DAY,
    )


def test_a_manual_rate_wins_over_the_extended_policys_source_for_its_pair() -> None:
    policy = parse_policies(
        '{"board": {"extends": "official", "source": "manual", "rates": {"USD/ARS": "1450"}}}'
    )["board"]
    assert series_of(policy, "ARS", "USD") == [("MANUAL:USD/ARS", True)]
    assert rate_of(policy, "ARS", "EUR").value == Fraction(1, 1450) / Fraction("1.1489")


def test_a_manual_only_policy_converts_only_what_its_rates_link() -> None:
    policy = parse_policies('{"own": {"rates": {"EUR/USD": "1.10", "USD/ARS": "1500"}}}')["own"]
    assert rate_of(policy, "EUR", "ARS").value == Fraction("1.10") * 1500
    assert series_of(policy, "RON", "USD") is None
    assert report_currency_problem(policy, "JPY") == "the policy own cannot convert into JPY"


# -- which fixing ------------------------------------------------------------------------


def test_a_fixing_older_than_the_max_age_is_no_rate() -> None:
    old = Fixing("bcra", "BCRA:REF", "USD", "ARS", Decimal("1390"), 1, DAY - timedelta(days=8))
    missing = resolve(
        OFFICIAL, "ARS", "USD", {**FOUND, ("bcra", "REF"): old}, requested=DAY, max_age_days=7
    )
    assert isinstance(missing, NoRate)
    assert "2026-03-11" in missing.reason
    assert missing.connection == "fx:bcra"


def test_a_fixing_within_the_max_age_is_used_with_its_own_date() -> None:
    friday = Fixing("bcra", "BCRA:REF", "USD", "ARS", Decimal("1390"), 1, DAY - timedelta(days=7))
    resolved = resolve(
        OFFICIAL, "ARS", "USD", {**FOUND, ("bcra", "REF"): friday}, requested=DAY, max_age_days=7
    )
    assert isinstance(resolved, Rate)
    assert resolved.legs[0].fixing.rate_date == date(2026, 3, 12)


@pytest.mark.parametrize(
    ("fixing", "why"),
    [
        (Fixing("bcra", "BCRA:REF", "USD", "ARS", Decimal(0), 1, DAY), "unusable rate"),
        (Fixing("bcra", "BCRA:REF", "USD", "ARS", Decimal(-5), 1, DAY), "unusable rate"),
        (
            Fixing("bcra", "BCRA:REF", "USD", "ARS", Decimal(1400), 1, DAY + timedelta(days=1)),
            "after the date asked",
        ),
        (Fixing("bcra", "BCRA:REF", "ARS", "USD", Decimal(1400), 1, DAY), "answered ARS in USD"),
    ],
)
def test_a_fixing_that_makes_no_sense_is_never_used(fixing: Fixing, why: str) -> None:
    missing = resolve(
        OFFICIAL, "ARS", "USD", {**FOUND, ("bcra", "REF"): fixing}, requested=DAY, max_age_days=7
    )
    assert isinstance(missing, NoRate)
    assert why in missing.reason


def test_one_missing_leg_of_a_cross_makes_the_whole_rate_missing() -> None:
    down = {**FOUND, ("ecb", "USD"): LookupError("fx:ecb is unavailable and nothing is kept")}
    missing = resolve(OFFICIAL, "ARS", "EUR", down, requested=DAY, max_age_days=7)
    assert isinstance(missing, NoRate)
    assert missing.connection == "fx:ecb"
    assert "ECB:USD" in missing.reason
    assert "nothing is kept" in missing.reason


def test_no_fixing_in_the_window_says_which_days_were_searched() -> None:
    missing = resolve(
        OFFICIAL,
        "ARS",
        "USD",
        {**FOUND, ("bcra", "REF"): None},
        requested=DAY,
        max_age_days=7,
    )
    assert isinstance(missing, NoRate)
    assert "no fixing from 2026-03-12 to 2026-03-19" in missing.reason


# -- figures -----------------------------------------------------------------------------


def test_a_bnr_per_100_rate_is_normalised_to_one_unit() -> None:
    assert per_unit(BNR_HUF) == Fraction("0.014430")
    assert rate_of(OFFICIAL, "HUF", "RON").value == Fraction("0.01443")


def test_a_cross_rate_is_the_exact_product_of_its_legs() -> None:
    resolved = rate_of(OFFICIAL, "ARS", "EUR")
    assert resolved.value == 1 / (Fraction("1395.5142") * Fraction("1.1489"))
    assert [leg.fixing for leg in resolved.legs] == [REF, ECB_USD]


def test_a_rate_with_a_finite_decimal_form_is_written_exactly() -> None:
    assert rate_text(Fraction("1.1489")) == "1.1489"
    assert rate_text(Fraction(1, 1250)) == "0.0008"
    assert rate_text(Fraction(1000)) == "1000"
    # Exact, however many digits it takes (a finite form is never rounded).
    assert rate_text(Fraction(1, 2**40)) == "0.0000000000009094947017729282379150390625"


def test_a_rate_without_one_is_rounded_half_even_to_28_significant_digits() -> None:
    assert rate_text(Fraction(1, 3)) == "0.3333333333333333333333333333"
    assert rate_text(Fraction(2, 3)) == "0.6666666666666666666666666667"
    text = rate_text(1 / Fraction("1395.5142"))
    assert text == "0.0007165817445641183729982826402"
    assert len(text.removeprefix("0.").lstrip("0")) == 28


@pytest.mark.parametrize(
    ("value", "places", "shown"),
    [
        (Fraction("0.005"), 2, "0.00"),
        (Fraction("0.015"), 2, "0.02"),
        (Fraction("0.025"), 2, "0.02"),
        (Fraction("-0.025"), 2, "-0.02"),
        (Fraction("-0.004"), 2, "0.00"),
        (Fraction(5, 2), 0, "2"),
        (Fraction("1.0005"), 3, "1.000"),
    ],
)
def test_figures_are_rounded_half_even_never_to_minus_zero(
    value: Fraction, places: int, shown: str
) -> None:
    assert format(round_half_even(value, places), "f") == shown


def test_each_shown_figure_is_rounded_once_so_parts_may_not_add_up_to_the_total() -> None:
    # Each half-cent rounds to zero on its own; their exact sum is one cent.
    halves = parse_policies('{"halves": {"rates": {"EUR/USD": "0.5", "GBP/USD": "0.5"}}}')
    policy = halves["halves"]
    rates = {
        code: resolve(policy, code, "USD", {}, requested=DAY, max_age_days=7)
        for code in ("EUR", "GBP")
    }
    conversion = convert_totals(
        [total("EUR", "0.01"), total("GBP", "0.01")],
        rates,
        report="USD",
        policy=policy,
        requested=DAY,
    )
    shown = [
        t.converted.assets for t in conversion.totals if isinstance(t.converted, ConvertedTotal)
    ]
    assert [format(a, "f") for a in shown] == ["0.00", "0.00"]
    assert format(conversion.consolidated.assets, "f") == "0.01"


def test_consolidated_sums_what_converts_and_names_what_does_not() -> None:
    rates = {
        code: resolve(OFFICIAL, code, "USD", FOUND, requested=DAY, max_age_days=7)
        for code in ("ARS", "EUR", "USD", "USDT")
    }
    conversion = convert_totals(
        [
            total("ARS", "1395514.20"),
            total("EUR", "100.00", "10.00"),
            total("USD", "5.00"),
            total("USDT", "7"),
        ],
        rates,
        report="USD",
        policy=OFFICIAL,
        requested=DAY,
    )
    by_currency = {t.currency: t.converted for t in conversion.totals}
    assert by_currency["USDT"] is None
    ars = by_currency["ARS"]
    assert isinstance(ars, ConvertedTotal)
    assert format(ars.assets, "f") == "1000.00"
    consolidated = conversion.consolidated
    # 1000 + 114.89 + 5.00 assets; 11.489 liabilities, rounded once: 11.49.
    assert format(consolidated.assets, "f") == "1119.89"
    assert format(consolidated.liabilities, "f") == "11.49"
    assert format(consolidated.net, "f") == "1108.40"
    assert consolidated.complete is False
    assert consolidated.missing_currencies == ["USDT"]
    assert [entry.currency for entry in consolidated.rates] == ["ARS", "EUR", "USD"]
    assert consolidated.rates[2].legs == []
    assert [w.code for w in conversion.warnings] == [FX_RATE_MISSING]
    assert "USDT" in conversion.warnings[0].message


def test_a_converted_total_carries_its_rate_as_text() -> None:
    rates = {"ARS": resolve(OFFICIAL, "ARS", "USD", FOUND, requested=DAY, max_age_days=7)}
    conversion = convert_totals(
        [total("ARS", "1")], rates, report="USD", policy=OFFICIAL, requested=DAY
    )
    converted = conversion.totals[0].converted
    assert isinstance(converted, ConvertedTotal)
    assert converted.rate == "0.0007165817445641183729982826402"


def test_totals_without_a_report_currency_are_written_as_before() -> None:
    plain = total("ARS", "1.00")
    assert "converted" not in plain.model_dump_json()
    assert '"converted":null' in plain.model_copy(update={"converted": None}).model_dump_json()


# -- report currencies and configuration -------------------------------------------------


@pytest.mark.parametrize(
    ("code", "problem"),
    [
        ("USD", None),
        ("JPY", None),
        ("AED", None),
        ("USDT", "USDT is not an ISO 4217 currency code with minor units"),
        ("XAU", "XAU is not an ISO 4217 currency code with minor units"),
        ("BOB", "the policy official cannot convert into BOB"),
    ],
)
def test_which_report_currencies_official_can_convert_into(code: str, problem: str | None) -> None:
    assert report_currency_problem(OFFICIAL, code) == problem


def test_every_policy_mistake_is_reported_at_once() -> None:
    with pytest.raises(PolicyConfigError) as raised:
        parse_policies(
            '{"official": {"pegs": {"USDT": "USD"}},'
            ' "floaty": {"rates": {"USD/ARS": 1450.5}},'
            ' "Bad Name": {"extends": "official"},'
            ' "nowhere": {"extends": "treasury"},'
            ' "zero": {"rates": {"USD/ARS": "0"}},'
            ' "odd": {"pegs": {"USDT": "usd"}},'
            ' "empty": {},'
            ' "twice": {"rates": {"USD/ARS": "1", "ARS/USD": "1"}},'
            ' "extra": {"extends": "official", "ratez": {}}}'
        )
    message = str(raised.value)
    for expected in (
        "official: a built-in policy",
        "floaty.rates['USD/ARS']: write the rate as a decimal string",
        "'Bad Name': a policy name is lowercase",
        "nowhere.extends: 'treasury' is not a built-in policy",
        "zero.rates['USD/ARS']: a rate must be a positive",
        "odd.pegs['USDT']: a peg is CODE: ISO code",
        "empty: give `extends`, `rates` or `pegs`",
        "twice: more than one rate or peg for ARS/USD",
        "extra: unknown member ratez",
    ):
        assert expected in message


def test_a_policy_that_is_not_json_is_refused() -> None:
    with pytest.raises(PolicyConfigError, match="not valid JSON"):
        parse_policies("{nope")
