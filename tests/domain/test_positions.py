"""Tests of listing, filtering and totalling positions."""

from __future__ import annotations

import json
from collections.abc import Callable
from decimal import Decimal

import pytest

from app.domain.models import CurrencyTotal, Kind, Meaning, Side, Source
from app.domain.positions import filter_positions, positions_of, totals
from app.domain.snapshot import Account, Counterparty, Position, ReportedFigure
from tests.support.interpreted import FETCHED_AT

_MEANING_OF_SIGN = {
    (Kind.internal, 1): Meaning.cash,
    (Kind.internal, -1): Meaning.overdraft,
    (Kind.external, 1): Meaning.receivable,
    (Kind.external, -1): Meaning.payable,
}


def position(
    amount: str,
    currency: str = "ARS",
    *,
    kind: Kind = Kind.internal,
    source: Source = Source.finsync,
    counterparty: tuple[str, str] = ("finsync:1", "Caja"),
    account: tuple[str, str] = ("finsync:10", "Cuenta"),
) -> Position:
    value = Decimal(amount)
    sign = (value > 0) - (value < 0)
    meaning = _MEANING_OF_SIGN[(kind, sign)] if sign else Meaning.zero
    side = {1: Side.asset, -1: Side.liability, 0: Side.flat}[sign]
    return Position(
        counterparty_id=counterparty[0],
        counterparty_name=counterparty[1],
        kind=kind,
        source=source,
        account_id=account[0],
        account_name=account[1],
        currency=currency,
        amount=value,
        side=side,
        meaning=meaning,
        reported=ReportedFigure(amount=value.copy_abs(), client_type=0),
        fetched_at=FETCHED_AT,
    )


def counterparty_with(counterparty_id: str, name: str, *positions: Position | None) -> Counterparty:
    accounts = [
        Account(
            id=p.account_id if p else f"{counterparty_id}-empty",
            name=p.account_name if p else "sin posición",
            currency=p.currency if p else "ARS",
            position=p,
        )
        for p in positions
    ]
    return Counterparty(
        id=counterparty_id,
        source=Source.finsync,
        kind=Kind.internal,
        name=name,
        accounts=tuple(accounts),
    )


def test_positions_skip_accounts_without_a_position() -> None:
    cash = position("10")
    found = positions_of([counterparty_with("finsync:1", "Caja", cash, None)])
    assert found == [cash]


def test_positions_are_ordered_by_counterparty_then_account_then_currency() -> None:
    def at(cp: tuple[str, str], acc: tuple[str, str], currency: str) -> Position:
        return position("1", currency, counterparty=cp, account=acc)

    zeta = at(("finsync:1", "Zeta"), ("finsync:10", "A"), "ARS")
    alpha_usd = at(("finsync:2", "álpha"), ("finsync:20", "Cuenta"), "USD")
    alpha_ars = at(("finsync:2", "álpha"), ("finsync:20", "Cuenta"), "ARS")
    alpha_b = at(("finsync:2", "álpha"), ("finsync:21", "banco"), "ARS")
    beta = at(("finsync:3", "Beta"), ("finsync:30", "A"), "ARS")
    found = positions_of(
        [
            counterparty_with("finsync:1", "Zeta", zeta),
            counterparty_with("finsync:3", "Beta", beta),
            counterparty_with("finsync:2", "álpha", alpha_usd, alpha_b, alpha_ars),
        ]
    )
    assert found == [alpha_b, alpha_ars, alpha_usd, beta, zeta]


@pytest.fixture
def mixed() -> list[Position]:
    return [
        position("100", "ARS"),
        position("-40", "ARS", account=("finsync:11", "Descubierto")),
        position("0.00", "ARS", account=("finsync:12", "Vacía")),
        position("25", "USD", kind=Kind.external, counterparty=("finsync:2", "Cliente")),
        position(
            "-7.5",
            "RON",
            source=Source.finqware,
            counterparty=("finqware:bt", "BT"),
            account=("finqware:a", "Main"),
        ),
    ]


def test_zero_positions_are_left_out_unless_asked_for(mixed: list[Position]) -> None:
    assert len(filter_positions(mixed)) == 4
    assert len(filter_positions(mixed, include_zero=True)) == 5


def test_asking_for_flat_positions_includes_the_zero_ones(mixed: list[Position]) -> None:
    flat = filter_positions(mixed, side=Side.flat)
    assert [p.account_id for p in flat] == ["finsync:12"]


def test_currency_filter_is_any_of_and_case_insensitive(mixed: list[Position]) -> None:
    found = filter_positions(mixed, currencies=["usd", " ron "])
    assert sorted(p.currency for p in found) == ["RON", "USD"]


Select = Callable[[list[Position]], list[Position]]


@pytest.mark.parametrize(
    ("select", "expected_ids"),
    [
        (lambda ps: filter_positions(ps, kind=Kind.external), ["finsync:2"]),
        (lambda ps: filter_positions(ps, source=Source.finqware), ["finqware:bt"]),
        (lambda ps: filter_positions(ps, side=Side.liability), ["finsync:1", "finqware:bt"]),
        (lambda ps: filter_positions(ps, counterparty_id="finsync:1"), ["finsync:1"] * 2),
        (lambda ps: filter_positions(ps, counterparty_id="finsync:999"), []),
        (
            lambda ps: filter_positions(
                ps, currencies=["ARS"], side=Side.asset, kind=Kind.internal
            ),
            ["finsync:1"],
        ),
    ],
)
def test_filters_keep_only_matching_positions(
    mixed: list[Position], select: Select, expected_ids: list[str]
) -> None:
    assert [p.counterparty_id for p in select(mixed)] == expected_ids


def test_totals_sum_exactly_per_currency_sorted_by_code() -> None:
    found = totals(
        [
            position("0.10", "ARS"),
            position("0.20", "ARS", account=("finsync:11", "b")),
            position("-0.30", "ARS", account=("finsync:12", "c")),
            position("50", "USD", kind=Kind.external),
            position("-20.25", "USD", kind=Kind.external, account=("finsync:13", "d")),
            position("0.00", "USD"),
        ]
    )
    assert [t.currency for t in found] == ["ARS", "USD"]
    ars, usd = found
    assert (ars.assets, ars.liabilities, ars.net) == (
        Decimal("0.30"),
        Decimal("0.30"),
        Decimal("0"),
    )
    assert (ars.cash, ars.overdraft, ars.receivable, ars.payable) == (
        Decimal("0.30"),
        Decimal("-0.30"),
        Decimal("0"),
        Decimal("0"),
    )
    assert (usd.assets, usd.liabilities, usd.net) == (
        Decimal("50"),
        Decimal("20.25"),
        Decimal("29.75"),
    )
    assert (usd.receivable, usd.payable, usd.cash, usd.overdraft) == (
        Decimal("50"),
        Decimal("-20.25"),
        Decimal("0"),
        Decimal("0"),
    )


def test_zero_totals_are_scaled_to_the_currency_and_never_negative() -> None:
    [total] = totals([position("-1.00", "ARS"), position("1.00", "ARS", account=("x", "x"))])
    dumped = json.loads(total.model_dump_json())
    assert dumped["net"] == "0.00"
    assert dumped["receivable"] == "0.00"
    assert '"-0' not in total.model_dump_json()


def test_totals_are_padded_to_minor_units_and_written_fixed_point() -> None:
    [ron] = totals([position("1E+2", "RON"), position("5", "RON", account=("y", "y"))])
    assert json.loads(ron.model_dump_json())["assets"] == "105.00"


def test_totals_of_a_non_iso_currency_keep_their_decimals() -> None:
    [usdt] = totals([position("0.00000001", "USDT"), position("0.5", "USDT", account=("z", "z"))])
    assert format(usdt.assets, "f") == "0.50000001"
    assert format(usdt.liabilities, "f") == "0"


def test_no_positions_give_no_totals() -> None:
    assert totals([]) == []


def test_total_is_a_currency_total_model() -> None:
    [total] = totals([position("1")])
    assert isinstance(total, CurrencyTotal)
